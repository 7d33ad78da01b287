/**
 * The `jti` replay store in Redis, shared by every crdkit instance that points at the same
 * server. One atomic `SET key 1 NX PX ttl` per token: the first instance to record a pair wins,
 * every other sees it as spent. Keys hold a SHA-256 of (iss, jti), never the raw values, and
 * expire when the token can no longer be accepted. Any Redis failure fails closed: the call is
 * refused (503) rather than accepting a token that could not be recorded.
 */
import { CdsError } from '../cds/outcome.js';
import { replayKey, type ReplayStore } from './replay.js';

/** The commands the store needs (a node-redis v5 client fits). */
export interface RedisReplayClient {
  set(
    key: string,
    value: string,
    options: { condition: 'NX'; expiration: { type: 'PX'; value: number } },
  ): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  readonly isOpen: boolean;
}

/** Options of {@link RedisReplayStore}. */
export interface RedisReplayStoreOptions {
  /** Prefix of every key (default `crdkit:jti:`). */
  keyPrefix?: string;
  /** Longest wait for Redis to answer one `spend`, in ms (default 2000). */
  timeoutMs?: number;
  /** The clock in epoch milliseconds (tests move it). */
  nowMs?: () => number;
  /** Close the client with the store (default true). */
  ownsClient?: boolean;
}

export const REDIS_REPLAY_PREFIX = 'crdkit:jti:';

/** The shortest TTL set, e.g. for a token that is already expired by this clock. */
const MIN_TTL_MS = 1000;
/** How long `close` waits for pending replies before dropping the connection. */
const CLOSE_WAIT_MS = 2000;

/** FHIR R4 issue type `transient` (the parent of `exception`, `timeout`, `throttled`…). */
const TRANSIENT = 'transient';

/** The replay store could not be read or written: 503, retry later. Never a silent accept. */
export class ReplayUnavailableError extends CdsError {
  override name = 'ReplayUnavailableError';

  constructor() {
    super(503, 'ERR_REPLAY_UNAVAILABLE', 'the replay store is unavailable; retry later', TRANSIENT);
  }
}

/**
 * A {@link ReplayStore} in Redis. The entry of a pair lives until the end of the second
 * `expiresAtSeconds` by this process's clock (the clock the JWT checks use), like the SQLite
 * store; the TTL is relative (`PX`), so the Redis server's clock does not matter.
 */
export class RedisReplayStore implements ReplayStore {
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly nowMs: () => number;
  private readonly ownsClient: boolean;
  private closed = false;

  constructor(
    private readonly client: RedisReplayClient,
    opts: RedisReplayStoreOptions = {},
  ) {
    this.prefix = opts.keyPrefix ?? REDIS_REPLAY_PREFIX;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.nowMs = opts.nowMs ?? Date.now;
    this.ownsClient = opts.ownsClient ?? true;
  }

  /** The Redis key of a pair: the prefix and the hex SHA-256 of (iss, jti). */
  key(iss: string, jti: string): string {
    return this.prefix + replayKey(iss, jti).toString('hex');
  }

  async spend(iss: string, jti: string, expiresAtSeconds: number): Promise<boolean> {
    if (!Number.isFinite(expiresAtSeconds)) {
      throw new TypeError('RedisReplayStore.spend: "expiresAtSeconds" must be a finite number');
    }
    if (this.closed) throw new ReplayUnavailableError();
    const ttl = Math.max(MIN_TTL_MS, (Math.ceil(expiresAtSeconds) + 1) * 1000 - this.nowMs());
    let reply: unknown;
    try {
      reply = await withDeadline(
        this.client.set(this.key(iss, jti), '1', {
          condition: 'NX',
          expiration: { type: 'PX', value: Math.ceil(ttl) },
        }),
        this.timeoutMs,
      );
    } catch {
      throw new ReplayUnavailableError();
    }
    if (reply === 'OK') return true;
    if (reply === null) return false;
    // Anything else is not an answer to SET NX: refuse rather than guess.
    throw new ReplayUnavailableError();
  }

  /** Quits the client (waiting briefly for pending replies) when the store owns it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.ownsClient || !this.client.isOpen) return;
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CLOSE_WAIT_MS);
    });
    try {
      const outcome = await Promise.race([
        this.client.close().then(() => 'closed' as const),
        gaveUp,
      ]);
      if (outcome === 'timeout' && this.client.isOpen) this.client.destroy();
    } catch {
      if (this.client.isOpen) this.client.destroy();
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * `promise`, or a rejection after `ms`. node-redis bounds only the wait to be *sent*; a reply
 * that never comes would hold the hook call forever. A late reply is still consumed in order
 * by the client, so abandoning the wait cannot mix up replies.
 */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no reply from Redis within ${ms} ms`)), ms);
  });
  promise.catch(() => undefined); // a rejection after the deadline is not unhandled
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
