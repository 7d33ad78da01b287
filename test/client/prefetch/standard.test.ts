import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runPrefetch, type PrefetchResult } from '../../../src/client/prefetch/index.js';
import {
  APPOINTMENT_BOOK_PREFETCH,
  ENCOUNTER_PREFETCH,
  ORDER_DISPATCH_PREFETCH,
  ORDER_DRAFT_PREFETCH,
} from '../../../src/crd/prefetch-templates.js';
import {
  APPOINTMENT_BOOK_CONTEXT,
  ENCOUNTER_CONTEXT,
  FakeReader,
  ids,
  ORDER_DISPATCH_CONTEXT,
  ORDER_SIGN_CONTEXT,
  PRIMARY,
  RECORDS,
} from './helpers.js';

async function prefetch(templates: Record<string, string>, context: Record<string, unknown>) {
  const reader = new FakeReader(RECORDS);
  const result = await runPrefetch(
    { templates, context, primaryCoverage: PRIMARY, deadlineMs: 5000 },
    reader,
  );
  return { result, reader };
}

const queriesByKey = (r: PrefetchResult) =>
  Object.fromEntries(r.queries.map((q) => [q.key, q.query]));

const contents = (r: PrefetchResult) =>
  Object.fromEntries(Object.entries(r.prefetch).map(([k, v]) => [k, ids(v)]));

describe('standard CRD prefetch templates (src/crd/prefetch-templates.ts)', () => {
  for (const hook of ['order-sign', 'order-select']) {
    test(`found-25: ${hook} with a DeviceRequest, a MedicationRequest and a ServiceRequest`, async () => {
      const { result } = await prefetch(ORDER_DRAFT_PREFETCH, ORDER_SIGN_CONTEXT);
      assert.deepEqual(result.failed, []);
      assert.deepEqual(queriesByKey(result), {
        patient: 'Patient/p1',
        encounter: 'Encounter/e1',
        coverage: 'Coverage?patient=p1&status=active&_id=cov1',
        devices: 'Device?_id=dev-1',
        medications: 'Medication?_id=med-1',
        practitionerRoles: 'PractitionerRole?_id=role-enc,role-req,role-perf',
        practitioners: 'Practitioner?_id=pr-enc,pr-req,pr-perf',
        organizations: 'Organization?_id=org-hosp,org-clinic,org-pharm,org-dme',
        locations: 'Location?_id=loc-ward,loc-clinic,loc-lab',
      });
      assert.deepEqual(contents(result), {
        patient: 'Patient/p1',
        encounter: 'Encounter/e1',
        coverage: ['Coverage/cov1'],
        devices: ['Device/dev-1'],
        medications: ['Medication/med-1'],
        practitionerRoles: [
          'PractitionerRole/role-enc',
          'PractitionerRole/role-req',
          'PractitionerRole/role-perf',
        ],
        practitioners: ['Practitioner/pr-enc', 'Practitioner/pr-req', 'Practitioner/pr-perf'],
        organizations: [
          'Organization/org-hosp',
          'Organization/org-clinic',
          'Organization/org-pharm',
          'Organization/org-dme',
        ],
        locations: ['Location/loc-ward', 'Location/loc-clinic', 'Location/loc-lab'],
      });
    });
  }

  test('found-25: order-dispatch reads the dispatched orders, then what they point to', async () => {
    const { result, reader } = await prefetch(ORDER_DISPATCH_PREFETCH, ORDER_DISPATCH_CONTEXT);
    assert.deepEqual(result.failed, []);
    assert.deepEqual(queriesByKey(result), {
      patient: 'Patient/p1',
      coverage: 'Coverage?patient=p1&status=active&_id=cov1',
      medicationRequests: 'MedicationRequest?_id=mr-d',
      serviceRequests: 'ServiceRequest?_id=sr-d',
      medications: 'Medication?_id=med-1',
      practitionerRoles: 'PractitionerRole?_id=role-req',
      practitioners: 'Practitioner?_id=pr-req,pr-perf',
      organizations: 'Organization?_id=org-clinic,org-pharm,org-lab',
      locations: 'Location?_id=loc-clinic,loc-lab',
    });
    assert.deepEqual(contents(result), {
      patient: 'Patient/p1',
      coverage: ['Coverage/cov1'],
      communicationRequests: null,
      deviceRequests: null,
      medicationRequests: ['MedicationRequest/mr-d'],
      nutritionOrders: null,
      serviceRequests: ['ServiceRequest/sr-d'],
      visionPrescriptions: null,
      devices: null,
      medications: ['Medication/med-1'],
      practitionerRoles: ['PractitionerRole/role-req'],
      practitioners: ['Practitioner/pr-req', 'Practitioner/pr-perf'],
      organizations: ['Organization/org-clinic', 'Organization/org-pharm', 'Organization/org-lab'],
      locations: ['Location/loc-clinic', 'Location/loc-lab'],
    });
    // Each dispatched order is read once for all six per-type keys.
    assert.equal(reader.reads().filter((r) => r === 'ServiceRequest/sr-d').length, 1);
  });

  test('found-25: appointment-book follows basedOn and the alternate-reference extension', async () => {
    const { result } = await prefetch(APPOINTMENT_BOOK_PREFETCH, APPOINTMENT_BOOK_CONTEXT);
    assert.deepEqual(result.failed, []);
    assert.deepEqual(queriesByKey(result), {
      patient: 'Patient/p1',
      coverage: 'Coverage?patient=p1&status=active&_id=cov1',
      deviceRequests: 'DeviceRequest?_id=dr-a',
      serviceRequests: 'ServiceRequest?_id=sr-a',
      devices: 'Device?_id=dev-1',
      practitionerRoles: 'PractitionerRole?_id=role-perf,role-req',
      practitioners: 'Practitioner?_id=pr-perf,pr-req',
      organizations: 'Organization?_id=org-clinic,org-lab',
      locations: 'Location?_id=loc-clinic,loc-lab',
    });
    assert.deepEqual(contents(result), {
      patient: 'Patient/p1',
      encounter: null,
      coverage: ['Coverage/cov1'],
      deviceRequests: ['DeviceRequest/dr-a'],
      serviceRequests: ['ServiceRequest/sr-a'],
      medicationRequests: null,
      devices: ['Device/dev-1'],
      medications: null,
      practitionerRoles: ['PractitionerRole/role-perf', 'PractitionerRole/role-req'],
      practitioners: ['Practitioner/pr-perf', 'Practitioner/pr-req'],
      organizations: ['Organization/org-clinic', 'Organization/org-lab'],
      locations: ['Location/loc-clinic', 'Location/loc-lab'],
    });
  });

  for (const hook of ['encounter-start', 'encounter-discharge']) {
    test(`found-25: ${hook} builds everything from %encounter`, async () => {
      const { result } = await prefetch(ENCOUNTER_PREFETCH, ENCOUNTER_CONTEXT);
      assert.deepEqual(result.failed, []);
      assert.deepEqual(queriesByKey(result), {
        patient: 'Patient/p1',
        encounter: 'Encounter/e1',
        coverage: 'Coverage?patient=p1&status=active&_id=cov1',
        practitionerRoles: 'PractitionerRole?_id=role-enc',
        practitioners: 'Practitioner?_id=pr-enc',
        organizations: 'Organization?_id=org-hosp',
        locations: 'Location?_id=loc-ward',
      });
      assert.deepEqual(contents(result), {
        patient: 'Patient/p1',
        encounter: 'Encounter/e1',
        coverage: ['Coverage/cov1'],
        practitionerRoles: ['PractitionerRole/role-enc'],
        practitioners: ['Practitioner/pr-enc'],
        organizations: ['Organization/org-hosp'],
        locations: ['Location/loc-ward'],
      });
    });
  }

  test('found-24: the prefetch equals what the same queries return from the FHIR API', async () => {
    const { result, reader } = await prefetch(ORDER_DRAFT_PREFETCH, ORDER_SIGN_CONTEXT);
    const direct = await reader.search(
      'Practitioner',
      new URLSearchParams({ _id: 'pr-enc,pr-req,pr-perf' }),
      new AbortController().signal,
    );
    assert.deepEqual(result.prefetch.practitioners, direct);
    assert.deepEqual(result.prefetch.patient, RECORDS[0]);
  });

  test('found-23: resolve() looks in the context first and reads each other reference once', async () => {
    const { reader } = await prefetch(ORDER_DRAFT_PREFETCH, ORDER_SIGN_CONTEXT);
    const reads = reader.reads();
    assert.equal(new Set(reads).size, reads.length, 'no reference read twice');
    assert.ok(!reads.some((r) => r.includes('dr-1') || r.includes('mr-1') || r.includes('sr-1')));
    assert.ok(reads.includes('Device/dev-1'));
  });
});
