/**
 * `crdkit call`: a minimal CDS client for trying a server. It signs an ES384 (or RS384) JWT
 * for the exact service URL, sets a fresh `hookInstance`, sends the request and prints the
 * response.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { JWK } from 'jose';
import { signCdsJwt } from '../auth/sign.js';
import { clientTlsOptions } from '../tls/options.js';

export interface CallOptions {
  key: string;
  iss: string;
  ca?: string;
  jku?: string;
  lifetime?: number;
}

export interface CallResult {
  status: number;
  body: string;
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** Sends one hook request; returns the status and the raw response body. */
export async function call(
  serviceUrl: string,
  requestFile: string,
  opts: CallOptions,
): Promise<CallResult> {
  const url = new URL(serviceUrl);
  if (url.protocol !== 'https:') throw new Error('the service URL must be https (sec-2)');
  const body = readJson(requestFile, 'request file') as Record<string, unknown>;
  body.hookInstance = randomUUID();
  const privateJwk = readJson(opts.key, 'private key file') as JWK & { keys?: unknown };
  if (privateJwk.keys !== undefined) {
    throw new Error(`${opts.key} is a JWK Set (public keys); --key needs the private JWK file`);
  }
  if (typeof privateJwk.d !== 'string' || typeof privateJwk.kid !== 'string') {
    throw new Error(`${opts.key} is not a private JWK with a "kid" (e.g. client-private.jwk.json)`);
  }
  const jwt = await signCdsJwt({
    privateJwk,
    iss: opts.iss,
    aud: url.href,
    ...(opts.jku ? { jku: opts.jku } : {}),
    ...(opts.lifetime ? { lifetimeSeconds: opts.lifetime } : {}),
  });
  const payload = JSON.stringify(body);
  const ca = opts.ca ? readFileSync(opts.ca) : undefined;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      ...clientTlsOptions(ca),
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        authorization: `Bearer ${jwt}`,
        'content-length': Buffer.byteLength(payload),
      },
      timeout: 15_000,
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(err.code ?? '');
      const hint = opts.ca
        ? `the certificate in ${opts.ca} does not match the server's`
        : "pass the server's certificate with --ca";
      reject(
        new Error(
          tls
            ? `TLS certificate check failed (${err.code}); ${hint}`
            : `request failed: ${err.message}`,
        ),
      );
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.end(payload);
  });
}
