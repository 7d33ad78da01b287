/**
 * SMART EHR launch of confidential apps (sec-4), end to end over HTTPS on loopback without a
 * browser: createLaunch → /oauth/auth (PKCE S256, `launch`) → sign-in and approval → code →
 * token response with the launch context → an AccessGrant bound to the patient. Then each
 * refusal: public and non-launchable clients, another client's launch value, reuse, expiry,
 * another user, the `launch` scope and parameter without each other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import {
  authorize,
  CookieJar,
  logsFree,
  redeemCode,
  SECRET,
  startHarness,
  tokenRequest,
  basic,
  type ClientAuth,
  type Harness,
} from './helpers.js';

let h: Harness;
let offsetMs = 0;
before(async () => {
  h = await startHarness({ now: () => new Date(Date.now() + offsetMs) });
});
after(() => h.close());

const APP_CONTEXT = '{"orderId":"ServiceRequest/sr-1","questionnaire":"Q-12"}';
const SCOPE = 'launch patient/*.rs openid fhirUser';

async function launchFlow(clientId: string, auth: ClientAuth) {
  const launch = await h.authz.createLaunch({
    clientId,
    patient: 'pat-42',
    encounter: 'enc-9',
    appContext: APP_CONTEXT,
    fhirContext: [{ reference: 'ServiceRequest/sr-1' }],
    user: 'u1',
  });
  const { redirect, verifier, steps } = await authorize(h, { clientId, scope: SCOPE, launch });
  assert.equal(steps[0]!.status, 303, 'the authorization endpoint sends the user to sign in');
  assert.match(String(steps[0]!.headers.location), new RegExp(`^${h.base}/oauth/interaction/`));
  const code = redirect.searchParams.get('code');
  assert.ok(code, `a code, not ${redirect.searchParams.get('error_description')}`);
  assert.equal(redirect.searchParams.get('state'), 'st-1');
  const res = await redeemCode(h, clientId, auth, code, verifier);
  return { launch, res };
}

describe('sec-4: SMART confidential app launch, end to end', () => {
  for (const [label, clientId, auth] of [
    ['an asymmetric (private_key_jwt ES384) client', 'app-asym', 'jwt'],
    ['a symmetric (client_secret_basic) client', 'app-sym', 'basic'],
  ] as const) {
    test(`sec-4: EHR launch of ${label}`, async () => {
      const clientAuth: ClientAuth =
        auth === 'jwt' ? { kind: 'jwt', jwk: h.keys.es384 } : { kind: 'basic' };
      const { launch, res } = await launchFlow(clientId, clientAuth);
      assert.equal(res.status, 200);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.json.token_type, 'Bearer');
      assert.equal(res.json.scope, SCOPE);
      assert.ok(res.json.expires_in <= 300);
      assert.equal(res.json.patient, 'pat-42');
      assert.equal(res.json.encounter, 'enc-9');
      assert.equal(res.json.appContext, APP_CONTEXT, 'appContext is passed as is');
      assert.deepEqual(res.json.fhirContext, [{ reference: 'ServiceRequest/sr-1' }]);
      const idToken = decodeJwt(res.json.id_token);
      assert.equal(idToken.fhirUser, 'Practitioner/pr-1');
      assert.equal(idToken.aud, clientId);
      assert.equal(idToken.iss, `${h.base}/oauth`);
      const grant = await h.authz.resolver.resolve(res.json.access_token);
      assert.ok(grant);
      assert.equal(grant.clientId, clientId);
      assert.equal(grant.patient, 'pat-42');
      assert.equal(grant.encounter, 'enc-9');
      assert.equal(grant.audience, `${h.base}/fhir`);
      assert.ok(grant.scopes.includes('patient/*.rs'));
      assert.equal(grant.payer, undefined);
      const launched = h.audit.events('launch').at(-1)!;
      assert.equal(launched.client.id, clientId);
      assert.equal(launched.patient, 'Patient/pat-42');
      const issued = h.audit.events('issued').at(-1)!;
      assert.equal(issued.tokenId, grant.tokenId);
      assert.equal(issued.patient, 'Patient/pat-42');
      assert.equal(issued.grantType, 'authorization_code');
      assert.ok(logsFree(h.logs, [launch, res.json.access_token, res.json.id_token, SECRET]));
    });
  }

  test('sec-4: two launches of one app in one browser session keep their own patients', async () => {
    const jar = new CookieJar();
    const tokens: string[] = [];
    for (const patient of ['pat-a', 'pat-b']) {
      const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient });
      const { redirect, verifier } = await authorize(h, {
        clientId: 'app-sym',
        scope: SCOPE,
        launch,
        jar,
      });
      const res = await redeemCode(
        h,
        'app-sym',
        { kind: 'basic' },
        redirect.searchParams.get('code')!,
        verifier,
      );
      assert.equal(res.json.patient, patient);
      tokens.push(res.json.access_token);
    }
    assert.equal((await h.authz.resolver.resolve(tokens[0]!))?.patient, 'pat-a');
    assert.equal((await h.authz.resolver.resolve(tokens[1]!))?.patient, 'pat-b');
  });

  test('sec-4: a refreshed token keeps the launch context', async () => {
    const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-5' });
    const { redirect, verifier } = await authorize(h, {
      clientId: 'app-sym',
      scope: `${SCOPE} offline_access`,
      launch,
    });
    const res = await redeemCode(
      h,
      'app-sym',
      { kind: 'basic' },
      redirect.searchParams.get('code')!,
      verifier,
    );
    assert.equal(res.json.encounter, undefined);
    const refreshed = await tokenRequest(
      h,
      { grant_type: 'refresh_token', refresh_token: res.json.refresh_token },
      basic('app-sym'),
    );
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.json.patient, 'pat-5');
    assert.equal((await h.authz.resolver.resolve(refreshed.json.access_token))?.patient, 'pat-5');
  });
});

describe('sec-4: launch refusals', () => {
  test('sec-4: a public client presenting a launch value is refused (unauthorized_client), audited', async () => {
    const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-1' });
    const { redirect } = await authorize(h, { clientId: 'app-public', scope: SCOPE, launch });
    assert.equal(redirect.searchParams.get('error'), 'unauthorized_client');
    assert.equal(
      redirect.searchParams.get('error_description'),
      'this client may not be launched by the EHR',
    );
    assert.equal(redirect.searchParams.get('code'), null);
    const refused = h.audit.events('refused').at(-1)!;
    assert.deepEqual(refused.client, { id: 'app-public' });
    assert.equal(refused.errorCode, 'unauthorized_client');
  });

  test('sec-4: a confidential client not registered as launchable is refused', async () => {
    const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-1' });
    const { redirect } = await authorize(h, { clientId: 'app-nolaunch', scope: SCOPE, launch });
    assert.equal(redirect.searchParams.get('error'), 'unauthorized_client');
  });

  test('sec-4: createLaunch refuses clients that may not be launched', async () => {
    await assert.rejects(
      h.authz.createLaunch({ clientId: 'app-public', patient: 'p' }),
      /not a launchable confidential client/,
    );
    await assert.rejects(
      h.authz.createLaunch({ clientId: 'app-nolaunch', patient: 'p' }),
      /not a launchable confidential client/,
    );
    await assert.rejects(
      h.authz.createLaunch({ clientId: 'nobody', patient: 'p' }),
      /not a registered client/,
    );
    await assert.rejects(
      h.authz.createLaunch({ clientId: 'app-sym', patient: '123-45-6789 MRN' }),
      /"patient" must be a FHIR id/,
    );
  });

  test('sec-4: a launch value is bound to the client it was created for', async () => {
    const launch = await h.authz.createLaunch({ clientId: 'app-asym', patient: 'pat-1' });
    const { redirect } = await authorize(h, { clientId: 'app-sym', scope: SCOPE, launch });
    assert.equal(redirect.searchParams.get('error'), 'invalid_request');
    assert.equal(
      redirect.searchParams.get('error_description'),
      "'launch' is unknown, expired or already used",
    );
  });

  test('sec-4: a launch value is used once', async () => {
    const { launch } = await launchFlow('app-sym', { kind: 'basic' });
    const { redirect } = await authorize(h, { clientId: 'app-sym', scope: SCOPE, launch });
    assert.equal(
      redirect.searchParams.get('error_description'),
      "'launch' is unknown, expired or already used",
    );
  });

  test('sec-4: two authorizations racing with one launch value: the second is refused at approval', async () => {
    const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-1' });
    const jarA = new CookieJar();
    const jarB = new CookieJar();
    const first = await h.request(
      `/oauth/auth?${new URLSearchParams({ response_type: 'code', client_id: 'app-sym', redirect_uri: 'https://app.example/callback', scope: SCOPE, aud: `${h.base}/fhir`, code_challenge: 'c'.repeat(43), code_challenge_method: 'S256', launch })}`,
      { jar: jarB },
    );
    assert.equal(first.status, 303, 'B passed the authorization endpoint');
    const a = await authorize(h, { clientId: 'app-sym', scope: SCOPE, launch, jar: jarA });
    assert.ok(a.redirect.searchParams.get('code'));
    const interaction = new URL(String(first.headers.location)).pathname;
    const approve = await h.request(interaction, { jar: jarB, body: 'user=u1&decision=approve' });
    const resume = await h.request(new URL(String(approve.headers.location)).pathname, {
      jar: jarB,
    });
    const redirect = new URL(String(resume.headers.location));
    assert.equal(redirect.searchParams.get('error'), 'invalid_request');
    assert.equal(
      redirect.searchParams.get('error_description'),
      'launch is unknown, expired or already used',
    );
  });

  test('sec-4: a launch value expires after five minutes', async () => {
    const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-1' });
    offsetMs = 300_000;
    try {
      const { redirect } = await authorize(h, { clientId: 'app-sym', scope: SCOPE, launch });
      assert.equal(
        redirect.searchParams.get('error_description'),
        "'launch' is unknown, expired or already used",
      );
    } finally {
      offsetMs = 0;
    }
  });

  test('sec-4: a launch for a named user cannot be approved by another user', async () => {
    const launch = await h.authz.createLaunch({
      clientId: 'app-sym',
      patient: 'pat-1',
      user: 'u1',
    });
    const { redirect } = await authorize(h, {
      clientId: 'app-sym',
      scope: SCOPE,
      launch,
      user: 'u2',
    });
    assert.equal(redirect.searchParams.get('error'), 'access_denied');
    assert.equal(redirect.searchParams.get('error_description'), 'launch is for another user');
  });

  test('sec-4: the launch scope and the launch parameter go together', async () => {
    const noValue = await authorize(h, { clientId: 'app-sym', scope: SCOPE });
    assert.equal(
      noValue.redirect.searchParams.get('error_description'),
      "'launch' is required with the launch scope",
    );
    const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-1' });
    const noScope = await authorize(h, { clientId: 'app-sym', scope: 'patient/*.rs', launch });
    assert.equal(noScope.redirect.searchParams.get('error'), 'invalid_scope');
  });

  test('sec-4: an unknown user cannot sign in', async () => {
    const launch = await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-1' });
    const jar = new CookieJar();
    const start = await h.request(
      `/oauth/auth?${new URLSearchParams({ response_type: 'code', client_id: 'app-sym', redirect_uri: 'https://app.example/callback', scope: SCOPE, aud: `${h.base}/fhir`, code_challenge: 'c'.repeat(43), code_challenge_method: 'S256', launch })}`,
      { jar },
    );
    const page = await h.request(new URL(String(start.headers.location)).pathname, { jar });
    assert.equal(page.status, 200);
    assert.match(page.text, /<select name="user">/);
    assert.equal(page.headers['cache-control'], 'no-store');
    const res = await h.request(new URL(String(start.headers.location)).pathname, {
      jar,
      body: 'user=mallory',
    });
    assert.equal(res.status, 400);
    assert.deepEqual(res.json, {
      error: 'invalid_request',
      error_description: '"user" is not a known user',
    });
    const noCookie = await h.request(new URL(String(start.headers.location)).pathname, {
      body: 'user=u1',
    });
    assert.equal(
      noCookie.status,
      400,
      'a post without the interaction cookie (cross-site) is refused',
    );
  });
});
