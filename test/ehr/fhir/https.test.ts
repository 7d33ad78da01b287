/**
 * The EHR's FHIR API over real HTTPS on loopback (TLS 1.2+, a certificate generated at test
 * time), and what it logs: one line per request with method, type, interaction, status and
 * error code; never a token, an id, a query value or resource content.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startTestEhr, type TestEhr } from './helpers.js';

describe('EHR FHIR API over HTTPS', () => {
  let ehr: TestEhr;
  before(async () => {
    ehr = await startTestEhr({ listen: true });
  });
  after(() => ehr.close());

  test('sec-2: the API answers over TLS 1.2 or later and refuses TLS 1.1', async () => {
    const res = await ehr.request('GET', 'metadata');
    assert.equal(res.status, 200);
    assert.equal(res.json.resourceType, 'CapabilityStatement');
    const port = Number(new URL(ehr.base).port);
    const version = await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port, ca: ehr.ca, servername: 'localhost' },
        () => {
          resolve(socket.getProtocol() ?? '');
          socket.end();
        },
      );
      socket.on('error', reject);
    });
    assert.match(version, /^TLSv1\.[23]$/);
    const old = await new Promise<string>((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        ca: ehr.ca,
        servername: 'localhost',
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
      });
      socket.on('secureConnect', () => {
        socket.end();
        resolve('connected');
      });
      socket.on('error', () => resolve('refused'));
    });
    assert.equal(old, 'refused');
  });

  test('sec-8: no token, id, query value or resource content in any log line', async () => {
    const secret = 'tok-3f9a1c7e5b2d4f60';
    const token = ehr.token(secret, {
      scopes: ['patient/*.rs', 'patient/DeviceRequest.u', 'patient/Task.c'],
    });
    const patient = ehr.opaque('patient-avery');
    const order = ehr.opaque('order-oxygen');
    const requests: Array<[string, string, unknown?]> = [
      ['GET', `Patient/${patient}`],
      ['GET', `Coverage?patient=${patient}&status=active`],
      ['GET', `Coverage?patient=${ehr.opaque('patient-blake')}`],
      ['GET', `Coverage?patient=${patient}&secret-param=MRN-100001`],
      ['GET', `Patient/${ehr.opaque('patient-blake')}`],
      ['GET', `Encounter?_id=${ehr.opaque('encounter-avery')}&_include=Encounter:location`],
      [
        'POST',
        'Task',
        {
          resourceType: 'Task',
          status: 'ready',
          intent: 'order',
          for: { reference: `Patient/${patient}` },
        },
      ],
      [
        'PUT',
        `DeviceRequest/${order}`,
        { resourceType: 'DeviceRequest', id: order, note: [{ text: 'Avery Example' }] },
      ],
    ];
    for (const [method, path, body] of requests) {
      const res = await ehr.request(method, path, { token, ...(body ? { body } : {}) });
      assert.ok(res.status > 0);
    }
    await ehr.request('GET', 'Coverage?status=active', { token: 'unknown-tok-8b8c' });
    const lines = ehr.logs.filter((l) => l.includes('fhir request'));
    assert.ok(lines.length >= requests.length + 2);
    const forbidden = [
      secret,
      'unknown-tok-8b8c',
      'MRN-100001',
      '999-01-0001',
      'Avery',
      'Example',
      'secret-param',
      'active',
      ...Object.values(ehr.demo).map((r) => r.split('/')[1]!),
      ...Object.keys(ehr.demo).map((k) => ehr.opaque(k as keyof typeof ehr.demo)),
    ];
    for (const line of ehr.logs) {
      for (const word of forbidden) assert.ok(!line.includes(word), `a log line holds "${word}"`);
    }
    const first = JSON.parse(lines.find((l) => l.includes('"interaction":"read"'))!);
    assert.deepEqual(
      {
        method: first.method,
        type: first.type,
        interaction: first.interaction,
        status: first.status,
      },
      { method: 'GET', type: 'Patient', interaction: 'read', status: 200 },
    );
  });
});
