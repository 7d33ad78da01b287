/**
 * The EHR side and the payer's CRD server together, both real, on loopback: an order-sign call
 * whose prefetch lacks the Coverage makes the CRD server read it from the EHR's FHIR API with the
 * token the EHR minted for that call (found-5, found-20 to found-22); the payer sees only opaque
 * ids (sec-7); every access is in the EHR's audit trail and the access review finds nothing
 * wrong with it; once the call is over its token is revoked and a late read is refused.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { statSync } from 'node:fs';
import type {
  AuditEvent,
  Consent,
  DeviceRequest,
  Patient,
  ServiceRequest,
} from '@medplum/fhirtypes';
import { ORDER_DRAFT_PREFETCH, prefetchResourceTypes } from '../../src/crd/prefetch-templates.js';
import { DEMO_CRD_SERVER_CLIENT, DEMO_PAYER } from '../../src/ehr/demo.js';
import { reviewAccesses } from '../../src/ehr/review.js';
import { startTestEhr, type TestEhr } from '../helpers/ehr.js';
import { send } from '../helpers/https.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const SERVICE = 'order-sign-crd';
const DTR = 'https://dtr.payer.test';

async function trail(ehr: TestEhr): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for await (const e of ehr.side.audit.export({})) out.push(e);
  return out;
}

describe('EHR and CRD server end to end', () => {
  let ehr: TestEhr;
  let crd: TestServer;

  before(async () => {
    ehr = await startTestEhr({
      delegation: {
        audiences: [
          {
            audience: DTR,
            actor: 'example-payer-dtr',
            organization: DEMO_PAYER,
            relationship: 'same-organization',
          },
        ],
      },
    });
    crd = await startTestServer({
      fhirServers: [ehr.base],
      fhirCa: ehr.ca,
      delegation: {
        audience: DTR,
        ehrs: [
          {
            fhirServer: ehr.base,
            tokenEndpoint: `${ehr.base}/oauth/token`,
            clientId: DEMO_CRD_SERVER_CLIENT,
            privateJwk: ehr.crdServerKey,
          },
        ],
      },
    });
  });
  after(async () => {
    await crd?.close();
    await ehr?.close();
  });

  /** The order-sign request the EHR's client would send: opaque ids, no Coverage prefetched. */
  function request(hookInstance: string, fhirAuthorization: unknown) {
    const { store, ids, demo } = ehr.side;
    const [, patientId] = demo!['patient-avery'].split('/') as [string, string];
    const [, orderId] = demo!['order-oxygen'].split('/') as [string, string];
    const [, practitionerId] = demo!['pract-morgan'].split('/') as [string, string];
    const patient = ids.outgoing(DEMO_PAYER, store.read<Patient>('Patient', patientId)!);
    const order = ids.outgoing(DEMO_PAYER, store.read<DeviceRequest>('DeviceRequest', orderId)!);
    return {
      hook: 'order-sign',
      hookInstance,
      fhirServer: ehr.fhirBase,
      fhirAuthorization,
      context: {
        userId: `Practitioner/${ids.toOpaque(DEMO_PAYER, 'Practitioner', practitionerId)}`,
        patientId: patient.id,
        draftOrders: {
          resourceType: 'Bundle',
          type: 'collection',
          entry: [{ fullUrl: `${ehr.fhirBase}/DeviceRequest/${order.id}`, resource: order }],
        },
      },
      prefetch: { patient },
    };
  }

  async function mint(hookInstance: string) {
    const [, patient] = ehr.side.demo!['patient-avery'].split('/') as [string, string];
    const auth = await ehr.side.authz.mintHookToken({
      clientId: DEMO_CRD_SERVER_CLIENT,
      patient,
      service: SERVICE,
      declaredTypes: prefetchResourceTypes(ORDER_DRAFT_PREFETCH),
      hookInstance,
    });
    // sec-7: the payer sees the patient by its opaque id, in fhirAuthorization too.
    return { ...auth, patient: ehr.side.ids.toOpaque(DEMO_PAYER, 'Patient', patient) };
  }

  test('found-5: missing prefetch is read from the EHR with the minted token; the answer has coverage information', async () => {
    const hookInstance = randomUUID();
    const auth = await mint(hookInstance);
    assert.ok(auth.expires_in <= 30, 'found-22: the token lives 30 s or less');
    assert.ok(!/\.(c|u|d|write|\*)\b/.test(auth.scope), 'found-21: read-only scopes');
    const res = await crd.post(`/cds-services/${SERVICE}`, request(hookInstance, auth));
    assert.equal(res.status, 200, res.text);
    const body = res.json;
    const action = body.systemActions?.[0];
    assert.equal(action?.type, 'update');
    const ext = action.resource.extension.find((e: { url: string }) =>
      e.url.endsWith('ext-coverage-information'),
    );
    assert.ok(ext, 'coverage information returned');
    const coverageRef = ext.extension.find((e: { url: string }) => e.url === 'coverage')
      .valueReference.reference as string;
    // sec-7: the payer names the Coverage by the opaque id the EHR gave it.
    const [, covInternal] = ehr.side.demo!['coverage-avery'].split('/') as [string, string];
    assert.equal(
      coverageRef,
      `Coverage/${ehr.side.ids.toOpaque(DEMO_PAYER, 'Coverage', covInternal)}`,
    );
    assert.ok(!res.text.includes(covInternal), 'no internal id reaches the payer');
    await ehr.side.authz.revoke(auth.access_token);

    const events = await trail(ehr);
    const accesses = events.filter((e) =>
      e.subtype?.some((c) => c.system === 'urn:crdkit:fhir-access'),
    );
    const search = accesses.find((e) => JSON.stringify(e).includes(hookInstance));
    assert.ok(search, 'sec-8: the EHR recorded the payer reading Coverage for this hook call');
    assert.equal(search!.agent![0]!.who!.identifier!.value, DEMO_CRD_SERVER_CLIENT);
    assert.match(JSON.stringify(search), new RegExp(ehr.side.demo!['coverage-avery']));
    const report = await reviewAccesses(
      (async function* () {
        yield* events;
      })(),
    );
    assert.deepEqual(
      report.findings.filter((f) => JSON.stringify(f).includes(hookInstance)),
      [],
      'sec-8: a clean hook call raises no finding',
    );
  });

  test('found-22: the hook token is revoked after the response: a later read is refused and recorded, without the token', async () => {
    const hookInstance = randomUUID();
    const auth = await mint(hookInstance);
    const res = await crd.post(`/cds-services/${SERVICE}`, request(hookInstance, auth));
    assert.equal(res.status, 200);
    await ehr.side.authz.revoke(auth.access_token);
    const [, patient] = ehr.side.demo!['patient-avery'].split('/') as [string, string];
    const opaque = ehr.side.ids.toOpaque(DEMO_PAYER, 'Patient', patient);
    const late = await send(`${ehr.fhirBase}/Coverage?patient=${opaque}&status=active`, {
      ca: ehr.ca,
      headers: { authorization: `Bearer ${auth.access_token}` },
    });
    assert.equal(late.status, 401);
    const events = await trail(ehr);
    const refused = events.filter((e) =>
      e.subtype?.some((c) => c.system === 'urn:crdkit:security-event' && c.code === 'auth-refused'),
    );
    assert.ok(refused.length > 0, 'the refused read is in the audit trail');
    assert.ok(!JSON.stringify(events).includes(auth.access_token), 'never the token');
    assert.ok(!ehr.logs.join('\n').includes(auth.access_token), 'never in the logs');
  });

  test('sec-9: documentation needed: the CRD server exchanges the token for a DTR delegate token, never passing it on', async () => {
    const hookInstance = randomUUID();
    const auth = await mint(hookInstance);
    const res = await crd.post(`/cds-services/${SERVICE}`, request(hookInstance, auth));
    assert.equal(res.status, 200);
    assert.match(res.text, /"doc-needed"|doc-needed/);
    // The exchange runs after the answer has left: wait for its audit record at the EHR.
    let exchanged: AuditEvent | undefined;
    for (let i = 0; i < 50 && !exchanged; i += 1) {
      exchanged = (await trail(ehr)).find(
        (e) =>
          e.subtype?.some((c) => c.code === 'exchanged') &&
          JSON.stringify(e).includes(hookInstance),
      );
      if (!exchanged) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(exchanged, 'the EHR recorded an RFC 8693 exchange for this hook call');
    const text = JSON.stringify(exchanged);
    assert.match(text, /example-payer-dtr/, 'the act chain names the DTR service');
    assert.match(text, new RegExp(DTR.replace(/[.]/g, '\\.')));
    assert.ok(!text.includes(auth.access_token), 'never the token itself');
    await ehr.side.authz.revoke(auth.access_token);
  });

  /** A token the demo payer's CRD server gets for a call about Avery, reading `types`. */
  async function payerToken(types: string[]) {
    const [, patient] = ehr.side.demo!['patient-avery'].split('/') as [string, string];
    const auth = await ehr.side.authz.mintHookToken({
      clientId: DEMO_CRD_SERVER_CLIENT,
      patient,
      service: SERVICE,
      declaredTypes: types,
      hookInstance: randomUUID(),
    });
    const get = (path: string) =>
      send(`${ehr.fhirBase}/${path}`, {
        ca: ehr.ca,
        headers: { authorization: `Bearer ${auth.access_token}` },
      });
    return {
      auth,
      get,
      opaque: (t: string, id: string) => ehr.side.ids.toOpaque(DEMO_PAYER, t, id),
    };
  }

  test('dev-29: a payer reading the FHIR API sees only the coverages it is the payor of', async () => {
    const { auth, get, opaque } = await payerToken(['Coverage']);
    const [, patient] = ehr.side.demo!['patient-avery'].split('/') as [string, string];
    const res = await get(`Coverage?patient=${opaque('Patient', patient)}`);
    assert.equal(res.status, 200);
    const payors = (res.json.entry ?? []).map((e: { resource: { payor: unknown } }) =>
      JSON.stringify(e.resource.payor),
    );
    assert.ok(payors.length >= 1);
    for (const p of payors) assert.match(p, /example-payer/);
    assert.doesNotMatch(res.text, /other-payer|OMI-/);
    await ehr.side.authz.revoke(auth.access_token);
  });

  test("hrex-sec-5: an order the patient's Consent denies to this payer is unseen; narrative is stripped", async () => {
    const [, patient] = ehr.side.demo!['patient-avery'].split('/') as [string, string];
    const { store } = ehr.side;
    const denied = store.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      status: 'draft',
      intent: 'order',
      code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '72148' }] },
      subject: { reference: `Patient/${patient}` },
      text: {
        status: 'generated',
        div: '<div xmlns="http://www.w3.org/1999/xhtml">private note</div>',
      },
    });
    const plain = store.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      status: 'draft',
      intent: 'order',
      code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97110' }] },
      subject: { reference: `Patient/${patient}` },
      text: {
        status: 'generated',
        div: '<div xmlns="http://www.w3.org/1999/xhtml">private note</div>',
      },
    });
    store.create<Consent>({
      resourceType: 'Consent',
      status: 'active',
      scope: {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' },
        ],
      },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: `Patient/${patient}` },
      provision: {
        type: 'permit',
        provision: [
          {
            type: 'deny',
            actor: [
              {
                role: {
                  coding: [
                    {
                      system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
                      code: 'IRCP',
                    },
                  ],
                },
                reference: { identifier: { system: 'urn:crdkit:payer', value: DEMO_PAYER } },
              },
            ],
            code: [{ coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '72148' }] }],
          },
        ],
      },
    });
    const { auth, get, opaque } = await payerToken(['ServiceRequest', 'Consent']);
    assert.equal((await get(`ServiceRequest/${opaque('ServiceRequest', denied.id!)}`)).status, 404);
    const ok = await get(`ServiceRequest/${opaque('ServiceRequest', plain.id!)}`);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.text, undefined, 'narrative stripped');
    assert.ok(ok.json.meta.security.some((l: { code: string }) => l.code === 'REDACTED'));
    const consents = await get(`Consent?patient=${opaque('Patient', patient)}`);
    assert.equal(consents.json.entry?.length ?? 0, 0, 'Consents never reach a payer');
    await ehr.side.authz.revoke(auth.access_token);
  });

  test('sec-1: the JWK Set answers many concurrent fetches alike, and never rewrites the key store', async () => {
    const before = statSync(ehr.side.signingKeyStore).mtimeMs;
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => send(`${ehr.base}/.well-known/jwks.json`, { ca: ehr.ca })),
    );
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
    assert.equal(new Set(answers.map((a) => a.text)).size, 1);
    assert.ok(!answers[0]!.text.includes('"d"'), 'public keys only');
    assert.equal(statSync(ehr.side.signingKeyStore).mtimeMs, before);
  });

  test('fhir: a search with more parameters than any real query is a 400, not a 500', async () => {
    const { auth, get } = await payerToken(['Patient']);
    const res = await get(`Patient?${Array.from({ length: 60 }, (_, i) => `_id=x${i}`).join('&')}`);
    assert.equal(res.status, 400);
    await ehr.side.authz.revoke(auth.access_token);
  });
});
