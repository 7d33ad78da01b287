/**
 * The hash chain (found-37): every record links to the one before it; `verify` recomputes the
 * chain and names the first record changed, removed or reordered, on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuditUnavailableError, type AuditStore } from '../../src/audit/index.js';
import { appendMany, BACKENDS, hookInput, ids, type Backend } from './helpers.js';

for (const { name, make, skip } of BACKENDS) {
  describe(`audit chain on ${name}`, { ...(skip ? { skip } : {}) }, () => {
    /** A fresh backend with six records; `check` runs, then everything is removed. */
    async function withSix(check: (b: Backend, store: AuditStore, ids: string[]) => Promise<void>) {
      const backend = await make();
      const store = await backend.open();
      try {
        const written = await appendMany(store, 6);
        await check(backend, store, written);
      } finally {
        await store.close();
        await backend.cleanup();
      }
    }

    test('found-37: appended records verify, in order, one link each', () =>
      withSix(async (backend, store, written) => {
        assert.deepEqual(await store.verify(), { ok: true, records: 6 });
        assert.deepEqual(await ids(backend), written);
        const rows = await backend.raw(
          'SELECT seq, prev_id, prev_hash, hash FROM audit_records ORDER BY seq',
        );
        assert.equal(rows[0]!.prev_hash, '0'.repeat(64));
        for (let i = 1; i < rows.length; i++) {
          assert.equal(rows[i]!.prev_hash, rows[i - 1]!.hash);
          assert.equal(rows[i]!.prev_id, written[i - 1]);
        }
      }));

    test('found-37: an empty trail verifies with zero records', async () => {
      const backend = await make();
      const store = await backend.open();
      try {
        assert.deepEqual(await store.verify(), { ok: true, records: 0 });
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });

    test('found-37: a changed field names the record as changed', () =>
      withSix(async (backend, store, written) => {
        await backend.raw("UPDATE audit_records SET patient = 'Patient/other' WHERE seq = 4");
        assert.deepEqual(await store.verify(), {
          ok: false,
          firstBad: { id: written[3], seq: 4, problem: 'changed' },
        });
      }));

    test('found-37: a changed AuditEvent names the record as changed', () =>
      withSix(async (backend, store, written) => {
        await backend.raw(
          'UPDATE audit_records SET event = replace(event, \'"outcome":"0"\', \'"outcome":"8"\') WHERE seq = 2',
        );
        assert.deepEqual(await store.verify(), {
          ok: false,
          firstBad: { id: written[1], seq: 2, problem: 'changed' },
        });
      }));

    test('found-37: a deleted row names the record as removed', () =>
      withSix(async (backend, store, written) => {
        await backend.raw('DELETE FROM audit_records WHERE seq = 3');
        assert.deepEqual(await store.verify(), {
          ok: false,
          firstBad: { id: written[2], seq: 3, problem: 'removed' },
        });
      }));

    test('found-37: a deleted last row names the record as removed', () =>
      withSix(async (backend, store, written) => {
        await backend.raw('DELETE FROM audit_records WHERE seq = 6');
        assert.deepEqual(await store.verify(), {
          ok: false,
          firstBad: { id: written[5], seq: 6, problem: 'removed' },
        });
      }));

    test('found-37: two swapped rows name the first out of place as reordered', () =>
      withSix(async (backend, store, written) => {
        await backend.raw('UPDATE audit_records SET seq = -1 WHERE seq = 2');
        await backend.raw('UPDATE audit_records SET seq = 2 WHERE seq = 5');
        await backend.raw('UPDATE audit_records SET seq = 5 WHERE seq = -1');
        assert.deepEqual(await store.verify(), {
          ok: false,
          firstBad: { id: written[4], seq: 2, problem: 'reordered' },
        });
      }));

    test('found-37: two swapped neighbours name the first out of place as reordered', () =>
      withSix(async (backend, store, written) => {
        await backend.raw('UPDATE audit_records SET seq = -1 WHERE seq = 3');
        await backend.raw('UPDATE audit_records SET seq = 3 WHERE seq = 4');
        await backend.raw('UPDATE audit_records SET seq = 4 WHERE seq = -1');
        assert.deepEqual(await store.verify(), {
          ok: false,
          firstBad: { id: written[3], seq: 3, problem: 'reordered' },
        });
      }));

    test('found-37: a record moved to the end names the first out of place as reordered', () =>
      withSix(async (backend, store, written) => {
        await backend.raw('UPDATE audit_records SET seq = 7 WHERE seq = 2');
        for (const seq of [3, 4, 5, 6, 7]) {
          await backend.raw(`UPDATE audit_records SET seq = ${seq - 1} WHERE seq = ${seq}`);
        }
        assert.deepEqual(await store.verify(), {
          ok: false,
          firstBad: { id: written[2], seq: 2, problem: 'reordered' },
        });
      }));

    test('found-37: appending continues the chain after a reopen', async () => {
      const backend = await make();
      try {
        const first = await backend.open();
        await appendMany(first, 2);
        await first.close();
        const second = await backend.open();
        await second.appendHook(hookInput(7));
        assert.deepEqual(await second.verify(), { ok: true, records: 3 });
        await second.close();
      } finally {
        await backend.cleanup();
      }
    });

    test('found-37: a store that cannot be written fails closed with a 503', async () => {
      const backend = await make();
      const store = await backend.open();
      try {
        await backend.raw('DROP TABLE audit_chain_head');
        const err = await store.appendHook(hookInput(1)).then(
          () => assert.fail('append succeeded'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof AuditUnavailableError);
        assert.equal(err.status, 503);
        assert.equal(err.code, 'ERR_AUDIT_UNAVAILABLE');
        assert.equal(
          err.message,
          'the audit trail could not be written; the request was not answered',
        );
        assert.equal(err.toOutcome().issue[0]!.code, 'transient');
        await store.close();
        await assert.rejects(
          store.appendSecurity({
            at: new Date(),
            instance: 'x',
            kind: 'replay',
            errorCode: 'ERR_JWT_REPLAY',
          }),
          {
            code: 'ERR_AUDIT_UNAVAILABLE',
          },
        );
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });
  });
}

test('found-37: an unknown store URL is a configuration error naming "audit"', async () => {
  const { openAuditStore } = await import('../../src/audit/index.js');
  await assert.rejects(openAuditStore({ url: 'mysql://x', dataDir: '/tmp', instance: 'i' }), {
    name: 'ConfigError',
    code: 'ERR_CONFIG',
    message: 'audit: must be "sqlite" or a postgres:// or postgresql:// URL',
  });
});

test('found-37: an unreachable PostgreSQL is a configuration error without the URL', async () => {
  const { openAuditStore } = await import('../../src/audit/index.js');
  const err = await openAuditStore({
    url: 'postgres://u:s3cret@127.0.0.1:1/db',
    dataDir: '/tmp',
    instance: 'i',
  }).then(
    () => assert.fail('opened'),
    (e: Error) => e,
  );
  assert.equal(err.message, 'audit: PostgreSQL could not be opened (ECONNREFUSED)');
  assert.ok(!err.message.includes('s3cret'));
});
