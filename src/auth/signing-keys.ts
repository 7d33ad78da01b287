/**
 * The EHR's CDS Hooks signing keys (CDS Hooks "Trusting CDS Clients": the client signs every
 * call with a key from its published JWK Set and SHOULD rotate keys). Retired public keys stay
 * published until every token they signed has expired, then drop out of the set.
 */
import { chmod, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import type { JWK } from 'jose';
import type { CdsJwtAlg } from './keys.js';
import { generateClientKeyPair, signCdsJwt } from './sign.js';

/** Options of {@link SigningKeys.create}. */
export interface SigningKeysOptions {
  /** The algorithm of new keys (default ES384; CDS Hooks recommends ES384 and RS384). */
  alg?: CdsJwtAlg;
  /** The longest token lifetime allowed, 1..300 s (default 300). */
  maxTokenLifetimeSeconds?: number;
  /**
   * Seconds a service may still accept a token after its `exp` (default 60, crdkit's own
   * verifier's tolerance); a retired key stays published this much longer.
   */
  clockSkewSeconds?: number;
  /** The clock in epoch milliseconds (tests freeze it). */
  now?: () => number;
  /** A file to keep the keys in across restarts, written with mode 0600. */
  store?: string;
}

/** Options of {@link SigningKeys.sign}. */
export interface SignOptions {
  /** The client's issuer URI, as registered with the payer. */
  iss: string;
  /** The URL of the published JWK Set, sent as the `jku` header. */
  jku?: string;
  /** Seconds until `exp` (default and maximum: `maxTokenLifetimeSeconds`, at most 300). */
  lifetimeSeconds?: number;
  /** The optional `tenant` claim. */
  tenant?: string;
}

export type SigningKeysErrorCode = 'ERR_KEYSTORE_MODE' | 'ERR_KEYSTORE_FORMAT' | 'ERR_KEYS_INPUT';

/** The key store or an option is unusable; messages never hold key material. */
export class SigningKeysError extends Error {
  override name = 'SigningKeysError';

  constructor(
    readonly code: SigningKeysErrorCode,
    message: string,
  ) {
    super(message);
  }
}

interface StoredKey {
  privateJwk: JWK;
  createdAt: number;
  /** When it stopped signing (epoch ms); absent for the current key. */
  retiredAt?: number;
}

/** The members a published key may have: never `d`, `p`, `q`, `dp`, `dq`, `qi`, `k`. */
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use'] as const;
const MAX_LIFETIME = 300;

/** The EHR's signing keys: one current key plus retired keys still published. */
export class SigningKeys {
  readonly #alg: CdsJwtAlg;
  readonly #maxLifetime: number;
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #store: string | undefined;
  /** Current key first. */
  #keys: StoredKey[];
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(opts: Required<Omit<SigningKeysOptions, 'store'>> & { store?: string }) {
    this.#alg = opts.alg;
    this.#maxLifetime = opts.maxTokenLifetimeSeconds;
    this.#retentionMs = (opts.maxTokenLifetimeSeconds + opts.clockSkewSeconds) * 1000;
    this.#now = opts.now;
    this.#store = opts.store;
    this.#keys = [];
  }

  /** Loads the keys from `store` (if it exists) or makes a first key. */
  static async create(opts: SigningKeysOptions = {}): Promise<SigningKeys> {
    const alg = opts.alg ?? 'ES384';
    if (alg !== 'ES384' && alg !== 'RS384') {
      throw new SigningKeysError('ERR_KEYS_INPUT', '"alg" must be ES384 or RS384');
    }
    const maxTokenLifetimeSeconds = opts.maxTokenLifetimeSeconds ?? MAX_LIFETIME;
    if (!isSeconds(maxTokenLifetimeSeconds, 1, MAX_LIFETIME)) {
      throw new SigningKeysError('ERR_KEYS_INPUT', '"maxTokenLifetimeSeconds" must be 1..300');
    }
    const clockSkewSeconds = opts.clockSkewSeconds ?? 60;
    if (!isSeconds(clockSkewSeconds, 0, 3600)) {
      throw new SigningKeysError('ERR_KEYS_INPUT', '"clockSkewSeconds" must be 0..3600');
    }
    const keys = new SigningKeys({
      alg,
      maxTokenLifetimeSeconds,
      clockSkewSeconds,
      now: opts.now ?? Date.now,
      ...(opts.store !== undefined ? { store: opts.store } : {}),
    });
    keys.#keys = opts.store !== undefined ? await load(opts.store) : [];
    const current = keys.#keys[0];
    // A new key when there is none, or when the configured algorithm changed.
    if (!current || current.retiredAt !== undefined || current.privateJwk.alg !== alg) {
      await keys.rotate();
    } else {
      keys.#prune();
      await keys.#save();
    }
    return keys;
  }

  /** The `kid` of the key that signs now. */
  get kid(): string {
    return this.#current().privateJwk.kid!;
  }

  /** The JWK Set to publish: public members only, current key first (CDS Hooks, RFC 7517). */
  jwks(): { keys: JWK[] } {
    this.#prune();
    return { keys: this.#keys.map((k) => publicJwk(k.privateJwk)) };
  }

  /** Signs a CDS Hooks JWT for `aud` (the exact URL invoked) with a fresh `jti`, `kid`, `typ`. */
  async sign(aud: string, opts: SignOptions): Promise<string> {
    const lifetimeSeconds = opts.lifetimeSeconds ?? this.#maxLifetime;
    if (!isSeconds(lifetimeSeconds, 1, this.#maxLifetime)) {
      throw new RangeError(`"lifetimeSeconds" must be 1..${this.#maxLifetime}`);
    }
    const key = this.#current().privateJwk;
    return signCdsJwt({
      privateJwk: key,
      iss: opts.iss,
      aud,
      lifetimeSeconds,
      now: Math.floor(this.#now() / 1000),
      ...(opts.jku !== undefined ? { jku: opts.jku } : {}),
      ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}),
    });
  }

  /**
   * Makes a new current key; the previous one stops signing at once and stays published until
   * its last token expired (`maxTokenLifetimeSeconds` plus `clockSkewSeconds`).
   */
  rotate(): Promise<void> {
    const run = this.#queue.then(async () => {
      const { privateJwk } = await generateClientKeyPair(this.#alg);
      const now = this.#now();
      const retired = this.#keys.map((k) =>
        k.retiredAt === undefined ? { ...k, retiredAt: now } : k,
      );
      this.#keys = [{ privateJwk, createdAt: now }, ...retired];
      this.#prune();
      await this.#save();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #current(): StoredKey {
    const current = this.#keys[0];
    if (!current || current.retiredAt !== undefined) throw new Error('no current signing key');
    return current;
  }

  /** Drops retired keys whose every token has expired. */
  #prune(): void {
    const now = this.#now();
    this.#keys = this.#keys.filter(
      (k) => k.retiredAt === undefined || k.retiredAt + this.#retentionMs > now,
    );
  }

  async #save(): Promise<void> {
    if (this.#store === undefined) return;
    const file = this.#store;
    const tmp = `${file}.${process.pid}.tmp`;
    const text = JSON.stringify({ version: 1, keys: this.#keys });
    // Created anew ('wx': never through a planted file or link) with mode 0600 from the first
    // byte, then moved into place in one step.
    await unlink(tmp).catch(() => undefined);
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await chmod(file, 0o600);
  }
}

function isSeconds(v: unknown, min: number, max: number): v is number {
  return Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
}

function publicJwk(jwk: JWK): JWK {
  const out: Record<string, unknown> = {};
  for (const name of PUBLIC_MEMBERS) if (jwk[name] !== undefined) out[name] = jwk[name];
  return out as JWK;
}

/** Reads the key store; absent is empty. Refuses a file others may read. */
async function load(file: string): Promise<StoredKey[]> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  if ((mode & 0o077) !== 0) {
    throw new SigningKeysError(
      'ERR_KEYSTORE_MODE',
      'the signing key store is accessible to other users; expected mode 0600',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new SigningKeysError('ERR_KEYSTORE_FORMAT', 'the signing key store is not valid JSON');
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || !keys.every(isStoredKey)) {
    throw new SigningKeysError('ERR_KEYSTORE_FORMAT', 'the signing key store has an unusable key');
  }
  return keys;
}

function isStoredKey(v: unknown): v is StoredKey {
  const k = v as Partial<StoredKey> | null;
  const jwk = k?.privateJwk;
  return (
    typeof k === 'object' &&
    k !== null &&
    typeof jwk === 'object' &&
    jwk !== null &&
    typeof jwk.d === 'string' &&
    typeof jwk.kid === 'string' &&
    (jwk.alg === 'ES384' || jwk.alg === 'RS384') &&
    Number.isFinite(k.createdAt) &&
    (k.retiredAt === undefined || Number.isFinite(k.retiredAt))
  );
}
