/**
 * Writes through the EHR's FHIR API for payers: updates of orders and Appointments that carry
 * the coverage-information extension, Task creation for form completion, and FHIR's refusals
 * (id mismatch, stale If-Match, unknown id, wrong content type, invalid JSON).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { startTestEhr, T_NOW, type TestEhr } from './helpers.js';

const COVERAGE_INFO =
  'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';

describe('EHR FHIR API: update and create', () => {
  let ehr: TestEhr;
  let token: string;
  before(async () => {
    ehr = await startTestEhr();
    token = ehr.token('writer', {
      scopes: [
        'patient/*.rs',
        'patient/DeviceRequest.u',
        'patient/MedicationRequest.u',
        'patient/ServiceRequest.u',
        'patient/NutritionOrder.u',
        'patient/VisionPrescription.u',
        'patient/CommunicationRequest.u',
        'patient/Appointment.u',
        'patient/Task.c',
      ],
    });
  });
  after(() => ehr.close());

  /** The coverage-information extension a payer adds, naming the coverage it saw. */
  const coverageInfo = (coverage: string) => ({
    url: COVERAGE_INFO,
    extension: [
      { url: 'coverage', valueReference: { reference: `Coverage/${coverage}` } },
      { url: 'covered', valueCode: 'covered' },
      { url: 'pa-needed', valueCode: 'auth-needed' },
      { url: 'date', valueDate: '2025-06-02' },
      { url: 'coverage-assertion-id', valueString: 'a1b2c3' },
    ],
  });

  test('fhir: a PUT of a DeviceRequest stores the coverage-information; versionId and lastUpdated advance', async () => {
    const id = ehr.opaque('order-oxygen');
    const read = await ehr.request('GET', `DeviceRequest/${id}`, { token });
    const order = { ...read.json, extension: [coverageInfo(ehr.opaque('coverage-avery'))] };
    const res = await ehr.request('PUT', `DeviceRequest/${id}`, {
      token,
      body: order,
      headers: { 'if-match': read.headers.etag as string },
    });
    assert.equal(res.status, 200);
    assert.equal(res.json.id, id);
    assert.equal(res.json.meta.versionId, '2');
    assert.equal(res.json.meta.lastUpdated, T_NOW.toISOString());
    assert.equal(res.headers.etag, 'W/"2"');
    assert.equal(res.headers.location, `${ehr.base}/DeviceRequest/${id}/_history/2`);
    const stored = ehr.store.read<Resource & Record<string, any>>(
      'DeviceRequest',
      ehr.id('order-oxygen'),
    )!;
    const coverage = stored.extension[0].extension[0].valueReference.reference;
    assert.equal(coverage, ehr.demo['coverage-avery']);
  });

  test('fhir: Appointment, MedicationRequest and the other order types can be updated', async () => {
    const blakeToken = ehr.token('blake-writer', {
      patient: ehr.id('patient-blake'),
      scopes: ['patient/*.rs', 'patient/Appointment.u', 'patient/ServiceRequest.u'],
    });
    for (const [key, tk] of [
      ['appointment-blake', blakeToken],
      ['order-blepharoplasty', blakeToken],
      ['order-adalimumab', token],
    ] as const) {
      const [type] = ehr.demo[key].split('/');
      const id = ehr.opaque(key);
      const read = await ehr.request('GET', `${type}/${id}`, { token: tk });
      const res = await ehr.request('PUT', `${type}/${id}`, {
        token: tk,
        body: { ...read.json, extension: [{ url: COVERAGE_INFO, extension: [] }] },
      });
      assert.equal(res.status, 200, key);
    }
    const avery = ehr.id('patient-avery');
    for (const [type, patientElement] of [
      ['NutritionOrder', 'patient'],
      ['VisionPrescription', 'patient'],
      ['CommunicationRequest', 'subject'],
    ] as const) {
      const created = ehr.store.create({
        resourceType: type,
        status: 'draft',
        [patientElement]: { reference: `Patient/${avery}` },
      } as unknown as Resource);
      const id = ehr.ids.toOpaque('example-payer', type, created.id!);
      const read = await ehr.request('GET', `${type}/${id}`, { token });
      const res = await ehr.request('PUT', `${type}/${id}`, {
        token,
        body: { ...read.json, extension: [{ url: COVERAGE_INFO, extension: [] }] },
      });
      assert.equal(res.status, 200, type);
      assert.equal(res.json.meta.versionId, '2');
    }
  });

  test('fhir: a PUT whose body id differs from the URL is 400; a stale If-Match is 412; an unknown id is 404', async () => {
    const id = ehr.opaque('order-adalimumab');
    const read = await ehr.request('GET', `MedicationRequest/${id}`, { token });
    const mismatch = await ehr.request('PUT', `MedicationRequest/${id}`, {
      token,
      body: { ...read.json, id: ehr.opaque('order-oxygen') },
    });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.json.issue[0].details.coding[0].code, 'ERR_BODY_ID');
    const stale = await ehr.request('PUT', `MedicationRequest/${id}`, {
      token,
      body: read.json,
      headers: { 'if-match': 'W/"1"' },
    });
    assert.equal(read.json.meta.versionId, '2');
    assert.equal(stale.status, 412);
    assert.equal(stale.json.issue[0].details.coding[0].code, 'ERR_PRECONDITION');
    const unknown = await ehr.request('PUT', 'MedicationRequest/never-issued', {
      token,
      body: { ...read.json, id: 'never-issued' },
    });
    assert.equal(unknown.status, 404);
    const wrongType = await ehr.request('PUT', `MedicationRequest/${id}`, {
      token,
      body: { ...read.json, resourceType: 'ServiceRequest' },
    });
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.json.issue[0].details.coding[0].code, 'ERR_BODY');
  });

  test('fhir: an update may not move an order to another patient', async () => {
    const id = ehr.opaque('order-oxygen');
    const read = await ehr.request('GET', `DeviceRequest/${id}`, { token });
    const moved = { ...read.json, subject: { reference: 'Patient/x' } };
    const unknownPatient = await ehr.request('PUT', `DeviceRequest/${id}`, { token, body: moved });
    assert.equal(unknownPatient.status, 400);
    assert.equal(unknownPatient.json.issue[0].details.coding[0].code, 'ERR_ID_UNKNOWN');
    const blake = {
      ...read.json,
      subject: { reference: `Patient/${ehr.opaque('patient-blake')}` },
    };
    const res = await ehr.request('PUT', `DeviceRequest/${id}`, { token, body: blake });
    assert.equal(res.status, 400);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_PATIENT_CHANGED');
  });

  test('fhir: a POST of a form-completion Task creates it (201, Location, new id)', async () => {
    const task = {
      resourceType: 'Task',
      id: 'ignored-client-id',
      status: 'ready',
      intent: 'order',
      code: {
        coding: [
          { system: 'http://hl7.org/fhir/uv/sdc/CodeSystem/temp', code: 'complete-questionnaire' },
        ],
      },
      for: { reference: `Patient/${ehr.opaque('patient-avery')}` },
      authoredOn: '2025-06-02',
      requester: { reference: 'https://payer.example/fhir/Organization/payer' },
      input: [
        {
          type: { text: 'questionnaire' },
          valueCanonical: 'https://payer.example/fhir/Questionnaire/oxygen|1',
        },
      ],
    };
    const res = await ehr.request('POST', 'Task', { token, body: task });
    assert.equal(res.status, 201);
    assert.notEqual(res.json.id, 'ignored-client-id');
    assert.equal(res.json.meta.versionId, '1');
    assert.equal(res.headers.location, `${ehr.base}/Task/${res.json.id}/_history/1`);
    assert.equal(res.json.for.reference, `Patient/${ehr.opaque('patient-avery')}`);
    const internal = ehr.ids.toInternal('example-payer', 'Task', res.json.id)!;
    const stored = ehr.store.read<Resource & Record<string, any>>('Task', internal)!;
    assert.equal(stored.for.reference, ehr.demo['patient-avery']);
    // An external reference (the payer's own Organization) is kept as it was.
    assert.equal(stored.requester.reference, 'https://payer.example/fhir/Organization/payer');
  });

  test('fhir: a POST of a ClaimResponse creates it; a POST of a type without create is 405', async () => {
    const claimToken = ehr.token('claims', { scopes: ['patient/ClaimResponse.c'] });
    const res = await ehr.request('POST', 'ClaimResponse', {
      token: claimToken,
      body: {
        resourceType: 'ClaimResponse',
        status: 'active',
        type: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' },
          ],
        },
        use: 'preauthorization',
        patient: { reference: `Patient/${ehr.opaque('patient-avery')}` },
        created: '2025-06-02',
        insurer: { reference: `Organization/${ehr.opaque('org-payer')}` },
        outcome: 'complete',
      },
    });
    assert.equal(res.status, 201);
    assert.equal(res.json.resourceType, 'ClaimResponse');
    const post = await ehr.request('POST', 'DeviceRequest', {
      token,
      body: { resourceType: 'DeviceRequest' },
    });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET');
  });

  test('fhir: wrong content type is 415, invalid JSON 400, a form body on create 415, too deep 400', async () => {
    const plain = await ehr.request('POST', 'Task', {
      token,
      body: '{}',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(plain.status, 415);
    assert.equal(plain.json.issue[0].details.coding[0].code, 'ERR_CONTENT_TYPE');
    const broken = await ehr.request('POST', 'Task', { token, body: '{"resourceType":' });
    assert.equal(broken.status, 400);
    assert.equal(broken.json.issue[0].details.coding[0].code, 'ERR_JSON');
    const form = await ehr.request('POST', 'Task', {
      token,
      body: 'status=ready',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(form.status, 415);
    let deep: any = {};
    for (let i = 0; i < 80; i++) deep = { a: deep };
    const nested = await ehr.request('POST', 'Task', {
      token,
      body: { resourceType: 'Task', extension: [deep] },
    });
    assert.equal(nested.status, 400);
    assert.equal(nested.json.issue[0].details.coding[0].code, 'ERR_JSON_DEPTH');
  });
});
