/**
 * Clients whose JWK Set lives at a registered `jwksUri`: only that URL is fetched (never a
 * token's `jku`), over verified TLS, within limits, cached per Cache-Control, and refetched on
 * an unknown `kid` at most once per cooldown. All servers are loopback servers started here.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  createVerifier,
  MemoryReplayStore,
  signCdsJwt,
  generateClientKeyPair,
  type AuthErrorCode,
  type KeySetOptions,
  type TrustedClient,
  type Verifier,
} from '../../src/auth/index.js';
import {
  AUD,
  bearer,
  claims,
  expectAuthError,
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

const ID = 'sec-1 (CDS Hooks JWKS)';
let cert: TestCert;
let es: TestKey;
let server: JwksServer;
let clock = NOW;
let jwksUri: string;

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

function verifierFor(client: Partial<TrustedClient> = {}, keySets: KeySetOptions = {}): Verifier {
  return createVerifier({
    clients: [{ iss: ISS, jwksUri, ...client }],
    replay: new MemoryReplayStore({ now: () => clock }),
    now: () => clock,
    keySets: { ca: cert.cert, ...keySets },
  });
}

const token = (key = es, extra: Record<string, unknown> = {}): Promise<string> =>
  tokenFor(key, 'ES384', claims({}, clock), { jku: jwksUri, ...extra });

async function refuse(v: Verifier, t: string, code: AuthErrorCode): Promise<void> {
  await expectAuthError(v.verify(bearer(t), AUD), code, t);
}

describe('jku', () => {
  test(`${ID}: accepts an Inferno-style token whose "jku" is the registered URL`, async () => {
    const v = verifierFor();
    assert.equal((await v.verify(bearer(await token()), AUD)).iss, ISS);
    assert.deepEqual(server.hits, ['/jwks.json']);
  });

  test(`${ID}: refuses a "jku" other than the registered one, without fetching it`, async () => {
    const v = verifierFor();
    for (const jku of [`${server.origin}/evil.json`, `${jwksUri}?x=1`, `${jwksUri}/`]) {
      await refuse(v, await token(es, { jku }), 'ERR_JWT_JKU');
    }
    assert.deepEqual(server.hits, []);
  });

  test(`${ID}: refuses a "jku" over http with ERR_JWT_JKU, without fetching it`, async () => {
    const v = verifierFor();
    const jku = jwksUri.replace('https:', 'http:');
    await refuse(v, await token(es, { jku }), 'ERR_JWT_JKU');
    assert.deepEqual(server.hits, []);
  });

  test(`${ID}: accepts a token without "jku" (the registered URL is used)`, async () => {
    const v = verifierFor();
    await v.verify(bearer(await tokenFor(es, 'ES384', claims({}, clock))), AUD);
    assert.equal(server.hits.length, 1);
  });

  test(`${ID}: signCdsJwt output verifies against a registered key set URL`, async () => {
    const pair = await generateClientKeyPair('RS384');
    server.reply.body = JSON.stringify({ keys: [pair.publicJwk] });
    const jwt = await signCdsJwt({
      privateJwk: pair.privateJwk,
      iss: ISS,
      aud: AUD,
      jku: jwksUri,
      now: clock,
    });
    await verifierFor().verify(bearer(jwt), AUD);
  });
});

describe('TLS and transport', () => {
  test(`${ID}: a key set host with an untrusted certificate gives ERR_JWKS_TLS`, async () => {
    const other = await makeCert();
    const v = verifierFor({}, { ca: other.cert });
    await refuse(v, await token(), 'ERR_JWKS_TLS');
    const noCa = verifierFor({}, { ca: undefined });
    await refuse(noCa, await token(), 'ERR_JWKS_TLS');
  });

  test(`${ID}: a certificate for another host name gives ERR_JWKS_TLS`, async () => {
    const wrongName = await makeCert('jwks.example.org');
    const s = await startJwksServer(wrongName, [es.publicJwk]);
    try {
      const v = verifierFor({ jwksUri: `${s.origin}/jwks.json` }, { ca: wrongName.cert });
      await refuse(v, await tokenFor(es, 'ES384', claims({}, clock)), 'ERR_JWKS_TLS');
    } finally {
      await s.close();
    }
  });

  for (const ciphers of ['ECDHE-RSA-AES128-SHA', 'AES128-GCM-SHA256']) {
    test(`sec-1 (CDS Hooks JWT): a key set host offering only ${ciphers} over TLS 1.2 is refused with ERR_JWKS_TLS`, async () => {
      const weak = await startJwksServer(cert, [es.publicJwk], { ciphers, maxVersion: 'TLSv1.2' });
      try {
        const v = verifierFor({ jwksUri: `${weak.origin}/jwks.json` });
        const t = await tokenFor(es, 'ES384', claims({}, clock));
        const err = await expectAuthError(v.verify(bearer(t), AUD), 'ERR_JWKS_TLS', t);
        // The handshake fails (no shared suite): no request is ever sent.
        assert.match(err.message, /: (EPROTO|ERR_SSL_[A-Z0-9_]+)$/);
        assert.deepEqual(weak.hits, []);
      } finally {
        await weak.close();
      }
    });
  }

  test('sec-1 (CDS Hooks JWT): a TLS 1.2 key set host offering ECDHE-RSA-AES128-GCM-SHA256 is accepted', async () => {
    const ciphers = 'ECDHE-RSA-AES128-GCM-SHA256';
    const ok = await startJwksServer(cert, [es.publicJwk], { ciphers, maxVersion: 'TLSv1.2' });
    try {
      const v = verifierFor({ jwksUri: `${ok.origin}/jwks.json` });
      assert.equal(
        (await v.verify(bearer(await tokenFor(es, 'ES384', claims({}, clock))), AUD)).iss,
        ISS,
      );
      assert.deepEqual(ok.hits, ['/jwks.json']);
    } finally {
      await ok.close();
    }
  });

  test(`${ID}: an unreachable key set host gives ERR_JWKS_FETCH`, async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const v = verifierFor({ jwksUri: `https://127.0.0.1:${port}/jwks.json` });
    await refuse(v, await tokenFor(es, 'ES384', claims({}, clock)), 'ERR_JWKS_FETCH');
  });

  test(`${ID}: a key set host that does not answer in time gives ERR_JWKS_FETCH`, async () => {
    server.reply.hang = true;
    const started = Date.now();
    await refuse(verifierFor({}, { timeoutMs: 200 }), await token(), 'ERR_JWKS_FETCH');
    assert.ok(Date.now() - started < 2000);
  });

  test(`${ID}: a key set over the size limit gives ERR_JWKS_FETCH`, async () => {
    server.reply.body = JSON.stringify({ keys: [es.publicJwk], pad: 'x'.repeat(70 * 1024) });
    await refuse(verifierFor(), await token(), 'ERR_JWKS_FETCH');
    server.reply.body = JSON.stringify({ keys: [es.publicJwk] });
    await refuse(verifierFor({}, { maxBytes: 50 }), await token(), 'ERR_JWKS_FETCH');
  });

  test(`${ID}: bad JSON, a non-key-set, HTTP errors and redirects give ERR_JWKS_FETCH`, async () => {
    for (const [status, body, headers] of [
      [200, '{not json', {}],
      [200, '[]', {}],
      [404, '{}', {}],
      [302, '', { location: `${server.origin}/elsewhere.json` }],
    ] as const) {
      Object.assign(server.reply, { status, body, headers });
      await refuse(verifierFor(), await token(), 'ERR_JWKS_FETCH');
    }
    assert.ok(!server.hits.includes('/elsewhere.json'));
  });
});

describe('key set content', () => {
  test(`${ID}: a key set with duplicate kids gives ERR_JWKS_DUPLICATE_KID`, async () => {
    const twin = await makeKey('ES384', es.kid);
    server.reply.body = JSON.stringify({ keys: [es.publicJwk, twin.publicJwk] });
    await refuse(verifierFor(), await token(), 'ERR_JWKS_DUPLICATE_KID');
  });

  test(`${ID}: a key whose "use" is not "sig" is skipped (ERR_JWT_KID_UNKNOWN)`, async () => {
    server.reply.body = JSON.stringify({ keys: [{ ...es.publicJwk, use: 'enc' }] });
    await refuse(verifierFor(), await token(), 'ERR_JWT_KID_UNKNOWN');
  });

  test(`${ID}: a key whose "alg" disagrees with the header is refused`, async () => {
    server.reply.body = JSON.stringify({ keys: [{ ...es.publicJwk, alg: 'ES256' }] });
    await refuse(verifierFor(), await token(), 'ERR_JWT_ALG_KEY_MISMATCH');
  });
});

describe('caching', () => {
  test(`${ID}: the key set is fetched once and cached (concurrent calls share it)`, async () => {
    const v = verifierFor();
    const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => token()));
    await Promise.all(tokens.map((t) => v.verify(bearer(t), AUD)));
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 1);
  });

  test(`${ID}: without Cache-Control the set is cached for 300 s`, async () => {
    const v = verifierFor();
    await v.verify(bearer(await token()), AUD);
    clock = NOW + 299;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 1);
    clock = NOW + 301;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 2);
  });

  test(`${ID}: Cache-Control max-age is honoured`, async () => {
    server.reply.headers = { 'cache-control': 'public, max-age=60' };
    const v = verifierFor();
    await v.verify(bearer(await token()), AUD);
    clock = NOW + 59;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 1);
    clock = NOW + 61;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 2);
  });

  test(`${ID}: Cache-Control max-age is capped at 24 h`, async () => {
    server.reply.headers = { 'cache-control': 'max-age=31536000' };
    const v = verifierFor();
    await v.verify(bearer(await token()), AUD);
    clock = NOW + 86_399;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 1);
    clock = NOW + 86_401;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 2);
  });

  test(`${ID}: Cache-Control no-store is cached only for the 30 s cooldown`, async () => {
    server.reply.headers = { 'cache-control': 'no-store' };
    const v = verifierFor();
    await v.verify(bearer(await token()), AUD);
    clock = NOW + 29;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 1);
    clock = NOW + 31;
    await v.verify(bearer(await token()), AUD);
    assert.equal(server.hits.length, 2);
  });

  test(`${ID}: an unknown kid refetches at most once per cooldown, then finds a new key`, async () => {
    const v = verifierFor();
    await v.verify(bearer(await token()), AUD);
    const rotated = await makeKey('ES384');
    clock = NOW + 31;
    await refuse(v, await token(rotated), 'ERR_JWT_KID_UNKNOWN');
    assert.equal(server.hits.length, 2);
    for (let i = 0; i < 5; i += 1) await refuse(v, await token(rotated), 'ERR_JWT_KID_UNKNOWN');
    assert.equal(server.hits.length, 2);
    server.reply.body = JSON.stringify({ keys: [es.publicJwk, rotated.publicJwk] });
    clock = NOW + 50;
    await refuse(v, await token(rotated), 'ERR_JWT_KID_UNKNOWN');
    assert.equal(server.hits.length, 2);
    clock = NOW + 62;
    await v.verify(bearer(await token(rotated)), AUD);
    assert.equal(server.hits.length, 3);
  });
});
