/**
 * The grants and endpoints of the authorization server: SMART discovery, client credentials
 * (backend services), the authorization code with PKCE S256 only, refresh tokens only where
 * SMART allows them, token responses never cached, introspection (RFC 7662) and revocation
 * (RFC 7009) for authenticated clients about their own tokens, one resource (the FHIR API), and
 * no token without its audit record.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertionFields,
  authorize,
  backendToken,
  basic,
  clientAssertion,
  form,
  locationParams,
  redeemCode,
  startHarness,
  tokenRequest,
  type Harness,
} from './helpers.js';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(() => h.close());

describe('smart: discovery', () => {
  test('smart: /fhir/.well-known/smart-configuration lists the endpoints and capabilities', async () => {
    const res = await h.request('/fhir/.well-known/smart-configuration');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const doc = res.json;
    assert.equal(doc.issuer, `${h.base}/oauth`);
    assert.equal(doc.jwks_uri, `${h.base}/oauth/jwks`);
    assert.equal(doc.authorization_endpoint, `${h.base}/oauth/auth`);
    assert.equal(doc.token_endpoint, `${h.base}/oauth/token`);
    assert.equal(doc.introspection_endpoint, `${h.base}/oauth/token/introspection`);
    assert.equal(doc.revocation_endpoint, `${h.base}/oauth/token/revocation`);
    assert.deepEqual(doc.grant_types_supported, [
      'authorization_code',
      'client_credentials',
      'refresh_token',
    ]);
    assert.deepEqual(doc.token_endpoint_auth_methods_supported, [
      'client_secret_basic',
      'private_key_jwt',
      'none',
    ]);
    assert.deepEqual(doc.token_endpoint_auth_signing_alg_values_supported, ['ES384', 'RS384']);
    assert.deepEqual(doc.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(doc.response_types_supported, ['code']);
    for (const cap of [
      'launch-ehr',
      'client-confidential-symmetric',
      'client-confidential-asymmetric',
      'client-public',
      'context-ehr-patient',
      'context-ehr-encounter',
      'permission-v2',
      'permission-patient',
      'permission-user',
      'sso-openid-connect',
    ]) {
      assert.ok(doc.capabilities.includes(cap), cap);
    }
    assert.ok(!doc.capabilities.includes('authorize-post'));
    assert.ok(
      doc.scopes_supported.includes('patient/*.rs') && doc.scopes_supported.includes('launch'),
    );
    assert.deepEqual(doc, h.authz.smartConfiguration());
    // Every endpoint it names is served by oidc-provider under the same issuer.
    const oidc = (await h.request('/oauth/.well-known/openid-configuration')).json;
    for (const k of [
      'issuer',
      'jwks_uri',
      'authorization_endpoint',
      'token_endpoint',
      'introspection_endpoint',
      'revocation_endpoint',
    ]) {
      assert.equal(oidc[k], doc[k], k);
    }
    assert.equal(
      (await h.request('/fhir/.well-known/smart-configuration', { body: '' })).status,
      405,
    );
    const jwks = (await h.request('/oauth/jwks')).json;
    assert.ok(jwks.keys.length >= 1);
    assert.ok(
      jwks.keys.every((k: Record<string, unknown>) => k.d === undefined),
      'public keys only',
    );
  });

  test('oauth: ownsPath covers /oauth and the SMART document only', () => {
    assert.ok(h.authz.ownsPath('/oauth/token'));
    assert.ok(h.authz.ownsPath('/fhir/.well-known/smart-configuration'));
    assert.ok(!h.authz.ownsPath('/fhir/Patient/1'));
    assert.ok(!h.authz.ownsPath('/oauthx'));
  });
});

describe('smart: backend services (client credentials)', () => {
  test('smart: system/ scopes only, no refresh token, at most 300 s, Cache-Control: no-store', async () => {
    const res = await backendToken(h, 'system/Patient.rs patient/Patient.rs offline_access');
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.json.scope, 'system/Patient.rs');
    assert.equal(res.json.token_type, 'Bearer');
    assert.match(res.json.access_token, /^[A-Za-z0-9_-]{43}$/, 'opaque, 256 bits');
    assert.ok(res.json.expires_in <= 300);
    assert.equal(res.json.refresh_token, undefined);
    const grant = await h.authz.resolver.resolve(res.json.access_token);
    assert.equal(grant?.clientId, 'backend');
    assert.deepEqual(grant?.scopes, ['system/Patient.rs']);
    assert.equal(grant?.audience, `${h.base}/fhir`);
    assert.equal(grant?.patient, undefined);
    assert.notEqual(grant?.tokenId, res.json.access_token);
    const issued = h.audit.events('issued').at(-1)!;
    assert.equal(issued.tokenId, grant?.tokenId);
    assert.equal(issued.grantType, 'client_credentials');
  });

  test('smart: a request with no allowed scope is invalid_scope', async () => {
    const res = await backendToken(h, 'patient/Patient.rs');
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_scope');
    assert.equal(h.audit.events('refused').at(-1)!.errorCode, 'invalid_scope');
  });

  test('oauth: a client not registered for client_credentials cannot use it', async () => {
    const res = await tokenRequest(
      h,
      { grant_type: 'client_credentials', scope: 'system/Patient.rs' },
      basic('app-sym'),
    );
    assert.equal(res.status, 400);
    assert.deepEqual(res.json, {
      error: 'invalid_request',
      error_description: 'requested grant type is not allowed for this client',
    });
  });

  test('oauth: the resource is the FHIR API only', async () => {
    const assertion = await clientAssertion(h, 'backend', h.keys.backend);
    const res = await tokenRequest(h, {
      grant_type: 'client_credentials',
      scope: 'system/Patient.rs',
      resource: 'https://elsewhere.example/fhir',
      ...assertionFields(assertion),
    });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_target');
  });
});

describe('smart: authorization code with PKCE', () => {
  test('smart: PKCE is required, for confidential clients too', async () => {
    const { redirect } = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs',
      extra: { code_challenge: undefined, code_challenge_method: undefined },
    });
    assert.equal(redirect.searchParams.get('error'), 'invalid_request');
    assert.equal(
      redirect.searchParams.get('error_description'),
      'Authorization Server policy requires PKCE to be used for this request',
    );
  });

  test('smart: code_challenge_method plain is refused', async () => {
    const { redirect } = await authorize(h, {
      clientId: 'app-public',
      scope: 'patient/*.rs',
      extra: { code_challenge: 'p'.repeat(43), code_challenge_method: 'plain' },
    });
    assert.equal(redirect.searchParams.get('error'), 'invalid_request');
    assert.equal(
      redirect.searchParams.get('error_description'),
      'not supported value of code_challenge_method',
    );
  });

  test('smart: the aud parameter must be the FHIR base URL', async () => {
    const wrong = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs',
      extra: { aud: 'https://elsewhere.example/fhir' },
    });
    assert.equal(wrong.redirect.searchParams.get('error'), 'invalid_request');
    assert.equal(
      wrong.redirect.searchParams.get('error_description'),
      "'aud' must be the FHIR base URL of this EHR",
    );
    const missing = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs',
      extra: { aud: undefined },
    });
    assert.equal(
      missing.redirect.searchParams.get('error_description'),
      "missing required parameter 'aud'",
    );
  });

  test('smart: a public client redeems its code with the S256 verifier; a wrong verifier and a second use fail', async () => {
    const { redirect, verifier } = await authorize(h, {
      clientId: 'app-public',
      scope: 'patient/Coverage.rs openid fhirUser',
    });
    const code = redirect.searchParams.get('code')!;
    assert.equal(redirect.searchParams.get('iss'), `${h.base}/oauth`);
    const wrong = await redeemCode(
      h,
      'app-public',
      { kind: 'none' },
      code,
      `${verifier.slice(0, -1)}${verifier.endsWith('A') ? 'B' : 'A'}`,
    );
    assert.equal(wrong.status, 400);
    assert.equal(wrong.json.error, 'invalid_grant');
    const { redirect: again, verifier: v2 } = await authorize(h, {
      clientId: 'app-public',
      scope: 'patient/Coverage.rs openid fhirUser',
    });
    const code2 = again.searchParams.get('code')!;
    const ok = await redeemCode(h, 'app-public', { kind: 'none' }, code2, v2);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['cache-control'], 'no-store');
    assert.equal(ok.json.scope, 'patient/Coverage.rs openid fhirUser');
    assert.ok(ok.json.id_token);
    const claims = JSON.parse(Buffer.from(ok.json.id_token.split('.')[1], 'base64url').toString());
    assert.equal(claims.fhirUser, 'Practitioner/pr-1');
    assert.equal(claims.sub, 'u1');
    const reuse = await redeemCode(h, 'app-public', { kind: 'none' }, code2, v2);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.json.error, 'invalid_grant');
  });

  test('smart: scopes beyond the registration are not granted', async () => {
    const { redirect, verifier } = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs patient/*.cud system/*.rs',
    });
    const res = await redeemCode(
      h,
      'app-sym',
      { kind: 'basic' },
      redirect.searchParams.get('code')!,
      verifier,
    );
    assert.equal(res.json.scope, 'patient/*.rs');
  });

  test('oauth: an unknown client gets an OAuth error body, never a redirect', async () => {
    const res = await h.request(
      `/oauth/auth?${form({ response_type: 'code', client_id: 'nobody', redirect_uri: 'https://evil.example/cb', scope: 'patient/*.rs' })}`,
      { headers: { accept: 'text/html' } },
    );
    assert.equal(res.status, 400);
    assert.equal(res.headers.location, undefined);
    assert.deepEqual(res.json, { error: 'invalid_client', error_description: 'client is invalid' });
  });

  test('smart: the user can deny; the client gets access_denied', async () => {
    const { redirect } = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs',
      decision: 'deny',
    });
    assert.equal(redirect.searchParams.get('error'), 'access_denied');
  });
});

describe('smart: refresh tokens', () => {
  test('smart: no refresh token without offline_access or online_access', async () => {
    const { redirect, verifier } = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs',
    });
    const res = await redeemCode(
      h,
      'app-sym',
      { kind: 'basic' },
      redirect.searchParams.get('code')!,
      verifier,
    );
    assert.equal(res.status, 200);
    assert.equal(res.json.refresh_token, undefined);
  });

  test('smart: offline_access gives a refresh token that refreshes (no-store)', async () => {
    const { redirect, verifier } = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs offline_access',
    });
    const res = await redeemCode(
      h,
      'app-sym',
      { kind: 'basic' },
      redirect.searchParams.get('code')!,
      verifier,
    );
    assert.ok(res.json.refresh_token);
    const refreshed = await tokenRequest(
      h,
      { grant_type: 'refresh_token', refresh_token: res.json.refresh_token },
      basic('app-sym'),
    );
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.headers['cache-control'], 'no-store');
    assert.equal(refreshed.json.scope, 'patient/*.rs offline_access');
    assert.ok(await h.authz.resolver.resolve(refreshed.json.access_token));
  });

  test('smart: online_access gives a refresh token too', async () => {
    const { redirect, verifier } = await authorize(h, {
      clientId: 'app-sym',
      scope: 'patient/*.rs online_access',
    });
    const res = await redeemCode(
      h,
      'app-sym',
      { kind: 'basic' },
      redirect.searchParams.get('code')!,
      verifier,
    );
    assert.ok(res.json.refresh_token);
  });

  test('smart: a client registered without refresh_token gets none, even with offline_access', async () => {
    const { redirect, verifier } = await authorize(h, {
      clientId: 'app-norefresh',
      scope: 'patient/*.rs offline_access',
    });
    const res = await redeemCode(
      h,
      'app-norefresh',
      { kind: 'basic' },
      redirect.searchParams.get('code')!,
      verifier,
    );
    assert.equal(res.status, 200);
    assert.equal(res.json.refresh_token, undefined);
    assert.equal(res.json.scope, 'patient/*.rs');
  });
});

describe('oauth: introspection and revocation', () => {
  test('oauth: introspection (RFC 7662) needs client authentication and tells a client about its own tokens only', async () => {
    const token = (await backendToken(h)).json.access_token;
    const own = await h.request('/oauth/token/introspection', {
      body: form({
        token,
        ...assertionFields(await clientAssertion(h, 'backend', h.keys.backend)),
      }),
    });
    assert.equal(own.status, 200);
    assert.equal(own.headers['cache-control'], 'no-store');
    assert.equal(own.json.active, true);
    assert.equal(own.json.client_id, 'backend');
    assert.equal(own.json.scope, 'system/Patient.rs');
    assert.equal(own.json.aud, `${h.base}/fhir`);
    assert.deepEqual(
      Object.keys(own.json).sort(),
      ['active', 'aud', 'client_id', 'exp', 'iat', 'iss', 'scope', 'token_type'],
      'RFC 7662 members only: no internal ids or context',
    );
    const other = await h.request('/oauth/token/introspection', {
      body: form({
        token,
        ...assertionFields(await clientAssertion(h, 'crd-payer-a', h.keys.payer)),
      }),
    });
    assert.deepEqual(other.json, { active: false });
    const anonymous = await h.request('/oauth/token/introspection', { body: form({ token }) });
    assert.equal(anonymous.status, 400);
    assert.equal(anonymous.json.error, 'invalid_request');
  });

  test('oauth: revocation (RFC 7009) ends the token at once and is audited', async () => {
    const token = (await backendToken(h)).json.access_token;
    const tokenId = (await h.authz.resolver.resolve(token))!.tokenId;
    const res = await h.request('/oauth/token/revocation', {
      body: form({
        token,
        ...assertionFields(await clientAssertion(h, 'backend', h.keys.backend)),
      }),
    });
    assert.equal(res.status, 200);
    assert.equal(await h.authz.resolver.resolve(token), undefined);
    const revoked = h.audit.events('revoked').at(-1)!;
    assert.equal(revoked.tokenId, tokenId);
    assert.equal(revoked.client.id, 'backend');
  });
});

describe('sec-9: no token without its audit record', () => {
  test('sec-9: when the audit store fails, the token endpoint answers 503 and the token is withdrawn', async () => {
    h.audit.failing = true;
    try {
      const res = await backendToken(h);
      assert.equal(res.status, 503);
      assert.deepEqual(res.json, {
        error: 'temporarily_unavailable',
        error_description: 'the audit trail is unavailable; retry later',
      });
      assert.equal(res.headers['cache-control'], 'no-store');
    } finally {
      h.audit.failing = false;
    }
  });

  test('sec-9: a redirect with an authorization error carries no token', async () => {
    const res = await h.request(
      `/oauth/auth?${form({ response_type: 'code', client_id: 'app-sym', redirect_uri: 'https://app.example/callback', scope: 'patient/*.rs', aud: `${h.base}/fhir` })}`,
    );
    assert.equal(res.status, 303);
    assert.equal(locationParams(res).get('error'), 'invalid_request');
    assert.equal(locationParams(res).get('code'), null);
  });
});
