/**
 * The `jti` replay stores (CDS Hooks: jti is a nonce against replay) and the SQLite helper
 * they rely on: hashed keys only, expiry, bounded memory, private files, one-time migrations.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  createVerifier,
  MemoryReplayStore,
  ReplayCapacityError,
  SqliteReplayStore,
} from '../../src/auth/index.js';
import { migrate, openSqlite } from '../../src/store/sqlite.js';
import {
  AUD,
  bearer,
  claims,
  expectAuthError,
  ISS,
  makeKey,
  newJti,
  NOW,
  tokenFor,
} from './helpers.js';

const ID = 'sec-1 (CDS Hooks jti)';
const dir = mkdtempSync(join(tmpdir(), 'crdkit-auth-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('MemoryReplayStore', () => {
  test(`${ID}: spends a pair once, again only after it expired`, async () => {
    let clock = NOW;
    const store = new MemoryReplayStore({ now: () => clock });
    const jti = newJti();
    assert.equal(await store.spend(ISS, jti, NOW + 360), true);
    assert.equal(await store.spend(ISS, jti, NOW + 360), false);
    assert.equal(await store.spend('https://other.example', jti, NOW + 360), true);
    clock = NOW + 360;
    assert.equal(await store.spend(ISS, jti, NOW + 720), false);
    clock = NOW + 361;
    assert.equal(await store.spend(ISS, jti, NOW + 720), true);
  });

  test(`${ID}: purges expired entries and refuses (503) rather than evict live ones`, async () => {
    let clock = NOW;
    const store = new MemoryReplayStore({ now: () => clock, maxEntries: 3, purgeEvery: 2 });
    for (let i = 0; i < 3; i += 1) assert.ok(await store.spend(ISS, `j${i}`, NOW + 10));
    await assert.rejects(store.spend(ISS, 'j3', NOW + 10), (err: unknown) => {
      assert.ok(err instanceof ReplayCapacityError);
      assert.equal(err.status, 503);
      assert.equal(err.code, 'ERR_REPLAY_CAPACITY');
      return true;
    });
    assert.equal(await store.spend(ISS, 'j0', NOW + 10), false);
    clock = NOW + 11;
    assert.ok(await store.spend(ISS, 'j3', NOW + 20));
    assert.equal(store.size, 1);
  });
});

describe('SqliteReplayStore', () => {
  test(`${ID}: spends once across two connections, stores only hashes`, async () => {
    let clock = NOW;
    const path = join(dir, 'replay', 'crdkit.db');
    const a = new SqliteReplayStore(path, { now: () => clock });
    const b = new SqliteReplayStore(path, { now: () => clock });
    const jti = newJti();
    assert.equal(await a.spend(ISS, jti, NOW + 360), true);
    assert.equal(await b.spend(ISS, jti, NOW + 360), false);
    assert.equal(await a.spend(ISS, jti, NOW + 360), false);
    clock = NOW + 361;
    assert.equal(await b.spend(ISS, jti, NOW + 720), true);
    assert.equal(await a.spend(ISS, jti, NOW + 720), false);
    a.close();
    b.close();
    const folder = join(dir, 'replay');
    for (const file of readdirSync(folder)) {
      const bytes = readFileSync(join(folder, file));
      assert.ok(!bytes.includes(jti), `${file} holds the raw jti`);
      assert.ok(!bytes.includes(ISS), `${file} holds the raw iss`);
    }
  });

  test(`${ID}: spends sent in the same turn share one commit and still count once`, async () => {
    const path = join(dir, 'replay-batch', 'crdkit.db');
    const a = new SqliteReplayStore(path, { now: () => NOW });
    const b = new SqliteReplayStore(path, { now: () => NOW });
    const jti = newJti();
    const results = await Promise.all([
      a.spend(ISS, jti, NOW + 360),
      a.spend(ISS, jti, NOW + 360),
      b.spend(ISS, jti, NOW + 360),
      a.spend(ISS, newJti(), NOW + 360),
    ]);
    assert.deepEqual(results, [true, false, false, true]);
    a.close();
    b.close();
  });

  test(`${ID}: purges expired rows every N inserts`, async () => {
    let clock = NOW;
    const db = openSqlite(':memory:');
    const store = new SqliteReplayStore(db, { now: () => clock, purgeEvery: 4 });
    for (let i = 0; i < 3; i += 1) await store.spend(ISS, `old${i}`, NOW + 1);
    clock = NOW + 10;
    await store.spend(ISS, 'new', NOW + 100);
    const rows = db.prepare('SELECT h, exp FROM auth_replay').all() as { h: Buffer }[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.h.length, 32);
    store.close();
    assert.ok(db.open, 'a connection passed in stays open');
    db.close();
  });

  test(`${ID}: the verifier refuses a replayed "jti" with ERR_JWT_REPLAY (SQLite)`, async () => {
    const es = await makeKey('ES384');
    const replay = new SqliteReplayStore(join(dir, 'verifier.db'), { now: () => NOW });
    const verifier = createVerifier({
      clients: [{ iss: ISS, jwks: { keys: [es.publicJwk] } }],
      replay,
      now: () => NOW,
    });
    const token = await tokenFor(es, 'ES384', claims());
    await verifier.verify(bearer(token), AUD);
    await expectAuthError(verifier.verify(bearer(token), AUD), 'ERR_JWT_REPLAY', token);
    replay.close();
  });
});

describe('openSqlite and migrate', () => {
  test('sec-1 (storage): creates a 0700 folder and a 0600 file in WAL mode', () => {
    const path = join(dir, 'new', 'deeper', 'store.db');
    const db = openSqlite(path);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('busy_timeout', { simple: true }), 5000);
    db.exec('CREATE TABLE w (a INTEGER); INSERT INTO w VALUES (1)');
    assert.equal(statSync(join(dir, 'new', 'deeper')).mode & 0o777, 0o700);
    for (const file of [path, `${path}-wal`, `${path}-shm`]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
    }
    db.close();
  });

  test('sec-1 (storage): migrate applies each numbered statement once', () => {
    const db = openSqlite(':memory:');
    const v1 = ['CREATE TABLE t (a INTEGER)', 'CREATE INDEX t_a ON t (a)'];
    assert.equal(migrate(db, 'demo', v1), 2);
    assert.equal(migrate(db, 'demo', v1), 0);
    assert.equal(migrate(db, 'demo', [...v1, 'ALTER TABLE t ADD COLUMN b TEXT']), 1);
    assert.equal(migrate(db, 'other', ['CREATE TABLE u (a INTEGER)']), 1);
    assert.throws(() => migrate(db, 'broken', ['CREATE TABLE v (a)', 'NOT SQL']));
    const versions = db.prepare("SELECT count(*) FROM crdkit_migrations WHERE part = 'broken'");
    assert.equal(versions.pluck().get(), 0, 'a failed migration leaves nothing applied');
    db.close();
  });
});
