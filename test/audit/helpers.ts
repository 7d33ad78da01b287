/**
 * Shared fixtures of the audit tests: a hook call record, and each store backend (SQLite in a
 * temporary folder, PostgreSQL in a schema of its own when `CRDKIT_TEST_PG` is set) with a raw
 * SQL handle to tamper with what was written. Everything created is removed by `cleanup`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import {
  openAuditStore,
  type AuditStore,
  type HookAuditInput,
  type OpenAuditStoreOptions,
} from '../../src/audit/index.js';

export const PG_URL = process.env.CRDKIT_TEST_PG;

/** `test` options that skip with a message without PostgreSQL. */
export const needsPg = PG_URL
  ? {}
  : { skip: 'CRDKIT_TEST_PG is not set: no PostgreSQL to test against' };

export const T0 = new Date('2025-03-01T12:00:00.000Z');

/** A fresh AES-256 key, base64. */
export const newKey = (): string => randomBytes(32).toString('base64');

/** A hook call record; `n` varies the time, patient and order. */
export function hookInput(n = 0, extra: Partial<HookAuditInput> = {}): HookAuditInput {
  return {
    at: new Date(T0.getTime() + n * 60_000),
    instance: 'test-host:1',
    client: { iss: 'https://ehr.example/fhir', name: 'Example EHR' },
    service: 'order-sign-crd',
    hook: 'order-sign',
    hookInstance: randomUUID(),
    patient: `Patient/p${n % 3}`,
    orders: [`ServiceRequest/sr-${n}`],
    coverageAssertionIds: [`ca-${n}`],
    status: 200,
    outcome: 'success',
    requestBody: Buffer.from(`{"hook":"order-sign","n":${n}}`),
    responseBody: Buffer.from(`{"cards":[],"n":${n}}`),
    ...extra,
  };
}

/** One backend under test: how to open stores on it and run raw SQL against it. */
export interface Backend {
  name: 'sqlite' | 'postgres';
  open(opts?: Partial<OpenAuditStoreOptions>): Promise<AuditStore>;
  /** Runs `sql` (no parameters) against the audit tables; returns the rows. */
  raw(sql: string): Promise<Array<Record<string, unknown>>>;
  cleanup(): Promise<void>;
}

/** A SQLite backend in a new temporary folder. */
export function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-audit-'));
  let db: BetterSqlite3.Database | undefined;
  return {
    name: 'sqlite',
    open: (opts = {}) =>
      openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'test-host:1', ...opts }),
    async raw(sql) {
      db ??= new BetterSqlite3(join(dir, 'audit.db'));
      const stmt = db.prepare(sql);
      return stmt.reader ? (stmt.all() as Array<Record<string, unknown>>) : (stmt.run(), []);
    },
    async cleanup() {
      db?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A PostgreSQL backend in a new schema of `CRDKIT_TEST_PG` (dropped by `cleanup`). */
export async function pgBackend(): Promise<Backend> {
  const schema = `crdkit_audit_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`SET search_path TO ${schema}`);
  const url = `${PG_URL}${PG_URL!.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`;
  return {
    name: 'postgres',
    open: (opts = {}) =>
      openAuditStore({ url, dataDir: '/nonexistent', instance: 'test-host:1', ...opts }),
    async raw(sql) {
      return (await admin.query(sql)).rows;
    },
    async cleanup() {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

/** Every record's id in `seq` order. */
export async function ids(backend: Backend): Promise<string[]> {
  const rows = await backend.raw('SELECT id FROM audit_records ORDER BY seq');
  return rows.map((r) => String(r.id));
}

/** Appends `count` hook records (n = 0 … count - 1) one after the other. */
export async function appendMany(store: AuditStore, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let n = 0; n < count; n++) out.push((await store.appendHook(hookInput(n))).id);
  return out;
}

/** The backends to run a suite against: SQLite always, PostgreSQL when configured. */
export const BACKENDS: Array<{
  name: 'sqlite' | 'postgres';
  make: () => Promise<Backend>;
  skip?: string;
}> = [
  { name: 'sqlite', make: async () => sqliteBackend() },
  { name: 'postgres', make: pgBackend, ...needsPg },
];
