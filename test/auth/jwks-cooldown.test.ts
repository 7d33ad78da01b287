/**
 * Key set fetch amplification (sec-1, CDS Hooks JWT): anyone who knows a trusted `iss` can send
 * tokens with made-up `kid`s, so each download of a client's `jwksUri` (successful, failed, or
 * answered with no-store) starts a cooldown in which that URL is not fetched again. All servers
 * are loopback servers started here; the clock is frozen and moved by hand.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  createVerifier,
  MemoryReplayStore,
  type AuthErrorCode,
  type KeySetOptions,
  type Verifier,
} from '../../src/auth/index.js';
import {
  AUD,
  bearer,
  claims,
  expectAuthError,
  forge,
  ISS,
  makeCert,
  makeKey,
  NOW,
  startJwksServer,
  tokenFor,
  type JwksServer,
  type TestCert,
  type TestKey,
} from './helpers.js';

/** Requests per amplification attempt: before the fix each one caused a download. */
const ATTEMPTS = 40;

let cert: TestCert;
let es: TestKey;
let server: JwksServer;
let jwksUri: string;
let clock = NOW;

before(async () => {
  cert = await makeCert();
  es = await makeKey('ES384');
  server = await startJwksServer(cert, [es.publicJwk]);
  jwksUri = `${server.origin}/jwks.json`;
});

after(async () => {
  await server.close();
});

beforeEach(() => {
  clock = NOW;
  server.hits.length = 0;
  server.reply.status = 200;
  server.reply.headers = {};
  server.reply.hang = false;
  server.reply.body = JSON.stringify({ keys: [es.publicJwk] });
});

function verifierFor(uri = jwksUri, keySets: KeySetOptions = {}): Verifier {
  return createVerifier({
    clients: [{ iss: ISS, jwksUri: uri }],
    replay: new MemoryReplayStore({ now: () => clock }),
    now: () => clock,
    keySets: { ca: cert.cert, ...keySets },
  });
}

/** A genuine token of the trusted client. */
const genuine = (): Promise<string> => tokenFor(es, 'ES384', claims({}, clock));

/** What an unauthenticated caller can send: the trusted `iss`, a made-up `kid`, no valid signature. */
const attack = (): string =>
  forge(
    { alg: 'ES384', typ: 'JWT', kid: `made-up-${randomBytes(6).toString('hex')}` },
    claims({}, clock),
    randomBytes(96).toString('base64url'),
  );

/** Verifies `token` expecting `code`; returns the error message. */
async function refuse(v: Verifier, token: string, code: AuthErrorCode): Promise<string> {
  return (await expectAuthError(v.verify(bearer(token), AUD), code, token)).message;
}

/** Sends {@link ATTEMPTS} attack tokens one after another; all must fail with `code`, one message. */
async function flood(v: Verifier, code: AuthErrorCode): Promise<string> {
  const messages = new Set<string>();
  for (let i = 0; i < ATTEMPTS; i += 1) messages.add(await refuse(v, attack(), code));
  assert.equal(messages.size, 1, 'every refusal carries the same message');
  return [...messages][0] as string;
}

/** Counts outgoing HTTP(S) requests to `hostPort` (also those whose connection is refused). */
function countRequests(hostPort: string): { count: () => number; stop: () => void } {
  let n = 0;
  const onStart = (message: unknown): void => {
    const req = (message as { request?: ClientRequest }).request;
    if (req?.getHeader('host') === hostPort) n += 1;
  };
  dc.subscribe('http.client.request.start', onStart);
  return { count: () => n, stop: () => dc.unsubscribe('http.client.request.start', onStart) };
}

/** A port on 127.0.0.1 with nothing listening. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('key set fetch amplification', () => {
  for (const cacheControl of ['no-store', 'no-cache', 'max-age=0', 'private, max-age=0']) {
    test(`sec-1 (CDS Hooks JWT): a key set host answering "${cacheControl}" is fetched once per 30 s cooldown, not once per request`, async () => {
      server.reply.headers = { 'cache-control': cacheControl };
      const v = verifierFor();
      await flood(v, 'ERR_JWT_KID_UNKNOWN');
      assert.equal(server.hits.length, 1);
      // The uncacheable answer is still used for the cooldown: genuine tokens keep working.
      clock = NOW + 29;
      assert.equal((await v.verify(bearer(await genuine()), AUD)).iss, ISS);
      await flood(v, 'ERR_JWT_KID_UNKNOWN');
      assert.equal(server.hits.length, 1);
      clock = NOW + 31;
      await flood(v, 'ERR_JWT_KID_UNKNOWN');
      assert.equal(server.hits.length, 2);
      assert.equal((await v.verify(bearer(await genuine()), AUD)).iss, ISS);
      assert.equal(server.hits.length, 2);
    });
  }

  test('sec-1 (CDS Hooks JWT): a key set host answering 500 is fetched once per cooldown; the failure is replayed from a negative cache', async () => {
    server.reply.status = 500;
    const v = verifierFor();
    const message = await flood(v, 'ERR_JWKS_FETCH');
    assert.match(message, /: HTTP status 500$/);
    assert.equal(server.hits.length, 1);
    // Genuine tokens get the same answer during the cooldown, without a download.
    assert.equal(await refuse(v, await genuine(), 'ERR_JWKS_FETCH'), message);
    assert.equal(server.hits.length, 1);
    clock = NOW + 31;
    assert.equal(await flood(v, 'ERR_JWKS_FETCH'), message);
    assert.equal(server.hits.length, 2);
    // The host recovers: the failure stands until the cooldown of the last download is over.
    server.reply.status = 200;
    clock = NOW + 60;
    assert.equal(await refuse(v, await genuine(), 'ERR_JWKS_FETCH'), message);
    assert.equal(server.hits.length, 2);
    clock = NOW + 62;
    assert.equal((await v.verify(bearer(await genuine()), AUD)).iss, ISS);
    assert.equal(server.hits.length, 3);
  });

  test('sec-1 (CDS Hooks JWT): concurrent requests share one download of a failing or uncacheable key set', async () => {
    for (const [status, headers, code] of [
      [500, {}, 'ERR_JWKS_FETCH'],
      [200, { 'cache-control': 'no-store' }, 'ERR_JWT_KID_UNKNOWN'],
    ] as const) {
      server.hits.length = 0;
      Object.assign(server.reply, { status, headers });
      const v = verifierFor();
      const tokens = Array.from({ length: ATTEMPTS }, attack);
      await Promise.all(tokens.map((t) => refuse(v, t, code)));
      assert.equal(server.hits.length, 1);
    }
  });

  test('sec-1 (CDS Hooks JWT): a key set host that is down (connection refused) is tried once per cooldown', async () => {
    const port = await closedPort();
    const requests = countRequests(`127.0.0.1:${port}`);
    try {
      const v = verifierFor(`https://127.0.0.1:${port}/jwks.json`);
      const message = await flood(v, 'ERR_JWKS_FETCH');
      assert.match(message, /: connection failed \(ECONNREFUSED\)$/);
      assert.equal(requests.count(), 1);
      clock = NOW + 29;
      await flood(v, 'ERR_JWKS_FETCH');
      assert.equal(requests.count(), 1);
      clock = NOW + 31;
      assert.equal(await flood(v, 'ERR_JWKS_FETCH'), message);
      assert.equal(requests.count(), 2);
    } finally {
      requests.stop();
    }
  });

  test('sec-1 (CDS Hooks JWT): a key set host that closes every connection is connected to once per cooldown', async () => {
    const sockets: Socket[] = [];
    const host = createServer((socket) => {
      sockets.push(socket);
      socket.destroy();
    });
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    const { port } = host.address() as AddressInfo;
    try {
      const v = verifierFor(`https://127.0.0.1:${port}/jwks.json`);
      const message = await flood(v, 'ERR_JWKS_FETCH');
      assert.equal(sockets.length, 1);
      clock = NOW + 31;
      assert.equal(await flood(v, 'ERR_JWKS_FETCH'), message);
      assert.equal(sockets.length, 2);
    } finally {
      await new Promise<void>((resolve) => host.close(() => resolve()));
    }
  });

  test('sec-1 (CDS Hooks JWT): a TLS failure is replayed from the negative cache as ERR_JWKS_TLS', async () => {
    const requests = countRequests(new URL(jwksUri).host);
    try {
      const other = await makeCert();
      const v = verifierFor(jwksUri, { ca: other.cert });
      const message = await flood(v, 'ERR_JWKS_TLS');
      assert.equal(requests.count(), 1);
      assert.deepEqual(server.hits, []);
      clock = NOW + 31;
      assert.equal(await flood(v, 'ERR_JWKS_TLS'), message);
      assert.equal(requests.count(), 2);
    } finally {
      requests.stop();
    }
  });

  test('sec-1 (CDS Hooks JWT): a failed refetch for an unknown kid keeps the cached set for known kids', async () => {
    const v = verifierFor();
    await v.verify(bearer(await genuine()), AUD);
    assert.equal(server.hits.length, 1);
    server.reply.status = 500;
    clock = NOW + 31;
    const message = await flood(v, 'ERR_JWKS_FETCH');
    assert.match(message, /: HTTP status 500$/);
    assert.equal(server.hits.length, 2);
    assert.equal((await v.verify(bearer(await genuine()), AUD)).iss, ISS);
    assert.equal(server.hits.length, 2);
    server.reply.status = 200;
    clock = NOW + 62;
    await flood(v, 'ERR_JWT_KID_UNKNOWN');
    assert.equal(server.hits.length, 3);
  });

  test('sec-1 (CDS Hooks JWT): the cooldown follows the "cooldownMs" setting', async () => {
    server.reply.headers = { 'cache-control': 'no-store' };
    const v = verifierFor(jwksUri, { cooldownMs: 5000 });
    await flood(v, 'ERR_JWT_KID_UNKNOWN');
    clock = NOW + 4;
    await flood(v, 'ERR_JWT_KID_UNKNOWN');
    assert.equal(server.hits.length, 1);
    clock = NOW + 6;
    await flood(v, 'ERR_JWT_KID_UNKNOWN');
    assert.equal(server.hits.length, 2);
  });
});
