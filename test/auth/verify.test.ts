/**
 * The CDS Hooks JWT checks against a client with an inline (out-of-band) JWK Set: header,
 * issuer, audience, times, nonce and signature rules (CRD sec-1 via CDS Hooks security).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { createPublicKey, createSign, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import { importPKCS8 } from 'jose';
import { generate } from 'selfsigned';
import { createVerifier, MemoryReplayStore, type Verifier } from '../../src/auth/index.js';
import {
  AUD,
  bearer,
  claims,
  expectAuthError,
  forge,
  hmacToken,
  ISS,
  makeKey,
  NOW,
  rawEs384,
  sign,
  tokenFor,
  type TestKey,
} from './helpers.js';

const ID = 'sec-1 (CDS Hooks JWT)';
let es: TestKey;
let rs: TestKey;
let p256: TestKey;
let attacker: TestKey;
let verifier: Verifier;
let weakKid: string;
let weakSign: (input: string) => string;

before(async () => {
  es = await makeKey('ES384');
  rs = await makeKey('RS384');
  p256 = await makeKey('ES256');
  attacker = await makeKey('ES384', es.kid);
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  weakKid = 'weak-rsa';
  weakSign = (input) => createSign('RSA-SHA384').update(input).sign(weak.privateKey, 'base64url');
  const weakJwk = { ...weak.publicKey.export({ format: 'jwk' }), kid: weakKid };
  verifier = createVerifier({
    clients: [{ iss: ISS, jwks: { keys: [es.publicJwk, rs.publicJwk, p256.publicJwk, weakJwk] } }],
    replay: new MemoryReplayStore({ now: () => NOW }),
    now: () => NOW,
  });
});

const refuse = async (token: string, code: Parameters<typeof expectAuthError>[1], aud = AUD) =>
  expectAuthError(verifier.verify(bearer(token), aud), code, token);

describe('valid tokens', () => {
  test(`${ID}: accepts an ES384 token shaped like Inferno's`, async () => {
    const payload = claims();
    const result = await verifier.verify(bearer(await tokenFor(es, 'ES384', payload)), AUD);
    assert.equal(result.iss, ISS);
    assert.equal(result.jti, payload.jti);
    assert.equal(result.client.iss, ISS);
    assert.equal(result.tenant, undefined);
  });

  test(`${ID}: accepts an RS384 token`, async () => {
    const result = await verifier.verify(bearer(await tokenFor(rs, 'RS384')), AUD);
    assert.equal(result.iss, ISS);
  });

  test(`${ID}: accepts "aud" as an array containing the URL, and returns "tenant"`, async () => {
    const token = await tokenFor(es, 'ES384', claims({ aud: ['urn:other', AUD], tenant: 't-1' }));
    const result = await verifier.verify(bearer(token), AUD);
    assert.equal(result.tenant, 't-1');
  });

  test(`${ID}: accepts "exp" and "iat" off by less than the clock skew`, async () => {
    const late = claims({ iat: NOW - 330, exp: NOW - 30 });
    await verifier.verify(bearer(await tokenFor(es, 'ES384', late)), AUD);
    const early = claims({ iat: NOW + 30, exp: NOW + 330 });
    await verifier.verify(bearer(await tokenFor(es, 'ES384', early)), AUD);
  });

  test(`${ID}: accepts a lower-case "bearer" scheme`, async () => {
    await verifier.verify(`bearer ${await tokenFor(es, 'ES384')}`, AUD);
  });
});

describe('Authorization header and structure', () => {
  test(`${ID}: refuses a missing header with ERR_AUTH_MISSING`, async () => {
    await expectAuthError(verifier.verify(undefined, AUD), 'ERR_AUTH_MISSING');
    await expectAuthError(verifier.verify('', AUD), 'ERR_AUTH_MISSING');
    await expectAuthError(verifier.verify('Bearer ', AUD), 'ERR_AUTH_MISSING');
  });

  test(`${ID}: refuses a non-Bearer scheme with ERR_AUTH_MISSING`, async () => {
    const token = await tokenFor(es, 'ES384');
    await expectAuthError(verifier.verify(`Basic ${token}`, AUD), 'ERR_AUTH_MISSING', token);
    await expectAuthError(verifier.verify(token, AUD), 'ERR_AUTH_MISSING', token);
  });

  test(`${ID}: refuses malformed tokens with ERR_JWT_MALFORMED`, async () => {
    const good = await tokenFor(es, 'ES384');
    const [h, p, s] = good.split('.') as [string, string, string];
    const notJson = Buffer.from('not json').toString('base64url');
    const array = Buffer.from('[1,2]').toString('base64url');
    for (const bad of [
      'abc',
      `${h}.${p}`,
      `${good}.x`,
      `${notJson}.${p}.${s}`,
      `${h}.${array}.${s}`,
      `${h}.${p}.${s}!`,
      `${h}.${p}.${s} x`,
      `.${p}.${s}`,
    ]) {
      await refuse(bad, 'ERR_JWT_MALFORMED');
    }
  });

  test('sec-1 (CDS Hooks JWT): refuses an Authorization value with a comma-joined second credential with ERR_JWT_MALFORMED', async () => {
    // Two Authorization headers may reach us joined by a comma (RFC 9110 §5.3).
    const good = await tokenFor(es, 'ES384');
    const other = await tokenFor(rs, 'RS384');
    const big = await tokenFor(es, 'ES384', claims({ pad: 'a'.repeat(9000) }));
    const secrets = [other, ...other.split('.'), big, ...big.split('.')];
    for (const value of [
      'Bearer a, Bearer b',
      `Bearer ${good}, Bearer ${other}`,
      `Bearer ${good},Bearer ${other}`,
      `Bearer ${good}, Basic dXNlcjpwYXNz`,
      `Bearer ${good},`,
      `Bearer ${good}, ${other}`,
      `Bearer , Bearer ${good}`,
      `Bearer ${other}, Bearer ${good}`,
      `Bearer ${big}, Bearer ${good}`,
    ]) {
      await expectAuthError(verifier.verify(value, AUD), 'ERR_JWT_MALFORMED', good, secrets);
    }
    // Nothing was spent: the first credential alone is still accepted once.
    assert.equal((await verifier.verify(bearer(good), AUD)).iss, ISS);
    assert.equal((await verifier.verify(bearer(other), AUD)).iss, ISS);
  });

  test(`${ID}: refuses a "crit" header with ERR_JWT_MALFORMED`, async () => {
    const header = { alg: 'ES384', typ: 'JWT', kid: es.kid };
    await refuse(rawEs384({ ...header, crit: ['exp'] }, claims(), es), 'ERR_JWT_MALFORMED');
    await refuse(
      rawEs384({ ...header, crit: ['b64'], b64: false }, claims(), es),
      'ERR_JWT_MALFORMED',
    );
  });

  test(`${ID}: refuses an oversized token with ERR_JWT_TOO_LARGE`, async () => {
    const token = await tokenFor(es, 'ES384', claims({ pad: 'a'.repeat(9000) }));
    await refuse(token, 'ERR_JWT_TOO_LARGE');
  });
});

describe('algorithms', () => {
  test(`${ID}: refuses alg "none" with ERR_JWT_ALG`, async () => {
    await refuse(forge({ alg: 'none', typ: 'JWT', kid: es.kid }, claims()), 'ERR_JWT_ALG');
    await refuse(forge({ alg: 'None', typ: 'JWT', kid: es.kid }, claims()), 'ERR_JWT_ALG');
    await refuse(forge({ typ: 'JWT', kid: es.kid }, claims()), 'ERR_JWT_ALG');
  });

  for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
    test(`${ID}: refuses ${alg} with ERR_JWT_ALG`, async () => {
      const token = hmacToken(alg, { typ: 'JWT', kid: es.kid }, claims(), 'secret');
      await refuse(token, 'ERR_JWT_ALG');
    });
  }

  test(`${ID}: refuses HS256 keyed with the client's public key with ERR_JWT_ALG`, async () => {
    const spki = { type: 'spki', format: 'pem' } as const;
    const pem = createPublicKey({ key: rs.publicJwk as JsonWebKey, format: 'jwk' }).export(spki);
    for (const secret of [pem, JSON.stringify(rs.publicJwk), JSON.stringify(es.publicJwk)]) {
      const header = { typ: 'JWT', kid: rs.kid };
      await refuse(hmacToken('HS256', header, claims(), secret), 'ERR_JWT_ALG');
    }
  });

  test(`${ID}: refuses ES256, PS384, EdDSA and RS256 with ERR_JWT_ALG`, async () => {
    await refuse(await tokenFor(p256, 'ES256'), 'ERR_JWT_ALG');
    for (const alg of ['PS384', 'EdDSA', 'RS256', 'ES512', 'RS512']) {
      await refuse(forge({ alg, typ: 'JWT', kid: rs.kid }, claims(), 'AAAA'), 'ERR_JWT_ALG');
    }
  });

  test(`${ID}: refuses a header alg that disagrees with the key (ERR_JWT_ALG_KEY_MISMATCH)`, async () => {
    // RS384 header naming the EC key, signed with an RSA key.
    const rsAsEs = await sign({ alg: 'RS384', typ: 'JWT', kid: es.kid }, claims(), rs.privateKey);
    await refuse(rsAsEs, 'ERR_JWT_ALG_KEY_MISMATCH');
    const esAsRs = await sign({ alg: 'ES384', typ: 'JWT', kid: rs.kid }, claims(), es.privateKey);
    await refuse(esAsRs, 'ERR_JWT_ALG_KEY_MISMATCH');
    // ES384 header naming a registered P-256 key.
    const wrongCurve = forge({ alg: 'ES384', typ: 'JWT', kid: p256.kid }, claims(), 'AAAA');
    await refuse(wrongCurve, 'ERR_JWT_ALG_KEY_MISMATCH');
  });

  test(`${ID}: refuses an RSA key under 2048 bits with ERR_JWKS_KEY_INVALID`, async () => {
    const input = forge({ alg: 'RS384', typ: 'JWT', kid: weakKid }, claims()).slice(0, -1);
    await refuse(`${input}.${weakSign(input)}`, 'ERR_JWKS_KEY_INVALID');
  });
});

describe('header fields', () => {
  test(`${ID}: refuses a missing or wrong "typ" with ERR_JWT_TYP`, async () => {
    for (const typ of [undefined, 'jwt', 'at+jwt', 'JOSE', 1]) {
      const header = { alg: 'ES384', kid: es.kid, ...(typ === undefined ? {} : { typ }) };
      await refuse(await sign(header, claims(), es.privateKey), 'ERR_JWT_TYP');
    }
  });

  test(`${ID}: refuses a missing "kid" with ERR_JWT_KID_MISSING`, async () => {
    await refuse(
      await sign({ alg: 'ES384', typ: 'JWT' }, claims(), es.privateKey),
      'ERR_JWT_KID_MISSING',
    );
    await refuse(
      await sign({ alg: 'ES384', typ: 'JWT', kid: '' }, claims(), es.privateKey),
      'ERR_JWT_KID_MISSING',
    );
  });

  test(`${ID}: refuses an unknown "kid" with ERR_JWT_KID_UNKNOWN`, async () => {
    const token = await sign({ alg: 'ES384', typ: 'JWT', kid: 'nope' }, claims(), es.privateKey);
    await refuse(token, 'ERR_JWT_KID_UNKNOWN');
  });

  test(`${ID}: refuses any "jku" for a client registered with an inline key set`, async () => {
    for (const jku of ['https://ehr.example.org/jwks.json', 'http://127.0.0.1:9/jwks']) {
      await refuse(await tokenFor(es, 'ES384', claims(), { jku }), 'ERR_JWT_JKU');
    }
  });

  test(`${ID}: ignores an embedded "jwk" header: an attacker key gives ERR_JWT_SIGNATURE`, async () => {
    const token = await tokenFor(attacker, 'ES384', claims(), { jwk: attacker.publicJwk });
    await refuse(token, 'ERR_JWT_SIGNATURE');
  });

  test(`${ID}: ignores "x5c"/"x5u": valid with junk, attacker-signed still refused`, async () => {
    const pems = await generate(undefined, { keyType: 'ec', curve: 'P-384', algorithm: 'sha384' });
    const x5c = [pems.cert.replace(/-----[A-Z ]+-----|\s/g, '')];
    const ok = await tokenFor(es, 'ES384', claims(), { x5c, x5u: 'https://evil.example/c' });
    await verifier.verify(bearer(ok), AUD);
    const attackerKey = await importPKCS8(pems.private, 'ES384');
    const bad = await sign({ alg: 'ES384', typ: 'JWT', kid: es.kid, x5c }, claims(), attackerKey);
    await refuse(bad, 'ERR_JWT_SIGNATURE');
  });
});

describe('signature', () => {
  test(`${ID}: refuses a tampered signature with ERR_JWT_SIGNATURE`, async () => {
    const token = await tokenFor(es, 'ES384');
    const [h, p, s] = token.split('.') as [string, string, string];
    const flipped = `${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    await refuse(`${h}.${p}.${flipped}`, 'ERR_JWT_SIGNATURE');
    await refuse(`${h}.${p}.`, 'ERR_JWT_SIGNATURE');
    await refuse(`${h}.${p}.${s.slice(0, 40)}`, 'ERR_JWT_SIGNATURE');
  });

  test(`${ID}: refuses a tampered payload with ERR_JWT_SIGNATURE`, async () => {
    const token = await tokenFor(es, 'ES384', claims({ aud: 'https://other.example/x' }));
    const [h, , s] = token.split('.') as [string, string, string];
    const p = Buffer.from(JSON.stringify(claims())).toString('base64url');
    await refuse(`${h}.${p}.${s}`, 'ERR_JWT_SIGNATURE');
  });

  test(`${ID}: refuses an RS384 token signed by another RSA key`, async () => {
    const other = await makeKey('RS384', rs.kid);
    await refuse(await tokenFor(other, 'RS384'), 'ERR_JWT_SIGNATURE');
  });
});
