/**
 * The authorization server's state in PostgreSQL, shared by every instance on the same
 * database. The table goes to the first schema of the connection's `search_path`; it is created
 * at start-up under an advisory lock and recorded in `crdkit_authz_migrations`.
 */
import type pg from 'pg';
import { openMigratedPgPool } from '../../../store/pg.js';
import type { AdapterPayload } from 'oidc-provider';
import { PURGE_EVERY, type StateBackend, type StoredRecord } from './backend.js';

/** The numbered migrations (version i + 1 is statement i; append only). */
export const PG_MIGRATIONS: readonly string[] = [
  `CREATE TABLE authz_state (
    model text NOT NULL,
    key text NOT NULL,
    payload jsonb NOT NULL,
    grant_id text,
    uid text,
    user_code text,
    expires_at bigint,
    consumed_at bigint,
    PRIMARY KEY (model, key)
  );
  CREATE INDEX authz_state_grant ON authz_state (model, grant_id) WHERE grant_id IS NOT NULL;
  CREATE INDEX authz_state_uid ON authz_state (model, uid) WHERE uid IS NOT NULL;
  CREATE INDEX authz_state_user_code ON authz_state (model, user_code) WHERE user_code IS NOT NULL;
  CREATE INDEX authz_state_expires ON authz_state (expires_at) WHERE expires_at IS NOT NULL;`,
];

const LIVE = '(expires_at IS NULL OR expires_at > $3)';
const INSERT = `INSERT INTO authz_state
  (model, key, payload, grant_id, uid, user_code, expires_at, consumed_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  ON CONFLICT (model, key) DO UPDATE SET payload = excluded.payload,
    grant_id = excluded.grant_id, uid = excluded.uid, user_code = excluded.user_code,
    expires_at = excluded.expires_at, consumed_at = excluded.consumed_at`;

function values(model: string, key: string, record: StoredRecord): unknown[] {
  return [
    model,
    key,
    JSON.stringify(record.payload),
    record.grantId ?? null,
    record.uid ?? null,
    record.userCode ?? null,
    record.expiresAt ?? null,
    record.consumed ?? null,
  ];
}

function toPayload(row: Record<string, unknown> | undefined): AdapterPayload | undefined {
  if (!row) return undefined;
  const payload = row.payload as AdapterPayload;
  return row.consumed_at === null ? payload : { ...payload, consumed: Number(row.consumed_at) };
}

/** The PostgreSQL backend. */
export class PgStateBackend implements StateBackend {
  readonly kind = 'postgres';
  #writes = 0;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  /** Connects to `url` and brings the table up to date. */
  static async open(url: string, now: () => number = Date.now): Promise<PgStateBackend> {
    const pool = await openMigratedPgPool(url, 'authz', PG_MIGRATIONS);
    return new PgStateBackend(pool, now);
  }

  async #purgeNow(): Promise<void> {
    this.#writes += 1;
    if (this.#writes % PURGE_EVERY !== 0) return;
    await this.pool.query('DELETE FROM authz_state WHERE expires_at <= $1', [this.now()]);
  }

  async upsert(model: string, key: string, record: StoredRecord): Promise<void> {
    await this.pool.query(INSERT, values(model, key, record));
    await this.#purgeNow();
  }

  async find(model: string, key: string): Promise<AdapterPayload | undefined> {
    const { rows } = await this.pool.query(
      `SELECT payload, consumed_at FROM authz_state WHERE model = $1 AND key = $2 AND ${LIVE}`,
      [model, key, this.now()],
    );
    return toPayload(rows[0]);
  }

  async findBy(
    model: string,
    index: 'uid' | 'userCode',
    value: string,
  ): Promise<AdapterPayload | undefined> {
    const column = index === 'uid' ? 'uid' : 'user_code';
    const { rows } = await this.pool.query(
      `SELECT payload, consumed_at FROM authz_state
       WHERE model = $1 AND ${column} = $2 AND ${LIVE} LIMIT 1`,
      [model, value, this.now()],
    );
    return toPayload(rows[0]);
  }

  async consume(model: string, key: string, at: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE authz_state SET consumed_at = $4
       WHERE model = $1 AND key = $2 AND consumed_at IS NULL AND ${LIVE}`,
      [model, key, this.now(), at],
    );
    return rowCount === 1;
  }

  async destroy(model: string, key: string): Promise<void> {
    await this.pool.query('DELETE FROM authz_state WHERE model = $1 AND key = $2', [model, key]);
  }

  async revokeByGrantId(model: string, grantId: string): Promise<void> {
    await this.pool.query('DELETE FROM authz_state WHERE model = $1 AND grant_id = $2', [
      model,
      grantId,
    ]);
  }

  async insertIfAbsent(model: string, key: string, record: StoredRecord): Promise<boolean> {
    // An expired row with the key is replaced; a live one wins and nothing changes.
    const { rowCount } = await this.pool.query(
      `${INSERT} WHERE authz_state.expires_at IS NOT NULL AND authz_state.expires_at <= $9`,
      [...values(model, key, record), this.now()],
    );
    await this.#purgeNow();
    return rowCount === 1;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
