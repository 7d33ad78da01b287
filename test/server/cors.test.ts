/**
 * CORS as CDS Hooks advises for browser callers (SMART apps): origins from `cors.origins` only,
 * the origin echoed (never `*`), no credentials mode, preflights without a token, and nothing at
 * all for an origin that is not listed. Also: OPTIONS beside the 405 answers of other methods.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { corsPolicy, normalizeOrigin } from '../../src/server/cors.js';
import { send } from '../helpers/https.js';
import { minimalOrderSign } from '../helpers/requests.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const APP = 'https://smart-app.example';
const SIGN = '/cds-services/order-sign-crd';

const corsHeaders = (h: IncomingHttpHeaders) =>
  Object.keys(h).filter((k) => k.startsWith('access-control-'));
const varies = (h: IncomingHttpHeaders) =>
  String(h.vary ?? '')
    .split(/\s*,\s*/)
    .map((v) => v.toLowerCase())
    .includes('origin');

let server: TestServer;
before(async () => {
  server = await startTestServer({
    corsOrigins: [APP, 'https://Launcher.Example:443', 'https://ehr-ui.example:8443'],
  });
});
after(() => server.close());

const preflight = (path: string, origin?: string, method = 'POST') =>
  send(`${server.base}${path}`, {
    method: 'OPTIONS',
    ca: server.ca,
    headers: {
      ...(origin ? { origin } : {}),
      'access-control-request-method': method,
      'access-control-request-headers': 'authorization, content-type',
    },
  });

describe('CORS preflight (no token needed)', () => {
  it('an allowed origin gets itself back, POST for a service, the two headers and a max age', async () => {
    const res = await preflight(SIGN, APP);
    assert.equal(res.status, 204);
    assert.equal(res.text, '');
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-methods'], 'POST');
    assert.equal(res.headers['access-control-allow-headers'], 'Authorization, Content-Type');
    assert.equal(res.headers['access-control-max-age'], '600');
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    assert.ok(varies(res.headers));
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['www-authenticate'], undefined, 'no authentication was asked for');
  });

  it('discovery allows GET', async () => {
    const res = await preflight('/cds-services', APP, 'GET');
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-methods'], 'GET');
  });

  it('configured origins are compared in the form browsers send (lower case, no default port)', async () => {
    const res = await preflight(SIGN, 'https://launcher.example');
    assert.equal(res.headers['access-control-allow-origin'], 'https://launcher.example');
    const port = await preflight(SIGN, 'https://ehr-ui.example:8443');
    assert.equal(port.headers['access-control-allow-origin'], 'https://ehr-ui.example:8443');
  });

  it('a disallowed or missing origin gets 204 without any CORS header', async () => {
    for (const origin of [
      'https://evil.example',
      'http://smart-app.example', // another scheme is another origin
      'https://smart-app.example:8443', // and another port
      'https://smart-app.example.evil.example',
      'null',
      '*',
      undefined,
    ]) {
      const res = await preflight(SIGN, origin);
      assert.equal(res.status, 204, String(origin));
      assert.deepEqual(corsHeaders(res.headers), [], String(origin));
      assert.equal(res.headers.allow, 'POST, OPTIONS');
    }
  });
});

describe('CORS on actual requests', () => {
  it('an allowed origin gets Access-Control-Allow-Origin (never *) and Vary: Origin, no credentials', async () => {
    const res = await server.post(SIGN, minimalOrderSign(), { origin: APP });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    assert.ok(varies(res.headers));
    const discovery = await server.get('/cds-services', { origin: APP });
    assert.equal(discovery.status, 200);
    assert.equal(discovery.headers['access-control-allow-origin'], APP);
  });

  it('errors carry the CORS headers too, so the app can read the OperationOutcome and Retry-After', async () => {
    const res = await send(`${server.base}${SIGN}`, {
      method: 'POST',
      ca: server.ca,
      body: JSON.stringify(minimalOrderSign()),
      headers: { 'content-type': 'application/json', origin: APP },
    });
    assert.equal(res.status, 401);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.match(String(res.headers['access-control-expose-headers']), /Retry-After/);
    assert.match(String(res.headers['access-control-expose-headers']), /WWW-Authenticate/);
  });

  it('a disallowed origin gets no CORS header (the answer itself is unchanged)', async () => {
    const res = await server.post(SIGN, minimalOrderSign(), { origin: 'https://evil.example' });
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeaders(res.headers), []);
    assert.ok(varies(res.headers), 'Vary: Origin whenever origins are configured');
    const none = await server.get('/cds-services');
    assert.deepEqual(corsHeaders(none.headers), []);
  });
});

describe('404 and 405 beside OPTIONS', () => {
  it('hook-9/hook-10: other methods still get 405 with Allow; unknown paths 404, OPTIONS too', async () => {
    for (const [method, path, allow] of [
      ['PUT', '/cds-services', 'GET'],
      ['DELETE', '/cds-services', 'GET'],
      ['POST', '/cds-services', 'GET'],
      ['GET', SIGN, 'POST'],
      ['PATCH', SIGN, 'POST'],
    ] as const) {
      const res = await send(`${server.base}${path}`, { method, ca: server.ca });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.allow, allow);
      assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_METHOD');
    }
    const res = await send(`${server.base}/admin`, { method: 'OPTIONS', ca: server.ca });
    assert.equal(res.status, 404);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_NOT_FOUND');
  });
});

describe('CORS off (no cors.origins: the default)', () => {
  let plain: TestServer;
  before(async () => {
    plain = await startTestServer();
  });
  after(() => plain.close());

  it('no origin is allowed: no CORS header, no Vary, preflight still answered', async () => {
    const pre = await send(`${plain.base}${SIGN}`, {
      method: 'OPTIONS',
      ca: plain.ca,
      headers: { origin: APP, 'access-control-request-method': 'POST' },
    });
    assert.equal(pre.status, 204);
    assert.deepEqual(corsHeaders(pre.headers), []);
    assert.equal(pre.headers.vary, undefined);
    const res = await plain.get('/cds-services', { origin: APP });
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeaders(res.headers), []);
  });
});

describe('corsPolicy', () => {
  it('echoes listed origins only, one Origin value, in browser form', () => {
    const policy = corsPolicy(['https://A.example:443', 'https://b.example:8443']);
    assert.equal(policy.enabled, true);
    assert.equal(policy.allowedOrigin('https://a.example'), 'https://a.example');
    assert.equal(policy.allowedOrigin('https://b.example:8443'), 'https://b.example:8443');
    assert.equal(policy.allowedOrigin('https://b.example'), undefined);
    assert.equal(policy.allowedOrigin(['https://a.example']), undefined);
    assert.equal(policy.allowedOrigin(undefined), undefined);
    assert.equal(corsPolicy([]).enabled, false);
    assert.equal(normalizeOrigin('https://X.example:443'), 'https://x.example');
  });
});
