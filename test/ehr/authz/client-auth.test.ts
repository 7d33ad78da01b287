/**
 * Client authentication at the token endpoint, one SMART client kind at a time: symmetric
 * (`client_secret_basic` only), asymmetric (`private_key_jwt`, ES384 or RS384 only, with every
 * assertion rule of SMART App Launch 2.2 refused one by one), public (`none`). A request whose
 * authentication passes fails later on its bogus code (`invalid_grant`); one whose
 * authentication fails is `invalid_client`, audited and logged with the reason, never a secret.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import {
  assertionFields,
  basic,
  clientAssertion,
  form,
  logsFree,
  SECRET,
  startHarness,
  tokenRequest,
  type AssertionOptions,
  type Harness,
} from './helpers.js';

const BOGUS_CODE = {
  grant_type: 'authorization_code',
  code: 'no-such-code',
  redirect_uri: 'https://app.example/callback',
  code_verifier: 'v'.repeat(43),
};
const INVALID_CLIENT = {
  error: 'invalid_client',
  error_description: 'client authentication failed',
};

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(() => h.close());

/** The log detail of the last refusal. */
function lastRefusalDetail(): string | undefined {
  const lines = h.logs.map((l) => JSON.parse(l) as { msg: string; detail?: string });
  return lines.filter((l) => l.msg === 'OAuth request refused').at(-1)?.detail;
}

describe('smart: client-confidential-symmetric', () => {
  test('smart: client_secret_basic authenticates the client', async () => {
    const res = await tokenRequest(h, BOGUS_CODE, basic('app-sym'));
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_grant');
  });

  test('smart: a wrong secret is invalid_client, audited, and the secret is not logged', async () => {
    const wrong = `${SECRET}-wrong`;
    const res = await tokenRequest(h, BOGUS_CODE, basic('app-sym', wrong));
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, INVALID_CLIENT);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(lastRefusalDetail(), 'invalid secret provided');
    const refused = h.audit.events('refused').at(-1)!;
    assert.deepEqual(refused.client, { id: 'app-sym', name: 'Symmetric app' });
    assert.equal(refused.errorCode, 'invalid_client');
    assert.ok(logsFree(h.logs, [wrong, SECRET]));
  });

  test('smart: client_secret_post is refused (basic only)', async () => {
    const res = await tokenRequest(h, {
      ...BOGUS_CODE,
      client_id: 'app-sym',
      client_secret: SECRET,
    });
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, INVALID_CLIENT);
    assert.equal(
      lastRefusalDetail(),
      'the provided authentication mechanism does not match the registered client authentication method',
    );
  });
});

describe('smart: client-confidential-asymmetric (private_key_jwt)', () => {
  test('smart: an ES384 assertion authenticates the client', async () => {
    const assertion = await clientAssertion(h, 'backend', h.keys.backend);
    const res = await tokenRequest(h, {
      grant_type: 'client_credentials',
      scope: 'system/Patient.rs',
      ...assertionFields(assertion),
    });
    assert.equal(res.status, 200);
    assert.equal(res.json.token_type, 'Bearer');
  });

  test('smart: an RS384 assertion authenticates the client', async () => {
    const assertion = await clientAssertion(h, 'app-rsa', h.keys.rs384);
    const res = await tokenRequest(h, { ...BOGUS_CODE, ...assertionFields(assertion) });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_grant');
  });

  const now = () => Math.floor(Date.now() / 1000);
  const cases: Array<{ name: string; over: () => AssertionOptions; detail: string | RegExp }> = [
    {
      name: 'iss is not the client id',
      over: () => ({ iss: 'someone-else' }),
      detail: 'iss (JWT issuer) must be the client_id',
    },
    {
      name: 'sub names another client than iss',
      over: () => ({ sub: 'app-asym' }),
      detail: 'iss (JWT issuer) must be the client_id',
    },
    {
      name: 'aud is the issuer, not the token URL',
      over: () => ({ aud: `${h.base}/oauth` }),
      detail: 'aud (JWT audience) must be the token endpoint URL',
    },
    {
      name: 'aud is another endpoint',
      over: () => ({ aud: `${h.base}/oauth/token/introspection` }),
      detail: 'audience (aud) must equal the endpoint url, issuer identifier or token endpoint url',
    },
    {
      name: 'exp is more than five minutes ahead',
      over: () => ({ exp: now() + 330 }),
      detail: 'exp (JWT expiration) must be at most 5 minutes ahead',
    },
    { name: 'exp has passed', over: () => ({ exp: now() - 60 }), detail: 'jwt expired' },
    {
      name: 'exp is missing',
      over: () => ({ exp: undefined }),
      detail: 'expiration must be specified in the client_assertion JWT',
    },
    {
      name: 'jti is missing',
      over: () => ({ jti: undefined }),
      detail: 'unique jti (JWT ID) must be provided in the client_assertion JWT',
    },
    {
      name: 'the header names a jku',
      over: () => ({ jku: 'https://attacker.example/jwks' }),
      detail: 'jku is not supported: client keys are registered',
    },
  ];
  for (const { name, over, detail } of cases) {
    test(`smart: refused when ${name}`, async () => {
      const assertion = await clientAssertion(h, 'backend', h.keys.backend, over());
      const res = await tokenRequest(h, {
        grant_type: 'client_credentials',
        scope: 'system/Patient.rs',
        ...assertionFields(assertion),
      });
      assert.equal(res.status, 401);
      assert.deepEqual(res.json, INVALID_CLIENT);
      const got = lastRefusalDetail() ?? '';
      if (typeof detail === 'string') assert.equal(got, detail);
      else assert.match(got, detail);
      assert.ok(logsFree(h.logs, [assertion]));
    });
  }

  test('smart: aud checks use the configured base URL, never the Host header', async () => {
    const spoofed = h.base.replace('127.0.0.1', 'localhost');
    const assertion = await clientAssertion(h, 'backend', h.keys.backend, {
      aud: `${spoofed}/oauth/token`,
    });
    const res = await h.request('/oauth/token', {
      body: form({
        grant_type: 'client_credentials',
        scope: 'system/Patient.rs',
        ...assertionFields(assertion),
      }),
      headers: { host: new URL(spoofed).host },
    });
    assert.equal(res.status, 401);
    // oidc-provider's own audience set is built from the issuer too, so it refuses first.
    assert.equal(
      lastRefusalDetail(),
      'audience (aud) must equal the endpoint url, issuer identifier or token endpoint url',
    );
    const discovery = await h.request('/oauth/.well-known/openid-configuration', {
      headers: { host: new URL(spoofed).host },
    });
    assert.equal(discovery.json.token_endpoint, `${h.base}/oauth/token`);
  });

  test('smart: a jti is accepted once', async () => {
    const assertion = await clientAssertion(h, 'backend', h.keys.backend);
    const fields = {
      grant_type: 'client_credentials',
      scope: 'system/Patient.rs',
      ...assertionFields(assertion),
    };
    assert.equal((await tokenRequest(h, fields)).status, 200);
    const replay = await tokenRequest(h, fields);
    assert.equal(replay.status, 401);
    assert.deepEqual(replay.json, INVALID_CLIENT);
    assert.equal(lastRefusalDetail(), 'client assertion tokens must only be used once');
  });

  test('smart: only ES384 and RS384 are accepted (ES256 and HS256 are refused)', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const es256: JWK = { ...(await exportJWK(privateKey)), kid: h.keys.backend.kid! };
    const hs256: JWK = {
      kty: 'oct',
      k: randomBytes(32).toString('base64url'),
      kid: h.keys.backend.kid!,
    };
    for (const [jwk, alg] of [
      [es256, 'ES256'],
      [hs256, 'HS256'],
    ] as const) {
      const assertion = await clientAssertion(h, 'backend', jwk, { alg });
      const res = await tokenRequest(h, {
        grant_type: 'client_credentials',
        scope: 'system/Patient.rs',
        ...assertionFields(assertion),
      });
      assert.equal(res.status, 401, alg);
      assert.equal(lastRefusalDetail(), 'alg mismatch');
    }
  });

  test('smart: an assertion signed by an unregistered key is refused', async () => {
    const { privateKey } = await generateKeyPair('ES384', { extractable: true });
    const other: JWK = { ...(await exportJWK(privateKey)), kid: h.keys.backend.kid! };
    const assertion = await clientAssertion(h, 'backend', other);
    const res = await tokenRequest(h, {
      grant_type: 'client_credentials',
      scope: 'system/Patient.rs',
      ...assertionFields(assertion),
    });
    assert.equal(res.status, 401);
    assert.match(lastRefusalDetail() ?? '', /signature verification failed/);
  });
});

describe('smart: client-public', () => {
  test('smart: a public client authenticates with client_id alone', async () => {
    const res = await tokenRequest(h, { ...BOGUS_CODE, client_id: 'app-public' });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_grant');
  });

  test('smart: a public client presenting a secret is refused', async () => {
    const res = await tokenRequest(h, BOGUS_CODE, basic('app-public'));
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, INVALID_CLIENT);
  });

  test('oauth: an unknown client is invalid_client and audited as unregistered', async () => {
    const res = await tokenRequest(h, BOGUS_CODE, basic('nobody'));
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, INVALID_CLIENT);
    assert.equal(h.audit.events('refused').at(-1)!.client.id, '(unregistered)');
  });
});
