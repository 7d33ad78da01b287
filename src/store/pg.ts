/**
 * PostgreSQL for the parts several instances share (audit trail, authorization state): one pool
 * with bounded timeouts, transactions, and numbered migrations applied once under an advisory
 * lock, like `migrate` in `sqlite.ts`.
 */
import pg from 'pg';

/** A pool for `url` whose waits are all bounded; an idle connection that drops is replaced. */
export function openPgPool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 30_000,
    statement_timeout: 5000,
    query_timeout: 6000,
    idle_in_transaction_session_timeout: 10_000,
  });
  // The error of a dropped idle connection surfaces on the next query instead.
  pool.on('error', () => undefined);
  return pool;
}

/** Runs `work` in one transaction; a connection whose rollback failed is discarded. */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (c: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => (broken = true));
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Applies the numbered `statements` of `part` (statement i is version i + 1) not applied before,
 * in one transaction. Instances starting together take turns on an advisory lock: the first
 * creates, the others find it done. Append new statements; never edit applied ones.
 */
export async function migratePg(
  pool: pg.Pool,
  part: string,
  statements: readonly string[],
): Promise<void> {
  const table = `crdkit_${part}_migrations`;
  await inTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [table]);
    await c.query(`CREATE TABLE IF NOT EXISTS ${table} (
      version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = await c.query<{ version: number }>(`SELECT version FROM ${table}`);
    const applied = new Set(done.rows.map((r) => r.version));
    for (const [index, sql] of statements.entries()) {
      if (applied.has(index + 1)) continue;
      await c.query(sql);
      await c.query(`INSERT INTO ${table} (version) VALUES ($1)`, [index + 1]);
    }
  });
}

/** Opens a pool for `url` and applies `part`'s migrations; the pool is ended if they fail. */
export async function openMigratedPgPool(
  url: string,
  part: string,
  statements: readonly string[],
): Promise<pg.Pool> {
  const pool = openPgPool(url);
  try {
    await migratePg(pool, part, statements);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return pool;
}
