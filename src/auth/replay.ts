/**
 * The `jti` replay stores (CDS Hooks: "jti ... a nonce to protect against replay"). Only a
 * SHA-256 of (iss, jti) is kept, never the raw values, and only until the token expires.
 */
import { createHash } from 'node:crypto';
import { ReplayCapacityError, ReplayUnavailableError } from './errors.js';
import { migrate, openSqlite, type Database } from '../store/sqlite.js';
import { driverCode } from '../store/driver-code.js';
import { SqliteThread } from '../store/sqlite-thread.js';

/** Remembers spent (iss, jti) pairs until their token can no longer be accepted. */
export interface ReplayStore {
  /**
   * Records (iss, jti) as used until `expiresAtSeconds` (epoch seconds). Returns true the
   * first time, false when the pair was already spent and has not expired yet.
   */
  spend(iss: string, jti: string, expiresAtSeconds: number): Promise<boolean>;
  /** Releases resources (timers, connections). */
  close?(): Promise<void> | void;
}

/** Options shared by the replay stores. */
export interface ReplayStoreOptions {
  /** The clock in epoch seconds (tests freeze it). */
  now?: () => number;
  /** Purge expired entries after this many inserts (default 256). */
  purgeEvery?: number;
}

/** Options of {@link MemoryReplayStore}. */
export interface MemoryReplayStoreOptions extends ReplayStoreOptions {
  /** The most unexpired entries held (default 100 000); beyond it `spend` throws. */
  maxEntries?: number;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** The stored key: SHA-256 over an unambiguous encoding of the pair. */
export function replayKey(iss: string, jti: string): Buffer {
  return createHash('sha256')
    .update(JSON.stringify([iss, jti]))
    .digest();
}

/**
 * A bounded in-process replay store (one process only). When full of unexpired entries it
 * throws {@link ReplayCapacityError} (503) instead of evicting, which would allow a replay.
 */
export class MemoryReplayStore implements ReplayStore {
  private readonly entries = new Map<string, number>();
  private readonly now: () => number;
  private readonly maxEntries: number;
  private readonly purgeEvery: number;
  private inserts = 0;

  constructor(opts: MemoryReplayStoreOptions = {}) {
    this.now = opts.now ?? nowSeconds;
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.purgeEvery = opts.purgeEvery ?? 256;
  }

  /** The number of entries currently held (expired ones included until purged). */
  get size(): number {
    return this.entries.size;
  }

  async spend(iss: string, jti: string, expiresAtSeconds: number): Promise<boolean> {
    const key = replayKey(iss, jti).toString('base64');
    const now = this.now();
    const seen = this.entries.get(key);
    if (seen !== undefined && seen >= now) return false;
    if (seen === undefined) {
      this.inserts += 1;
      if (this.inserts % this.purgeEvery === 0 || this.entries.size >= this.maxEntries) {
        this.purge(now);
      }
      if (this.entries.size >= this.maxEntries) throw new ReplayCapacityError();
    }
    this.entries.set(key, expiresAtSeconds);
    return true;
  }

  /** Drops every entry that expired before `now` (epoch seconds). */
  purge(now: number = this.now()): void {
    for (const [key, exp] of this.entries) if (exp < now) this.entries.delete(key);
  }

  close(): void {
    this.entries.clear();
  }
}

type Statement = ReturnType<Database['prepare']>;

const REPLAY_MIGRATIONS = [
  `CREATE TABLE auth_replay (
    h BLOB PRIMARY KEY,
    exp INTEGER NOT NULL
  ) WITHOUT ROWID`,
  'CREATE INDEX auth_replay_exp ON auth_replay (exp)',
];

/**
 * A replay store in SQLite, shared by every process that opens the same file. `db` is either
 * an open connection (left open by `close`) or a path opened with {@link openSqlite}.
 */
export class SqliteReplayStore implements ReplayStore {
  private readonly db: Database;
  private readonly owned: boolean;
  private readonly now: () => number;
  private readonly purgeEvery: number;
  private readonly upsert: Statement;
  private readonly purgeStmt: Statement;
  private inserts = 0;

  constructor(db: Database | string, opts: ReplayStoreOptions = {}) {
    this.owned = typeof db === 'string';
    this.db = typeof db === 'string' ? openSqlite(db) : db;
    this.now = opts.now ?? nowSeconds;
    this.purgeEvery = opts.purgeEvery ?? 256;
    migrate(this.db, 'auth-replay', REPLAY_MIGRATIONS);
    // One atomic statement: inserts a new pair, or takes over an expired one; a live
    // duplicate changes nothing, so `changes === 0` means replay, even across processes.
    this.upsert = this.db.prepare(`INSERT INTO auth_replay (h, exp) VALUES (@h, @exp)
      ON CONFLICT (h) DO UPDATE SET exp = excluded.exp WHERE auth_replay.exp < @now`);
    this.purgeStmt = this.db.prepare('DELETE FROM auth_replay WHERE exp < ?');
  }

  /** Spends waiting for the next group commit. */
  private pending: Array<{
    h: Buffer;
    exp: number;
    resolve: (fresh: boolean) => void;
    reject: (err: unknown) => void;
  }> = [];
  private flushScheduled = false;
  private batch?: (items: Array<{ h: Buffer; exp: number }>, now: number) => boolean[];

  /**
   * Group commit: the spends of one turn of the event loop share one transaction (one WAL
   * append instead of one per token), in arrival order, so a `jti` sent twice in the same turn
   * is still accepted once. Each promise resolves only after its row is committed.
   */
  spend(iss: string, jti: string, expiresAtSeconds: number): Promise<boolean> {
    return this.spendKey(replayKey(iss, jti), expiresAtSeconds);
  }

  /** {@link spend} for a key already computed by {@link replayKey}. */
  spendKey(h: Buffer, expiresAtSeconds: number): Promise<boolean> {
    const exp = Math.ceil(expiresAtSeconds);
    return new Promise((resolve, reject) => {
      this.pending.push({ h, exp, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Commits the spends made so far now, instead of at the end of the turn (the SQLite thread
   * calls it once per message it receives).
   */
  flushNow(): void {
    this.flush();
  }

  private flush(): void {
    this.flushScheduled = false;
    const items = this.pending.splice(0);
    if (items.length === 0) return;
    const now = this.now();
    this.batch ??= this.db.transaction((rows: Array<{ h: Buffer; exp: number }>, at: number) =>
      rows.map(({ h, exp }) => this.upsert.run({ h, exp, now: at }).changes > 0),
    );
    let fresh: boolean[];
    try {
      fresh = this.batch(items, now);
    } catch (err) {
      for (const item of items) item.reject(err);
      return;
    }
    items.forEach((item, i) => item.resolve(fresh[i]!));
    const before = this.inserts;
    this.inserts += items.length;
    if (Math.floor(this.inserts / this.purgeEvery) > Math.floor(before / this.purgeEvery)) {
      try {
        this.purgeStmt.run(now);
      } catch {
        // The next purge retries; expired rows only take space meanwhile.
      }
    }
  }

  /** Deletes every row that expired before `now` (epoch seconds). */
  purge(now: number = this.now()): void {
    this.purgeStmt.run(now);
  }

  close(): void {
    if (this.pending.length) this.flush();
    if (this.owned && this.db.open) this.db.close();
  }
}

/**
 * The SQLite replay store run by the process's SQLite thread (`src/store/sqlite-thread.ts`):
 * the key is hashed here, the upsert is group-committed there. A spend resolves only once its
 * row is committed; if the thread cannot answer, the spend fails with a 503, so a token is
 * never accepted without its `jti` recorded.
 */
export class ThreadedSqliteReplayStore implements ReplayStore {
  #closed = false;

  private constructor(
    private readonly thread: SqliteThread,
    private readonly handle: number,
  ) {}

  /** Opens (creating if needed) the replay table in the SQLite file at `path`. */
  static async open(
    path: string,
    opts: { purgeEvery?: number } = {},
  ): Promise<ThreadedSqliteReplayStore> {
    const thread = SqliteThread.shared();
    const spec = {
      kind: 'replay' as const,
      path,
      ...(opts.purgeEvery ? { purgeEvery: opts.purgeEvery } : {}),
    };
    return new ThreadedSqliteReplayStore(thread, await thread.open(spec));
  }

  async spend(iss: string, jti: string, expiresAtSeconds: number): Promise<boolean> {
    if (this.#closed) throw new ReplayUnavailableError();
    try {
      return await this.thread.call<boolean>({
        op: 'replay.spend',
        handle: this.handle,
        key: replayKey(iss, jti),
        exp: expiresAtSeconds,
      });
    } catch (err) {
      throw new ReplayUnavailableError(driverCode(err));
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.thread.close(this.handle);
  }
}
