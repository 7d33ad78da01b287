/**
 * Server-side check of the CDS Hooks client JWT (CDS Hooks "Trusting CDS Clients", inherited
 * by CRD sec-1): header, trusted issuer, registered key, signature, audience, times, nonce.
 */
import { verifyJwsSignature } from './jws.js';
import { AuthError } from './errors.js';
import {
  KeySets,
  parseKeySet,
  type CdsJwtAlg,
  type KeySetOptions,
  type TrustedClient,
} from './keys.js';
import type { ReplayStore } from './replay.js';

/** Settings of {@link createVerifier}. */
export interface VerifierOptions {
  /** The allowlist of clients (CDS Hooks: services SHOULD allowlist `iss` and `jku`). */
  clients: TrustedClient[];
  /** Where spent `jti` values are remembered. */
  replay: ReplayStore;
  /** Tolerated clock difference in seconds (default 60). */
  clockSkewSeconds?: number;
  /** The largest accepted `exp - iat` in seconds (default 300, what Inferno sends). */
  maxLifetimeSeconds?: number;
  /** The largest accepted token in bytes (default 8192). */
  maxTokenBytes?: number;
  /** The clock in epoch seconds (tests freeze it). */
  now?: () => number;
  /** Key set download and cache settings (the clock defaults to `now`). */
  keySets?: KeySetOptions;
}

/** An authenticated caller. */
export interface VerifiedClient {
  iss: string;
  jti: string;
  client: TrustedClient;
  /** The optional `tenant` claim (the invoking organisation). */
  tenant?: string;
}

/** The JWT check bound to one configuration. */
export interface Verifier {
  /**
   * Checks the `Authorization` header value for a call to `audience`, the exact URL invoked,
   * built from the configured base URL (never from the Host header). Throws {@link AuthError}.
   */
  verify(authorization: string | undefined, audience: string): Promise<VerifiedClient>;
}

const ALGS: readonly CdsJwtAlg[] = ['ES384', 'RS384'];
const MAX_ID_LENGTH = 256;
const B64URL = /^[A-Za-z0-9_-]*$/;

type Json = Record<string, unknown>;

/** Decodes one base64url JSON object part, or throws ERR_JWT_MALFORMED. */
function decodePart(part: string): Json {
  if (part === '' || !B64URL.test(part) || part.length % 4 === 1) {
    throw new AuthError('ERR_JWT_MALFORMED');
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new AuthError('ERR_JWT_MALFORMED');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AuthError('ERR_JWT_MALFORMED');
  }
  return value as Json;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Throws at construction on a configuration that could never authenticate safely. */
function indexClients(clients: TrustedClient[]): Map<string, TrustedClient> {
  const byIss = new Map<string, TrustedClient>();
  clients.forEach((client, i) => {
    const where = `trusted client #${i + 1}`;
    if (typeof client.iss !== 'string' || client.iss === '') {
      throw new TypeError(`${where}: "iss" is required`);
    }
    if (byIss.has(client.iss)) throw new TypeError(`${where}: "iss" is listed twice`);
    if (client.jwksUri !== undefined && !/^https:\/\/[^/?#]/i.test(client.jwksUri)) {
      throw new TypeError(`${where}: "jwksUri" must be an https URL`);
    }
    if (client.jwksUri === undefined && client.jwks === undefined) {
      throw new TypeError(`${where}: "jwks" or "jwksUri" is required`);
    }
    if (client.jwksUri === undefined && client.jwks !== undefined) {
      try {
        parseKeySet(client.jwks);
      } catch (err) {
        throw new TypeError(`${where}: "jwks" is invalid (${(err as Error).message})`);
      }
    }
    byIss.set(client.iss, client);
  });
  return byIss;
}

/** Builds the CDS Hooks JWT verifier; throws TypeError on an invalid client list. */
export function createVerifier(opts: VerifierOptions): Verifier {
  const clients = indexClients(opts.clients);
  const now = opts.now ?? ((): number => Math.floor(Date.now() / 1000));
  const skew = opts.clockSkewSeconds ?? 60;
  const maxLifetime = opts.maxLifetimeSeconds ?? 300;
  const maxBytes = opts.maxTokenBytes ?? 8192;
  const keySets = new KeySets({ now, ...opts.keySets });

  async function verify(
    authorization: string | undefined,
    audience: string,
  ): Promise<VerifiedClient> {
    if (typeof audience !== 'string' || audience === '') {
      throw new TypeError('verify: "audience" must be the URL invoked');
    }
    if (typeof authorization !== 'string' || !/^bearer /i.test(authorization)) {
      throw new AuthError('ERR_AUTH_MISSING');
    }
    const token = authorization.slice(7).trim();
    if (token === '') throw new AuthError('ERR_AUTH_MISSING');
    // A comma or space means a second credential (e.g. two Authorization headers joined as
    // "Bearer a, Bearer b"); refused whatever its size, before any part is decoded.
    if (/[,\s]/.test(token)) throw new AuthError('ERR_JWT_MALFORMED');
    if (Buffer.byteLength(token) > maxBytes) throw new AuthError('ERR_JWT_TOO_LARGE');
    const parts = token.split('.');
    const [h, p, s] = parts;
    if (parts.length !== 3 || h === undefined || p === undefined || s === undefined) {
      throw new AuthError('ERR_JWT_MALFORMED');
    }
    const header = decodePart(h);
    const claims = decodePart(p);
    // Empty signatures are let through here so that `alg: none` is reported as such.
    if (!B64URL.test(s)) throw new AuthError('ERR_JWT_MALFORMED');
    const alg = header.alg;
    if (typeof alg !== 'string' || !ALGS.includes(alg as CdsJwtAlg)) {
      throw new AuthError('ERR_JWT_ALG');
    }
    if (header.typ !== 'JWT') throw new AuthError('ERR_JWT_TYP');
    // No critical extensions are understood (this also rules out RFC 7797 `b64: false`).
    if (header.crit !== undefined || header.b64 !== undefined) {
      throw new AuthError('ERR_JWT_MALFORMED');
    }
    const kid = header.kid;
    if (typeof kid !== 'string' || kid === '' || kid.length > MAX_ID_LENGTH) {
      throw new AuthError('ERR_JWT_KID_MISSING');
    }
    const client = typeof claims.iss === 'string' ? clients.get(claims.iss) : undefined;
    if (!client) throw new AuthError('ERR_JWT_ISS');
    // The jku is only compared, never fetched: keys come from the registered set alone, so
    // a token cannot point us at an attacker's host (SSRF) or key set.
    if (header.jku !== undefined) {
      if (client.jwksUri === undefined || header.jku !== client.jwksUri) {
        throw new AuthError('ERR_JWT_JKU');
      }
    }
    const key = await keySets.getKey(client, kid, alg as CdsJwtAlg);
    const signature = Buffer.from(s, 'base64url');
    if (!(await verifyJwsSignature(alg as CdsJwtAlg, key, `${h}.${p}`, signature))) {
      throw new AuthError('ERR_JWT_SIGNATURE');
    }
    // The claims decoded above are trusted from here on: they are what was signed.
    return checkClaims(claims, client, audience);
  }

  async function checkClaims(
    claims: Json,
    client: TrustedClient,
    audience: string,
  ): Promise<VerifiedClient> {
    const aud = claims.aud;
    const audOk = Array.isArray(aud) ? aud.includes(audience) : aud === audience;
    if (!audOk) throw new AuthError('ERR_JWT_AUD');
    const t = now();
    const { exp, iat, nbf } = claims;
    if (!isNumber(exp) || exp + skew < t) throw new AuthError('ERR_JWT_EXP');
    if (!isNumber(iat) || iat - skew > t) throw new AuthError('ERR_JWT_IAT');
    if (nbf !== undefined && (!isNumber(nbf) || nbf - skew > t)) {
      throw new AuthError('ERR_JWT_NBF');
    }
    if (exp <= iat || exp - iat > maxLifetime) throw new AuthError('ERR_JWT_LIFETIME');
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_ID_LENGTH) {
      throw new AuthError('ERR_JWT_JTI');
    }
    const tenant = claims.tenant;
    if (
      tenant !== undefined &&
      (typeof tenant !== 'string' || tenant === '' || tenant.length > MAX_ID_LENGTH)
    ) {
      throw new AuthError('ERR_JWT_TENANT');
    }
    // Last, so a token refused for any other reason never burns its jti. The entry lives as
    // long as the token could still be accepted, i.e. until exp plus the skew.
    if (!(await opts.replay.spend(client.iss, jti, exp + skew))) {
      throw new AuthError('ERR_JWT_REPLAY');
    }
    const verifiedClient: VerifiedClient = { iss: client.iss, jti, client };
    if (tenant !== undefined) verifiedClient.tenant = tenant;
    return verifiedClient;
  }

  return { verify };
}
