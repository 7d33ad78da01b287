/**
 * Export and access (found-38): AuditEvents come out oldest first, filtered by time window and
 * patient, as NDJSON or a Bundle; every read of the trail is itself recorded first. The events
 * are BALP-shaped and carry references and digests, never payloads or tokens.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import type { AuditEvent } from '@medplum/fhirtypes';
import {
  auditEventFromHook,
  auditEventFromSecurity,
  writeBundle,
  writeNdjson,
  type AuditStore,
} from '../../src/audit/index.js';
import { appendMany, BACKENDS, hookInput, T0 } from './helpers.js';

async function all(events: AsyncIterable<AuditEvent>): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);
const isRead = (e: AuditEvent) => e.type?.code === '110101';

for (const { name, make, skip } of BACKENDS) {
  describe(`audit export on ${name}`, { ...(skip ? { skip } : {}) }, () => {
    async function withSix(check: (store: AuditStore, ids: string[]) => Promise<void>) {
      const backend = await make();
      const store = await backend.open({ now: () => minutes(100) });
      try {
        await check(store, await appendMany(store, 6));
      } finally {
        await store.close();
        await backend.cleanup();
      }
    }

    test('found-38: export filters by since (inclusive), until (exclusive) and patient', () =>
      withSix(async (store, ids) => {
        const window = await all(store.export({ since: minutes(1), until: minutes(4) }));
        assert.deepEqual(
          window.map((e) => e.id),
          ids.slice(1, 4),
        );
        const patient = await all(store.export({ patient: 'Patient/p1', until: minutes(50) }));
        assert.deepEqual(
          patient.map((e) => e.id),
          [ids[1], ids[4]],
        );
        const everything = await all(store.export({}));
        assert.equal(everything.filter((e) => !isRead(e)).length, 6);
      }));

    test('found-38: an export is recorded before anything is read, with reader and filter', () =>
      withSix(async (store) => {
        await all(store.export({ patient: 'Patient/p2', since: minutes(2), reader: 'auditor-7' }));
        const reads = (await all(store.export({ since: minutes(100) }))).filter(isRead);
        assert.equal(reads.length, 2);
        const first = reads[0]!;
        assert.equal(first.action, 'R');
        assert.equal(first.outcome, '0');
        assert.equal(first.agent[0]!.who?.display, 'auditor-7');
        assert.equal(first.agent[0]!.requestor, true);
        assert.equal(first.outcomeDesc, 'export since=2025-03-01T12:02:00.000Z');
        assert.equal(first.entity?.[0]?.what?.reference, 'Patient/p2');
        assert.deepEqual(await store.verify(), { ok: true, records: 8 });
      }));

    test('found-38: reading a payload is recorded too', () =>
      withSix(async (store, ids) => {
        await store.readPayloads(ids[0]!, 'auditor-8');
        const reads = (await all(store.export({ since: minutes(100) }))).filter(isRead);
        assert.equal(reads[0]!.agent[0]!.who?.display, 'auditor-8');
        assert.equal(reads[0]!.outcomeDesc, 'payload');
      }));

    test('found-38: NDJSON and Bundle writers emit every exported event', () =>
      withSix(async (store) => {
        const ndjson = new PassThrough();
        const chunks: Buffer[] = [];
        ndjson.on('data', (c: Buffer) => chunks.push(c));
        assert.equal(await writeNdjson(store.export({ until: minutes(6) }), ndjson), 6);
        const lines = Buffer.concat(chunks).toString().trimEnd().split('\n');
        assert.equal(lines.length, 6);
        assert.equal(JSON.parse(lines[0]!).resourceType, 'AuditEvent');
        const bundle = new PassThrough();
        const parts: Buffer[] = [];
        bundle.on('data', (c: Buffer) => parts.push(c));
        await writeBundle(store.export({ until: minutes(3) }), bundle, T0);
        const parsed = JSON.parse(Buffer.concat(parts).toString());
        assert.equal(parsed.resourceType, 'Bundle');
        assert.equal(parsed.type, 'collection');
        assert.equal(parsed.entry.length, 3);
        assert.equal(parsed.entry[0].fullUrl, `urn:uuid:${parsed.entry[0].resource.id}`);
      }));
  });
}

test('found-37: a hook call AuditEvent is BALP-shaped, with references and digests only', () => {
  const input = hookInput(4, {
    client: { iss: 'https://ehr.example/fhir', certificateSha256: 'AB:'.repeat(31) + 'AB' },
    orders: ['ServiceRequest/a', 'DeviceRequest/b'],
    coverageAssertionIds: ['ca-1', 'ca-2'],
  });
  const event = auditEventFromHook(input, 'rec-1');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(event.resourceType, 'AuditEvent');
  assert.deepEqual(event.type, {
    system: 'http://dicom.nema.org/resources/ontology/DCM',
    code: '110112',
    display: 'Query',
  });
  assert.deepEqual(
    event.subtype?.map((c) => c.code),
    ['order-sign', 'order-sign-crd'],
  );
  assert.equal(event.action, 'E');
  assert.equal(event.outcome, '0');
  assert.equal(event.recorded, '2025-03-01T12:04:00.000Z');
  assert.equal(event.source.observer.display, 'test-host:1');
  const [client, server] = event.agent;
  assert.deepEqual(client!.who?.identifier, {
    system: 'urn:crdkit:iss',
    value: 'https://ehr.example/fhir',
  });
  assert.equal(client!.requestor, true);
  assert.equal(client!.altId, `x5t#S256:${'AB:'.repeat(31)}AB`);
  assert.equal(server!.requestor, false);
  const refs = event.entity?.map((e) => e.what?.reference).filter(Boolean);
  assert.deepEqual(refs, ['Patient/p1', 'ServiceRequest/a', 'DeviceRequest/b']);
  const idents = event.entity?.map((e) => e.what?.identifier?.value).filter(Boolean);
  assert.deepEqual(idents, [input.hookInstance, 'ca-1', 'ca-2']);
  const request = event.entity?.find((e) => e.name === 'request');
  const response = event.entity?.find((e) => e.name === 'response');
  assert.deepEqual(request?.detail, [{ type: 'sha256', valueString: sha(input.requestBody!) }]);
  assert.deepEqual(response?.detail, [
    { type: 'sha256', valueString: sha(input.responseBody!) },
    { type: 'http-status', valueString: '200' },
  ]);
  assert.ok(!JSON.stringify(event).includes('"n":4'));
});

test('found-37: request fields that are not references are dropped, the call still recorded', async () => {
  const { openAuditStore } = await import('../../src/audit/index.js');
  const store = await openAuditStore({ url: 'sqlite', dataDir: ':memory:', instance: 'i' });
  try {
    await store.appendHook(
      hookInput(1, {
        patient: 'Patient/has space',
        orders: ['ServiceRequest/ok', '{"resourceType":"ServiceRequest"}'],
        hook: '',
        client: { iss: 'https://ehr.example', certificateSha256: 'AB:'.repeat(31) + 'AB' },
      }),
    );
    const [event] = await all(store.export({ until: minutes(50) }));
    assert.deepEqual(event!.entity?.map((e) => e.what?.reference).filter(Boolean), [
      'ServiceRequest/ok',
    ]);
    assert.equal(event!.agent[0]!.altId, `x5t#S256:${'ab'.repeat(32)}`);
    await assert.rejects(store.appendHook(hookInput(2, { status: 99 })), {
      code: 'ERR_AUDIT_INPUT',
      message: 'the audit record is invalid: "status"',
    });
  } finally {
    await store.close();
  }
});

test('found-37: a security event records the code, never a token', () => {
  const event = auditEventFromSecurity(
    {
      at: T0,
      instance: 'test-host:1',
      kind: 'auth-refused',
      source: '192.0.2.7',
      errorCode: 'ERR_JWT_SIGNATURE',
      detail: 'Bearer eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.sig',
    },
    'rec-2',
  );
  assert.equal(event.type.code, '110114');
  assert.deepEqual(
    event.subtype?.map((c) => c.code),
    ['110122', 'auth-refused'],
  );
  assert.equal(event.outcome, '4');
  assert.equal(event.outcomeDesc, 'ERR_JWT_SIGNATURE: [redacted]');
  assert.deepEqual(event.agent[0]!.network, { address: '192.0.2.7', type: '2' });
  assert.ok(!JSON.stringify(event).includes('eyJ'));
});
