/**
 * Group commit in the SQLite store: appends made together share one transaction, yet the chain
 * is the one they would make one by one, every promise resolves only once its record is
 * committed, and a failure rejects every append of the batch (503 for each caller).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hookInput, sqliteBackend } from './helpers.js';

describe('SQLite group commit (found-37)', () => {
  it('found-37: 200 concurrent appends all commit, in order, and the chain verifies', async () => {
    const backend = sqliteBackend();
    const store = await backend.open();
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => store.appendHook(hookInput(i))),
      );
      assert.equal(new Set(results.map((r) => r.id)).size, 200);
      const rows = await backend.raw('SELECT seq, id FROM audit_records ORDER BY seq');
      assert.deepEqual(
        rows.map((r) => r.id),
        results.map((r) => r.id),
        'the chain order is the order of the calls',
      );
      assert.deepEqual(await store.verify(), { ok: true, records: 200 });
    } finally {
      await store.close();
      await backend.cleanup();
    }
  });

  it('found-37: when the batch cannot be committed every caller gets ERR_AUDIT_UNAVAILABLE', async () => {
    const backend = sqliteBackend();
    const store = await backend.open();
    await store.appendHook(hookInput(0));
    await store.close();
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => store.appendHook(hookInput(i + 1))),
      );
      for (const o of outcomes) {
        assert.equal(o.status, 'rejected');
        assert.equal((o as PromiseRejectedResult).reason.code, 'ERR_AUDIT_UNAVAILABLE');
        assert.equal((o as PromiseRejectedResult).reason.status, 503);
      }
    } finally {
      await backend.cleanup();
    }
  });
});
