/**
 * The audit chain in SQLite (`audit.db` in the data folder, 0600): one chain, appended in
 * `BEGIN IMMEDIATE` transactions so several processes on one host serialize on the write lock.
 * `secure_delete` overwrites purged payload bytes in the file.
 *
 * This class does its work on the calling thread; `openAuditStore` runs it on the process's
 * SQLite thread (`src/store/sqlite-thread.ts`) so a server's event loop does not pay for it.
 */
import { join } from 'node:path';
import { migrate, openSqlite, type Database } from '../store/sqlite.js';
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

/** The numbered migrations of the `audit` part (append only). */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `CREATE TABLE audit_records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    patient TEXT,
    prev_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    expires_at INTEGER,
    event TEXT NOT NULL,
    payload_key_id TEXT,
    request_ct BLOB,
    response_ct BLOB
  );
  CREATE INDEX audit_records_recorded ON audit_records (recorded_at);
  CREATE INDEX audit_records_patient ON audit_records (patient, recorded_at);
  CREATE INDEX audit_records_payload ON audit_records (expires_at) WHERE payload_key_id IS NOT NULL;
  CREATE TABLE audit_chain_head (
    chain TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    id TEXT
  );
  INSERT INTO audit_chain_head (chain, seq, hash, id)
    VALUES ('${CHAIN}', 0, '${GENESIS_HASH}', NULL);`,
];

const COLUMNS = `seq, id, instance, kind, recorded_at AS recordedAt, patient, prev_id AS prevId,
  prev_hash AS prevHash, hash, expires_at AS expiresAt, event`;

/** The SQLite audit backend, on the calling thread. */
export class SqliteAuditBackend implements AuditBackend {
  readonly #db: Database;

  /** Opens `audit.db` in `dataDir` (or `:memory:`) and applies the migrations. */
  constructor(dataDir: string) {
    this.#db = openSqlite(dataDir === ':memory:' ? dataDir : join(dataDir, 'audit.db'));
    try {
      this.#db.pragma('secure_delete = ON');
      migrate(this.#db, 'audit', SQLITE_MIGRATIONS);
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  /** The append transaction, prepared once (the hot path of every hook call). */
  #appendBatch?: (entries: AppendEntry[]) => boolean[];
  /** Appends waiting for the next group commit. */
  #pending: Array<{ entry: AppendEntry; resolve: () => void; reject: (err: unknown) => void }> = [];
  #flushScheduled = false;

  /**
   * Group commit: appends made in the same turn of the event loop share one transaction, in
   * arrival order, so the chain is the same as one by one. Each promise resolves only once its
   * record is committed (the caller then answers), or rejects if it is not.
   */
  append(entry: AppendEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /**
   * Commits the appends made so far now, instead of at the end of the turn (the SQLite thread
   * calls it once per message it receives).
   */
  flushNow(): void {
    this.#flush();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#pending.splice(0);
    if (batch.length === 0) return;
    let made: boolean[];
    try {
      made = this.#batchTransaction()(batch.map((b) => b.entry));
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    batch.forEach((b, i) => (made[i] ? b.resolve() : b.reject(new Error('record not built'))));
  }

  #batchTransaction(): (entries: AppendEntry[]) => boolean[] {
    if (this.#appendBatch) return this.#appendBatch;
    const db = this.#db;
    const headStmt = db.prepare('SELECT seq, hash, id FROM audit_chain_head WHERE chain = ?');
    const insert = db.prepare(
      `INSERT INTO audit_records (seq, id, instance, kind, recorded_at, patient, prev_id,
        prev_hash, hash, expires_at, event, payload_key_id, request_ct, response_ct)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const move = db.prepare(
      'UPDATE audit_chain_head SET seq = ?, hash = ?, id = ? WHERE chain = ?',
    );
    const tx = db.transaction((entries: AppendEntry[]) => {
      let head = headStmt.get(CHAIN) as ChainHead;
      const made = entries.map((entry) => {
        let built: ReturnType<typeof linkEntry>;
        try {
          built = linkEntry(head, entry);
        } catch {
          return false; // this record only; the others of the batch go on
        }
        const { record: r, payload: p } = built;
        insert.run(...recordColumns(r, p));
        head = { seq: r.seq, hash: r.hash, id: r.id };
        return true;
      });
      move.run(head.seq, head.hash, head.id, CHAIN);
      return made;
    });
    this.#appendBatch = (entries) => tx.immediate(entries);
    return this.#appendBatch;
  }

  async head(): Promise<ChainHead> {
    return this.#db
      .prepare('SELECT seq, hash, id FROM audit_chain_head WHERE chain = ?')
      .get(CHAIN) as ChainHead;
  }

  async page(q: PageQuery): Promise<StoredRecord[]> {
    const sql = `SELECT ${COLUMNS} FROM audit_records
      WHERE seq > @afterSeq AND seq <= @maxSeq
        AND (@since IS NULL OR recorded_at >= @since)
        AND (@until IS NULL OR recorded_at < @until)
        AND (@patient IS NULL OR patient = @patient)
      ORDER BY seq LIMIT @limit`;
    const { afterSeq, maxSeq, limit } = q;
    const filter = { since: q.since ?? null, until: q.until ?? null, patient: q.patient ?? null };
    return this.#db.prepare(sql).all({ afterSeq, maxSeq, limit, ...filter }) as StoredRecord[];
  }

  async byHash(hash: string): Promise<StoredRecord | undefined> {
    const sql = `SELECT ${COLUMNS} FROM audit_records WHERE hash = ?`;
    return this.#db.prepare(sql).get(hash) as StoredRecord | undefined;
  }

  async payload(id: string): Promise<StoredPayload | undefined> {
    const row = this.#db
      .prepare(
        `SELECT payload_key_id AS keyId, request_ct AS request, response_ct AS response
         FROM audit_records WHERE id = ? AND payload_key_id IS NOT NULL`,
      )
      .get(id);
    return row as StoredPayload | undefined;
  }

  async purge(nowMs: number): Promise<number> {
    const { changes } = this.#db
      .prepare(
        `UPDATE audit_records SET payload_key_id = NULL, request_ct = NULL, response_ct = NULL
         WHERE payload_key_id IS NOT NULL AND expires_at <= ?`,
      )
      .run(nowMs);
    // sec-6: purged bytes leave the write-ahead log too, not only the main file.
    if (changes > 0) this.#db.pragma('wal_checkpoint(TRUNCATE)');
    return changes;
  }

  async close(): Promise<void> {
    this.#flush(); // appends already accepted are committed before the database closes
    if (this.#db.open) this.#db.close();
  }
}
