/**
 * Every kind of refused token, sent to the running server: each answer is a 401 with the
 * expected code, and neither the answer nor any log line holds the token or any part of it.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { send } from '../helpers/https.js';
import { orderRequest } from '../helpers/requests.js';
import { startTestServer, TEST_ISS, type TestServer } from '../helpers/server.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.close());

const SIGN = '/cds-services/order-sign-crd';
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

async function signed(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key?: JWK,
): Promise<string> {
  const jwk = key ?? server.privateJwk;
  const k = await importJWK(jwk, 'ES384');
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: server.privateJwk.kid!, ...header })
    .sign(k);
}

const good = (over: Record<string, unknown> = {}) => ({
  iss: TEST_ISS,
  aud: `${server.base}${SIGN}`,
  iat: now(),
  exp: now() + 300,
  jti: randomBytes(16).toString('hex'),
  ...over,
});

async function attackerKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES384', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: server.privateJwk.kid! };
}

const cases: Array<[string, () => Promise<string>, string]> = [
  ['alg none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(good())}.`, 'ERR_JWT_ALG'],
  [
    'HS256 keyed with the public key',
    async () => {
      const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: server.privateJwk.kid })}.${b64(good())}`;
      const { d: _d, ...pub } = server.privateJwk;
      const mac = createHmac('sha256', JSON.stringify(pub)).update(input).digest('base64url');
      return `${input}.${mac}`;
    },
    'ERR_JWT_ALG',
  ],
  ['a wrong typ', () => signed({ typ: 'at+jwt' }, good()), 'ERR_JWT_TYP'],
  ['an unknown kid', () => signed({ kid: 'nope' }, good()), 'ERR_JWT_KID_UNKNOWN'],
  ['an untrusted iss', () => signed({}, good({ iss: 'https://evil.test' })), 'ERR_JWT_ISS'],
  [
    'another audience',
    () => signed({}, good({ aud: `${server.base}/cds-services/x` })),
    'ERR_JWT_AUD',
  ],
  [
    'an expired token',
    () => signed({}, good({ iat: now() - 900, exp: now() - 600 })),
    'ERR_JWT_EXP',
  ],
  [
    'an iat in the future',
    () => signed({}, good({ iat: now() + 600, exp: now() + 700 })),
    'ERR_JWT_IAT',
  ],
  ['a lifetime over 300 s', () => signed({}, good({ exp: now() + 3600 })), 'ERR_JWT_LIFETIME'],
  ['no jti', () => signed({}, good({ jti: undefined })), 'ERR_JWT_JTI'],
  ['a jku', () => signed({ jku: 'https://127.0.0.1:1/jwks' }, good()), 'ERR_JWT_JKU'],
  [
    'an embedded attacker jwk',
    async () => {
      const key = await attackerKey();
      const { d: _d, ...pub } = key;
      return signed({ jwk: pub }, good(), key);
    },
    'ERR_JWT_SIGNATURE',
  ],
  [
    'an attacker signature',
    async () => signed({}, good(), await attackerKey()),
    'ERR_JWT_SIGNATURE',
  ],
  [
    'an oversized token',
    async () => `${b64({ alg: 'ES384' })}.${'A'.repeat(9000)}.x`,
    'ERR_JWT_TOO_LARGE',
  ],
];

describe('refused tokens at the server: the right code, nothing logged (sec-1)', () => {
  for (const [what, make, code] of cases) {
    it(`sec-1 (CDS Hooks JWT): ${what} is a 401 ${code}, and no log line holds the token`, async () => {
      const token = await make();
      const before = server.logs.length;
      const res = await send(`${server.base}${SIGN}`, {
        method: 'POST',
        ca: server.ca,
        body: JSON.stringify(orderRequest()),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 401);
      assert.equal(res.json.issue[0].details.coding[0].code, code);
      await new Promise((r) => setTimeout(r, 30));
      const lines = server.logs.slice(before).join('\n');
      assert.ok(lines.includes(code), 'the refusal is logged with its code');
      for (const part of token.split('.').filter((p) => p.length > 8)) {
        assert.ok(!lines.includes(part) && !res.text.includes(part));
      }
    });
  }

  it('sec-1 (CDS Hooks JWT): a replayed token is a 401 ERR_JWT_REPLAY, nothing logged', async () => {
    const token = await signed({}, good());
    const post = () =>
      send(`${server.base}${SIGN}`, {
        method: 'POST',
        ca: server.ca,
        body: JSON.stringify(orderRequest()),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      });
    assert.equal((await post()).status, 200);
    const before = server.logs.length;
    const again = await post();
    assert.equal(again.status, 401);
    assert.equal(again.json.issue[0].details.coding[0].code, 'ERR_JWT_REPLAY');
    await new Promise((r) => setTimeout(r, 30));
    assert.ok(!server.logs.slice(before).join('\n').includes(token.split('.')[2]!));
  });
});
