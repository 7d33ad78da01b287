/**
 * Searches of the EHR's FHIR API for payers: what the CRD client test kit runs (Coverage by
 * patient and status, PractitionerRole by _id, organization, practitioner and both _includes,
 * Encounter by _id with _include=Encounter:location) and the prefetch `_id` queries, as
 * `searchset` Bundles; unknown parameters are refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { entries, startTestEhr, type TestEhr } from './helpers.js';

describe('EHR FHIR API: search', () => {
  let ehr: TestEhr;
  let token: string;
  let blake: string;
  before(async () => {
    ehr = await startTestEhr();
    token = ehr.token('avery-token');
    blake = ehr.token('blake-token', { patient: ehr.id('patient-blake') });
  });
  after(() => ehr.close());

  const ids = (bundle: unknown) => entries(bundle).map((e) => e.resource.id);

  test('found-25: Coverage?patient&status=active returns the active coverage in a searchset with fullUrl and search.mode', async () => {
    const patient = ehr.opaque('patient-avery');
    const res = await ehr.request('GET', `Coverage?patient=${patient}&status=active`, { token });
    assert.equal(res.status, 200);
    const bundle = res.json;
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.type, 'searchset');
    assert.equal(bundle.total, 1);
    const [entry] = entries(bundle);
    assert.equal(entry!.resource.id, ehr.opaque('coverage-avery'));
    assert.equal(entry!.mode, 'match');
    assert.equal(entry!.fullUrl, `${ehr.base}/Coverage/${ehr.opaque('coverage-avery')}`);
    assert.equal((entry!.resource as any).beneficiary.reference, `Patient/${patient}`);
    assert.equal(bundle.link[0].relation, 'self');
    assert.equal(bundle.link[0].url, `${ehr.base}/Coverage?patient=${patient}&status=active`);
  });

  test('fhir: Coverage search by status alone, by Patient/ reference and by cancelled status', async () => {
    const all = await ehr.request('GET', 'Coverage?status=active', { token });
    assert.deepEqual(ids(all.json), [ehr.opaque('coverage-avery')]);
    const patient = `Patient/${ehr.opaque('patient-avery')}`;
    const cancelled = await ehr.request('GET', `Coverage?patient=${patient}&status=cancelled`, {
      token,
    });
    assert.deepEqual(ids(cancelled.json), [ehr.opaque('coverage-avery-cancelled')]);
    const both = await ehr.request(
      'GET',
      `Coverage?beneficiary=${patient}&status=active,cancelled`,
      {
        token,
      },
    );
    assert.equal(both.json.total, 2);
  });

  test('fhir: a patient with two active coverages has both returned, primary and secondary by order', async () => {
    const patient = ehr.opaque('patient-blake');
    const res = await ehr.request('GET', `Coverage?patient=${patient}&status=active`, {
      token: blake,
    });
    const orders = entries(res.json)
      .map((e) => (e.resource as any).order)
      .sort();
    assert.deepEqual(orders, [1, 2]);
  });

  test('fhir: PractitionerRole search by _id, organization, practitioner and specialty', async () => {
    const role = ehr.opaque('role-morgan');
    const byId = await ehr.request('GET', `PractitionerRole?_id=${role}`, { token });
    assert.deepEqual(ids(byId.json), [role]);
    const org = ehr.opaque('org-hospital');
    const byOrg = await ehr.request('GET', `PractitionerRole?organization=Organization/${org}`, {
      token,
    });
    assert.deepEqual(ids(byOrg.json).sort(), [role, ehr.opaque('role-quinn')].sort());
    const pract = ehr.opaque('pract-quinn');
    const byPract = await ehr.request('GET', `PractitionerRole?practitioner=${pract}`, { token });
    assert.deepEqual(ids(byPract.json), [ehr.opaque('role-quinn')]);
    const spec = await ehr.request(
      'GET',
      'PractitionerRole?specialty=http://nucc.org/provider-taxonomy|207W00000X',
      { token },
    );
    assert.deepEqual(ids(spec.json), [ehr.opaque('role-quinn')]);
  });

  test('fhir: PractitionerRole _include=PractitionerRole:organization and :practitioner are search.mode include', async () => {
    const role = ehr.opaque('role-morgan');
    const res = await ehr.request(
      'GET',
      `PractitionerRole?_id=${role}&_include=PractitionerRole:organization&_include=PractitionerRole:practitioner`,
      { token },
    );
    assert.equal(res.status, 200);
    const got = entries(res.json).map((e) => [e.resource.resourceType, e.resource.id, e.mode]);
    assert.deepEqual(got, [
      ['PractitionerRole', role, 'match'],
      ['Organization', ehr.opaque('org-hospital'), 'include'],
      ['Practitioner', ehr.opaque('pract-morgan'), 'include'],
    ]);
    assert.equal(res.json.total, 1);
  });

  test('fhir: PractitionerRole:location and Coverage:payor includes', async () => {
    const loc = await ehr.request(
      'GET',
      `PractitionerRole?_id=${ehr.opaque('role-quinn')}&_include=PractitionerRole:location`,
      { token },
    );
    assert.deepEqual(
      entries(loc.json).map((e) => [e.resource.id, e.mode]),
      [
        [ehr.opaque('role-quinn'), 'match'],
        [ehr.opaque('loc-clinic'), 'include'],
      ],
    );
    const payor = await ehr.request('GET', 'Coverage?status=active&_include=Coverage:payor', {
      token: blake,
    });
    const included = entries(payor.json).filter((e) => e.mode === 'include');
    assert.deepEqual(
      included.map((e) => e.resource.id).sort(),
      [ehr.opaque('org-payer'), ehr.opaque('org-payer-other')].sort(),
    );
    assert.equal(payor.json.total, 2);
  });

  test('fhir: Encounter?_id with _include=Encounter:location, :service-provider and :participant', async () => {
    const enc = ehr.opaque('encounter-avery');
    const res = await ehr.request(
      'GET',
      `Encounter?_id=${enc}&_include=Encounter:location&_include=Encounter:service-provider&_include=Encounter:participant`,
      { token },
    );
    const got = entries(res.json).map((e) => [e.resource.resourceType, e.mode]);
    assert.deepEqual(got, [
      ['Encounter', 'match'],
      ['Location', 'include'],
      ['Organization', 'include'],
      ['PractitionerRole', 'include'],
    ]);
  });

  test('fhir: Encounter search by organization (the kit name), service-provider and location', async () => {
    const org = ehr.opaque('org-hospital');
    const enc = ehr.opaque('encounter-avery');
    for (const q of [
      `organization=${org}`,
      `service-provider=Organization/${org}`,
      `location=${ehr.opaque('loc-hospital')}`,
    ]) {
      const res = await ehr.request('GET', `Encounter?${q}`, { token });
      assert.deepEqual(ids(res.json), [enc], q);
    }
  });

  test('found-25: the prefetch _id queries of Device, Medication, Practitioner, Organization, Location and the orders', async () => {
    const keys = [
      'device-oxygen',
      'medication-adalimumab',
      'pract-morgan',
      'org-payer',
      'loc-hospital',
      'order-oxygen',
      'order-adalimumab',
    ] as const;
    for (const key of keys) {
      const [type] = ehr.demo[key].split('/');
      const res = await ehr.request('GET', `${type}?_id=${ehr.opaque(key)}`, { token });
      assert.deepEqual(ids(res.json), [ehr.opaque(key)], key);
    }
    const two = await ehr.request(
      'GET',
      `Practitioner?_id=${ehr.opaque('pract-morgan')},${ehr.opaque('pract-quinn')}`,
      { token },
    );
    assert.equal(two.json.total, 2);
  });

  test('fhir: POST [type]/_search with a form body answers like GET', async () => {
    const patient = ehr.opaque('patient-avery');
    const res = await ehr.request('POST', 'Coverage/_search', {
      token,
      body: `patient=${patient}&status=active`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(ids(res.json), [ehr.opaque('coverage-avery')]);
    const json = await ehr.request('POST', 'Coverage/_search', { token, body: { patient } });
    assert.equal(json.status, 415);
  });

  test('fhir: an id never issued matches nothing (an empty searchset, not an error)', async () => {
    const res = await ehr.request('GET', 'Device?_id=never-issued', { token });
    assert.equal(res.status, 200);
    assert.equal(res.json.total, 0);
    assert.deepEqual(res.json.entry, []);
  });

  test('fhir: unknown parameters, modifiers, chains, paging and unsupported includes are 400, never ignored', async () => {
    const patient = ehr.opaque('patient-avery');
    for (const q of [
      `Coverage?patient=${patient}&unknown=1`,
      `Coverage?patient:missing=false`,
      `Coverage?patient.name=Example`,
      `Coverage?patient=${patient}&_count=10`,
      `Coverage?patient=${patient}&_sort=status`,
      `Coverage?patient=${patient}&_revinclude=Provenance:target`,
      `PractitionerRole?_include=PractitionerRole:endpoint`,
      `PractitionerRole?_include=*`,
      `PractitionerRole?_include:iterate=PractitionerRole:organization`,
      `Patient?identifier=http://hospital.example/mrn|MRN-100001`,
      `Coverage?patient=`,
      `Coverage?patient=Organization/${patient}`,
    ]) {
      const res = await ehr.request('GET', q, { token });
      assert.equal(res.status, 400, q);
      assert.equal(res.json.resourceType, 'OperationOutcome', q);
    }
    const format = await ehr.request('GET', `Coverage?patient=${patient}&_format=xml`, { token });
    assert.equal(format.status, 406);
  });
});
