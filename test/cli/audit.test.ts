/**
 * `crdkit audit verify | export | purge` run as a user runs them: the real command, a
 * configuration file (`--config`) whose `dataDir` is a temporary folder holding a SQLite trail
 * written through the store API. verify exits 0 only on an intact chain and names the first
 * broken record; export writes AuditEvents (Bundle or NDJSON, filtered) and is itself recorded
 * (found-38); purge clears the payloads past retention and leaves the chain intact (sec-6).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { AuditEvent } from '@medplum/fhirtypes';
import BetterSqlite3 from 'better-sqlite3';
import { CRDKIT_AUDIT_SYSTEMS, openAuditStore, type AuditStore } from '../../src/audit/index.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { hookInput, T0 } from '../audit/helpers.js';

const TSX = import.meta.resolve('tsx');
const MAIN = join(PACKAGE_ROOT, 'src', 'cli', 'main.ts');
const INSTANCE = 'cli-test:1';
const RETENTION_DAYS = 30;
const DAY_MS = 86_400_000;
const RECORDS = 12;

const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

/** Runs `crdkit …args` (bounded to 30 s) and returns its exit code and output. */
function crdkit(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, ['--import', TSX, MAIN, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Trail {
  dir: string;
  dataDir: string;
  config: string;
  key: string;
  /** Opens the trail's store (the test's own, not the CLI's). */
  open(now?: () => Date): Promise<AuditStore>;
  /** Raw SQL on audit.db; the connection is closed before returning. */
  sql<T = Record<string, unknown>>(sql: string, ...params: unknown[]): T[];
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A configuration (TLS files, sample rules, payload key, retention) over a fresh data folder. */
async function newTrail(): Promise<Trail> {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-cli-audit-'));
  dirs.push(dir);
  const pem = await selfSignedCertificate('localhost');
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  const key = randomBytes(32).toString('base64');
  const file: ConfigFile = {
    baseUrl: 'https://localhost:8443',
    tls: { cert: 'cert.pem', key: 'key.pem' },
    clients: [{ iss: 'https://ehr.test/cli', jwksUri: 'https://ehr.test/jwks.json' }],
    rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
    dataDir: 'data',
    audit: {
      store: 'sqlite',
      instance: INSTANCE,
      payloadKeys: { k1: key },
      currentKey: 'k1',
      retentionDays: RETENTION_DAYS,
    },
  };
  const config = join(dir, 'crdkit.json');
  writeFileSync(config, JSON.stringify(file, null, 2), { mode: 0o600 });
  const dataDir = join(dir, 'data');
  return {
    dir,
    dataDir,
    config,
    key,
    open: (now) =>
      openAuditStore({
        url: 'sqlite',
        dataDir,
        instance: INSTANCE,
        encryption: { keys: { k1: key }, current: 'k1' },
        retentionDays: RETENTION_DAYS,
        ...(now ? { now } : {}),
      }),
    sql<T>(sql: string, ...params: unknown[]): T[] {
      const db = new BetterSqlite3(join(dataDir, 'audit.db'));
      try {
        const stmt = db.prepare(sql);
        return stmt.reader ? (stmt.all(...params) as T[]) : (stmt.run(...params), []);
      } finally {
        db.close();
      }
    },
  };
}

/** A trail of RECORDS hook records (n = 0 … 11: minute n after T0, patient p(n % 3)). */
async function filledTrail(): Promise<{ trail: Trail; hookInstances: string[] }> {
  const trail = await newTrail();
  const store = await trail.open();
  const hookInstances: string[] = [];
  try {
    for (let n = 0; n < RECORDS; n++) {
      const input = hookInput(n);
      hookInstances.push(input.hookInstance!);
      await store.appendHook(input);
    }
  } finally {
    await store.close();
  }
  return { trail, hookInstances };
}

const hookInstanceOf = (event: AuditEvent): string | undefined =>
  event.entity?.find((e) => e.what?.identifier?.system === CRDKIT_AUDIT_SYSTEMS.hookInstance)?.what
    ?.identifier?.value;

const isRead = (event: AuditEvent) =>
  event.subtype?.some((c) => c.system === CRDKIT_AUDIT_SYSTEMS.security && c.code === 'audit-read');

/** The `audit-read` records of the trail, oldest first (read with SQL: reading is not audited). */
function auditReads(trail: Trail): Array<{ instance: string; event: AuditEvent }> {
  return trail
    .sql<{ instance: string; event: string }>(
      `SELECT instance, event FROM audit_records WHERE kind = 'security' ORDER BY seq`,
    )
    .map((r) => ({ instance: r.instance, event: JSON.parse(r.event) as AuditEvent }))
    .filter((r) => isRead(r.event));
}

describe('crdkit audit', () => {
  test('found-37: crdkit audit verify exits 0 on an intact trail', async () => {
    const { trail } = await filledTrail();
    const r = crdkit(['audit', 'verify', '--config', trail.config], trail.dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`audit trail intact: ${RECORDS} records`));
  });

  test('found-37: crdkit audit verify exits non-zero naming the record whose field was changed in the SQLite file', async () => {
    const { trail } = await filledTrail();
    const [victim] = trail.sql<{ id: string }>('SELECT id FROM audit_records WHERE seq = 5');
    trail.sql(`UPDATE audit_records SET patient = 'Patient/someone-else' WHERE seq = 5`);
    const r = crdkit(['audit', 'verify', '--config', trail.config], trail.dir);
    assert.notEqual(r.status, 0, r.stderr);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /audit trail broken/);
    assert.ok(r.stderr.includes(`record ${victim!.id} (#5) was changed`), r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');

    // Another kind of edit: the AuditEvent text of a later record.
    trail.sql(`UPDATE audit_records SET patient = 'Patient/p1' WHERE seq = 5`);
    const [other] = trail.sql<{ id: string }>('SELECT id FROM audit_records WHERE seq = 9');
    trail.sql(
      `UPDATE audit_records SET event = replace(event, '"outcome":"0"', '"outcome":"8"') WHERE seq = 9`,
    );
    const again = crdkit(['audit', 'verify', '--config', trail.config], trail.dir);
    assert.equal(again.status, 1, again.stderr);
    assert.ok(again.stderr.includes(`record ${other!.id} (#9) was changed`), again.stderr);
  });

  test('found-38: crdkit audit export --format bundle writes every AuditEvent in a FHIR collection Bundle, and the export is itself recorded first', async () => {
    const { trail, hookInstances } = await filledTrail();
    assert.equal(auditReads(trail).length, 0);
    const r = crdkit(
      ['audit', 'export', '--config', trail.config, '--format', 'bundle'],
      trail.dir,
    );
    assert.equal(r.status, 0, r.stderr);
    const bundle = JSON.parse(r.stdout) as {
      resourceType: string;
      type: string;
      entry: Array<{ resource: AuditEvent }>;
    };
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.type, 'collection');
    const events = bundle.entry.map((e) => e.resource);
    for (const event of events) assert.equal(event.resourceType, 'AuditEvent');
    assert.deepEqual(
      events.filter((e) => !isRead(e)).map(hookInstanceOf),
      hookInstances,
      'every hook record, oldest first',
    );
    assert.match(r.stderr, new RegExp(`exported ${events.length} audit events`));

    // found-38: the read was recorded before anything was read (so it is in its own export).
    const reads = auditReads(trail);
    assert.equal(reads.length, 1, 'one audit-read record');
    const read = reads[0]!;
    assert.equal(read.instance, `${INSTANCE}/cli`);
    assert.equal(read.event.action, 'R');
    assert.equal(read.event.outcome, '0');
    assert.equal(read.event.outcomeDesc, 'export');
    assert.equal(read.event.agent[0]!.who?.display, userInfo().username);
    assert.equal(read.event.agent[0]!.requestor, true);
    assert.ok(
      events.some((e) => e.id === read.event.id),
      'the export holds its own read record',
    );
    assert.equal(events.length, RECORDS + 1);

    // Still one intact chain, with the read record in it.
    const v = crdkit(['audit', 'verify', '--config', trail.config], trail.dir);
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stderr, new RegExp(`intact: ${RECORDS + 1} records`));
  });

  test('found-38: crdkit audit export (NDJSON) with --since, --until and --patient writes only the matching events; the read record names the patient and the window', async () => {
    const { trail, hookInstances } = await filledTrail();
    const out = join(trail.dir, 'export.ndjson');
    const since = minutes(2).toISOString();
    const until = minutes(8).toISOString();
    const args = ['--since', since, '--until', until, '--patient', 'Patient/p1', '--out', out];
    const r = crdkit(['audit', 'export', '--config', trail.config, ...args], trail.dir);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '', 'with --out nothing goes to stdout');
    assert.equal(statSync(out).mode & 0o777, 0o600, 'the export file is private');
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    const events = lines.map((l) => JSON.parse(l) as AuditEvent);
    // Minutes 2 (inclusive) to 8 (exclusive), patient p1: n = 4 and n = 7.
    assert.deepEqual(events.map(hookInstanceOf), [hookInstances[4], hookInstances[7]]);
    for (const event of events) {
      assert.equal(event.resourceType, 'AuditEvent');
      assert.equal(event.entity?.[0]?.what?.reference, 'Patient/p1');
      assert.ok(event.recorded! >= since && event.recorded! < until, event.recorded);
    }
    assert.match(r.stderr, /exported 2 audit events/);

    const reads = auditReads(trail);
    assert.equal(reads.length, 1);
    assert.equal(reads[0]!.event.outcomeDesc, `export since=${since} until=${until}`);
    assert.equal(reads[0]!.event.entity?.[0]?.what?.reference, 'Patient/p1');

    // A date that is not one is refused before anything is read (and nothing is recorded).
    const bad = crdkit(
      ['audit', 'export', '--config', trail.config, '--since', 'yesterday'],
      trail.dir,
    );
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--since: not a date or date-time: yesterday/);
    assert.equal(auditReads(trail).length, 1);
  });

  test('sec-6: crdkit audit purge removes the payloads past retention; the records and the chain stay', async () => {
    const trail = await newTrail();
    // Four calls recorded 40 days ago (retention 30 days: expired), three recorded now.
    const past = new Date(Date.now() - 40 * DAY_MS);
    const old = await trail.open(() => past);
    const oldIds: string[] = [];
    try {
      for (let n = 0; n < 4; n++) {
        oldIds.push((await old.appendHook(hookInput(n, { at: past }))).id);
      }
    } finally {
      await old.close();
    }
    const fresh = await trail.open();
    const freshIds: string[] = [];
    try {
      for (let n = 4; n < 7; n++) {
        freshIds.push((await fresh.appendHook(hookInput(n, { at: new Date() }))).id);
      }
    } finally {
      await fresh.close();
    }
    const payloads = () =>
      trail.sql<{ id: string; key: string | null; req: Buffer | null; res: Buffer | null }>(
        `SELECT id, payload_key_id AS key, request_ct AS req, response_ct AS res
         FROM audit_records ORDER BY seq`,
      );
    const before = payloads();
    assert.ok(
      before.every((p) => p.key === 'k1' && p.req && p.res),
      'every record has payloads',
    );
    // Bytes of the expired ciphertexts, to look for in the files after the purge.
    const expiredBytes = before
      .filter((p) => oldIds.includes(p.id))
      .flatMap((p) => [p.req!, p.res!].map((b) => b.subarray(0, 24).toString('latin1')));

    const files = () =>
      readdirSync(trail.dataDir)
        .filter((f) => f.startsWith('audit.db'))
        .map((f): [string, string] => [f, readFileSync(join(trail.dataDir, f)).toString('latin1')]);
    const everything = files()
      .map(([, content]) => content)
      .join('');
    assert.ok(
      expiredBytes.every((b) => everything.includes(b)),
      'the ciphertexts are in the file',
    );

    const r = crdkit(['audit', 'purge', '--config', trail.config], trail.dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`removed 4 payloads past their retention .*retentionDays = ${RETENTION_DAYS}`),
    );

    const after = payloads();
    assert.deepEqual(
      after.filter((p) => p.key === null && !p.req && !p.res).map((p) => p.id),
      oldIds,
      'the expired payloads are gone',
    );
    assert.deepEqual(
      after.filter((p) => p.key === 'k1' && p.req && p.res).map((p) => p.id),
      freshIds,
      'the payloads within retention are kept',
    );
    // The bytes have left the files (secure_delete, WAL checkpointed), not only the rows.
    for (const [name, content] of files()) {
      for (const bytes of expiredBytes) {
        assert.ok(!content.includes(bytes), `purged ciphertext still in ${name}`);
      }
    }
    // The kept payloads still decrypt.
    const store = await trail.open();
    try {
      const kept = await store.readPayloads(freshIds[0]!, 'purge test');
      assert.equal(kept?.request?.toString(), '{"hook":"order-sign","n":4}');
      assert.equal(await store.readPayloads(oldIds[0]!, 'purge test'), undefined);
    } finally {
      await store.close();
    }

    const v = crdkit(['audit', 'verify', '--config', trail.config], trail.dir);
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stderr, /intact: 9 records/); // 7 calls and 2 payload reads

    const again = crdkit(['audit', 'purge', '--config', trail.config], trail.dir);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /removed 0 payloads/);
  });
});
