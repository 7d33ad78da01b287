/**
 * The authorization server's persistent state behind oidc-provider's Adapter interface, on one
 * of three backends (SQLite, PostgreSQL, Redis) so that several instances can share it. Two
 * rules hold on every backend:
 *
 * - No bearer secret is stored as a key: records are keyed by the SHA-256 of the model's id (an
 *   opaque access token, refresh token or code *is* its id), and the `jti` of those kinds is
 *   dropped from the stored payload and put back from the id on lookup.
 * - What must happen once happens once across instances: `consume` and `insertIfAbsent` are
 *   atomic on the backend (a code or refresh token cannot be redeemed twice, a client
 *   assertion's `jti` cannot be replayed through another instance).
 */
import { createHash } from 'node:crypto';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';

/** One stored record. `expiresAt` is epoch milliseconds, absent for no expiry. */
export interface StoredRecord {
  payload: AdapterPayload;
  grantId?: string;
  uid?: string;
  userCode?: string;
  expiresAt?: number;
  /** Epoch seconds of consumption (oidc-provider's `consumed`). */
  consumed?: number;
}

/** What a backend offers; `key` is already hashed, `model` is the oidc-provider model name. */
export interface StateBackend {
  readonly kind: 'sqlite' | 'postgres' | 'redis';
  upsert(model: string, key: string, record: StoredRecord): Promise<void>;
  /** The payload (with `consumed` when set), or undefined when absent or expired. */
  find(model: string, key: string): Promise<AdapterPayload | undefined>;
  findBy(
    model: string,
    index: 'uid' | 'userCode',
    value: string,
  ): Promise<AdapterPayload | undefined>;
  /** Marks the record consumed at `at` (epoch s); false when absent, expired or consumed. */
  consume(model: string, key: string, at: number): Promise<boolean>;
  destroy(model: string, key: string): Promise<void>;
  revokeByGrantId(model: string, grantId: string): Promise<void>;
  /** Stores the record unless an unexpired one has the key; true when stored. */
  insertIfAbsent(model: string, key: string, record: StoredRecord): Promise<boolean>;
  close(): Promise<void>;
}

/** Models whose id is a bearer secret: their `jti` is never stored. */
const SECRET_IDS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'ClientCredentials',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
  'InitialAccessToken',
  'RegistrationAccessToken',
]);

/** The stored key of an id: SHA-256, base64url. */
export function stateKey(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('base64url');
}

/** The error a second redemption gets, in oidc-provider's wire shape (`invalid_grant`). */
function alreadyConsumed(model: string): Error {
  const what =
    model === 'AuthorizationCode'
      ? 'authorization code'
      : model === 'RefreshToken'
        ? 'refresh token'
        : 'grant';
  return new errors.InvalidGrant(`${what} already consumed`);
}

/** The record to store for `payload`, with the secret `jti` removed where it is one. */
function toRecord(model: string, payload: AdapterPayload, expiresIn?: number, now = Date.now()) {
  const stored: AdapterPayload = { ...payload };
  if (SECRET_IDS.has(model)) delete stored.jti;
  const record: StoredRecord = { payload: stored };
  if (typeof payload.grantId === 'string') record.grantId = payload.grantId;
  if (typeof payload.uid === 'string') record.uid = payload.uid;
  if (typeof payload.userCode === 'string') record.userCode = payload.userCode;
  if (typeof expiresIn === 'number') record.expiresAt = now + expiresIn * 1000;
  if (typeof payload.consumed === 'number') record.consumed = payload.consumed;
  return record;
}

/** oidc-provider's Adapter for one model, on `backend`. */
export class StateAdapter implements Adapter {
  constructor(
    readonly model: string,
    private readonly backend: StateBackend,
    private readonly now: () => number = Date.now,
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    await this.backend.upsert(
      this.model,
      stateKey(id),
      toRecord(this.model, payload, expiresIn, this.now()),
    );
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const payload = await this.backend.find(this.model, stateKey(id));
    return payload && SECRET_IDS.has(this.model) ? { ...payload, jti: id } : payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.backend.findBy(this.model, 'uid', uid);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.backend.findBy(this.model, 'userCode', userCode);
  }

  async consume(id: string): Promise<void> {
    const done = await this.backend.consume(
      this.model,
      stateKey(id),
      Math.floor(this.now() / 1000),
    );
    if (!done) throw alreadyConsumed(this.model);
  }

  async destroy(id: string): Promise<void> {
    await this.backend.destroy(this.model, stateKey(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.backend.revokeByGrantId(this.model, grantId);
  }

  /** Stores `payload` unless an unexpired record has the id (atomic); true when stored. */
  async insertIfAbsent(id: string, payload: AdapterPayload, expiresIn: number): Promise<boolean> {
    return this.backend.insertIfAbsent(
      this.model,
      stateKey(id),
      toRecord(this.model, payload, expiresIn, this.now()),
    );
  }
}

/** The adapter factory oidc-provider is configured with; adapters are cached per model. */
export function adapterFactory(
  backend: StateBackend,
  now?: () => number,
): (name: string) => StateAdapter {
  const adapters = new Map<string, StateAdapter>();
  return (name: string) => {
    let adapter = adapters.get(name);
    if (!adapter) {
      adapter = new StateAdapter(name, backend, now);
      adapters.set(name, adapter);
    }
    return adapter;
  };
}

/** Purge expired rows after this many writes (SQL backends). */
export const PURGE_EVERY = 256;
