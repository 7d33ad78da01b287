/**
 * Loading FHIR R4 Bundles (transaction, batch, collection; Synthea's shape) into the store:
 * fresh random ids, references resolved to them (`urn:uuid:`, `Type/id`, absolute full URLs,
 * conditional `Type?identifier=`), conditional creates, all or nothing.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { loadBundle, openResourceStore, StoreError } from '../../../src/ehr/store/index.js';

const stores: Array<{ close(): void }> = [];
after(() => stores.forEach((s) => s.close()));
const open = () => {
  const store = openResourceStore({ path: ':memory:' });
  stores.push(store);
  return store;
};

const NPI = 'http://hl7.org/fhir/sid/us-npi';

/** A Synthea-like practitioner Bundle: conditional creates keyed by NPI. */
function practitionerBundle(): Bundle {
  const id = randomUUID();
  return {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      {
        fullUrl: `urn:uuid:${id}`,
        resource: {
          resourceType: 'Practitioner',
          id,
          identifier: [{ system: NPI, value: '9999999999' }],
          name: [{ family: 'Synthetic' }],
        },
        request: {
          method: 'POST',
          url: 'Practitioner',
          ifNoneExist: `identifier=${NPI}|9999999999`,
        },
      },
    ],
  };
}

/** A Synthea-like patient Bundle: the Patient's UUID is also one of its identifiers. */
function patientBundle(): { bundle: Bundle; patientUuid: string } {
  const patientUuid = randomUUID();
  const encounterUuid = randomUUID();
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: `urn:uuid:${patientUuid}`,
        resource: {
          resourceType: 'Patient',
          id: patientUuid,
          identifier: [
            { system: 'https://github.com/synthetichealth/synthea', value: patientUuid },
          ],
          meta: { versionId: '7', lastUpdated: '2000-01-01T00:00:00Z', profile: ['urn:p'] },
        },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: `urn:uuid:${encounterUuid}`,
        resource: {
          resourceType: 'Encounter',
          status: 'finished',
          class: { code: 'AMB' },
          subject: { reference: `urn:uuid:${patientUuid}` },
          participant: [{ individual: { reference: `Practitioner?identifier=${NPI}|9999999999` } }],
        },
        request: { method: 'POST', url: 'Encounter' },
      },
      {
        fullUrl: `urn:uuid:${randomUUID()}`,
        resource: {
          resourceType: 'Coverage',
          status: 'active',
          beneficiary: { reference: `urn:uuid:${patientUuid}` },
          payor: [{ reference: 'https://payer.example/fhir/Organization/p' }],
        } as Resource as never,
        request: { method: 'POST', url: 'Coverage' },
      },
    ],
  };
  return { bundle, patientUuid };
}

describe('Bundle loader', () => {
  test('fhir: a transaction Bundle with urn:uuid full URLs loads with references resolved to fresh ids', () => {
    const store = open();
    loadBundle(store, practitionerBundle());
    const { bundle, patientUuid } = patientBundle();
    const { resources, ids } = loadBundle(store, bundle);
    assert.equal(resources.length, 3);
    const [patient, encounter, coverage] = resources as Array<Resource & Record<string, any>>;
    assert.notEqual(patient!.id, patientUuid);
    assert.equal(ids.get(`urn:uuid:${patientUuid}`), `Patient/${patient!.id}`);
    assert.equal(ids.get(`Patient/${patientUuid}`), `Patient/${patient!.id}`);
    assert.equal(patient!.meta!.versionId, '1');
    assert.deepEqual(patient!.meta!.profile, ['urn:p']);
    assert.equal(encounter!.subject.reference, `Patient/${patient!.id}`);
    const [practitioner] = store.search('Practitioner', []);
    assert.equal(
      encounter!.participant[0].individual.reference,
      `Practitioner/${practitioner!.id}`,
    );
    assert.equal(coverage!.beneficiary.reference, `Patient/${patient!.id}`);
    assert.equal(coverage!.payor[0].reference, 'https://payer.example/fhir/Organization/p');
    assert.deepEqual(
      store
        .search('Coverage', [{ name: 'patient', values: [`Patient/${patient!.id}`] }])
        .map((r) => r.id),
      [coverage!.id],
    );
  });

  test('fhir: a conditional create (ifNoneExist) that matches reuses the stored resource', () => {
    const store = open();
    const first = loadBundle(store, practitionerBundle());
    const again = loadBundle(store, practitionerBundle());
    assert.equal(first.resources.length, 1);
    assert.equal(again.resources.length, 0);
    assert.equal(store.search('Practitioner', []).length, 1);
    assert.equal([...again.ids.values()][0], `Practitioner/${first.resources[0]!.id}`);
  });

  test('fhir: a collection Bundle with absolute full URLs and relative references', () => {
    const store = open();
    const { resources } = loadBundle(store, {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        {
          fullUrl: 'http://old.example/fhir/Patient/123',
          resource: { resourceType: 'Patient', id: '123' },
        },
        {
          fullUrl: 'http://old.example/fhir/ServiceRequest/9',
          resource: {
            resourceType: 'ServiceRequest',
            id: '9',
            status: 'draft',
            intent: 'order',
            subject: { reference: 'Patient/123' },
            requester: { reference: 'http://old.example/fhir/Patient/123' },
          },
        },
      ],
    });
    const [patient, order] = resources as Array<Resource & Record<string, any>>;
    assert.notEqual(patient!.id, '123');
    assert.equal(order!.subject.reference, `Patient/${patient!.id}`);
    assert.equal(order!.requester.reference, `Patient/${patient!.id}`);
  });

  test('fhir: an unresolvable reference or entry fails the whole Bundle and nothing is written', () => {
    const store = open();
    const { bundle } = patientBundle();
    // No practitioner loaded: the conditional reference matches nothing.
    assert.throws(
      () => loadBundle(store, bundle),
      (err: unknown) =>
        err instanceof StoreError &&
        err.code === 'ERR_BUNDLE_REFERENCE' &&
        err.expression === 'entry[1]',
    );
    assert.equal(store.search('Patient', []).length, 0);
    const dangling: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: {
            resourceType: 'Encounter',
            subject: { reference: `urn:uuid:${randomUUID()}` },
          } as never,
          request: { method: 'POST', url: 'Encounter' },
        },
      ],
    };
    assert.throws(() => loadBundle(store, dangling), /names no single resource/);
    assert.equal(store.search('Encounter', []).length, 0);
  });

  test('fhir: searchset Bundles, DELETE entries and entries without a resource are refused', () => {
    const store = open();
    const code = (err: unknown) => (err as StoreError).code;
    assert.throws(
      () => loadBundle(store, { resourceType: 'Bundle', type: 'searchset' }),
      (e) => code(e) === 'ERR_BUNDLE_INVALID',
    );
    assert.throws(
      () => loadBundle(store, { resourceType: 'Patient' }),
      (e) => code(e) === 'ERR_BUNDLE_INVALID',
    );
    assert.throws(
      () =>
        loadBundle(store, {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [{ request: { method: 'DELETE', url: 'Patient/1' } }],
        }),
      (e) => code(e) === 'ERR_BUNDLE_INVALID',
    );
    assert.throws(
      () =>
        loadBundle(store, {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              resource: { resourceType: 'Patient' },
              request: { method: 'DELETE', url: 'Patient/1' },
            },
          ],
        }),
      /"request.method" must be POST or PUT/,
    );
  });
});
