/**
 * The CRD client against a recording stand-in for an unknown payer (two of them: the patient has
 * a primary and a secondary coverage). The stubs publish their own discovery and record every
 * call; the tests check what left the EHR: the JWT (found-31 keys from discovery; kid, jku, jti,
 * lifetime), the prefetch per template (dev-29: only that payer's coverage), opaque ids that
 * differ per payer (sec-7), withheld sensitive data (the client is the final arbiter), the
 * token's lifetime, scope and revocation (found-21, found-22), coverage information switched off
 * for the secondary payer (dev-30) and behaviour past the deadline (found-3, found-6, found-7).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Encounter, ServiceRequest } from '@medplum/fhirtypes';
import { buildCoverageInformation } from '../../src/crd/coverage-info.js';
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { CrdClient, type PayerResult } from '../../src/client/crd-client.js';
import { loadSharingPolicy } from '../../src/client/policy/index.js';
import { SigningKeys } from '../../src/client/transport/index.js';
import { DEMO_CRD_SERVER_CLIENT } from '../../src/ehr/demo.js';
import { FhirClient } from '../../src/fhir/client.js';
import { clientCredentialsToken } from '../../src/fhir/delegate.js';
import { generateClientKeyPair } from '../../src/auth/sign.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { serverTlsOptions } from '../../src/tls/options.js';
import { startTestEhr, type TestEhr } from '../helpers/ehr.js';
import { send } from '../helpers/https.js';

const ISS = 'https://ehr.test/crd-client';
const JKU = 'https://ehr.test/.well-known/jwks.json';

interface Recorded {
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** A payer we know nothing about but its discovery: records calls, answers after `delayMs`. */
async function stubPayer(
  pem: { cert: string; key: string },
  extraTemplates: Record<string, string> = {},
) {
  const calls: Recorded[] = [];
  const state: { delayMs: number; answer?: (body: any) => unknown } = { delayMs: 0 };
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-payer-stub-'));
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  const tls = serverTlsOptions({ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') });
  const server: Server = createServer(tls, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET' && req.url === '/cds-services') {
        return res.end(
          JSON.stringify({
            services: [
              {
                id: 'sign-stub',
                hook: 'order-sign',
                description: 'stub',
                prefetch: {
                  pt: 'Patient/{{context.patientId}}',
                  cov: 'Coverage?patient={{context.patientId}}&status=active',
                  enc: 'Encounter/{{context.encounterId}}',
                  // A payer asking for more than the CRD key resources gets nothing of it.
                  consents: 'Consent?patient={{context.patientId}}',
                  bareConsent: 'Consent',
                  ...extraTemplates,
                },
                extension: {
                  'davinci-crd.version': ['2.2'],
                  'davinci-crd.configuration-options': [
                    {
                      code: 'coverage-info',
                      type: 'boolean',
                      name: 'Coverage',
                      description: 'c',
                      default: true,
                    },
                  ],
                },
              },
            ],
          }),
        );
      }
      const body = JSON.parse(Buffer.concat(chunks).toString());
      calls.push({ headers: req.headers, body });
      const answer = state.answer ? state.answer(body) : { cards: [], systemActions: [] };
      setTimeout(() => res.end(JSON.stringify(answer)), state.delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `https://localhost:${port}`,
    calls,
    state,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('CRD client against unknown payers', () => {
  let ehr: TestEhr;
  let keys: SigningKeys;
  let primary: Awaited<ReturnType<typeof stubPayer>>;
  let secondary: Awaited<ReturnType<typeof stubPayer>>;
  let fhir: FhirClient;
  let blake: string;
  let order: string;
  let encounter: string;

  const client = (extra: Partial<ConstructorParameters<typeof CrdClient>[0]> = {}) =>
    new CrdClient({
      iss: ISS,
      jku: JKU,
      keys,
      fhirBase: ehr.fhirBase,
      fhir,
      tokens: {
        mint: (input) => ehr.side.authz.mintHookToken(input),
        revoke: (t) => ehr.side.authz.revoke(t),
      },
      ids: ehr.side.ids,
      policy: loadSharingPolicy(),
      payers: [
        {
          id: 'example-payer',
          name: 'Example Health Plan',
          identifiers: [{ system: 'urn:crdkit:payer', value: 'example-payer' }],
          cdsBaseUrl: primary.base,
          clientId: DEMO_CRD_SERVER_CLIENT,
          ca: pemCert,
        },
        {
          id: 'other-payer',
          name: 'Other Mutual',
          identifiers: [{ system: 'urn:crdkit:payer', value: 'other-payer' }],
          cdsBaseUrl: secondary.base,
          clientId: 'other-payer-crd',
          ca: pemCert,
        },
      ],
      audit: ehr.side.audit,
      instance: 'test',
      ...extra,
    });
  let pemCert = '';
  let pemPair: { cert: string; key: string };

  before(async () => {
    const backend = await generateClientKeyPair('ES384');
    const other = await generateClientKeyPair('ES384');
    ehr = await startTestEhr({
      clients: [
        {
          clientId: 'ehr-crd-client',
          kind: 'confidential-asymmetric',
          jwks: { keys: [backend.publicJwk as { kty: string }] },
          grantTypes: ['client_credentials'],
          scope: 'system/*.rs system/ServiceRequest.u',
        },
        {
          clientId: 'other-payer-crd',
          kind: 'confidential-asymmetric',
          jwks: { keys: [other.publicJwk as { kty: string }] },
          grantTypes: ['client_credentials'],
          scope: 'patient/*.rs',
          payer: 'other-payer',
        },
      ],
    });
    const pem = await selfSignedCertificate('localhost');
    pemCert = pem.cert;
    pemPair = pem;
    primary = await stubPayer(pem);
    secondary = await stubPayer(pem);
    keys = await SigningKeys.create();
    const token = await clientCredentialsToken({
      tokenEndpoint: `${ehr.base}/oauth/token`,
      client: { clientId: 'ehr-crd-client', privateJwk: backend.privateJwk },
      scope: 'system/*.rs system/ServiceRequest.u',
      ca: ehr.ca,
    });
    fhir = new FhirClient(new URL(ehr.fhirBase), token.accessToken, {
      timeoutMs: 5000,
      maxResponseBytes: 4 << 20,
      ca: ehr.ca,
    });
    blake = ehr.side.demo!['patient-blake'].split('/')[1]!;
    order = ehr.side.demo!['order-blepharoplasty'];
    // A visit at a substance-use programme: labelled ETH, so it must never reach a payer.
    const visit = ehr.side.store.create<Encounter>({
      resourceType: 'Encounter',
      meta: {
        security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'ETH' }],
      },
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: `Patient/${blake}` },
    });
    encounter = visit.id!;
  });
  after(async () => {
    await primary?.close();
    await secondary?.close();
    await ehr?.close();
  });

  let results: PayerResult[] = [];
  test('dev-32: both payers with active coverage are called, primary first', async () => {
    const report = await client().call({
      hook: 'order-sign',
      patient: blake,
      user: ehr.side.demo!['pract-morgan'],
      encounter,
      orders: [order],
    });
    results = report.results;
    assert.deepEqual(
      results.map((r) => [r.payer, r.primary, r.status]),
      [
        ['example-payer', true, 'done'],
        ['other-payer', false, 'done'],
      ],
      JSON.stringify(results.map((r) => r.error)),
    );
    assert.equal(primary.calls.length, 1);
    assert.equal(secondary.calls.length, 1);
  });

  test('found-31: the JWT has kid, jku, a fresh jti, aud = the discovered service URL, minutes of life', async () => {
    const jwts = [primary, secondary].map((p) =>
      String(p.calls[0]!.headers.authorization).replace(/^Bearer /, ''),
    );
    const jtis = new Set<string>();
    for (const [i, jwt] of jwts.entries()) {
      const header = decodeProtectedHeader(jwt);
      assert.equal(header.alg, 'ES384');
      assert.equal(header.typ, 'JWT');
      assert.equal(header.jku, JKU);
      const key = keys.jwks().keys.find((k) => k.kid === header.kid)!;
      const { payload } = await jwtVerify(jwt, await importJWK(key, 'ES384'), {
        issuer: ISS,
        audience: `${[primary, secondary][i]!.base}/cds-services/sign-stub`,
      });
      assert.ok(payload.exp! - payload.iat! <= 300);
      jtis.add(String(decodeJwt(jwt).jti));
    }
    assert.equal(jtis.size, 2);
  });

  test('sec-7: each payer sees its own opaque ids, never the internal ones', () => {
    const a = primary.calls[0]!.body;
    const b = secondary.calls[0]!.body;
    assert.notEqual(a.context.patientId, blake);
    assert.notEqual(a.context.patientId, b.context.patientId);
    assert.equal(a.prefetch.pt.id, a.context.patientId);
    const text = JSON.stringify([a, b]);
    assert.ok(!text.includes(blake), 'the internal patient id never leaves');
    assert.ok(!text.includes(order.split('/')[1]!), 'nor the internal order id');
    for (const value of Object.values({ ...a.prefetch, ...b.prefetch }) as any[]) {
      assert.equal(value?.link, undefined, 'no search links (they name query values and ids)');
    }
  });

  test("dev-29: the coverage key holds only that payer's coverage", () => {
    for (const stub of [primary, secondary]) {
      const cov = stub.calls[0]!.body.prefetch.cov;
      assert.equal(cov.resourceType, 'Bundle');
      assert.equal(cov.entry.length, 1);
    }
    const a = primary.calls[0]!.body.prefetch.cov.entry[0].resource;
    const b = secondary.calls[0]!.body.prefetch.cov.entry[0].resource;
    assert.equal(a.order, 1);
    assert.equal(b.order, 2);
  });

  test('hrex-sec-6: the ETH-labelled encounter is withheld: its key left out, the withholding audited', async () => {
    for (const stub of [primary, secondary]) {
      assert.ok(!('enc' in stub.calls[0]!.body.prefetch), 'never sent');
    }
    assert.ok(results[0]!.withheld.some((w) => w.reference === `Encounter/${encounter}`));
    let found = false;
    for await (const e of ehr.side.audit.export({})) {
      if (
        e.entity?.some(
          (x) => x.name === 'withheld' && x.what?.reference === `Encounter/${encounter}`,
        )
      )
        found = true;
    }
    assert.ok(found, 'the audit record names what was withheld');
  });

  test('hrex-sec-6: the payer cannot read the withheld encounter with its own token either', async () => {
    const auth = await ehr.side.authz.mintHookToken({
      clientId: DEMO_CRD_SERVER_CLIENT,
      patient: blake,
      service: 'sign-stub',
      declaredTypes: ['Encounter', 'Patient'],
      hookInstance: '0f8fad5b-d9cb-469f-a165-70867728950e',
    });
    const opaque = ehr.side.ids.toOpaque('example-payer', 'Encounter', encounter);
    const read = await send(`${ehr.fhirBase}/Encounter/${opaque}`, {
      ca: ehr.ca,
      headers: { authorization: `Bearer ${auth.access_token}` },
    });
    assert.equal(read.status, 404);
    const search = await send(`${ehr.fhirBase}/Encounter?_id=${opaque}`, {
      ca: ehr.ca,
      headers: { authorization: `Bearer ${auth.access_token}` },
    });
    assert.equal(search.status, 200);
    assert.equal(search.json.entry?.length ?? 0, 0);
    await ehr.side.authz.revoke(auth.access_token);
  });

  test("sec-5: a payer's template that would reach other patients carries only this patient's data", async () => {
    const clinic = ehr.side.demo!['loc-clinic'];
    const visit = (patient: string) =>
      ehr.side.store.create<Encounter>({
        resourceType: 'Encounter',
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        subject: { reference: patient },
        location: [{ location: { reference: clinic } }],
      });
    visit(ehr.side.demo!['patient-avery']);
    visit(`Patient/${blake}`);
    const spy = await stubPayer(pemPair, { spy: `Encounter?location=${clinic}` });
    try {
      const spying = client({
        payers: [
          {
            id: 'example-payer',
            name: 'Example Health Plan',
            identifiers: [{ system: 'urn:crdkit:payer', value: 'example-payer' }],
            cdsBaseUrl: spy.base,
            clientId: DEMO_CRD_SERVER_CLIENT,
            ca: pemCert,
          },
        ],
      });
      const report = await spying.call({
        hook: 'order-sign',
        patient: blake,
        user: ehr.side.demo!['pract-morgan'],
        orders: [order],
      });
      assert.equal(report.results[0]!.status, 'done', report.results[0]!.error);
      const sent = spy.calls[0]!.body;
      const subjects = (sent.prefetch.spy?.entry ?? []).map(
        (e: { resource: Encounter }) => e.resource.subject?.reference,
      );
      assert.ok(subjects.length >= 1, 'the template ran');
      for (const s of subjects) assert.equal(s, `Patient/${sent.context.patientId}`);
    } finally {
      await spy.close();
    }
  });

  test("resp-48: only the primary payer's coverage information, about its own coverage, is applied", async () => {
    const info = (coverageRef: string, covered: string) =>
      buildCoverageInformation({ covered, paNeeded: 'no-auth' } as never, {
        coverageReference: coverageRef,
        assertionId: `a-${covered}`,
        date: '2026-12-04',
        hook: 'order-sign',
      });
    const answer = (pick: (body: any) => string, covered: string) => (body: any) => {
      const sent = body.context.draftOrders.entry[0].resource;
      return {
        cards: [],
        systemActions: [
          {
            type: 'update',
            description: 'coverage',
            resource: {
              ...sent,
              extension: [...(sent.extension ?? []), info(pick(body), covered)],
            },
          },
        ],
      };
    };
    const ownCoverage = (body: any) => `Coverage/${body.prefetch.cov.entry[0].resource.id}`;
    const otherCoverage = () => {
      const avery = ehr.side.demo!['coverage-avery'].split('/')[1]!;
      return `Coverage/${ehr.side.ids.toOpaque('example-payer', 'Coverage', avery)}`;
    };
    const stored = () =>
      ehr.side.store.read<ServiceRequest>('ServiceRequest', order.split('/')[1]!)!.extension ?? [];
    const before = stored().length;
    try {
      // Another patient's coverage named by the primary; a secondary answering at all.
      primary.state.answer = answer(otherCoverage, 'covered');
      secondary.state.answer = answer(ownCoverage, 'covered');
      const first = await client().call({
        hook: 'order-sign',
        patient: blake,
        user: ehr.side.demo!['pract-morgan'],
        orders: [order],
      });
      assert.deepEqual(
        first.results.map((r) => r.applied),
        [[], []],
      );
      assert.equal(stored().length, before, 'nothing applied');
      // The primary, about its own coverage: applied.
      primary.state.answer = answer(ownCoverage, 'covered');
      const second = await client().call({
        hook: 'order-sign',
        patient: blake,
        user: ehr.side.demo!['pract-morgan'],
        orders: [order],
      });
      assert.deepEqual(second.results[0]!.applied, [order]);
      assert.deepEqual(second.results[1]!.applied, []);
    } finally {
      delete primary.state.answer;
      delete secondary.state.answer;
    }
  });

  test('dev-30: coverage information is switched off for the secondary payer only', () => {
    assert.equal(primary.calls[0]!.body.extension?.['davinci-crd.configuration'], undefined);
    assert.deepEqual(secondary.calls[0]!.body.extension['davinci-crd.configuration'], {
      'coverage-info': false,
    });
  });

  test('found-21: a template for a type outside the CRD key resources is not run, nor in the token', () => {
    for (const stub of [primary, secondary]) {
      assert.ok(!('consents' in stub.calls[0]!.body.prefetch));
      assert.ok(!('bareConsent' in stub.calls[0]!.body.prefetch));
      assert.doesNotMatch(stub.calls[0]!.body.fhirAuthorization.scope, /Consent/);
    }
  });

  test('found-22: the token lives 30 s or less, reads only the declared types, and is revoked after', async () => {
    const auth = primary.calls[0]!.body.fhirAuthorization;
    assert.ok(auth.expires_in <= 30);
    const scopes = String(auth.scope).split(' ').sort();
    assert.deepEqual(scopes, ['patient/Coverage.rs', 'patient/Encounter.rs', 'patient/Patient.rs']);
    assert.equal(auth.subject, DEMO_CRD_SERVER_CLIENT);
    assert.equal(auth.patient, primary.calls[0]!.body.context.patientId);
    assert.equal(await ehr.side.authz.resolver.resolve(auth.access_token), undefined);
  });

  test('found-3: past the deadline the call is abandoned at once and its token revoked', async () => {
    primary.state.delayMs = 1500;
    secondary.state.delayMs = 1500;
    try {
      const report = await client({ deadlineMs: 200 }).call({
        hook: 'order-sign',
        patient: blake,
        user: ehr.side.demo!['pract-morgan'],
        orders: [order],
      });
      assert.deepEqual(
        report.results.map((r) => r.status),
        ['late', 'late'],
      );
      const auth = primary.calls.at(-1)!.body.fhirAuthorization;
      assert.equal(await ehr.side.authz.resolver.resolve(auth.access_token), undefined);
    } finally {
      primary.state.delayMs = 0;
      secondary.state.delayMs = 0;
    }
  });

  test('found-7: in background mode a late answer is still processed and handed over', async () => {
    primary.state.delayMs = 600;
    try {
      const late = new Promise<PayerResult>((resolve) => {
        void client({ deadlineMs: 100, lateCalls: 'background', onLate: resolve })
          .call({
            hook: 'order-sign',
            patient: blake,
            user: ehr.side.demo!['pract-morgan'],
            orders: [order],
          })
          .then((report) => assert.equal(report.results[0]!.status, 'late'));
      });
      const result = await late;
      assert.equal(result.status, 'done');
    } finally {
      primary.state.delayMs = 0;
    }
  });
});
