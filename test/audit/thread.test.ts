/**
 * The SQLite audit trail runs on the SQLite thread (src/store/sqlite-thread.ts): what
 * the event loop hands over is committed before its promise resolves, nothing accepted is lost
 * on close, and a worker that dies fails its calls closed and is replaced. Also the two things
 * that keep a record cheap to append: canonical key order and time-ordered ids.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { auditEventFromHook } from '../../src/audit/balp.js';
import { canonicalJson, recordId } from '../../src/audit/chain.js';
import type { AppendEntry } from '../../src/audit/entry.js';
import { openAuditStore, type HookAuditInput } from '../../src/audit/index.js';
import { ThreadedSqliteAuditBackend } from '../../src/audit/sqlite-thread.js';
import { SqliteThread } from '../../src/store/sqlite-thread.js';
import { cleanHookInput } from '../../src/audit/validate.js';
import { hookInput } from './helpers.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'crdkit-audit-thread-'));
}

function entry(n: number): AppendEntry {
  const id = recordId();
  return {
    fields: {
      id,
      instance: 'test-host:1',
      kind: 'hook',
      recordedAt: Date.now(),
      patient: `Patient/p${n}`,
      expiresAt: null,
    },
    event: canonicalJson({ id, n, resourceType: 'AuditEvent' }),
  };
}

test('found-37: appends made together are all committed before the store closes', async () => {
  const dir = tempDir();
  try {
    const store = await openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'test-host:1' });
    // Not awaited one by one: they go to the worker together; close must not drop any.
    const appends = Array.from({ length: 50 }, (_, i) => store.appendHook(hookInput(i)));
    await store.close();
    await Promise.all(appends);
    const again = await openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'test-host:1' });
    assert.deepEqual(await again.verify(), { ok: true, records: 50 });
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('found-37: an append after close is refused with a 503, never silently dropped', async () => {
  const dir = tempDir();
  try {
    const store = await openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'test-host:1' });
    await store.close();
    await assert.rejects(store.appendHook(hookInput(1)), {
      code: 'ERR_AUDIT_UNAVAILABLE',
      status: 503,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('found-37: a dead audit worker fails its calls closed, and the next call starts a new one', async () => {
  const dir = tempDir();
  const backend = await ThreadedSqliteAuditBackend.open(dir);
  try {
    await backend.append(entry(0));
    const inFlight = backend.append(entry(1)).then(
      () => 'committed',
      (err: { code?: string }) => err.code,
    );
    await SqliteThread.shared().terminateForTest();
    const outcome = await inFlight;
    const seq = (await backend.head()).seq; // a new worker answers
    if (outcome === 'committed') {
      assert.equal(seq, 2, 'a call reported committed is in the database');
    } else {
      assert.equal(outcome, 'ERR_SQLITE_THREAD');
      assert.equal(seq, 1, 'a call that failed left no record');
    }
    await backend.append(entry(2));
    assert.equal((await backend.head()).seq, seq + 1);
  } finally {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('found-37: a record that cannot cross to the SQLite thread fails closed (503); the next one is written', async () => {
  const dir = tempDir();
  try {
    const store = await openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'test-host:1' });
    const odd = { ...hookInput(1), extra: () => 'not data' } as unknown as HookAuditInput;
    await assert.rejects(store.appendHook(odd), { code: 'ERR_AUDIT_UNAVAILABLE', status: 503 });
    await store.appendHook(hookInput(2));
    assert.deepEqual(await store.verify(), { ok: true, records: 1 });
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('found-37: a new SQLite thread never starts an empty trail; it opens the old one once it can', async () => {
  const dir = tempDir();
  const backend = await ThreadedSqliteAuditBackend.open(dir);
  const files = ['audit.db', 'audit.db-wal', 'audit.db-shm'].map((f) => join(dir, f));
  try {
    await backend.append(entry(0));
    await SqliteThread.shared().terminateForTest();
    // The trail is gone when the new worker starts: appends fail closed, nothing is created.
    for (const f of files) if (existsSync(f)) renameSync(f, `${f}.away`);
    await assert.rejects(backend.append(entry(1)), { code: 'ERR_HANDLE' });
    await assert.rejects(backend.append(entry(2)), { code: 'ERR_HANDLE' });
    assert.equal(existsSync(files[0]!), false, 'no new, empty audit.db');
    // Back again: the next call opens it, and the chain goes on from the first record.
    for (const f of files) if (existsSync(`${f}.away`)) renameSync(`${f}.away`, f);
    await backend.append(entry(3));
    assert.equal((await backend.head()).seq, 2);
  } finally {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('found-37: canonical JSON keeps an own "__proto__" key, whatever the key order', () => {
  const a = JSON.parse('{"__proto__":{"a":1},"b":2}') as unknown;
  const b = JSON.parse('{"b":2,"__proto__":{"a":1}}') as unknown;
  assert.equal(canonicalJson(a), '{"__proto__":{"a":1},"b":2}');
  assert.equal(canonicalJson(b), canonicalJson(a));
});

test('found-37: an audit database that cannot be opened fails at start-up', async () => {
  const dir = tempDir();
  try {
    // A folder where the database file should be: SQLite cannot open it.
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'audit.db'));
    await assert.rejects(openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'x' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('found-37: hook AuditEvents are built in canonical key order', () => {
  // canonicalJson serialises such an event without re-sorting it; the stored text is the same.
  const full = cleanHookInput(
    hookInput(1, {
      client: { iss: 'https://ehr.example', name: 'EHR', certificateSha256: 'AB:CD' },
      destination: 'https://payer.example/crd',
      errorCode: 'ERR_X',
      withheld: [{ reference: 'Observation/1', reason: 'policy' }],
    }),
  );
  for (const input of [full, cleanHookInput(hookInput(2))]) {
    const event = auditEventFromHook(input, recordId());
    assert.equal(JSON.stringify(event), canonicalJson(event));
  }
});

test('found-37: canonical JSON sorts keys at every level, whatever order they were built in', () => {
  const when = new Date('2025-01-01T00:00:00Z');
  assert.equal(
    canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: when }, e: undefined }),
    '{"a":{"c":"2025-01-01T00:00:00.000Z","d":[{"y":2,"z":1}]},"b":1}',
  );
  assert.equal(canonicalJson({ a: 1, b: { c: 2 } }), '{"a":1,"b":{"c":2}}');
});

test('found-37: record ids are version 7 UUIDs that sort by time', () => {
  const ids = Array.from({ length: 1000 }, (_, i) => recordId(1_700_000_000_000 + i));
  for (const id of ids) {
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(Array.from({ length: 10_000 }, () => recordId(0))).size, 10_000);
});
