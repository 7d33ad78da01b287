/**
 * Payloads at rest (sec-6): kept only AES-256-GCM encrypted under a configured key, bound to
 * their record, readable after key rotation, absent without a key, and purged after retention
 * without breaking the chain. On SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuditStore } from '../../src/audit/index.js';
import { BACKENDS, hookInput, newKey, T0, type Backend } from './helpers.js';

const DAY = 86_400_000;

for (const { name, make, skip } of BACKENDS) {
  describe(`audit payloads on ${name}`, { ...(skip ? { skip } : {}) }, () => {
    async function withBackend(check: (b: Backend) => Promise<void>): Promise<void> {
      const backend = await make();
      try {
        await check(backend);
      } finally {
        await backend.cleanup();
      }
    }

    async function using<T>(store: AuditStore, work: (s: AuditStore) => Promise<T>): Promise<T> {
      try {
        return await work(store);
      } finally {
        await store.close();
      }
    }

    test('sec-6: payloads round-trip encrypted; the stored bytes are not the plain text', () =>
      withBackend(async (backend) => {
        const encryption = { keys: { k1: newKey() }, current: 'k1' };
        const input = hookInput(1);
        await using(await backend.open({ encryption }), async (store) => {
          const { id } = await store.appendHook(input);
          const rows = await backend.raw(
            `SELECT payload_key_id, request_ct, response_ct FROM audit_records WHERE id = '${id}'`,
          );
          assert.equal(rows[0]!.payload_key_id, 'k1');
          const sealed = Buffer.from(rows[0]!.request_ct as Uint8Array);
          assert.equal(sealed.length, 12 + 16 + input.requestBody!.length);
          assert.ok(!sealed.includes(input.requestBody!));
          const read = await store.readPayloads(id, 'auditor');
          assert.deepEqual(read, {
            keyId: 'k1',
            request: input.requestBody,
            response: input.responseBody,
          });
        });
      }));

    test('sec-6: a wrong key does not decrypt (ERR_AUDIT_DECRYPT)', () =>
      withBackend(async (backend) => {
        const first = await backend.open({ encryption: { keys: { k1: newKey() }, current: 'k1' } });
        const { id } = await using(first, (s) => s.appendHook(hookInput(1)));
        const other = await backend.open({ encryption: { keys: { k1: newKey() }, current: 'k1' } });
        await using(other, async (store) => {
          await assert.rejects(store.readPayloads(id), {
            code: 'ERR_AUDIT_DECRYPT',
            message:
              'the payload does not decrypt with the configured key (wrong key or altered data): "request"',
          });
        });
      }));

    test('sec-6: a payload moved to another record does not decrypt (bound to the record id)', () =>
      withBackend(async (backend) => {
        const encryption = { keys: { k1: newKey() }, current: 'k1' };
        await using(await backend.open({ encryption }), async (store) => {
          const a = await store.appendHook(hookInput(1));
          const b = await store.appendHook(hookInput(2));
          await backend.raw(
            `UPDATE audit_records SET request_ct = (SELECT request_ct FROM audit_records WHERE id = '${a.id}') WHERE id = '${b.id}'`,
          );
          await assert.rejects(store.readPayloads(b.id), { code: 'ERR_AUDIT_DECRYPT' });
        });
      }));

    test('sec-6: after rotation the new key encrypts and the old key still decrypts', () =>
      withBackend(async (backend) => {
        const k1 = newKey();
        const k2 = newKey();
        const old = await backend.open({ encryption: { keys: { k1 }, current: 'k1' } });
        const before = await using(old, (s) => s.appendHook(hookInput(1)));
        const rotated = await backend.open({ encryption: { keys: { k1, k2 }, current: 'k2' } });
        await using(rotated, async (store) => {
          const after = await store.appendHook(hookInput(2));
          assert.equal((await store.readPayloads(before.id))?.keyId, 'k1');
          assert.equal((await store.readPayloads(after.id))?.keyId, 'k2');
          assert.deepEqual((await store.readPayloads(after.id))?.request, hookInput(2).requestBody);
        });
        const withoutOld = await backend.open({ encryption: { keys: { k2 }, current: 'k2' } });
        await using(withoutOld, async (store) => {
          await assert.rejects(store.readPayloads(before.id), {
            code: 'ERR_AUDIT_KEY_UNKNOWN',
            message: 'the payload was encrypted with a "keyId" that is not configured: "request"',
          });
        });
      }));

    test('sec-6: without a key no payload is stored at all, digests still are', () =>
      withBackend(async (backend) => {
        await using(await backend.open(), async (store) => {
          const input = hookInput(1);
          await store.appendHook(input);
          const rows = await backend.raw(
            'SELECT payload_key_id, request_ct, response_ct, expires_at, event FROM audit_records',
          );
          assert.equal(rows.length, 1);
          assert.deepEqual(
            [
              rows[0]!.payload_key_id,
              rows[0]!.request_ct,
              rows[0]!.response_ct,
              rows[0]!.expires_at,
            ],
            [null, null, null, null],
          );
          const event = String(rows[0]!.event);
          assert.ok(!event.includes('order-sign\\",\\"n'));
          assert.ok(!event.includes('"n":1'));
          assert.match(event, /"type":"sha256","valueString":"[0-9a-f]{64}"/);
        });
      }));

    test('sec-6: purge removes payloads past retention and the chain still verifies', () =>
      withBackend(async (backend) => {
        let now = T0;
        const encryption = { keys: { k1: newKey() }, current: 'k1' };
        const store = await backend.open({ encryption, retentionDays: 7, now: () => now });
        await using(store, async () => {
          const old = await store.appendHook(hookInput(1));
          now = new Date(T0.getTime() + 5 * DAY);
          const recent = await store.appendHook(hookInput(2));
          await store.appendSecurity({
            at: now,
            instance: 'i',
            kind: 'replay',
            errorCode: 'ERR_JWT_REPLAY',
          });
          assert.deepEqual(await store.purge(new Date(T0.getTime() + 7 * DAY - 1)), {
            payloadsRemoved: 0,
          });
          assert.deepEqual(await store.purge(new Date(T0.getTime() + 7 * DAY)), {
            payloadsRemoved: 1,
          });
          assert.equal(await store.readPayloads(old.id), undefined);
          assert.ok(await store.readPayloads(recent.id));
          const rows = await backend.raw(
            `SELECT request_ct, response_ct, payload_key_id FROM audit_records WHERE id = '${old.id}'`,
          );
          assert.deepEqual(rows[0], { request_ct: null, response_ct: null, payload_key_id: null });
          // The default clock: now + 5 days is past the second payload's 7 days too.
          now = new Date(T0.getTime() + 12 * DAY);
          assert.deepEqual(await store.purge(), { payloadsRemoved: 1 });
          const verified = await store.verify();
          assert.equal(verified.ok, true);
        });
      }));
  });
}

test('sec-6: a key that is not 32 bytes of base64 is a configuration error naming the key', async () => {
  const { openAuditStore } = await import('../../src/audit/index.js');
  const short = Buffer.alloc(16).toString('base64');
  await assert.rejects(
    openAuditStore({
      url: 'sqlite',
      dataDir: ':memory:',
      instance: 'i',
      encryption: { keys: { k1: short }, current: 'k1' },
    }),
    { code: 'ERR_CONFIG', message: 'audit.encryption.keys.k1: must be base64 of 32 bytes' },
  );
  await assert.rejects(
    openAuditStore({
      url: 'sqlite',
      dataDir: ':memory:',
      instance: 'i',
      encryption: { keys: { k1: newKey() }, current: 'k2' },
    }),
    { code: 'ERR_CONFIG', message: 'audit.encryption.current: must name one of "keys"' },
  );
});
