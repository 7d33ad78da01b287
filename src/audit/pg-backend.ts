/**
 * The audit chain in PostgreSQL, shared by every instance: one serialized chain. An append
 * locks the chain-head row (`SELECT … FOR UPDATE`), inserts the record after it and moves the
 * head in one transaction, so appends from all instances form one total order. Schema creation
 * and migration run at start-up under an advisory lock, recorded in `crdkit_audit_migrations`.
 */
import type pg from 'pg';
import { inTransaction, openMigratedPgPool } from '../store/pg.js';
import type { AuditBackend, PageQuery } from './backend.js';
import {
  CHAIN,
  GENESIS_HASH,
  type ChainHead,
  recordColumns,
  type StoredPayload,
  type StoredRecord,
} from './chain.js';
import { linkEntry, type AppendEntry } from './entry.js';

/** The numbered migrations (version i + 1 is statement i; append only). */
export const PG_MIGRATIONS: readonly string[] = [
  `CREATE TABLE audit_records (
    seq bigint PRIMARY KEY,
    id text NOT NULL UNIQUE,
    instance text NOT NULL,
    kind text NOT NULL,
    recorded_at bigint NOT NULL,
    patient text,
    prev_id text,
    prev_hash text NOT NULL,
    hash text NOT NULL UNIQUE,
    expires_at bigint,
    event text NOT NULL,
    payload_key_id text,
    request_ct bytea,
    response_ct bytea
  );
  CREATE INDEX audit_records_recorded ON audit_records (recorded_at);
  CREATE INDEX audit_records_patient ON audit_records (patient, recorded_at);
  CREATE INDEX audit_records_payload ON audit_records (expires_at) WHERE payload_key_id IS NOT NULL;
  CREATE TABLE audit_chain_head (
    chain text PRIMARY KEY, seq bigint NOT NULL, hash text NOT NULL, id text
  );
  INSERT INTO audit_chain_head (chain, seq, hash, id)
    VALUES ('${CHAIN}', 0, '${GENESIS_HASH}', NULL);`,
];

/** Any number `pg` returns for a bigint column (a string) as a JS number. */
const num = (value: unknown): number => Number(value);

const COLUMNS = `seq, id, instance, kind, recorded_at AS "recordedAt", patient, prev_id AS "prevId",
  prev_hash AS "prevHash", hash, expires_at AS "expiresAt", event`;

function toRecord(row: Record<string, unknown>): StoredRecord {
  return {
    ...(row as unknown as StoredRecord),
    seq: num(row.seq),
    recordedAt: num(row.recordedAt),
    expiresAt: row.expiresAt === null ? null : num(row.expiresAt),
  };
}

function toHead(row: Record<string, unknown> | undefined): ChainHead {
  if (!row) throw Object.assign(new Error('audit chain head missing'), { code: 'ERR_NO_HEAD' });
  return { seq: num(row.seq), hash: String(row.hash), id: (row.id as string | null) ?? null };
}

/** The PostgreSQL audit backend. */
export class PgAuditBackend implements AuditBackend {
  private constructor(readonly pool: pg.Pool) {}

  /**
   * Connects to `url` and brings the schema up to date. Tables are created in the first schema
   * of the connection's `search_path` (choose one with `?options=-c search_path=…`).
   */
  static async open(url: string): Promise<PgAuditBackend> {
    const pool = await openMigratedPgPool(url, 'audit', PG_MIGRATIONS);
    return new PgAuditBackend(pool);
  }

  async append(entry: AppendEntry): Promise<void> {
    await inTransaction(this.pool, async (c) => {
      const locked = await c.query(
        'SELECT seq, hash, id FROM audit_chain_head WHERE chain = $1 FOR UPDATE',
        [CHAIN],
      );
      const { record: r, payload: p } = linkEntry(toHead(locked.rows[0]), entry);
      await c.query(
        `INSERT INTO audit_records (seq, id, instance, kind, recorded_at, patient, prev_id,
          prev_hash, hash, expires_at, event, payload_key_id, request_ct, response_ct)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        recordColumns(r, p),
      );
      await c.query('UPDATE audit_chain_head SET seq = $1, hash = $2, id = $3 WHERE chain = $4', [
        r.seq,
        r.hash,
        r.id,
        CHAIN,
      ]);
    });
  }

  async head(): Promise<ChainHead> {
    const result = await this.pool.query(
      'SELECT seq, hash, id FROM audit_chain_head WHERE chain = $1',
      [CHAIN],
    );
    return toHead(result.rows[0]);
  }

  async page(q: PageQuery): Promise<StoredRecord[]> {
    const result = await this.pool.query(
      `SELECT ${COLUMNS} FROM audit_records
       WHERE seq > $1 AND seq <= $2
         AND ($3::bigint IS NULL OR recorded_at >= $3)
         AND ($4::bigint IS NULL OR recorded_at < $4)
         AND ($5::text IS NULL OR patient = $5)
       ORDER BY seq LIMIT $6`,
      [q.afterSeq, q.maxSeq, q.since ?? null, q.until ?? null, q.patient ?? null, q.limit],
    );
    return result.rows.map(toRecord);
  }

  async byHash(hash: string): Promise<StoredRecord | undefined> {
    const result = await this.pool.query(`SELECT ${COLUMNS} FROM audit_records WHERE hash = $1`, [
      hash,
    ]);
    return result.rows[0] ? toRecord(result.rows[0]) : undefined;
  }

  async payload(id: string): Promise<StoredPayload | undefined> {
    const result = await this.pool.query(
      `SELECT payload_key_id AS "keyId", request_ct AS request, response_ct AS response
       FROM audit_records WHERE id = $1 AND payload_key_id IS NOT NULL`,
      [id],
    );
    return result.rows[0] as StoredPayload | undefined;
  }

  async purge(nowMs: number): Promise<number> {
    const result = await this.pool.query(
      `UPDATE audit_records SET payload_key_id = NULL, request_ct = NULL, response_ct = NULL
       WHERE payload_key_id IS NOT NULL AND expires_at <= $1`,
      [nowMs],
    );
    return result.rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
