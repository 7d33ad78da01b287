import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { send } from '../helpers/https.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { minimalOrderSign } from '../helpers/requests.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => server.close());

const SIGN = '/cds-services/order-sign-crd';

describe('discovery (dev-1 to dev-8)', () => {
  it('sec-1 (CDS Hooks): discovery needs a valid JWT; without one it is a 401 OperationOutcome', async () => {
    const res = await send(`${server.base}/cds-services`, { ca: server.ca });
    assert.equal(res.status, 401);
    assert.equal(res.json.resourceType, 'OperationOutcome');
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_AUTH_MISSING');
    assert.equal(res.headers['www-authenticate'], 'Bearer');
  });

  it('hook-4/dev-1/dev-2/dev-4/dev-8: six CRD services with standard prefetch and CRD extensions', async () => {
    const res = await server.get('/cds-services');
    assert.equal(res.status, 200);
    const hooks = res.json.services.map((s: { hook: string }) => s.hook).sort();
    assert.deepEqual(hooks, [
      'appointment-book',
      'encounter-discharge',
      'encounter-start',
      'order-dispatch',
      'order-select',
      'order-sign',
    ]);
    for (const s of res.json.services) {
      assert.equal(typeof s.id, 'string');
      assert.equal(typeof s.description, 'string');
      assert.equal(s.prefetch.patient, 'Patient/{{context.patientId}}');
      assert.equal(s.prefetch.coverage, 'Coverage?patient={{context.patientId}}&status=active');
      // dev-1, dev-2, crdver-1
      assert.ok(s.extension['davinci-crd.version'].length >= 1);
      for (const v of s.extension['davinci-crd.version']) assert.match(v, /^[1-9]\d*\.[1-9]\d*$/);
      const options = s.extension['davinci-crd.configuration-options'];
      // dev-4: code, type, name, description and default on every option
      for (const o of options) {
        for (const k of ['code', 'type', 'name', 'description', 'default']) assert.ok(k in o, k);
      }
      // dev-8: codes, names and descriptions unique per service
      for (const k of ['code', 'name', 'description']) {
        const values = options.map((o: Record<string, string>) => o[k]);
        assert.equal(new Set(values).size, values.length, `${s.id} ${k}`);
      }
      const maxCards = options.find((o: { code: string }) => o.code === 'max-cards');
      assert.equal(maxCards.type, 'integer');
    }
  });

  it('dev-5: a boolean option per card type the service returns', async () => {
    const res = await server.get('/cds-services');
    const sign = res.json.services.find((s: { hook: string }) => s.hook === 'order-sign');
    const codes = sign.extension['davinci-crd.configuration-options']
      .filter((o: { type: string }) => o.type === 'boolean')
      .map((o: { code: string }) => o.code);
    // coverage-info plus the topics of the sample rules' cards
    assert.ok(codes.includes('coverage-info') && codes.includes('guideline'), codes.join());
    const enc = res.json.services.find((s: { hook: string }) => s.hook === 'encounter-start');
    assert.deepEqual(
      enc.extension['davinci-crd.configuration-options'].map((o: { code: string }) => o.code),
      ['max-cards'],
    );
  });

  it('sec-1 (CDS Hooks): a discovery token whose aud is a service URL is refused', async () => {
    const token = await server.token('/cds-services', { aud: `${server.base}${SIGN}` });
    const res = await send(`${server.base}/cds-services`, {
      ca: server.ca,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 401);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_JWT_AUD');
  });

  it('aud is built from baseUrl, never from the Host header', async () => {
    const token = await server.token('/cds-services', { aud: 'https://evil.test/cds-services' });
    const res = await send(`${server.base}/cds-services`, {
      ca: server.ca,
      headers: { authorization: `Bearer ${token}`, host: 'evil.test' },
    });
    assert.equal(res.status, 401);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_JWT_AUD');
  });
});

describe('HTTP semantics of hook calls (hook-9, hook-10, hook-13)', () => {
  it('hook-13: an unknown service is a 404 OperationOutcome (after authentication)', async () => {
    const res = await server.post('/cds-services/no-such-service', minimalOrderSign());
    assert.equal(res.status, 404);
    assert.equal(res.json.resourceType, 'OperationOutcome');
    const anon = await send(`${server.base}/cds-services/no-such-service`, {
      method: 'POST',
      ca: server.ca,
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(anon.status, 401);
  });

  it('hook-9/hook-10: a path outside /cds-services is a 404 OperationOutcome', async () => {
    const res = await send(`${server.base}/admin`, { ca: server.ca });
    assert.equal(res.status, 404);
    assert.equal(res.json.resourceType, 'OperationOutcome');
  });

  it('hook-9/hook-10: a wrong method is a 405 OperationOutcome with Allow', async () => {
    const res = await server.get(SIGN);
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'POST');
  });

  it('hook-13: a wrong content type is a 415', async () => {
    const res = await server.post(SIGN, 'hook=order-sign', { 'content-type': 'text/plain' });
    assert.equal(res.status, 415);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_CONTENT_TYPE');
  });

  it('hook-13: unparseable JSON is a 400', async () => {
    const res = await server.post(SIGN, '{"hook": ');
    assert.equal(res.status, 400);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_JSON');
  });

  it('hook-13: a body over the documented limit (1 MiB by default) is a 413', async () => {
    const big = JSON.stringify({ ...minimalOrderSign(), padding: 'x'.repeat(1024 * 1024) });
    const res = await server.post(SIGN, big);
    assert.equal(res.status, 413);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_BODY_TOO_LARGE');
  });

  it('hook-13: an invalid request is a 400 naming the element', async () => {
    const res = await server.post(SIGN, { ...minimalOrderSign(), hookInstance: 'nope' });
    assert.equal(res.status, 400);
    assert.deepEqual(res.json.issue[0].expression, ['hookInstance']);
  });

  it('every answer carries the security headers and no-store', async () => {
    const res = await server.post(SIGN, minimalOrderSign());
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(String(res.headers['strict-transport-security']), /max-age=/);
  });
});

describe('TLS (sec-2, sec-3)', () => {
  const port = () => Number(new URL(server.base).port);
  const handshake = (opts: Record<string, unknown>) =>
    new Promise<string>((resolve) => {
      const socket = connect(
        { host: '127.0.0.1', port: port(), servername: 'localhost', ca: server.ca, ...opts },
        () => {
          const v = socket.getProtocol() ?? 'unknown';
          socket.end();
          resolve(v);
        },
      );
      socket.on('error', () => resolve('refused'));
    });

  it('sec-3: TLS 1.3 is negotiated when the client offers it', async () => {
    assert.equal(await handshake({}), 'TLSv1.3');
  });

  it('sec-3: TLS 1.2 with an ECDHE AEAD suite is accepted', async () => {
    assert.equal(
      await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }),
      'TLSv1.2',
    );
  });

  it('sec-3: TLS 1.1 and 1.0 handshakes fail', async () => {
    const old = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'ALL:@SECLEVEL=0' };
    assert.equal(await handshake(old), 'refused');
  });

  it('sec-3: TLS 1.2 CBC and non-ECDHE suites are refused', async () => {
    for (const ciphers of [
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-ECDSA-AES256-SHA384',
      'AES128-GCM-SHA256',
    ]) {
      assert.equal(await handshake({ maxVersion: 'TLSv1.2', ciphers }), 'refused', ciphers);
    }
  });

  it('sec-2: plain HTTP on the service port gets no CRD answer', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number | string>((resolve) => {
      const req = request({ host: '127.0.0.1', port: port(), path: '/cds-services' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve('refused'));
      req.end();
    });
    assert.notEqual(status, 200);
  });
});

describe('404 and 405 distinguished', () => {
  it('hook-9: a method Fastify does not route (TRACE) on a CDS Hooks path is a 405', async () => {
    for (const [path, allow] of [
      ['/cds-services', 'GET'],
      ['/cds-services/order-sign-crd', 'POST'],
    ]) {
      const res = await send(`${server.base}${path}`, { method: 'TRACE', ca: server.ca });
      assert.equal(res.status, 405, path);
      assert.equal(res.headers.allow, allow);
      assert.equal(res.json.resourceType, 'OperationOutcome');
    }
    const other = await send(`${server.base}/elsewhere`, { method: 'TRACE', ca: server.ca });
    assert.equal(other.status, 404);
  });
});
