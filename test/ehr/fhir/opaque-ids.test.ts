/**
 * sec-7 through the FHIR API: payers see opaque ids (different per payer, unrelated to internal
 * ids and business identifiers) in resources, references and search Bundles; what they send
 * back is mapped to internal ids; and a resource whose id is related to its identifiers is
 * never served.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { entries, OTHER_PAYER, PAYER, startTestEhr, type TestEhr } from './helpers.js';

describe('EHR FHIR API: opaque ids (sec-7)', () => {
  let ehr: TestEhr;
  let payerA: string;
  let payerB: string;
  before(async () => {
    ehr = await startTestEhr();
    payerA = ehr.token('payer-a', {
      scopes: ['system/*.rs', 'system/DeviceRequest.u'],
      patient: undefined,
    });
    payerB = ehr.token('payer-b', {
      scopes: ['system/*.rs'],
      patient: undefined,
      payer: OTHER_PAYER,
      clientId: 'other-crd',
    });
  });
  after(() => ehr.close());

  test('sec-7: two payers see different ids for the same resource, neither the internal id nor the MRN', async () => {
    const internal = ehr.id('patient-avery');
    const a = ehr.opaque('patient-avery', PAYER);
    const b = ehr.opaque('patient-avery', OTHER_PAYER);
    assert.notEqual(a, b);
    const resA = await ehr.request('GET', `Patient/${a}`, { token: payerA });
    const resB = await ehr.request('GET', `Patient/${b}`, { token: payerB });
    assert.equal(resA.json.id, a);
    assert.equal(resB.json.id, b);
    for (const id of [a, b]) {
      assert.ok(!id.includes(internal));
      assert.doesNotMatch(id, /100001|999010001/);
    }
    assert.ok(!resA.text.includes(internal));
    // The business identifiers themselves are data, and are shared.
    assert.ok(resA.json.identifier.some((i: any) => i.value === 'MRN-100001'));
  });

  test('sec-7: an id from payer A is unknown to payer B', async () => {
    const a = ehr.opaque('patient-avery', PAYER);
    const res = await ehr.request('GET', `Patient/${a}`, { token: payerB });
    assert.equal(res.status, 404);
    const search = await ehr.request('GET', `Coverage?patient=${a}`, { token: payerB });
    assert.equal(search.json.total, 0);
  });

  test('sec-7: references inside resources and search Bundles (fullUrl, matches, includes) are the payer’s ids', async () => {
    const res = await ehr.request(
      'GET',
      `PractitionerRole?_id=${ehr.opaque('role-morgan')}&_include=PractitionerRole:organization`,
      { token: payerA },
    );
    const [role, org] = entries(res.json);
    assert.equal(role!.fullUrl, `${ehr.base}/PractitionerRole/${ehr.opaque('role-morgan')}`);
    assert.equal(
      (role!.resource as any).organization.reference,
      `Organization/${ehr.opaque('org-hospital')}`,
    );
    assert.equal(
      (role!.resource as any).practitioner.reference,
      `Practitioner/${ehr.opaque('pract-morgan')}`,
    );
    assert.equal(org!.resource.id, ehr.opaque('org-hospital'));
    assert.equal(org!.fullUrl, `${ehr.base}/Organization/${ehr.opaque('org-hospital')}`);
    const internalIds = Object.values(ehr.demo).map((r) => r.split('/')[1]!);
    for (const id of internalIds) assert.ok(!res.text.includes(id));
  });

  test('sec-7: an update with the payer’s opaque ids lands on the right internal resource', async () => {
    const id = ehr.opaque('order-oxygen');
    const read = await ehr.request('GET', `DeviceRequest/${id}`, { token: payerA });
    const body = {
      ...read.json,
      extension: [
        {
          url: 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information',
          extension: [
            {
              url: 'coverage',
              valueReference: { reference: `${ehr.base}/Coverage/${ehr.opaque('coverage-avery')}` },
            },
          ],
        },
      ],
    };
    const res = await ehr.request('PUT', `DeviceRequest/${id}`, { token: payerA, body });
    assert.equal(res.status, 200);
    const stored = ehr.store.read<Resource & Record<string, any>>(
      'DeviceRequest',
      ehr.id('order-oxygen'),
    )!;
    assert.equal(stored.meta!.versionId, '2');
    assert.equal(stored.subject.reference, ehr.demo['patient-avery']);
    assert.equal(
      stored.extension[0].extension[0].valueReference.reference,
      `${ehr.base}/${ehr.demo['coverage-avery']}`,
    );
  });

  test('sec-7: an update naming an id the payer was never given is 400, never passed through', async () => {
    const id = ehr.opaque('order-oxygen');
    const read = await ehr.request('GET', `DeviceRequest/${id}`, { token: payerA });
    const internalRef = ehr.demo['encounter-avery'];
    const res = await ehr.request('PUT', `DeviceRequest/${id}`, {
      token: payerA,
      body: { ...read.json, encounter: { reference: internalRef } },
    });
    assert.equal(res.status, 400);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_ID_UNKNOWN');
    assert.ok(!res.text.includes(internalRef.split('/')[1]!));
  });

  test('sec-7: the EHR’s own apps (grants without a payer) see internal ids', async () => {
    const app = ehr.token('ehr-app', {
      scopes: ['user/*.rs'],
      patient: undefined,
      payer: undefined,
    });
    const internal = ehr.id('patient-avery');
    const res = await ehr.request('GET', `Patient/${internal}`, { token: app });
    assert.equal(res.status, 200);
    assert.equal(res.json.id, internal);
  });

  test('sec-7: a resource whose id contains its MRN is never served', async () => {
    const [bad] = ehr.store.putAll([
      {
        resourceType: 'Patient',
        id: 'pt-mrn-200002',
        identifier: [{ system: 'http://hospital.example/mrn', value: 'MRN-200002' }],
        name: [{ family: 'Leaky' }],
      } as Resource,
    ]);
    const app = ehr.token('ehr-app-2', {
      scopes: ['user/*.rs'],
      patient: undefined,
      payer: undefined,
    });
    const read = await ehr.request('GET', `Patient/${bad!.id}`, { token: app });
    assert.equal(read.status, 500);
    assert.equal(read.json.issue[0].details.coding[0].code, 'ERR_SEC7');
    assert.doesNotMatch(read.text, /200002|Leaky/);
    const search = await ehr.request('GET', `Patient?_id=${bad!.id}`, { token: app });
    assert.equal(search.status, 500);
    // A payer would see an opaque id, but the internal id is checked too: still refused.
    const opaque = ehr.ids.toOpaque(PAYER, 'Patient', bad!.id!);
    const payerRead = await ehr.request('GET', `Patient/${opaque}`, { token: payerA });
    assert.equal(payerRead.status, 500);
    const lines = ehr.logs.filter((l) => l.includes('ERR_SEC7'));
    assert.ok(lines.length >= 3);
    for (const line of lines) assert.doesNotMatch(line, /200002|Leaky|pt-mrn/);
    const [event] = (await ehr.accessEvents()).slice(-1);
    assert.equal(event!.outcomeDesc, 'ERR_SEC7');
  });
});
