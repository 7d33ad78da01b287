/**
 * Key resolution per trusted client (CDS Hooks: the client publishes its public keys as a JWK
 * Set, at its `jku` URL or exchanged out of band). Only the registered key set of the client
 * named by `iss` is ever consulted; keys embedded in a token are never used.
 */
import { KeyObject, type KeyObject as NodeKeyObject } from 'node:crypto';
import { importJWK, type CryptoKey, type JWK } from 'jose';
import { keyFitsAlg } from './jws.js';
import { AuthError, type AuthErrorCode } from './errors.js';
import { cacheLifetime, fetchJwks } from './jwks-fetch.js';

/** A CDS client allowed to call us, with the key set its JWTs are checked against. */
export interface TrustedClient {
  /** The exact `iss` value of its JWTs. */
  iss: string;
  /** A label for logs. */
  name?: string;
  /** An inline (out-of-band) JWK Set; used only when `jwksUri` is absent. */
  jwks?: { keys: JWK[] };
  /** The https URL of its JWK Set; a token's `jku`, if any, must equal it exactly. */
  jwksUri?: string;
  /** The FHIR servers this client may name in `fhirServer`. */
  fhirServers?: string[];
}

/** The JWS algorithms accepted (CDS Hooks recommends ES384 and RS384; HS* and none are banned). */
export type CdsJwtAlg = 'ES384' | 'RS384';

/** A key usable with jose's verify functions. */
export type VerifyKey = NodeKeyObject;

/** Tuning of key set downloads and caching. */
export interface KeySetOptions {
  /** Trusted CA certificates (PEM) for key set hosts; replaces the default roots. */
  ca?: string | Buffer;
  /** Deadline for one download (default 5000 ms). */
  timeoutMs?: number;
  /** The largest key set accepted (default 64 KiB). */
  maxBytes?: number;
  /** Minimum time between refetches caused by an unknown `kid` (default 30 000 ms). */
  cooldownMs?: number;
  /** Cache lifetime when the host sends no `Cache-Control` (default 300 s). */
  defaultMaxAgeSeconds?: number;
  /** Upper bound on any cache lifetime (default 24 h). */
  maxMaxAgeSeconds?: number;
  /** The clock in epoch seconds (tests freeze it). */
  now?: () => number;
}

/** A parsed key set: public signing keys by `kid`, plus the keys imported so far. */
interface KeySet {
  keys: Map<string, JWK>;
  imported: Map<string, VerifyKey>;
  /** Epoch milliseconds after which the set must be fetched again. */
  expiresAt: number;
}

const MAX_KEYS = 100;
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'alg', 'kid', 'use'] as const;

/**
 * Validates a JWK Set and keeps the public members of its signing keys. Keys without a `kid`
 * (never selectable) or whose `use` is not `sig` are skipped; duplicate kids are refused.
 */
export function parseKeySet(body: unknown): Map<string, JWK> {
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (typeof body !== 'object' || body === null || !Array.isArray(keys)) {
    throw new AuthError('ERR_JWKS_FETCH', 'not a JWK Set');
  }
  if (keys.length > MAX_KEYS) throw new AuthError('ERR_JWKS_FETCH', 'too many keys');
  const seen = new Set<string>();
  const out = new Map<string, JWK>();
  for (const raw of keys as unknown[]) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) continue;
    const key = raw as Record<string, unknown>;
    if (typeof key.kid !== 'string' || key.kid === '') continue;
    if (seen.has(key.kid)) throw new AuthError('ERR_JWKS_DUPLICATE_KID');
    seen.add(key.kid);
    if (key.use !== undefined && key.use !== 'sig') continue;
    if (Array.isArray(key.key_ops) && !key.key_ops.includes('verify')) continue;
    const jwk: Record<string, unknown> = {};
    // Private members (d, p, q, k ...) are dropped: a published set must not hold them.
    for (const name of PUBLIC_MEMBERS) if (key[name] !== undefined) jwk[name] = key[name];
    out.set(key.kid, jwk as JWK);
  }
  return out;
}

/** The size in bits of a base64url big-endian unsigned integer. */
function bitLength(b64url: string): number {
  const bytes = Buffer.from(b64url, 'base64url');
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i += 1;
  const first = bytes[i];
  if (first === undefined) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(first));
}

/** Checks that `jwk` fits `alg` (key type, curve, declared alg, RSA size) and imports it. */
async function importFor(jwk: JWK, alg: CdsJwtAlg): Promise<VerifyKey> {
  const kty = alg === 'ES384' ? 'EC' : 'RSA';
  if (jwk.kty !== kty || (jwk.alg !== undefined && jwk.alg !== alg)) {
    throw new AuthError('ERR_JWT_ALG_KEY_MISMATCH');
  }
  if (kty === 'EC' && jwk.crv !== 'P-384') throw new AuthError('ERR_JWT_ALG_KEY_MISMATCH');
  if (kty === 'RSA' && (typeof jwk.n !== 'string' || bitLength(jwk.n) < 2048)) {
    throw new AuthError('ERR_JWKS_KEY_INVALID');
  }
  let key: CryptoKey | Uint8Array;
  try {
    const { alg: _alg, kid: _kid, use: _use, ...material } = jwk;
    key = await importJWK(material, alg);
  } catch {
    throw new AuthError('ERR_JWKS_KEY_INVALID');
  }
  if (key instanceof Uint8Array) throw new AuthError('ERR_JWT_ALG_KEY_MISMATCH');
  // Converted once here: the signature check (jws.ts) works on Node KeyObjects.
  const keyObject = KeyObject.from(key as Parameters<typeof KeyObject.from>[0]);
  if (!keyFitsAlg(keyObject, alg)) throw new AuthError('ERR_JWT_ALG_KEY_MISMATCH');
  return keyObject;
}

/** The outcome of the last download of one `jwksUri`. */
interface Attempt {
  /** Epoch milliseconds at which the download started (the start of the cooldown). */
  startedAt: number;
  /** The refusal, when the download failed (the negative cache). */
  failure?: { code: AuthErrorCode; detail: string | undefined };
}

/**
 * The key sets of all trusted clients: inline sets parsed once, remote sets downloaded from
 * the registered `jwksUri` only and cached per `Cache-Control`. Concurrent callers share one
 * download.
 *
 * Anyone who knows a trusted `iss` can make us look up its key set, so every download of a
 * `jwksUri` (successful, failed, or answered with `no-store`) starts a cooldown during which
 * that URL is not fetched again: a set is kept at least for the cooldown whatever its
 * `Cache-Control` says, a failure is answered from a negative cache with the same code, and
 * an unknown `kid` causes at most one refetch per cooldown. At most one download per URL thus
 * starts per cooldown, however many tokens arrive.
 */
export class KeySets {
  private readonly inline = new WeakMap<TrustedClient, KeySet>();
  private readonly remote = new Map<string, KeySet>();
  private readonly pending = new Map<string, Promise<KeySet>>();
  private readonly attempts = new Map<string, Attempt>();
  private readonly opts: Required<Omit<KeySetOptions, 'ca'>> & Pick<KeySetOptions, 'ca'>;

  constructor(opts: KeySetOptions = {}) {
    this.opts = {
      ca: opts.ca,
      timeoutMs: opts.timeoutMs ?? 5000,
      maxBytes: opts.maxBytes ?? 64 * 1024,
      cooldownMs: opts.cooldownMs ?? 30_000,
      defaultMaxAgeSeconds: opts.defaultMaxAgeSeconds ?? 300,
      maxMaxAgeSeconds: opts.maxMaxAgeSeconds ?? 24 * 3600,
      now: opts.now ?? ((): number => Date.now() / 1000),
    };
  }

  /** The verification key `kid` of `client` for `alg`, or an {@link AuthError}. */
  async getKey(client: TrustedClient, kid: string, alg: CdsJwtAlg): Promise<VerifyKey> {
    const set = await this.setFor(client, kid);
    const jwk = set.keys.get(kid);
    if (!jwk) throw new AuthError('ERR_JWT_KID_UNKNOWN');
    const cacheKey = `${alg}:${kid}`;
    const cached = set.imported.get(cacheKey);
    if (cached) return cached;
    const key = await importFor(jwk, alg);
    set.imported.set(cacheKey, key);
    return key;
  }

  private nowMs(): number {
    return this.opts.now() * 1000;
  }

  private async setFor(client: TrustedClient, kid: string): Promise<KeySet> {
    const uri = client.jwksUri;
    if (uri === undefined) {
      let set = this.inline.get(client);
      if (!set) {
        if (!client.jwks) throw new AuthError('ERR_JWKS_FETCH', 'no key set is registered');
        set = { keys: parseKeySet(client.jwks), imported: new Map(), expiresAt: Infinity };
        this.inline.set(client, set);
      }
      return set;
    }
    const now = this.nowMs();
    const cached = this.remote.get(uri);
    const fresh = cached !== undefined && now < cached.expiresAt ? cached : undefined;
    if (fresh?.keys.has(kid)) return fresh;
    // No usable set, or an unknown kid (the client may have rotated its keys): a download is
    // wanted, but only one may be under way and only one may start per cooldown.
    const inFlight = this.pending.get(uri);
    if (inFlight) return inFlight;
    const last = this.attempts.get(uri);
    // A clock that went backwards counts as within the cooldown.
    if (last && now - last.startedAt < this.opts.cooldownMs) {
      if (last.failure) throw new AuthError(last.failure.code, last.failure.detail);
      // The last download succeeded, and its set is kept for at least the cooldown.
      if (fresh) return fresh;
    }
    return this.refresh(uri);
  }

  private refresh(uri: string): Promise<KeySet> {
    const startedAt = this.nowMs();
    const attempt: Attempt = { startedAt };
    this.attempts.set(uri, attempt);
    const run = (async (): Promise<KeySet> => {
      try {
        const { body, cacheControl } = await fetchJwks(uri, this.opts);
        const keys = parseKeySet(body);
        const { defaultMaxAgeSeconds, maxMaxAgeSeconds, cooldownMs } = this.opts;
        const ttl = cacheLifetime(cacheControl, defaultMaxAgeSeconds, maxMaxAgeSeconds);
        // no-store, no-cache and max-age=0 still hold for the cooldown: otherwise each
        // request would cause a download.
        const lifetimeMs = Math.max(ttl * 1000, cooldownMs);
        const set: KeySet = { keys, imported: new Map(), expiresAt: startedAt + lifetimeMs };
        this.remote.set(uri, set);
        return set;
      } catch (err) {
        const failure =
          err instanceof AuthError ? err : new AuthError('ERR_JWKS_FETCH', 'unexpected failure');
        attempt.failure = { code: failure.code, detail: failure.detail };
        throw failure;
      }
    })();
    this.pending.set(uri, run);
    const clear = (): void => {
      this.pending.delete(uri);
    };
    run.then(clear, clear);
    return run;
  }
}
