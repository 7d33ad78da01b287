/**
 * The CDS Hooks JWT claim rules: `iss` allowlist, `aud` = the URL invoked, `exp`/`iat`
 * required with a bounded lifetime, `jti` required and never reused; plus the verifier's
 * refusal of unsafe client lists.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { createVerifier, MemoryReplayStore, type Verifier } from '../../src/auth/index.js';
import {
  AUD,
  bearer,
  claims,
  expectAuthError,
  ISS,
  makeKey,
  NOW,
  rawEs384,
  tokenFor,
  type TestKey,
} from './helpers.js';

const ID = 'sec-1 (CDS Hooks JWT)';
let es: TestKey;
let verifier: Verifier;

before(async () => {
  es = await makeKey('ES384');
  verifier = createVerifier({
    clients: [{ iss: ISS, jwks: { keys: [es.publicJwk] } }],
    replay: new MemoryReplayStore({ now: () => NOW }),
    now: () => NOW,
  });
});

type Code = Parameters<typeof expectAuthError>[1];

/** Signs `over` claims and expects `code`; claim values must not leak either. */
async function refuse(over: Record<string, unknown>, code: Code, aud = AUD): Promise<void> {
  const payload = claims(over);
  const token = await tokenFor(es, 'ES384', payload);
  const values = Object.values(payload).filter((v): v is string => typeof v === 'string');
  await expectAuthError(verifier.verify(bearer(token), aud), code, token, values);
}

describe('iss and aud', () => {
  test(`${ID}: a token signed outside jose with the registered key passes`, async () => {
    const token = rawEs384({ alg: 'ES384', typ: 'JWT', kid: es.kid }, claims(), es);
    await verifier.verify(bearer(token), AUD);
  });

  test(`${ID}: refuses a missing "iss" with ERR_JWT_ISS`, async () => {
    await refuse({ iss: undefined }, 'ERR_JWT_ISS');
    await refuse({ iss: 42 }, 'ERR_JWT_ISS');
  });

  test(`${ID}: refuses an untrusted "iss" with ERR_JWT_ISS`, async () => {
    await refuse({ iss: 'https://evil.example.org/cds-client' }, 'ERR_JWT_ISS');
    await refuse({ iss: `${ISS}/` }, 'ERR_JWT_ISS');
  });

  test(`${ID}: refuses a missing "aud" with ERR_JWT_AUD`, async () => {
    await refuse({ aud: undefined }, 'ERR_JWT_AUD');
    await refuse({ aud: [] }, 'ERR_JWT_AUD');
  });

  test(`${ID}: refuses the "aud" of another service with ERR_JWT_AUD`, async () => {
    await refuse({ aud: 'https://payer.example.org/cds-services/order-select-crd' }, 'ERR_JWT_AUD');
    await refuse({ aud: 'https://payer.example.org/cds-services' }, 'ERR_JWT_AUD');
  });

  test(`${ID}: refuses "aud" with a trailing slash or other case (exact match only)`, async () => {
    await refuse({ aud: `${AUD}/` }, 'ERR_JWT_AUD');
    await refuse({ aud: AUD.toUpperCase() }, 'ERR_JWT_AUD');
    await refuse({}, 'ERR_JWT_AUD', `${AUD}/`);
  });

  test(`${ID}: refuses an "aud" array without the URL with ERR_JWT_AUD`, async () => {
    await refuse({ aud: ['https://payer.example.org/cds-services', `${AUD}/`] }, 'ERR_JWT_AUD');
  });
});

describe('times', () => {
  test(`${ID}: refuses a missing or non-numeric "exp" with ERR_JWT_EXP`, async () => {
    await refuse({ exp: undefined }, 'ERR_JWT_EXP');
    await refuse({ exp: String(NOW + 300) }, 'ERR_JWT_EXP');
  });

  test(`${ID}: refuses an "exp" past the clock skew with ERR_JWT_EXP`, async () => {
    await refuse({ iat: NOW - 361, exp: NOW - 61 }, 'ERR_JWT_EXP');
  });

  test(`${ID}: refuses a missing "iat" with ERR_JWT_IAT`, async () => {
    await refuse({ iat: undefined }, 'ERR_JWT_IAT');
    await refuse({ iat: null }, 'ERR_JWT_IAT');
  });

  test(`${ID}: refuses an "iat" in the future beyond the skew with ERR_JWT_IAT`, async () => {
    await refuse({ iat: NOW + 61, exp: NOW + 361 }, 'ERR_JWT_IAT');
  });

  test(`${ID}: refuses an "nbf" in the future beyond the skew with ERR_JWT_NBF`, async () => {
    await refuse({ nbf: NOW + 61 }, 'ERR_JWT_NBF');
  });

  test(`${ID}: refuses a lifetime over 300 s or not positive with ERR_JWT_LIFETIME`, async () => {
    await refuse({ exp: NOW + 301 }, 'ERR_JWT_LIFETIME');
    await refuse({ exp: NOW + 86_400 }, 'ERR_JWT_LIFETIME');
    await refuse({ iat: NOW, exp: NOW }, 'ERR_JWT_LIFETIME');
  });
});

describe('jti, tenant and replay', () => {
  test(`${ID}: refuses a missing, non-string or overlong "jti" with ERR_JWT_JTI`, async () => {
    await refuse({ jti: undefined }, 'ERR_JWT_JTI');
    await refuse({ jti: 12345 }, 'ERR_JWT_JTI');
    await refuse({ jti: '' }, 'ERR_JWT_JTI');
    await refuse({ jti: 'j'.repeat(257) }, 'ERR_JWT_JTI');
  });

  test(`${ID}: refuses a non-string "tenant" with ERR_JWT_TENANT`, async () => {
    await refuse({ tenant: 7 }, 'ERR_JWT_TENANT');
  });

  test(`${ID}: refuses a replayed "jti" with ERR_JWT_REPLAY (memory store)`, async () => {
    const token = await tokenFor(es, 'ES384');
    await verifier.verify(bearer(token), AUD);
    await expectAuthError(verifier.verify(bearer(token), AUD), 'ERR_JWT_REPLAY', token);
    const sameJti = await tokenFor(
      es,
      'ES384',
      claims({
        jti: JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()).jti,
      }),
    );
    await expectAuthError(verifier.verify(bearer(sameJti), AUD), 'ERR_JWT_REPLAY', sameJti);
  });

  test(`${ID}: a refused token does not burn its "jti"`, async () => {
    const token = await tokenFor(es, 'ES384');
    await expectAuthError(verifier.verify(bearer(token), `${AUD}x`), 'ERR_JWT_AUD', token);
    const ok = await verifier.verify(bearer(token), AUD);
    assert.equal(ok.iss, ISS);
  });
});

describe('client list', () => {
  test(`${ID}: createVerifier refuses unsafe trusted-client lists`, async () => {
    const replay = new MemoryReplayStore();
    const keys = { keys: [es.publicJwk] };
    const bad = [
      [{ iss: '', jwks: keys }],
      [
        { iss: ISS, jwks: keys },
        { iss: ISS, jwks: keys },
      ],
      [{ iss: ISS }],
      [{ iss: ISS, jwksUri: 'http://ehr.example.org/jwks.json' }],
      [{ iss: ISS, jwks: { keys: [es.publicJwk, es.publicJwk] } }],
    ];
    for (const clients of bad) {
      assert.throws(() => createVerifier({ clients, replay }), TypeError);
    }
  });

  test(`${ID}: verify() insists on an audience`, async () => {
    const token = await tokenFor(es, 'ES384');
    await assert.rejects(verifier.verify(bearer(token), ''), TypeError);
  });
});
