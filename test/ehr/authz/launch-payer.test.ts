/**
 * sec-7 for launched apps: an app registered with a `payer` (a payer's DTR app launched from its
 * card) gets its launch context in that payer's opaque ids, the ones the FHIR API answers it in;
 * the EHR's own apps keep the internal ids.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { authorize, redeemCode, startHarness, testClients, type Harness } from './helpers.js';

let h: Harness;
before(async () => {
  const { clients, keys } = await testClients();
  h = await startHarness(
    { externalIds: (payer, type, id) => `${payer}.${type}.${id}`.toLowerCase() },
    {
      clients: clients.map((c) => (c.clientId === 'app-sym' ? { ...c, payer: 'acme' } : c)),
      keys,
      cookieKeys: ['a-cookie-key-of-at-least-thirty-two-characters'],
    },
  );
});
after(() => h.close());

test("sec-7: a payer's launched app gets the patient, encounter and fhirContext in that payer's ids", async () => {
  const launch = await h.authz.createLaunch({
    clientId: 'app-sym',
    patient: 'pat-42',
    encounter: 'enc-9',
    fhirContext: [{ reference: 'ServiceRequest/sr-1' }],
    user: 'u1',
  });
  const { redirect, verifier } = await authorize(h, {
    clientId: 'app-sym',
    scope: 'launch patient/*.rs',
    launch,
  });
  const code = redirect.searchParams.get('code');
  assert.ok(code, redirect.searchParams.get('error_description') ?? 'no code');
  const res = await redeemCode(h, 'app-sym', { kind: 'basic' }, code, verifier);
  assert.equal(res.status, 200);
  assert.equal(res.json.patient, 'acme.patient.pat-42');
  assert.equal(res.json.encounter, 'acme.encounter.enc-9');
  assert.deepEqual(res.json.fhirContext, [
    { reference: 'ServiceRequest/acme.servicerequest.sr-1' },
  ]);
});
