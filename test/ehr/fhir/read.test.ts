/**
 * The read side of the EHR's FHIR API for payers: the CapabilityStatement, reads of every type
 * the CRD client kit fetches, and FHIR's answers for what is not served (404, 405, 406, 400).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestEhr, type TestEhr } from './helpers.js';

describe('EHR FHIR API: metadata and reads', () => {
  let ehr: TestEhr;
  let token: string;
  before(async () => {
    ehr = await startTestEhr();
    token = ehr.token('read-token', { scopes: ['system/*.rs'], patient: undefined });
  });
  after(() => ehr.close());

  test('fhir: GET metadata is a public CapabilityStatement listing exactly what is served, with SMART oauth-uris', async () => {
    const res = await ehr.request('GET', 'metadata');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/fhir\+json/);
    const cs = res.json;
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    assert.equal(cs.kind, 'instance');
    const rest = cs.rest[0];
    assert.equal(rest.security.service[0].coding[0].code, 'SMART-on-FHIR');
    const uris = Object.fromEntries(
      rest.security.extension[0].extension.map((e: any) => [e.url, e.valueUri]),
    );
    assert.deepEqual(uris, {
      authorize: 'https://127.0.0.1:8443/oauth/auth',
      token: 'https://127.0.0.1:8443/oauth/token',
      revoke: 'https://127.0.0.1:8443/oauth/token/revocation',
      introspect: 'https://127.0.0.1:8443/oauth/token/introspection',
    });
    const byType = Object.fromEntries(rest.resource.map((r: any) => [r.type, r]));
    const codes = (t: string) => byType[t].interaction.map((i: any) => i.code).sort();
    assert.deepEqual(codes('Coverage'), ['read', 'search-type']);
    assert.deepEqual(codes('DeviceRequest'), ['read', 'search-type', 'update']);
    assert.deepEqual(codes('Appointment'), ['read', 'search-type', 'update']);
    assert.deepEqual(codes('Task'), ['create', 'read', 'search-type']);
    assert.equal(byType.Observation, undefined);
    const params = (t: string) => byType[t].searchParam.map((p: any) => p.name).sort();
    assert.deepEqual(params('Coverage'), ['_id', 'beneficiary', 'patient', 'status']);
    assert.deepEqual(params('PractitionerRole'), [
      '_id',
      'location',
      'organization',
      'practitioner',
      'specialty',
    ]);
    assert.deepEqual(byType.PractitionerRole.searchInclude.sort(), [
      'PractitionerRole:location',
      'PractitionerRole:organization',
      'PractitionerRole:practitioner',
    ]);
    assert.ok(byType.Encounter.searchInclude.includes('Encounter:location'));
    // A public read leaves no audit record.
    assert.equal((await ehr.accessEvents()).length, 0);
    assert.equal((await ehr.securityEvents()).length, 0);
  });

  test('fhir: metadata with a valid token is recorded as a capabilities access', async () => {
    const res = await ehr.request('GET', 'metadata', { token });
    assert.equal(res.status, 200);
    const [event] = (await ehr.accessEvents()).slice(-1);
    assert.equal(event!.subtype![0]!.code, 'capabilities');
  });

  test('found-25: Patient, Practitioner, PractitionerRole, Organization, Location, Device, Medication, Encounter, Coverage, orders and Appointment can be read', async () => {
    const keys = [
      'patient-avery',
      'pract-morgan',
      'role-morgan',
      'org-payer',
      'loc-hospital',
      'device-oxygen',
      'medication-adalimumab',
      'encounter-avery',
      'coverage-avery',
      'order-oxygen',
      'order-adalimumab',
      'order-blepharoplasty',
      'appointment-blake',
    ] as const;
    for (const key of keys) {
      const [type] = ehr.demo[key].split('/');
      const id = ehr.opaque(key);
      const res = await ehr.request('GET', `${type}/${id}`, { token });
      assert.equal(res.status, 200, key);
      assert.equal(res.json.resourceType, type);
      assert.equal(res.json.id, id);
      assert.equal(res.headers.etag, 'W/"1"');
      assert.equal(res.headers['cache-control'], 'no-store');
    }
  });

  test('fhir: HEAD is answered like GET, without a body', async () => {
    const res = await ehr.request('HEAD', `Patient/${ehr.opaque('patient-avery')}`, { token });
    assert.equal(res.status, 200);
    assert.equal(res.text, '');
    assert.equal(res.headers.etag, 'W/"1"');
  });

  test('fhir: an unknown id is 404 with an OperationOutcome', async () => {
    const res = await ehr.request('GET', 'Patient/no-such-id', { token });
    assert.equal(res.status, 404);
    assert.equal(res.json.resourceType, 'OperationOutcome');
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_NOT_FOUND');
  });

  test('fhir: an unsupported type is 404, an unsupported interaction 405 with Allow', async () => {
    const observation = await ehr.request('GET', 'Observation/1', { token });
    assert.equal(observation.status, 404);
    assert.equal(observation.json.issue[0].details.coding[0].code, 'ERR_TYPE_UNSUPPORTED');
    const id = ehr.opaque('patient-avery');
    const del = await ehr.request('DELETE', `Patient/${id}`, { token });
    assert.equal(del.status, 405);
    assert.equal(del.headers.allow, 'GET');
    assert.equal(del.json.issue[0].details.coding[0].code, 'ERR_INTERACTION');
    const put = await ehr.request('PUT', `Patient/${id}`, {
      token,
      body: { resourceType: 'Patient', id },
    });
    assert.equal(put.status, 405);
    const post = await ehr.request('POST', 'Coverage', {
      token,
      body: { resourceType: 'Coverage' },
    });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET');
    const history = await ehr.request('GET', `Patient/${id}/_history/1`, { token });
    assert.equal(history.status, 404);
    assert.equal(history.json.issue[0].details.coding[0].code, 'ERR_ENDPOINT');
    const meta = await ehr.request('POST', 'metadata', { token, body: {} });
    assert.equal(meta.status, 405);
  });

  test('fhir: a read with a search parameter is 400; _format=json is accepted', async () => {
    const id = ehr.opaque('patient-avery');
    const bad = await ehr.request('GET', `Patient/${id}?_elements=name`, { token });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.issue[0].details.coding[0].code, 'ERR_SEARCH_PARAM');
    const ok = await ehr.request('GET', `Patient/${id}?_format=json`, { token });
    assert.equal(ok.status, 200);
  });

  test('fhir: Accept without JSON is 406', async () => {
    const id = ehr.opaque('patient-avery');
    const res = await ehr.request('GET', `Patient/${id}`, {
      token,
      headers: { accept: 'application/fhir+xml' },
    });
    assert.equal(res.status, 406);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_FORMAT');
  });
});
