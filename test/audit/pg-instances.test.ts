/**
 * Several instances on one PostgreSQL (found-37): two stores with different `instance` append
 * concurrently into the one serialized chain, which verifies with every record in it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hookInput, needsPg, pgBackend } from './helpers.js';

test(
  'found-37: two instances appending 2×100 records concurrently leave one verifiable chain',
  needsPg,
  async () => {
    const backend = await pgBackend();
    try {
      const [a, b] = await Promise.all([
        backend.open({ instance: 'host-a:1' }),
        backend.open({ instance: 'host-b:2' }),
      ]);
      try {
        const run = (store: typeof a, instance: string) =>
          Promise.all(
            Array.from({ length: 100 }, (_, n) => store.appendHook(hookInput(n, { instance }))),
          );
        const [fromA, fromB] = await Promise.all([run(a, 'host-a:1'), run(b, 'host-b:2')]);
        assert.equal(new Set([...fromA, ...fromB].map((r) => r.id)).size, 200);
        assert.deepEqual(await a.verify(), { ok: true, records: 200 });
        assert.deepEqual(await b.verify(), { ok: true, records: 200 });
        const rows = await backend.raw(
          'SELECT instance, count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi FROM audit_records GROUP BY instance ORDER BY instance',
        );
        assert.deepEqual(
          rows.map((r) => [r.instance, r.n]),
          [
            ['host-a:1', 100],
            ['host-b:2', 100],
          ],
        );
        // Interleaved, not one block after the other.
        assert.ok(
          Number(rows[0]!.hi) > Number(rows[1]!.lo) && Number(rows[1]!.hi) > Number(rows[0]!.lo),
        );
      } finally {
        await a.close();
        await b.close();
      }
    } finally {
      await backend.cleanup();
    }
  },
);

test('found-37: two instances starting together migrate the schema once', needsPg, async () => {
  const backend = await pgBackend();
  try {
    const stores = await Promise.all([1, 2, 3].map((i) => backend.open({ instance: `h${i}` })));
    await Promise.all(stores.map((s) => s.close()));
    const rows = await backend.raw('SELECT version FROM crdkit_audit_migrations');
    assert.deepEqual(rows, [{ version: 1 }]);
  } finally {
    await backend.cleanup();
  }
});
