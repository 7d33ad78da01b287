/**
 * Test helpers for the auth layer: keys made at test time, hand-built tokens (including
 * forged ones), an error assertion that also checks for token leaks, and a counting loopback
 * HTTPS server for JWK Sets.
 */
import assert from 'node:assert/strict';
import { createHmac, createSign, KeyObject, randomBytes } from 'node:crypto';
import { createServer, type Server, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CompactSign, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { generate } from 'selfsigned';
import { AuthError, type AuthErrorCode } from '../../src/auth/index.js';

/** The frozen clock of the tests (epoch seconds). */
export const NOW = 1_800_000_000;
export const ISS = 'https://ehr.example.org/cds-client';
export const AUD = 'https://payer.example.org/cds-services/order-sign-crd';

/** A key pair made for one test run. */
export interface TestKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** Generates a signing key for `alg` (`ES256` gives a P-256 key) with a random kid. */
export async function makeKey(alg: 'ES384' | 'RS384' | 'ES256', kid?: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const id = kid ?? `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`;
  return { kid: id, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid: id } };
}

/** A random 64-hex-character jti, as Inferno sends. */
export const newJti = (): string => randomBytes(32).toString('hex');

/** Inferno-shaped claims at `now`, with overrides (`undefined` removes a claim). */
export function claims(over: Record<string, unknown> = {}, now = NOW): Record<string, unknown> {
  const base: Record<string, unknown> = { iss: ISS, aud: AUD, iat: now, exp: now + 300 };
  base.jti = newJti();
  const out = { ...base, ...over };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Signs `payload` with `key` under an arbitrary protected header (which names the alg). */
export async function sign(
  header: Record<string, unknown> & { alg: string },
  payload: Record<string, unknown>,
  key: CryptoKey,
): Promise<string> {
  return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader(header).sign(key);
}

/** A token with the standard header `{alg, typ: 'JWT', kid}` signed by `key`. */
export async function tokenFor(
  key: TestKey,
  alg: 'ES384' | 'RS384' | 'ES256',
  payload: Record<string, unknown> = claims(),
  extraHeader: Record<string, unknown> = {},
): Promise<string> {
  return sign({ alg, typ: 'JWT', kid: key.kid, ...extraHeader }, payload, key.privateKey);
}

/** An unsigned or arbitrarily signed token built by hand. */
export function forge(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signature = '',
): string {
  return `${b64(header)}.${b64(payload)}.${signature}`;
}

/** Signs any header with an ES384 key outside jose (jose refuses to sign some headers). */
export function rawEs384(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: TestKey,
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signer = createSign('sha384').update(input);
  const sig = signer.sign({ key: KeyObject.from(key.privateKey), dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/** An HMAC-signed token (the "alg confusion" attack when `secret` is a public key). */
export function hmacToken(
  alg: 'HS256' | 'HS384' | 'HS512',
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: Buffer | string,
): string {
  const input = `${b64({ ...header, alg })}.${b64(payload)}`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/**
 * Asserts that `promise` rejects with an AuthError of `code` and status 401, and that neither
 * the message nor the OperationOutcome contains the token, any part of it, or `secrets`.
 */
export async function expectAuthError(
  promise: Promise<unknown>,
  code: AuthErrorCode,
  token?: string,
  secrets: string[] = [],
): Promise<AuthError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof AuthError, `expected AuthError ${code}, got ${String(caught)}`);
  assert.equal(caught.status, 401);
  assert.equal(caught.code, code);
  assert.equal(caught.issueType, 'security');
  const texts = [caught.message, JSON.stringify(caught.toOutcome())];
  const leaks = [...(token ? [token, ...token.split('.')] : []), ...secrets];
  for (const text of texts) {
    for (const leak of leaks) {
      if (leak.length >= 4) assert.ok(!text.includes(leak), `message leaks "${leak}"`);
    }
  }
  return caught;
}

/** The `Authorization` header value for `token`. */
export const bearer = (token: string): string => `Bearer ${token}`;

/** A PEM certificate and key for a loopback HTTPS server. */
export interface TestCert {
  cert: string;
  key: string;
}

/**
 * A self-signed RSA certificate for `commonName` (`localhost` also covers IP 127.0.0.1); RSA so
 * that servers can offer the `ECDHE-RSA-*` and static-RSA TLS 1.2 suites.
 */
export async function makeCert(commonName = 'localhost'): Promise<TestCert> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    algorithm: 'sha256',
    keyType: 'rsa',
    keySize: 2048,
  });
  return { cert: pems.cert, key: pems.private };
}

/** What the JWK Set server answers; tests mutate it between calls. */
export interface JwksReply {
  status: number;
  body: string;
  headers: Record<string, string>;
  /** When true the server never answers (timeout tests). */
  hang?: boolean;
}

/** A counting loopback HTTPS server. */
export interface JwksServer {
  /** The base URL, `https://127.0.0.1:<port>`. */
  origin: string;
  /** Requests received, by path. */
  hits: string[];
  reply: JwksReply;
  close(): Promise<void>;
}

/**
 * Starts an HTTPS server on 127.0.0.1 answering every request with `reply`; `tls` adds server
 * TLS settings (e.g. weak `ciphers` and `maxVersion`).
 */
export async function startJwksServer(
  cert: TestCert,
  keys: JWK[] = [],
  tls: ServerOptions = {},
): Promise<JwksServer> {
  const hits: string[] = [];
  const reply: JwksReply = { status: 200, body: JSON.stringify({ keys }), headers: {} };
  const options: ServerOptions = { ...tls, cert: cert.cert, key: cert.key };
  const server: Server = createServer(options, (req, res) => {
    hits.push(req.url ?? '');
    if (reply.hang) return;
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    res.end(reply.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `https://127.0.0.1:${port}`,
    hits,
    reply,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
