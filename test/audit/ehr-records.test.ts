/**
 * The EHR side's records (sec-8, sec-9): a request to the FHIR API for payers and a token event
 * each become one AuditEvent in the same hash chain, naming the token's client and the delegate
 * actor chain, and never the token, a query value or resource content.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuditEvent } from '@medplum/fhirtypes';
import { AuditError } from '../../src/audit/index.js';
import { BACKENDS, T0 } from './helpers.js';

async function all(events: AsyncIterable<AuditEvent>): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

for (const { name, make, skip } of BACKENDS) {
  describe(`EHR audit records on ${name}`, { ...(skip ? { skip } : {}) }, () => {
    test('sec-8: a FHIR access names the client, the actor chain, the patients and the resources', async () => {
      const backend = await make();
      const store = await backend.open();
      try {
        await store.appendFhirAccess({
          at: T0,
          instance: 'ehr:1',
          client: { id: 'payer-crd', name: 'Example Payer' },
          actors: ['https://dtr.payer.example', 'payer-crd'],
          action: 'search',
          resourceType: 'Coverage',
          resources: ['Coverage/c1', 'not a reference {"resourceType":"Patient"}'],
          contextPatient: 'Patient/p1',
          patients: ['Patient/p1', 'Patient/p2'],
          hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
          service: 'order-sign-crd',
          declaredTypes: ['Patient', 'Coverage'],
          tokenId: 'jti-1',
          parameters: ['patient', 'status'],
          status: 200,
          outcome: 'success',
        });
        await store.appendToken({
          at: T0,
          instance: 'ehr:1',
          event: 'exchanged',
          client: { id: 'payer-crd' },
          grantType: 'urn:ietf:params:oauth:grant-type:token-exchange',
          scopes: ['patient/Coverage.rs'],
          patient: 'Patient/p1',
          audience: 'https://dtr.payer.example',
          actors: ['https://dtr.payer.example'],
          tokenId: 'jti-2',
          subjectTokenId: 'jti-1',
          expiresAt: new Date(T0.getTime() + 30_000),
        });
        assert.deepEqual(await store.verify(), { ok: true, records: 2 });
        const events = (await all(store.export({}))).filter((e) =>
          e.subtype?.some(
            (c) => c.system !== 'urn:crdkit:security-event' && c.code !== 'audit-read',
          ),
        );
        const [access, token] = events;
        assert.equal(access!.action, 'E');
        assert.equal(access!.agent![0]!.who!.identifier!.value, 'payer-crd');
        assert.equal(access!.agent![1]!.who!.identifier!.value, 'https://dtr.payer.example');
        const refs = access!.entity!.map((e) => e.what?.reference).filter(Boolean);
        assert.deepEqual(refs, ['Patient/p1', 'Patient/p2', 'Coverage/c1']);
        const text = JSON.stringify(events);
        assert.doesNotMatch(text, /resourceType":"Patient"/);
        assert.match(text, /context-patient/);
        assert.equal(token!.subtype![0]!.code, 'exchanged');
        assert.match(JSON.stringify(token), /https:\/\/dtr\.payer\.example/);
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });

    test('sec-9: a token event without a client id is refused and nothing is written', async () => {
      const backend = await make();
      const store = await backend.open();
      try {
        await assert.rejects(
          store.appendToken({ at: T0, instance: 'ehr:1', event: 'issued', client: { id: '' } }),
          (err: unknown) => err instanceof AuditError && /client\.id/.test(err.message),
        );
        assert.deepEqual(await store.verify(), { ok: true, records: 0 });
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });
  });
}
