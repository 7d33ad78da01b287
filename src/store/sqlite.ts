/**
 * The local SQLite store (better-sqlite3): one file, private to the service account, WAL mode,
 * and per-part numbered migrations so each part of crdkit can add its own tables.
 */
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';

/** An open better-sqlite3 connection. */
export type Database = BetterSqlite3.Database;

/** How long a writer waits for a lock held by another connection before failing. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) the database at `path`: the parent folder is created with mode
 * 0700 and the file with mode 0600 (it may hold audit data). `:memory:` is accepted for tests.
 */
export function openSqlite(path: string): Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Create the file ourselves so it never exists, even briefly, with umask permissions.
    closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
  }
  const db = new BetterSqlite3(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('foreign_keys = ON');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE IF NOT EXISTS crdkit_migrations (
      part TEXT NOT NULL,
      version INTEGER NOT NULL,
      applied_at INTEGER NOT NULL,
      PRIMARY KEY (part, version)
    ) WITHOUT ROWID`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * Applies the numbered `statements` of `part` (statement i is version i + 1) that were not
 * applied before, all in one transaction. Append new statements; never edit applied ones.
 * Returns how many statements were applied now.
 */
export function migrate(db: Database, part: string, statements: readonly string[]): number {
  if (!part) throw new TypeError('migrate: "part" must be a non-empty string');
  const applied = db.prepare('SELECT version FROM crdkit_migrations WHERE part = ?');
  const record = db.prepare(
    'INSERT INTO crdkit_migrations (part, version, applied_at) VALUES (?, ?, ?)',
  );
  const run = db.transaction((): number => {
    const done = new Set(applied.pluck().all(part) as number[]);
    let count = 0;
    statements.forEach((sql, index) => {
      const version = index + 1;
      if (done.has(version)) return;
      db.exec(sql);
      record.run(part, version, Math.floor(Date.now() / 1000));
      count += 1;
    });
    return count;
  });
  // IMMEDIATE takes the write lock up front so two processes cannot both apply a version.
  return run.immediate();
}
