/**
 * The `fhirAuthorization` token of one CDS Hooks call (found-20, found-21, found-22): issued to the
 * CRD server's registered client, bound to the patient, read-only for the resource types the
 * service declared and nothing else, 30 seconds or less, revocable at once, audited by its id.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  assertionFields,
  clientAssertion,
  form,
  logsFree,
  startHarness,
  type Harness,
} from './helpers.js';

let h: Harness;
let offsetMs = 0;
before(async () => {
  h = await startHarness({ now: () => new Date(Date.now() + offsetMs) });
});
after(() => h.close());

const HOOK = {
  clientId: 'crd-payer-a',
  patient: 'pat-7',
  encounter: 'enc-3',
  service: 'order-sign-crd',
  declaredTypes: ['Patient', 'Coverage', 'Encounter'],
  hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
};

async function introspect(token: string) {
  const assertion = await clientAssertion(h, 'crd-payer-a', h.keys.payer);
  return h.request('/oauth/token/introspection', {
    body: form({ token, ...assertionFields(assertion) }),
  });
}

test("found-20: the fhirAuthorization object names the CRD server's client and the patient", async () => {
  const auth = await h.authz.mintHookToken(HOOK);
  assert.deepEqual(Object.keys(auth).sort(), [
    'access_token',
    'expires_in',
    'patient',
    'scope',
    'subject',
    'token_type',
  ]);
  assert.equal(auth.token_type, 'Bearer');
  assert.equal(auth.subject, 'crd-payer-a');
  assert.equal(auth.patient, 'pat-7');
  assert.equal(auth.expires_in, 30);
  const grant = await h.authz.resolver.resolve(auth.access_token);
  assert.ok(grant);
  assert.equal(grant.clientId, 'crd-payer-a');
  assert.equal(grant.clientName, 'Payer A CRD');
  assert.equal(grant.patient, 'pat-7');
  assert.equal(grant.encounter, 'enc-3');
  assert.equal(grant.hookInstance, HOOK.hookInstance);
  assert.equal(grant.service, 'order-sign-crd');
  assert.deepEqual(grant.declaredTypes, ['Patient', 'Coverage', 'Encounter']);
  assert.equal(grant.payer, 'payer-a');
  assert.equal(grant.audience, `${h.base}/fhir`);
  assert.match(grant.tokenId, /^[0-9a-f]{32}$/);
});

test('found-21: read-only scopes for the declared types only, never beyond the registration', async () => {
  const auth = await h.authz.mintHookToken(HOOK);
  assert.equal(auth.scope, 'patient/Patient.rs patient/Coverage.rs patient/Encounter.rs');
  assert.ok(
    auth.scope.split(' ').every((s) => /^patient\/[A-Za-z]+\.rs$/.test(s)),
    'no write scope',
  );
  // Observation is not registered for this client; Condition is registered read-only (no search).
  const narrow = await h.authz.mintHookToken({
    ...HOOK,
    declaredTypes: ['Coverage', 'Observation', 'Condition'],
  });
  assert.equal(narrow.scope, 'patient/Coverage.rs');
  const grant = await h.authz.resolver.resolve(narrow.access_token);
  assert.deepEqual(grant?.scopes, ['patient/Coverage.rs']);
  await assert.rejects(
    h.authz.mintHookToken({ ...HOOK, declaredTypes: ['Observation'] }),
    /no declared type is within the client's registered scope/,
  );
  await assert.rejects(
    h.authz.mintHookToken({ ...HOOK, declaredTypes: ['*'] }),
    /"declaredTypes" must be FHIR resource type names/,
  );
});

test('found-20: only a registered CRD server client (with a payer) gets a hook token', async () => {
  await assert.rejects(
    h.authz.mintHookToken({ ...HOOK, clientId: 'nobody' }),
    /"clientId" is not a registered client/,
  );
  await assert.rejects(
    h.authz.mintHookToken({ ...HOOK, clientId: 'backend' }),
    /is not a CRD server/,
  );
  await assert.rejects(
    h.authz.mintHookToken({ ...HOOK, patient: '' }),
    /"patient" must be a FHIR id/,
  );
});

test('found-22: a hook token lives 30 seconds or less, and not a second longer', async () => {
  await assert.rejects(
    h.authz.mintHookToken({ ...HOOK, lifetimeSeconds: 31 }),
    /"lifetimeSeconds" must be an integer in 1..30/,
  );
  const auth = await h.authz.mintHookToken({ ...HOOK, lifetimeSeconds: 10 });
  assert.equal(auth.expires_in, 10);
  const grant = (await h.authz.resolver.resolve(auth.access_token))!;
  assert.equal(grant.expiresAt.getTime() - grant.issuedAt.getTime(), 10_000);
  offsetMs = 10_000;
  try {
    assert.equal(await h.authz.resolver.resolve(auth.access_token), undefined);
  } finally {
    offsetMs = 0;
  }
});

test('found-22: revoke() ends the token at once for the resolver and for introspection', async () => {
  const auth = await h.authz.mintHookToken(HOOK);
  const before = await introspect(auth.access_token);
  assert.equal(before.json.active, true);
  assert.equal(before.json.client_id, 'crd-payer-a');
  assert.equal(before.json.patient, undefined, 'introspection shows no internal patient id');
  await h.authz.revoke(auth.access_token);
  assert.equal(await h.authz.resolver.resolve(auth.access_token), undefined);
  assert.deepEqual((await introspect(auth.access_token)).json, { active: false });
  await h.authz.revoke(auth.access_token); // unknown now: ignored
});

test('sec-9: minting and revocation are audited by token id, never the token', async () => {
  const auth = await h.authz.mintHookToken(HOOK);
  const tokenId = (await h.authz.resolver.resolve(auth.access_token))!.tokenId;
  await h.authz.revoke(auth.access_token);
  const issued = h.audit.tokens.find((t) => t.event === 'issued' && t.tokenId === tokenId)!;
  assert.deepEqual(
    { ...issued, at: undefined, expiresAt: undefined },
    {
      event: 'issued',
      client: { id: 'crd-payer-a', name: 'Payer A CRD' },
      grantType: 'fhirAuthorization',
      scopes: ['patient/Patient.rs', 'patient/Coverage.rs', 'patient/Encounter.rs'],
      patient: 'Patient/pat-7',
      hookInstance: HOOK.hookInstance,
      service: 'order-sign-crd',
      tokenId,
      at: undefined,
      expiresAt: undefined,
      instance: 'test-ehr:1',
    },
  );
  assert.ok(issued.expiresAt!.getTime() - issued.at.getTime() <= 30_500);
  const revoked = h.audit.tokens.find((t) => t.event === 'revoked' && t.tokenId === tokenId)!;
  assert.equal(revoked.hookInstance, HOOK.hookInstance);
  assert.ok(!JSON.stringify(h.audit.tokens).includes(auth.access_token));
  assert.ok(logsFree(h.logs, [auth.access_token]));
});

test('sec-9: a hook token whose audit record cannot be written is not issued', async () => {
  h.audit.failing = true;
  try {
    await assert.rejects(h.authz.mintHookToken(HOOK), /audit unavailable/);
  } finally {
    h.audit.failing = false;
  }
});

test('sec-9: a token issued for a delegate grant reads back as that grant (actors, payer, context)', async () => {
  const expiresAt = new Date(Date.now() + 20_000);
  const issued = await h.authz.issueToken(
    {
      clientId: 'crd-payer-a',
      scopes: ['patient/Coverage.rs'],
      patient: 'pat-7',
      hookInstance: 'h-9',
      service: 'order-sign-crd',
      declaredTypes: ['Coverage'],
      audience: `${h.base}/fhir`,
      actors: ['https://dtr.payer-a.example', 'https://crd.payer-a.example'],
      payer: 'payer-a',
      expiresAt,
    },
    'crd-payer-a',
  );
  assert.ok(issued.expires_in <= 20);
  const grant = await h.authz.resolver.resolve(issued.access_token);
  assert.equal(grant?.tokenId, issued.tokenId);
  assert.deepEqual(grant?.actors, ['https://dtr.payer-a.example', 'https://crd.payer-a.example']);
  assert.equal(grant?.payer, 'payer-a');
  assert.equal(grant?.hookInstance, 'h-9');
  assert.ok(grant!.expiresAt.getTime() <= expiresAt.getTime(), 'never outlives the grant');
  assert.ok(grant!.expiresAt.getTime() > expiresAt.getTime() - 1000);
});
