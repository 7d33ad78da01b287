/**
 * Fetching a client's JWK Set over HTTPS with crdkit's client TLS settings (TLS 1.2 or later,
 * ECDHE AEAD suites only, certificate checks always on), an optional private CA, a deadline,
 * a size limit, no redirects, and failures mapped to ERR_JWKS_TLS or ERR_JWKS_FETCH.
 */
import type { ClientRequest } from 'node:http';
import { request } from 'node:https';
import { clientTlsOptions } from '../tls/options.js';
import { AuthError } from './errors.js';

/** Limits for one key set download. */
export interface FetchJwksOptions {
  /** Trusted CA certificates (PEM); replaces the default roots when given. */
  ca?: string | Buffer;
  /** Deadline for the whole download, in milliseconds. */
  timeoutMs: number;
  /** The largest accepted body, in bytes. */
  maxBytes: number;
}

/** A downloaded key set: the parsed JSON body and its `Cache-Control` header. */
export interface FetchedJwks {
  body: unknown;
  cacheControl: string | undefined;
}

/** OpenSSL certificate verification codes (`X509_V_ERR_*` without the prefix). */
const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
]);

/** A Node/OpenSSL error code, only if it has the shape of one (so it is safe to report). */
function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : undefined;
}

/**
 * Maps a transport error to ERR_JWKS_TLS (certificate or handshake) or ERR_JWKS_FETCH. A failed
 * handshake (no shared protocol version or cipher suite) surfaces on the client as `EPROTO`
 * or an `ERR_SSL_*` code.
 */
function transportError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  const code = errorCode(err);
  if (code && (CERT_CODES.has(code) || code === 'EPROTO' || /^ERR_(TLS|SSL)_/.test(code))) {
    return new AuthError('ERR_JWKS_TLS', code);
  }
  const detail = code ? `connection failed (${code})` : 'connection failed';
  return new AuthError('ERR_JWKS_FETCH', detail);
}

/**
 * GETs `uri` (which must be https) and parses its JSON body. Redirects are not followed: the
 * key set must live at the registered URL itself.
 */
export function fetchJwks(uri: string, opts: FetchJwksOptions): Promise<FetchedJwks> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return Promise.reject(new AuthError('ERR_JWKS_FETCH', 'the registered URL is invalid'));
  }
  if (url.protocol !== 'https:') {
    return Promise.reject(new AuthError('ERR_JWKS_FETCH', 'the registered URL is not https'));
  }
  return new Promise<FetchedJwks>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: AuthError | undefined, value?: FetchedJwks): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value as FetchedJwks);
    };
    let req: ClientRequest;
    try {
      req = request(url, {
        method: 'GET',
        // The shared client settings (sec-2): weak suites and versions fail the handshake.
        ...clientTlsOptions(opts.ca),
        // A fresh agent per download: no pooled socket outlives the fetch.
        agent: false,
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
    } catch (err) {
      return finish(transportError(err));
    }
    timer = setTimeout(() => {
      finish(new AuthError('ERR_JWKS_FETCH', 'timeout'));
      req.destroy();
    }, opts.timeoutMs);
    req.on('error', (err) => finish(transportError(err)));
    req.on('response', (res) => {
      const fail = (detail: string): void => {
        finish(new AuthError('ERR_JWKS_FETCH', detail));
        req.destroy();
      };
      if (res.statusCode !== 200) return fail(`HTTP status ${res.statusCode ?? 0}`);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > opts.maxBytes) return fail('response too large');
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > opts.maxBytes) return fail('response too large');
        chunks.push(chunk);
      });
      res.on('error', (err) => finish(transportError(err)));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return fail('invalid JSON');
        }
        const cc = res.headers['cache-control'];
        finish(undefined, { body, cacheControl: typeof cc === 'string' ? cc : undefined });
      });
    });
    req.end();
  });
}

/**
 * How long a key set may be cached, in seconds, from its `Cache-Control` header: `no-store`
 * and `no-cache` give 0, `max-age` is capped at `maxSeconds`, otherwise `defaultSeconds`.
 */
export function cacheLifetime(
  cacheControl: string | undefined,
  defaultSeconds: number,
  maxSeconds: number,
): number {
  if (!cacheControl) return Math.min(defaultSeconds, maxSeconds);
  let maxAge: number | undefined;
  for (const part of cacheControl.split(',')) {
    const [rawName, rawValue] = part.split('=', 2);
    const name = (rawName ?? '').trim().toLowerCase();
    if (name === 'no-store' || name === 'no-cache') return 0;
    if (name === 'max-age' && rawValue !== undefined) {
      const value = rawValue.trim().replace(/^"(.*)"$/, '$1');
      if (/^\d{1,10}$/.test(value)) maxAge = Number(value);
    }
  }
  return Math.min(maxAge ?? defaultSeconds, maxSeconds);
}
