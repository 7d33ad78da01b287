/**
 * Abuse limits: the rate limit per trusted issuer (`limits.requestsPerMinute`), the URL and
 * header size limit, and the timeouts that keep a slow or idle client from holding a connection.
 * (Body size: `test/server/http.test.ts`; oversized headers: `test/server/robustness.test.ts`.)
 */
import assert from 'node:assert/strict';
import { connect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { generateClientKeyPair, signCdsJwt } from '../../src/auth/sign.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import { resolveConfig } from '../../src/config/load.js';
import { RateLimiter } from '../../src/server/rate-limit.js';
import { send, type TestResponse } from '../helpers/https.js';
import { minimalOrderSign } from '../helpers/requests.js';
import { startTestServer, TEST_ISS, type TestServer } from '../helpers/server.js';

const SIGN = '/cds-services/order-sign-crd';
const errorCode = (res: TestResponse) => res.json?.issue?.[0]?.details?.coding?.[0]?.code;

describe('RateLimiter (token bucket per key)', () => {
  it('allows perMinute at once, refuses the next with Retry-After, refills with time', () => {
    let now = 1_000_000;
    const limiter = new RateLimiter({ perMinute: 5, now: () => now });
    for (let i = 0; i < 5; i++) assert.equal(limiter.take('a').allowed, true, `call ${i + 1}`);
    assert.deepEqual(limiter.take('a'), { allowed: false, retryAfterSeconds: 12 });
    // Another key has its own bucket.
    assert.equal(limiter.take('b').allowed, true);
    now += 11_000;
    assert.deepEqual(limiter.take('a'), { allowed: false, retryAfterSeconds: 1 });
    now += 1_000; // 12 s: one token (5 per minute)
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, false);
    now += 60_000; // a full minute: the whole burst again, no more
    for (let i = 0; i < 5; i++) assert.equal(limiter.take('a').allowed, true, `refill ${i + 1}`);
    assert.equal(limiter.take('a').allowed, false);
  });

  it('a clock that steps back refills nothing', () => {
    let now = 5_000_000;
    const limiter = new RateLimiter({ perMinute: 2, now: () => now });
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, true);
    now -= 3_600_000;
    assert.equal(limiter.take('a').allowed, false);
    now += 3_600_000 + 30_000; // 30 s after the last refused call: one token
    assert.equal(limiter.take('a').allowed, true);
  });

  it('memory is bounded: idle keys expire after a minute, and at most maxKeys are held', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 10, now: () => now });
    for (let i = 0; i < 1000; i++) limiter.take(`iss-${i}`);
    assert.equal(limiter.size, 1000);
    now += 60_000;
    limiter.take('fresh');
    assert.equal(limiter.size, 1);

    const capped = new RateLimiter({ perMinute: 1, now: () => now, maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) capped.take(k);
    capped.take('a'); // refused, but recently used
    capped.take('d'); // evicts the least recently used: b
    assert.equal(capped.size, 3);
    assert.equal(capped.take('a').allowed, false);
    assert.equal(capped.take('c').allowed, false);
    assert.equal(capped.take('b').allowed, true, 'b was dropped, so it starts full');
  });

  it('refuses a limit that is not a positive integer', () => {
    assert.throws(() => new RateLimiter({ perMinute: 0 }), RangeError);
    assert.throws(() => new RateLimiter({ perMinute: 1.5 }), RangeError);
  });
});

describe('limits.requestsPerMinute on the server (per verified issuer)', () => {
  const OTHER_ISS = 'https://other-ehr.test/cds-client';
  let server: TestServer;
  let clock = Date.now();
  let other: Awaited<ReturnType<typeof generateClientKeyPair>>;

  before(async () => {
    other = await generateClientKeyPair('ES384');
    server = await startTestServer({
      requestsPerMinute: 5,
      now: () => clock,
      extraClients: [{ iss: OTHER_ISS, publicJwk: other.publicJwk }],
    });
  });
  after(() => server.close());

  const getAsOther = async () => {
    const token = await signCdsJwt({
      privateJwk: other.privateJwk,
      iss: OTHER_ISS,
      aud: `${server.base}/cds-services`,
    });
    return send(`${server.base}/cds-services`, {
      ca: server.ca,
      headers: { authorization: `Bearer ${token}` },
    });
  };

  it('the 6th call in a minute is a 429 with Retry-After; another issuer is unaffected; the bucket refills', async () => {
    // Discovery and hook calls draw on the same allowance.
    for (let i = 0; i < 4; i++) assert.equal((await server.get('/cds-services')).status, 200);
    assert.equal((await server.post(SIGN, minimalOrderSign())).status, 200);

    const refused = await server.post(SIGN, minimalOrderSign());
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['retry-after'], '12');
    assert.equal(refused.json.resourceType, 'OperationOutcome');
    assert.equal(refused.json.issue[0].code, 'throttled');
    assert.equal(errorCode(refused), 'ERR_RATE_LIMITED');
    assert.equal(refused.headers['cache-control'], 'no-store');
    assert.equal((await server.get('/cds-services')).status, 429);

    // A second trusted issuer has its own bucket.
    assert.equal((await getAsOther()).status, 200);

    // Authentication comes first: a caller without a valid JWT is a 401, never a 429.
    const anon = await send(`${server.base}/cds-services`, { ca: server.ca });
    assert.equal(anon.status, 401);

    clock += 12_000;
    assert.equal((await server.get('/cds-services')).status, 200);
    assert.equal((await server.get('/cds-services')).status, 429);
    clock += 60_000;
    for (let i = 0; i < 5; i++) assert.equal((await server.get('/cds-services')).status, 200);
    assert.equal((await server.get('/cds-services')).status, 429);

    // The access line names the code and the client, nothing else from the request.
    const lines = server.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const throttled = lines.filter((l) => l.code === 'ERR_RATE_LIMITED');
    assert.ok(throttled.length >= 3);
    assert.ok(throttled.every((l) => l.status === 429 && l.client === 'test EHR'));
    assert.ok(!lines.some((l) => l.code === 'ERR_RATE_LIMITED' && l.client === OTHER_ISS));
  });

  it('the default is 6000 per minute per issuer', () => {
    const config = resolveConfig(
      {
        baseUrl: 'https://localhost:8443',
        tls: { cert: 'cert.pem', key: 'key.pem' },
        clients: [{ iss: TEST_ISS, jwksUri: 'https://ehr.test/jwks.json' }],
        rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
      },
      server.dataDir,
    );
    assert.equal(config.limits.requestsPerMinute, 6000);
  });
});

describe('URL, header and connection limits', { concurrency: true }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  const port = () => Number(new URL(server.base).port);
  const open = () =>
    new Promise<TLSSocket>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port: port(), servername: 'localhost', ca: server.ca },
        () => resolve(socket),
      );
      socket.once('error', reject);
    });

  it('hook-10: a request line over 16 KiB (the header limit counts it) is a 431 OperationOutcome', async () => {
    const res = await send(`${server.base}/cds-services/${'a'.repeat(17_000)}`, { ca: server.ca });
    assert.equal(res.status, 431);
    assert.equal(errorCode(res), 'ERR_HEADERS_TOO_LARGE');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const query = await send(`${server.base}/cds-services?${'q=1&'.repeat(5_000)}`, {
      ca: server.ca,
    });
    assert.equal(query.status, 431);
  });

  it('hook-10: a service id over 100 characters is a 404 before any JWT is read', async () => {
    const res = await send(`${server.base}/cds-services/${'a'.repeat(101)}`, {
      method: 'POST',
      ca: server.ca,
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 404);
    assert.equal(errorCode(res), 'ERR_NOT_FOUND');
    assert.ok(!res.text.includes('aaaa'));
  });

  it('an idle keep-alive connection is closed by the server within ~6 s (keepAliveTimeout 5 s)', async () => {
    const socket = await open();
    const started = Date.now();
    let answered = '';
    socket.on('data', (d: Buffer) => (answered += d.toString('latin1')));
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
    socket.write('GET /cds-services HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const guard = setTimeout(() => socket.destroy(), 10_000);
    const at = await closed;
    clearTimeout(guard);
    assert.match(answered, /^HTTP\/1\.1 401 /);
    assert.doesNotMatch(answered, /connection: close/i, 'kept alive after the answer');
    const idle = at - started;
    assert.ok(idle >= 4_500 && idle < 8_000, `closed after ${idle} ms`);
  });

  it('a client sending its headers slowly is cut off with a 408 (headersTimeout 10 s, checked every 2 s)', async () => {
    const socket = await open();
    const started = Date.now();
    let answered = '';
    socket.on('data', (d: Buffer) => (answered += d.toString('latin1')));
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
    socket.on('error', () => {});
    socket.write('GET /cds-services HTTP/1.1\r\nHost: localhost\r\n');
    // One header line a second, never the blank line that ends them: at most 16 lines.
    let sent = 0;
    const trickle = setInterval(() => {
      if (sent < 16 && socket.writable) socket.write(`x-slow-${sent++}: 1\r\n`);
    }, 1_000);
    const guard = setTimeout(() => socket.destroy(), 16_000);
    const at = await closed;
    clearInterval(trickle);
    clearTimeout(guard);
    const took = at - started;
    assert.match(answered, /^HTTP\/1\.1 408 /);
    assert.match(answered, /ERR_TIMEOUT/);
    assert.ok(took >= 9_000 && took < 14_500, `cut off after ${took} ms`);
  });
});
