/**
 * The default replay store runs on the SQLite thread (src/store/sqlite-thread.ts): a spend is
 * accepted only once its row is committed there, and a thread that stops refuses the token
 * (503) instead of letting it through unrecorded.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ThreadedSqliteReplayStore } from '../../src/auth/replay.js';
import { SqliteThread } from '../../src/store/sqlite-thread.js';

const ISS = 'https://ehr.example/replay-thread';
const later = () => Math.floor(Date.now() / 1000) + 300;

test('sec-1 (CDS Hooks jti): spends on the SQLite thread count once, even when sent together', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-replay-thread-'));
  const store = await ThreadedSqliteReplayStore.open(join(dir, 'crdkit.db'));
  try {
    const same = await Promise.all([1, 2, 3].map(() => store.spend(ISS, 'jti-1', later())));
    assert.deepEqual(same.sort(), [false, false, true]);
    assert.equal(await store.spend(ISS, 'jti-2', later()), true);
    // Another store on the same file (another process, say) sees the spent pair.
    const other = await ThreadedSqliteReplayStore.open(join(dir, 'crdkit.db'));
    assert.equal(await other.spend(ISS, 'jti-2', later()), false);
    await other.close();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sec-1 (CDS Hooks jti): a spend the SQLite thread cannot answer is refused with 503', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-replay-thread-'));
  const store = await ThreadedSqliteReplayStore.open(join(dir, 'crdkit.db'));
  try {
    assert.equal(await store.spend(ISS, 'before', later()), true);
    const inFlight = store.spend(ISS, 'during', later()).then(
      (fresh) => ({ fresh }),
      (err: { status?: number; code?: string }) => ({ status: err.status, code: err.code }),
    );
    await SqliteThread.shared().terminateForTest();
    const outcome = await inFlight;
    if ('status' in outcome) {
      assert.deepEqual(outcome, { status: 503, code: 'ERR_REPLAY_UNAVAILABLE' });
    } else {
      assert.equal(outcome.fresh, true, 'a spend reported fresh was committed');
    }
    // A new thread opens the same file: the spent pairs are still spent.
    assert.equal(await store.spend(ISS, 'before', later()), false);
    assert.equal(await store.spend(ISS, 'after', later()), true);
    await store.close();
    await assert.rejects(store.spend(ISS, 'closed', later()), { status: 503 });
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sec-1 (CDS Hooks jti): a new SQLite thread never starts an empty replay store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-replay-thread-'));
  const store = await ThreadedSqliteReplayStore.open(join(dir, 'crdkit.db'));
  try {
    assert.equal(await store.spend(ISS, 'spent', later()), true);
    await SqliteThread.shared().terminateForTest();
    rmSync(dir, { recursive: true, force: true });
    // An empty store would accept the spent jti again: the spend is refused instead.
    await assert.rejects(store.spend(ISS, 'spent', later()), {
      status: 503,
      code: 'ERR_REPLAY_UNAVAILABLE',
      reason: 'ERR_HANDLE',
    });
    assert.equal(existsSync(join(dir, 'crdkit.db')), false);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
