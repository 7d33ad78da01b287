/**
 * Every request to the EHR's FHIR API is checked against its token: a missing, unknown, expired
 * or foreign-audience token is a 401; a scope or patient that does not allow the request a 403;
 * another patient's resource a 404 (its existence is not revealed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { entries, startTestEhr, T_NOW, type TestEhr } from './helpers.js';

describe('EHR FHIR API: tokens, scopes and the patient compartment', () => {
  let ehr: TestEhr;
  before(async () => {
    ehr = await startTestEhr();
  });
  after(() => ehr.close());

  const code = (res: { json: any }) => res.json.issue[0].details.coding[0].code;
  const coverageOf = (key: 'patient-avery' | 'patient-blake') =>
    `Coverage?patient=${ehr.opaque(key)}&status=active`;

  test('fhir: a request without a token is 401 with WWW-Authenticate Bearer error="invalid_token"', async () => {
    const res = await ehr.request('GET', coverageOf('patient-avery'));
    assert.equal(res.status, 401);
    assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
    assert.equal(code(res), 'ERR_TOKEN_MISSING');
    assert.equal(res.json.issue[0].code, 'login');
  });

  test('fhir: an unknown token, an expired grant, a malformed header and two Authorization headers are 401', async () => {
    const expired = ehr.token('expired', { expiresAt: new Date(T_NOW.getTime() - 1) });
    const cases: Array<[Record<string, string>, string]> = [
      [{ authorization: 'Bearer never-issued' }, 'ERR_TOKEN_INVALID'],
      [{ authorization: `Bearer ${expired}` }, 'ERR_TOKEN_INVALID'],
      [{ authorization: 'Basic dXNlcjpwYXNz' }, 'ERR_TOKEN_INVALID'],
      [{ authorization: 'Bearer a b' }, 'ERR_TOKEN_INVALID'],
    ];
    for (const [headers, expected] of cases) {
      const res = await ehr.request('GET', coverageOf('patient-avery'), { headers });
      assert.equal(res.status, 401, headers.authorization);
      assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
      assert.equal(code(res), expected);
    }
    const good = ehr.token('good');
    const twice = await ehr.app.inject({
      method: 'GET',
      url: `/fhir/${coverageOf('patient-avery')}`,
      headers: { authorization: [`Bearer ${good}`, `Bearer ${good}`] as unknown as string },
    });
    assert.equal(twice.statusCode, 401);
  });

  test('fhir: a resolver that cannot answer is 503, never a pass', async () => {
    const token = ehr.token('resolver-down');
    ehr.resolver.fail = true;
    try {
      const res = await ehr.request('GET', coverageOf('patient-avery'), { token });
      assert.equal(res.status, 503);
      assert.equal(code(res), 'ERR_TOKEN_CHECK');
    } finally {
      ehr.resolver.fail = false;
    }
  });

  test('found-21: a scope for another type is 403 insufficient_scope', async () => {
    const token = ehr.token('patient-only', { scopes: ['patient/Patient.rs'] });
    const res = await ehr.request('GET', coverageOf('patient-avery'), { token });
    assert.equal(res.status, 403);
    assert.equal(res.headers['www-authenticate'], 'Bearer error="insufficient_scope"');
    assert.equal(code(res), 'ERR_SCOPE');
  });

  test('found-21: .r reads but does not search, .s searches but does not read, .rs does both', async () => {
    const readOnly = ehr.token('r-only', { scopes: ['patient/Coverage.r'] });
    const searchOnly = ehr.token('s-only', { scopes: ['patient/Coverage.s'] });
    const coverage = `Coverage/${ehr.opaque('coverage-avery')}`;
    assert.equal((await ehr.request('GET', coverage, { token: readOnly })).status, 200);
    assert.equal(
      (await ehr.request('GET', coverageOf('patient-avery'), { token: readOnly })).status,
      403,
    );
    assert.equal((await ehr.request('GET', coverage, { token: searchOnly })).status, 403);
    assert.equal(
      (await ehr.request('GET', coverageOf('patient-avery'), { token: searchOnly })).status,
      200,
    );
  });

  test('fhir: SMART v1 scopes (patient/Coverage.read, patient/*.*) are accepted; malformed scopes grant nothing', async () => {
    const v1 = ehr.token('v1-read', { scopes: ['patient/Coverage.read'] });
    assert.equal(
      (await ehr.request('GET', coverageOf('patient-avery'), { token: v1 })).status,
      200,
    );
    const star = ehr.token('v1-star', { scopes: ['patient/*.*'] });
    assert.equal(
      (await ehr.request('GET', `Patient/${ehr.opaque('patient-avery')}`, { token: star })).status,
      200,
    );
    for (const scope of [
      'patient/Coverage.sr',
      'patient/Coverage',
      'Coverage.rs',
      'patient/Coverage.rs?status=active',
    ]) {
      const token = ehr.token(`bad-${scope}`.replace(/[^A-Za-z0-9-]/g, '-'), { scopes: [scope] });
      const res = await ehr.request('GET', coverageOf('patient-avery'), { token });
      assert.equal(res.status, 403, scope);
    }
  });

  test('fhir: a Coverage search for another patient is 403; a read of another patient’s resource is 404', async () => {
    const token = ehr.token('avery-bound');
    const other = await ehr.request('GET', coverageOf('patient-blake'), { token });
    assert.equal(other.status, 403);
    assert.equal(code(other), 'ERR_PATIENT');
    const never = await ehr.request('GET', 'Coverage?patient=never-issued', { token });
    assert.equal(never.status, 403);
    const read = await ehr.request('GET', `Coverage/${ehr.opaque('coverage-blake-primary')}`, {
      token,
    });
    assert.equal(read.status, 404);
    assert.equal(code(read), 'ERR_NOT_FOUND');
    const patient = await ehr.request('GET', `Patient/${ehr.opaque('patient-blake')}`, { token });
    assert.equal(patient.status, 404);
    const order = await ehr.request('GET', `ServiceRequest/${ehr.opaque('order-blepharoplasty')}`, {
      token,
    });
    assert.equal(order.status, 404);
  });

  test('fhir: searches without a patient parameter see only the token’s patient', async () => {
    const token = ehr.token('avery-search');
    const res = await ehr.request('GET', 'Coverage?status=active', { token });
    assert.deepEqual(
      entries(res.json).map((e) => e.resource.id),
      [ehr.opaque('coverage-avery')],
    );
    const enc = await ehr.request('GET', `Encounter?_id=${ehr.opaque('encounter-avery')}`, {
      token: ehr.token('blake-search', { patient: ehr.id('patient-blake') }),
    });
    assert.equal(enc.status, 200);
    assert.equal(enc.json.total, 0);
  });

  test('fhir: Practitioner, Organization, Location and Medication are readable with patient/X.rs', async () => {
    const token = ehr.token('avery-directory');
    for (const key of [
      'pract-quinn',
      'org-payer-other',
      'loc-clinic',
      'medication-adalimumab',
      'device-oxygen',
    ] as const) {
      const [type] = ehr.demo[key].split('/');
      const res = await ehr.request('GET', `${type}/${ehr.opaque(key)}`, { token });
      assert.equal(res.status, 200, key);
    }
  });

  test('fhir: patient/ scopes on a grant without a patient are 403', async () => {
    const token = ehr.token('no-patient', { patient: undefined });
    const res = await ehr.request('GET', `Practitioner/${ehr.opaque('pract-quinn')}`, { token });
    assert.equal(res.status, 403);
    assert.equal(code(res), 'ERR_PATIENT');
  });

  test('fhir: system/ scopes reach every patient', async () => {
    const token = ehr.token('system', { scopes: ['system/Coverage.rs'], patient: undefined });
    const res = await ehr.request('GET', coverageOf('patient-blake'), { token });
    assert.equal(res.status, 200);
    assert.equal(res.json.total, 2);
  });

  test('found-21: an update needs .u and a create .c; a Task for another patient is 403', async () => {
    const readOnly = ehr.token('read-only', { scopes: ['patient/*.rs'] });
    const id = ehr.opaque('order-oxygen');
    const read = await ehr.request('GET', `DeviceRequest/${id}`, { token: readOnly });
    const put = await ehr.request('PUT', `DeviceRequest/${id}`, {
      token: readOnly,
      body: read.json,
    });
    assert.equal(put.status, 403);
    assert.equal(code(put), 'ERR_SCOPE');
    const task = {
      resourceType: 'Task',
      status: 'ready',
      intent: 'order',
      for: { reference: `Patient/${ehr.opaque('patient-blake')}` },
    };
    const noCreate = await ehr.request('POST', 'Task', { token: readOnly, body: task });
    assert.equal(noCreate.status, 403);
    const creator = ehr.token('creator', { scopes: ['patient/Task.c'] });
    const other = await ehr.request('POST', 'Task', { token: creator, body: task });
    assert.equal(other.status, 403);
    assert.equal(code(other), 'ERR_PATIENT');
    const upd = ehr.token('updater', { scopes: ['patient/DeviceRequest.u'] });
    const blakeOrder = await ehr.request(
      'PUT',
      `ServiceRequest/${ehr.opaque('order-blepharoplasty')}`,
      { token: ehr.token('sr-updater', { scopes: ['patient/ServiceRequest.u'] }), body: {} },
    );
    assert.equal(blakeOrder.status, 404);
    const ok = await ehr.request('PUT', `DeviceRequest/${id}`, { token: upd, body: read.json });
    assert.equal(ok.status, 200);
  });

  test('sec-9: a delegate token is accepted only when its audience is this FHIR base URL', async () => {
    const elsewhere = ehr.token('delegate-elsewhere', {
      actors: ['https://dtr.payer.example'],
      audience: 'https://dtr.payer.example/fhir',
    });
    const refused = await ehr.request('GET', coverageOf('patient-avery'), { token: elsewhere });
    assert.equal(refused.status, 401);
    assert.equal(code(refused), 'ERR_TOKEN_AUDIENCE');
    assert.equal(refused.headers['www-authenticate'], 'Bearer error="invalid_token"');
    const here = ehr.token('delegate-here', { actors: ['https://dtr.payer.example'] });
    const ok = await ehr.request('GET', coverageOf('patient-avery'), { token: here });
    assert.equal(ok.status, 200);
    const plain = ehr.token('plain-elsewhere', { audience: 'https://other.example/fhir' });
    assert.equal(
      (await ehr.request('GET', coverageOf('patient-avery'), { token: plain })).status,
      401,
    );
  });
});
