/**
 * The client side of the CDS Hooks JWT: signed tokens carry the required header and claims
 * (alg, typ, kid, jku; iss, aud, iat, exp, jti) and verify with the service-side check.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import {
  createVerifier,
  generateClientKeyPair,
  MemoryReplayStore,
  signCdsJwt,
} from '../../src/auth/index.js';
import { AUD, bearer, ISS, NOW } from './helpers.js';

const ID = 'sec-1 (CDS Hooks JWT, client)';

describe('generateClientKeyPair', () => {
  for (const alg of ['ES384', 'RS384'] as const) {
    test(`${ID}: makes a ${alg} pair with kid, alg and use "sig"`, async () => {
      const { privateJwk, publicJwk } = await generateClientKeyPair(alg);
      for (const jwk of [privateJwk, publicJwk]) {
        assert.equal(jwk.alg, alg);
        assert.equal(jwk.use, 'sig');
        assert.match(jwk.kid ?? '', /^[0-9a-f]{32}$/);
      }
      assert.equal(privateJwk.kid, publicJwk.kid);
      assert.equal(typeof privateJwk.d, 'string');
      assert.equal(publicJwk.d, undefined);
      assert.equal(publicJwk.kty, alg === 'ES384' ? 'EC' : 'RSA');
      if (alg === 'ES384') assert.equal(publicJwk.crv, 'P-384');
    });
  }
});

describe('signCdsJwt', () => {
  test(`${ID}: signs the CDS Hooks header and claims, verified by the service`, async () => {
    for (const alg of ['ES384', 'RS384'] as const) {
      const { privateJwk, publicJwk } = await generateClientKeyPair(alg);
      const jku = 'https://ehr.example.org/jwks.json';
      const token = await signCdsJwt({ privateJwk, iss: ISS, aud: AUD, now: NOW, tenant: 'org-1' });
      const header = decodeProtectedHeader(token);
      assert.deepEqual(header, { alg, typ: 'JWT', kid: publicJwk.kid });
      const claims = decodeJwt(token);
      assert.equal(claims.iss, ISS);
      assert.equal(claims.aud, AUD);
      assert.equal(claims.iat, NOW);
      assert.equal(claims.exp, NOW + 300);
      assert.equal(claims.tenant, 'org-1');
      assert.match(String(claims.jti), /^[0-9a-f]{64}$/);
      const verifier = createVerifier({
        clients: [{ iss: ISS, jwks: { keys: [publicJwk] } }],
        replay: new MemoryReplayStore({ now: () => NOW }),
        now: () => NOW,
      });
      const ok = await verifier.verify(bearer(token), AUD);
      assert.equal(ok.tenant, 'org-1');
      const withJku = await signCdsJwt({ privateJwk, iss: ISS, aud: AUD, jku, kid: 'k2' });
      assert.deepEqual(decodeProtectedHeader(withJku), { alg, typ: 'JWT', kid: 'k2', jku });
    }
  });

  test(`${ID}: each token has a fresh jti`, async () => {
    const { privateJwk } = await generateClientKeyPair();
    const jtis = new Set<unknown>();
    for (let i = 0; i < 20; i += 1) {
      jtis.add(decodeJwt(await signCdsJwt({ privateJwk, iss: ISS, aud: AUD })).jti);
    }
    assert.equal(jtis.size, 20);
  });

  test(`${ID}: refuses lifetimes over 300 s, public keys and missing fields`, async () => {
    const { privateJwk, publicJwk } = await generateClientKeyPair();
    const base = { privateJwk, iss: ISS, aud: AUD };
    const short = decodeJwt(await signCdsJwt({ ...base, lifetimeSeconds: 30, now: NOW }));
    assert.equal(short.exp, NOW + 30);
    await assert.rejects(signCdsJwt({ ...base, lifetimeSeconds: 301 }), RangeError);
    await assert.rejects(signCdsJwt({ ...base, lifetimeSeconds: 0 }), RangeError);
    await assert.rejects(signCdsJwt({ ...base, privateJwk: publicJwk }), TypeError);
    await assert.rejects(signCdsJwt({ ...base, aud: '' }), TypeError);
    const { kid: _kid, ...noKid } = privateJwk;
    await assert.rejects(signCdsJwt({ ...base, privateJwk: noKid }), TypeError);
  });
});
