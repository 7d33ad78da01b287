/**
 * sec-8: every request to the EHR's FHIR API, allowed or refused, leaves one audit record before
 * it is answered, naming the token's client, actors, hook call and declared types, the internal
 * references of what was returned or refused and the patients touched, and parameter names only.
 * When the record cannot be written the answer is a 503 without data.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { detail, references, startTestEhr, type TestEhr } from './helpers.js';

describe('EHR FHIR API: audit trail', () => {
  let ehr: TestEhr;
  before(async () => {
    ehr = await startTestEhr();
  });
  after(() => ehr.close());

  const last = async () => (await ehr.accessEvents()).at(-1)!;

  test('sec-8: a search is one record with client, actors, action, internal references, patients, hook, service, declared types, token id and parameter names', async () => {
    const token = ehr.token('audited', {
      tokenId: 'jti-audited-1',
      actors: ['https://dtr.payer.example'],
    });
    const before = (await ehr.accessEvents()).length;
    const patient = ehr.opaque('patient-avery');
    const res = await ehr.request(
      'GET',
      `Coverage?patient=${patient}&status=active&_include=Coverage:payor`,
      {
        token,
      },
    );
    assert.equal(res.status, 200);
    const events = await ehr.accessEvents();
    assert.equal(events.length, before + 1);
    const event = events.at(-1)!;
    assert.equal(event.type!.code, 'search-type');
    assert.equal(event.action, 'E');
    assert.equal(event.outcome, '0');
    assert.equal(event.agent![0]!.who!.identifier!.value, 'payer-crd');
    assert.equal(event.agent![0]!.who!.display, 'Example Health Plan CRD');
    assert.equal(event.agent![1]!.who!.identifier!.value, 'https://dtr.payer.example');
    assert.deepEqual(references(event), [
      ehr.demo['patient-avery'],
      ehr.demo['coverage-avery'],
      ehr.demo['org-payer'],
    ]);
    assert.equal(detail(event, 'context-patient'), ehr.demo['patient-avery']);
    assert.equal(detail(event, 'service'), 'order-sign-crd');
    assert.equal(detail(event, 'declared-types'), 'Patient,Coverage');
    assert.equal(detail(event, 'parameters'), 'patient,status,_include');
    assert.equal(detail(event, 'http-status'), '200');
    const text = JSON.stringify(event);
    assert.match(text, /jti-audited-1/);
    assert.match(text, /d1577c69-dfbe-44ad-ba6d-3e05e953b2ea/);
    // Never the token, a parameter value or an id the payer saw.
    assert.doesNotMatch(text, /audited"/);
    assert.ok(!text.includes(patient));
    assert.ok(!text.includes('active'));
  });

  test('sec-8: reads, updates and creates are recorded with their action and what they touched', async () => {
    const token = ehr.token('rw', {
      scopes: ['patient/*.rs', 'patient/DeviceRequest.u', 'patient/Task.c'],
    });
    const id = ehr.opaque('order-oxygen');
    const read = await ehr.request('GET', `DeviceRequest/${id}`, { token });
    let event = await last();
    assert.equal(event.type!.code, 'read');
    assert.deepEqual(references(event), [ehr.demo['patient-avery'], ehr.demo['order-oxygen']]);
    await ehr.request('PUT', `DeviceRequest/${id}`, { token, body: read.json });
    event = await last();
    assert.equal(event.type!.code, 'update');
    assert.equal(event.action, 'U');
    assert.ok(references(event).includes(ehr.demo['order-oxygen']));
    const created = await ehr.request('POST', 'Task', {
      token,
      body: {
        resourceType: 'Task',
        status: 'ready',
        intent: 'order',
        for: { reference: `Patient/${ehr.opaque('patient-avery')}` },
      },
    });
    event = await last();
    assert.equal(event.type!.code, 'create');
    const internal = ehr.ids.toInternal('example-payer', 'Task', created.json.id);
    assert.ok(references(event).includes(`Task/${internal}`));
  });

  test('sec-8: refusals are recorded: another patient’s search (403) names that patient, a hidden read (404) its resource', async () => {
    const token = ehr.token('refused');
    await ehr.request('GET', `Coverage?patient=${ehr.opaque('patient-blake')}`, { token });
    let event = await last();
    assert.equal(detail(event, 'http-status'), '403');
    assert.equal(event.outcome, '4');
    assert.equal(event.outcomeDesc, 'ERR_PATIENT');
    assert.ok(references(event).includes(ehr.demo['patient-blake']));
    await ehr.request('GET', `Coverage/${ehr.opaque('coverage-blake-primary')}`, { token });
    event = await last();
    assert.equal(detail(event, 'http-status'), '404');
    assert.ok(references(event).includes(ehr.demo['coverage-blake-primary']));
    const scope = ehr.token('scope-refused', { scopes: ['patient/Patient.r'] });
    await ehr.request('GET', `Coverage?status=active`, { token: scope });
    event = await last();
    assert.equal(event.outcomeDesc, 'ERR_SCOPE');
    const delegate = ehr.token('delegate', {
      actors: ['x'],
      audience: 'https://elsewhere.example',
    });
    await ehr.request('GET', `Coverage?status=active`, { token: delegate });
    event = await last();
    assert.equal(event.outcomeDesc, 'ERR_TOKEN_AUDIENCE');
    assert.equal(event.agent![1]!.who!.identifier!.value, 'x');
  });

  test('sec-8: a request without a valid token is recorded as a security event, without the token', async () => {
    const before = (await ehr.securityEvents()).length;
    await ehr.request('GET', 'Coverage?status=active', { token: 'never-issued-secret' });
    await ehr.request('GET', 'Coverage?status=active');
    const events = (await ehr.securityEvents()).slice(before);
    assert.equal(events.length, 2);
    assert.deepEqual(
      events.map((e) => e.outcomeDesc?.split(':')[0]),
      ['ERR_TOKEN_INVALID', 'ERR_TOKEN_MISSING'],
    );
    assert.doesNotMatch(JSON.stringify(events), /never-issued-secret/);
  });

  test('sec-8: when the audit trail cannot be written the answer is 503 and carries no data', async () => {
    const other = await startTestEhr();
    try {
      const token = other.token('t');
      await other.audit.close();
      const res = await other.request('GET', `Patient/${other.opaque('patient-avery')}`, { token });
      assert.equal(res.status, 503);
      assert.equal(res.json.resourceType, 'OperationOutcome');
      assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_AUDIT_UNAVAILABLE');
      assert.doesNotMatch(res.text, /Avery|MRN-100001/);
      const refused = await other.request('GET', 'Patient/x');
      assert.equal(refused.status, 503);
      assert.ok(
        other.logs.some((l) => l.includes('"status":503') && l.includes('ERR_AUDIT_UNAVAILABLE')),
      );
    } finally {
      await other.close();
    }
  });
});
