/**
 * Several instances share state (PostgreSQL, Redis): a token issued by one instance is accepted
 * by another (resolver and introspection), a revocation at one is seen by the other at once, a
 * client assertion's `jti` spent at one is refused at the other, and an EHR launch created at one
 * is redeemed through the other. Both instances serve the same base URL, as behind a balancer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { AuthorizationStoreOptions } from '../../../src/ehr/authz/index.js';
import {
  assertionFields,
  authorize,
  dropRedisPrefix,
  pgSchema,
  clientAssertion,
  form,
  needsPg,
  needsRedis,
  redeemCode,
  REDIS_URL,
  startHarness,
  testClients,
  tokenRequest,
  type Harness,
} from './helpers.js';

async function pair(store: AuthorizationStoreOptions): Promise<[Harness, Harness]> {
  const { clients, keys } = await testClients();
  const shared = { clients, keys, cookieKeys: [randomBytes(32).toString('base64url')] };
  const a = await startHarness({ store }, shared);
  const b = await startHarness({ store, baseUrl: a.base }, shared);
  return [a, b];
}

async function crossInstance(a: Harness, b: Harness): Promise<void> {
  // Client credentials at A, accepted at B.
  const assertion = await clientAssertion(a, 'backend', a.keys.backend);
  const fields = {
    grant_type: 'client_credentials',
    scope: 'system/Patient.rs',
    ...assertionFields(assertion),
  };
  const issued = await tokenRequest(a, fields);
  assert.equal(issued.status, 200);
  const token = issued.json.access_token;
  const grant = await b.authz.resolver.resolve(token);
  assert.equal(grant?.clientId, 'backend');
  assert.equal(grant?.audience, `${a.base}/fhir`);
  const intro = await b.request('/oauth/token/introspection', {
    body: form({ token, ...assertionFields(await clientAssertion(a, 'backend', a.keys.backend)) }),
  });
  assert.equal(intro.json.active, true);

  // The same client assertion replayed at B is refused.
  const replay = await tokenRequest(b, fields);
  assert.equal(replay.status, 401);
  assert.equal(replay.json.error, 'invalid_client');

  // A hook token minted at A and revoked at B is gone for A at once.
  const hook = await a.authz.mintHookToken({
    clientId: 'crd-payer-a',
    patient: 'p1',
    service: 's',
    declaredTypes: ['Coverage'],
    hookInstance: 'h-1',
  });
  assert.equal((await b.authz.resolver.resolve(hook.access_token))?.hookInstance, 'h-1');
  await b.authz.revoke(hook.access_token);
  assert.equal(await a.authz.resolver.resolve(hook.access_token), undefined);

  // A launch created at A is redeemed through B; its token is accepted by A.
  const launch = await a.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-9' });
  const { redirect, verifier } = await authorize(b, {
    clientId: 'app-sym',
    scope: 'launch patient/*.rs',
    launch,
  });
  const res = await redeemCode(
    b,
    'app-sym',
    { kind: 'basic' },
    redirect.searchParams.get('code')!,
    verifier,
  );
  assert.equal(res.json.patient, 'pat-9');
  assert.equal((await a.authz.resolver.resolve(res.json.access_token))?.patient, 'pat-9');
}

describe('oauth: two instances on one PostgreSQL', needsPg, () => {
  test('oauth: a token issued by one instance is accepted by the other (PostgreSQL)', async () => {
    const schema = await pgSchema();
    const [a, b] = await pair({ kind: 'postgres', url: schema.url });
    try {
      await crossInstance(a, b);
    } finally {
      await a.close();
      await b.close();
      await schema.drop();
    }
  });
});

describe('oauth: two instances on one Redis', needsRedis, () => {
  test('oauth: a token issued by one instance is accepted by the other (Redis)', async () => {
    const prefix = `crdkit-test:${randomBytes(6).toString('hex')}:`;
    const [a, b] = await pair({ kind: 'redis', url: REDIS_URL!, prefix });
    try {
      await crossInstance(a, b);
    } finally {
      await a.close();
      await b.close();
      await dropRedisPrefix(prefix);
    }
  });
});
