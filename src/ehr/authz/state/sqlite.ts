/**
 * The authorization server's state in SQLite (better-sqlite3, the default backend): one table
 * in the crdkit database file, shared by the processes that open the same file. Expired rows
 * are ignored at once and purged now and then.
 */
import type { AdapterPayload } from 'oidc-provider';
import { migrate, openSqlite, type Database } from '../../../store/sqlite.js';
import { PURGE_EVERY, type StateBackend, type StoredRecord } from './backend.js';

/** The numbered migrations of the `ehr-authz` part (append only). */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `CREATE TABLE authz_state (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    grant_id TEXT,
    uid TEXT,
    user_code TEXT,
    expires_at INTEGER,
    consumed_at INTEGER,
    PRIMARY KEY (model, key)
  ) WITHOUT ROWID;
  CREATE INDEX authz_state_grant ON authz_state (model, grant_id) WHERE grant_id IS NOT NULL;
  CREATE INDEX authz_state_uid ON authz_state (model, uid) WHERE uid IS NOT NULL;
  CREATE INDEX authz_state_user_code ON authz_state (model, user_code) WHERE user_code IS NOT NULL;
  CREATE INDEX authz_state_expires ON authz_state (expires_at) WHERE expires_at IS NOT NULL;`,
];

const LIVE = '(expires_at IS NULL OR expires_at > @now)';
const COLUMNS = '(model, key, payload, grant_id, uid, user_code, expires_at, consumed_at)';
const VALUES = '(@model, @key, @payload, @grantId, @uid, @userCode, @expiresAt, @consumed)';
const UPDATE = `payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
  user_code = excluded.user_code, expires_at = excluded.expires_at,
  consumed_at = excluded.consumed_at`;

interface Row {
  payload: string;
  consumed_at: number | null;
}

function params(model: string, key: string, record: StoredRecord, now: number) {
  return {
    model,
    key,
    payload: JSON.stringify(record.payload),
    grantId: record.grantId ?? null,
    uid: record.uid ?? null,
    userCode: record.userCode ?? null,
    expiresAt: record.expiresAt ?? null,
    consumed: record.consumed ?? null,
    now,
  };
}

function toPayload(row: Row | undefined): AdapterPayload | undefined {
  if (!row) return undefined;
  const payload = JSON.parse(row.payload) as AdapterPayload;
  return row.consumed_at === null ? payload : { ...payload, consumed: row.consumed_at };
}

/** The backend's statements, prepared once per connection. */
function statements(db: Database) {
  const select = (where: string) =>
    db.prepare(`SELECT payload, consumed_at FROM authz_state WHERE ${where} AND ${LIVE} LIMIT 1`);
  return {
    purge: db.prepare('DELETE FROM authz_state WHERE expires_at <= ?'),
    upsert: db.prepare(
      `INSERT INTO authz_state ${COLUMNS} VALUES ${VALUES}
       ON CONFLICT (model, key) DO UPDATE SET ${UPDATE}`,
    ),
    find: select('model = @model AND key = @key'),
    findByUid: select('model = @model AND uid = @value'),
    findByUserCode: select('model = @model AND user_code = @value'),
    consume: db.prepare(
      `UPDATE authz_state SET consumed_at = @at
       WHERE model = @model AND key = @key AND consumed_at IS NULL AND ${LIVE}`,
    ),
    destroy: db.prepare('DELETE FROM authz_state WHERE model = ? AND key = ?'),
    revokeByGrantId: db.prepare('DELETE FROM authz_state WHERE model = ? AND grant_id = ?'),
    insertIfAbsent: db.prepare(
      `INSERT INTO authz_state ${COLUMNS} VALUES ${VALUES}
       ON CONFLICT (model, key) DO UPDATE SET ${UPDATE}
       WHERE authz_state.expires_at IS NOT NULL AND authz_state.expires_at <= @now`,
    ),
  };
}

/** The SQLite backend on the database file at `path` (`:memory:` for tests). */
export class SqliteStateBackend implements StateBackend {
  readonly kind = 'sqlite';
  readonly #db: Database;
  readonly #now: () => number;
  #writes = 0;
  /** Prepared once: token lookups run on every request to the FHIR API. */
  readonly #sql: ReturnType<typeof statements>;

  constructor(path: string, now: () => number = Date.now) {
    this.#db = openSqlite(path);
    this.#now = now;
    try {
      migrate(this.#db, 'ehr-authz', SQLITE_MIGRATIONS);
      this.#sql = statements(this.#db);
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  #purgeNow(): void {
    this.#writes += 1;
    if (this.#writes % PURGE_EVERY !== 0) return;
    this.#sql.purge.run(this.#now());
  }

  async upsert(model: string, key: string, record: StoredRecord): Promise<void> {
    this.#sql.upsert.run(params(model, key, record, this.#now()));
    this.#purgeNow();
  }

  async find(model: string, key: string): Promise<AdapterPayload | undefined> {
    return toPayload(this.#sql.find.get({ model, key, now: this.#now() }) as Row | undefined);
  }

  async findBy(
    model: string,
    index: 'uid' | 'userCode',
    value: string,
  ): Promise<AdapterPayload | undefined> {
    const statement = index === 'uid' ? this.#sql.findByUid : this.#sql.findByUserCode;
    return toPayload(statement.get({ model, value, now: this.#now() }) as Row | undefined);
  }

  async consume(model: string, key: string, at: number): Promise<boolean> {
    const { changes } = this.#sql.consume.run({ model, key, at, now: this.#now() });
    return changes === 1;
  }

  async destroy(model: string, key: string): Promise<void> {
    this.#sql.destroy.run(model, key);
  }

  async revokeByGrantId(model: string, grantId: string): Promise<void> {
    this.#sql.revokeByGrantId.run(model, grantId);
  }

  async insertIfAbsent(model: string, key: string, record: StoredRecord): Promise<boolean> {
    // An expired row with the key is replaced; a live one wins and nothing changes.
    const { changes } = this.#sql.insertIfAbsent.run(params(model, key, record, this.#now()));
    this.#purgeNow();
    return changes === 1;
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
