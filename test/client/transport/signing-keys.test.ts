/**
 * SigningKeys: the EHR's CDS Hooks signing keys. Tokens verify with crdkit's own verifier
 * against the published JWK Set; rotation keeps a retired key published until its last token
 * expired; private members are never published; the key store is private to its owner.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createVerifier, MemoryReplayStore } from '../../../src/auth/index.js';
import { SigningKeys, SigningKeysError } from '../../../src/client/transport/index.js';

const ISS = 'https://ehr.example.org/cds-client';
const AUD = 'https://payer.example.org/cds-services/order-sign-crd';
const T0 = 1_800_000_000_000;
const PRIVATE = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

/** crdkit's verifier trusting `jwks` at `nowMs`. */
function verifier(jwks: { keys: object[] }, nowMs: number) {
  const now = () => Math.floor(nowMs / 1000);
  return createVerifier({
    clients: [{ iss: ISS, jwks: jwks as never }],
    replay: new MemoryReplayStore({ now }),
    now,
  });
}

describe('SigningKeys: signing', () => {
  for (const alg of ['ES384', 'RS384'] as const) {
    test(`sec-1: a ${alg} token verifies with crdkit's verifier and the published JWK Set`, async () => {
      const keys = await SigningKeys.create({ alg, now: () => T0 });
      const jku = 'https://ehr.example.org/.well-known/jwks.json';
      const token = await keys.sign(AUD, { iss: ISS, jku: undefined });
      const ok = await verifier(keys.jwks(), T0).verify(`Bearer ${token}`, AUD);
      assert.equal(ok.iss, ISS);
      const header = decodeProtectedHeader(token);
      assert.deepEqual(header, { alg, typ: 'JWT', kid: keys.kid });
      assert.equal(keys.jwks().keys[0]?.kid, header.kid);
      const withJku = await keys.sign(AUD, { iss: ISS, jku });
      assert.equal(decodeProtectedHeader(withJku).jku, jku);
    });
  }

  test('sec-1: every token has a fresh jti', async () => {
    const keys = await SigningKeys.create();
    const jtis = new Set<unknown>();
    for (let i = 0; i < 20; i += 1) jtis.add(decodeJwt(await keys.sign(AUD, { iss: ISS })).jti);
    assert.equal(jtis.size, 20);
  });

  test('sec-1: the lifetime is at most 5 minutes and at most maxTokenLifetimeSeconds', async () => {
    const keys = await SigningKeys.create({ now: () => T0 });
    const claims = decodeJwt(await keys.sign(AUD, { iss: ISS }));
    assert.equal(claims.iat, T0 / 1000);
    assert.equal(claims.exp, T0 / 1000 + 300);
    assert.equal(
      decodeJwt(await keys.sign(AUD, { iss: ISS, lifetimeSeconds: 30 })).exp,
      T0 / 1000 + 30,
    );
    await assert.rejects(keys.sign(AUD, { iss: ISS, lifetimeSeconds: 301 }), RangeError);
    await assert.rejects(keys.sign(AUD, { iss: ISS, lifetimeSeconds: 0 }), RangeError);
    const short = await SigningKeys.create({ maxTokenLifetimeSeconds: 60, now: () => T0 });
    assert.equal(decodeJwt(await short.sign(AUD, { iss: ISS })).exp, T0 / 1000 + 60);
    await assert.rejects(short.sign(AUD, { iss: ISS, lifetimeSeconds: 61 }), RangeError);
    await assert.rejects(
      SigningKeys.create({ maxTokenLifetimeSeconds: 600 }),
      (e: unknown) => e instanceof SigningKeysError && e.code === 'ERR_KEYS_INPUT',
    );
  });

  for (const alg of ['ES384', 'RS384'] as const) {
    test(`sec-1: the ${alg} JWK Set holds public members only`, async () => {
      const keys = await SigningKeys.create({ alg });
      await keys.rotate();
      const jwks = keys.jwks();
      assert.equal(jwks.keys.length, 2);
      for (const jwk of jwks.keys) {
        for (const member of PRIVATE) assert.equal(member in jwk, false, member);
        assert.equal(jwk.alg, alg);
        assert.equal(jwk.use, 'sig');
      }
      assert.ok(!JSON.stringify(jwks).includes('"d"'));
    });
  }
});

describe('SigningKeys: rotation', () => {
  test('sec-1: a retired key stays published until its last token expired, then drops out', async () => {
    let now = T0;
    const keys = await SigningKeys.create({ now: () => now, maxTokenLifetimeSeconds: 300 });
    const oldKid = keys.kid;
    const oldToken = await keys.sign(AUD, { iss: ISS });
    now += 10_000;
    await keys.rotate();
    const rotatedAt = now;
    assert.notEqual(keys.kid, oldKid);
    // New tokens use the new key; the old token still verifies against the published set.
    assert.equal(decodeProtectedHeader(await keys.sign(AUD, { iss: ISS })).kid, keys.kid);
    assert.deepEqual(
      keys.jwks().keys.map((k) => k.kid),
      [keys.kid, oldKid],
    );
    await verifier(keys.jwks(), now).verify(`Bearer ${oldToken}`, AUD);
    // Published through the token lifetime plus the verifier's 60 s clock tolerance.
    now = rotatedAt + (300 + 60) * 1000 - 1;
    assert.equal(keys.jwks().keys.length, 2);
    now += 1;
    assert.deepEqual(
      keys.jwks().keys.map((k) => k.kid),
      [keys.kid],
    );
  });

  test('sec-1: several rotations keep only keys that may still have live tokens', async () => {
    let now = T0;
    const keys = await SigningKeys.create({
      now: () => now,
      maxTokenLifetimeSeconds: 60,
      clockSkewSeconds: 0,
    });
    await keys.rotate();
    now += 30_000;
    await keys.rotate();
    assert.equal(keys.jwks().keys.length, 3);
    now += 30_000;
    assert.equal(keys.jwks().keys.length, 2);
    now += 30_000;
    assert.equal(keys.jwks().keys.length, 1);
  });
});

describe('SigningKeys: key store', () => {
  const dir = () => mkdtempSync(join(tmpdir(), 'crdkit-keys-'));

  test('sec-1: keys persist in a 0600 file and are loaded again', async () => {
    const store = join(dir(), 'keys.json');
    let now = T0;
    const a = await SigningKeys.create({ store, now: () => now });
    await a.rotate();
    assert.equal(statSync(store).mode & 0o777, 0o600);
    const b = await SigningKeys.create({ store, now: () => now });
    assert.equal(b.kid, a.kid);
    assert.deepEqual(b.jwks(), a.jwks());
    const token = await b.sign(AUD, { iss: ISS });
    await verifier(a.jwks(), now).verify(`Bearer ${token}`, AUD);
    // Expired retired keys are dropped from the file on the next load.
    now += 3_600_000;
    await SigningKeys.create({ store, now: () => now });
    assert.equal((JSON.parse(readFileSync(store, 'utf8')) as { keys: unknown[] }).keys.length, 1);
  });

  test('sec-1: a key store readable by others is refused, without key material in the error', async () => {
    const store = join(dir(), 'keys.json');
    await SigningKeys.create({ store });
    const text = readFileSync(store, 'utf8');
    chmodSync(store, 0o644);
    await assert.rejects(SigningKeys.create({ store }), (e: unknown) => {
      assert.ok(e instanceof SigningKeysError);
      assert.equal(e.code, 'ERR_KEYSTORE_MODE');
      assert.equal(
        e.message,
        'the signing key store is accessible to other users; expected mode 0600',
      );
      return true;
    });
    const d = (JSON.parse(text) as { keys: Array<{ privateJwk: { d: string } }> }).keys[0]!
      .privateJwk.d;
    assert.ok(d.length > 20);
  });

  test('sec-1: a damaged key store is refused with a fixed message', async () => {
    const store = join(dir(), 'keys.json');
    writeFileSync(store, '{"keys":[{"privateJwk":{"kty":"EC","x":"secret-ish"}}]}', {
      mode: 0o600,
    });
    await assert.rejects(
      SigningKeys.create({ store }),
      (e: unknown) =>
        e instanceof SigningKeysError &&
        e.code === 'ERR_KEYSTORE_FORMAT' &&
        !e.message.includes('secret-ish'),
    );
    writeFileSync(store, 'not json', { mode: 0o600 });
    await assert.rejects(SigningKeys.create({ store }), SigningKeysError);
  });

  test('sec-1: changing the configured algorithm rotates to a key of that algorithm', async () => {
    const store = join(dir(), 'keys.json');
    const es = await SigningKeys.create({ store });
    const rs = await SigningKeys.create({ store, alg: 'RS384' });
    assert.notEqual(rs.kid, es.kid);
    assert.deepEqual(
      rs.jwks().keys.map((k) => k.alg),
      ['RS384', 'ES384'],
    );
  });
});
