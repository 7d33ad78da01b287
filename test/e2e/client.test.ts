/**
 * The EHR's CRD client against crdkit's own EHR side and payer CRD server, all real, on loopback:
 * order-sign for a patient with an active coverage leaves coverage information on the order in
 * the EHR (resp-48), is signed and audited (found-37), sends opaque ids (sec-7) and a 30-second
 * read-only token that is revoked afterwards (found-21, found-22), and repeated advice is shown
 * once (found-39).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditEvent, DeviceRequest } from '@medplum/fhirtypes';
import { CrdClient } from '../../src/client/crd-client.js';
import { loadSharingPolicy } from '../../src/client/policy/index.js';
import { SigningKeys } from '../../src/client/transport/index.js';
import { COVERAGE_INFORMATION_URL } from '../../src/crd/coverage-codes.js';
import { DEMO_CRD_SERVER_CLIENT, DEMO_PAYER } from '../../src/ehr/demo.js';
import { FhirClient } from '../../src/fhir/client.js';
import { clientCredentialsToken } from '../../src/fhir/delegate.js';
import { generateClientKeyPair } from '../../src/auth/sign.js';
import { startTestEhr, type TestEhr } from '../helpers/ehr.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const CLIENT_ISS = 'https://ehr.test/crd-client';

describe('CRD client end to end', () => {
  let ehr: TestEhr;
  let crd: TestServer;
  let client: CrdClient;
  let fhir: FhirClient;

  before(async () => {
    const backend = await generateClientKeyPair('ES384');
    ehr = await startTestEhr({
      clients: [
        {
          clientId: 'ehr-crd-client',
          kind: 'confidential-asymmetric',
          jwks: { keys: [backend.publicJwk as { kty: string }] },
          grantTypes: ['client_credentials'],
          scope: 'system/*.rs system/DeviceRequest.u',
        },
      ],
    });
    const keys = await SigningKeys.create();
    crd = await startTestServer({
      fhirServers: [ehr.base],
      fhirCa: ehr.ca,
      extraClients: [{ iss: CLIENT_ISS, publicJwk: keys.jwks().keys[0]! }],
    });
    // The client's own access to its EHR: SMART Backend Services, then the FHIR API.
    const token = await clientCredentialsToken({
      tokenEndpoint: `${ehr.base}/oauth/token`,
      client: { clientId: 'ehr-crd-client', privateJwk: backend.privateJwk },
      scope: 'system/*.rs system/DeviceRequest.u',
      ca: ehr.ca,
    });
    fhir = new FhirClient(new URL(ehr.fhirBase), token.accessToken, {
      timeoutMs: 5000,
      maxResponseBytes: 4 << 20,
      ca: ehr.ca,
    });
    client = new CrdClient({
      iss: CLIENT_ISS,
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
          id: DEMO_PAYER,
          name: 'Example Health Plan',
          identifiers: [{ system: 'urn:crdkit:payer', value: 'example-payer' }],
          cdsBaseUrl: crd.base,
          clientId: DEMO_CRD_SERVER_CLIENT,
          ca: crd.ca,
        },
      ],
      audit: ehr.side.audit,
      instance: 'ehr-test',
    });
  });
  after(async () => {
    await crd?.close();
    await ehr?.close();
  });

  const avery = () => ehr.side.demo!['patient-avery'].split('/')[1]!;

  test('resp-48: order-sign leaves coverage information on the order in the EHR', async () => {
    const order = ehr.side.demo!['order-oxygen'];
    const report = await client.call({
      hook: 'order-sign',
      patient: avery(),
      user: ehr.side.demo!['pract-morgan'],
      orders: [order],
    });
    assert.equal(report.results.length, 1, JSON.stringify(report));
    const [result] = report.results;
    assert.equal(result!.status, 'done', result!.error);
    assert.equal(result!.primary, true);
    assert.deepEqual(result!.applied, [order]);
    const stored = ehr.side.store.read<DeviceRequest>('DeviceRequest', order.split('/')[1]!)!;
    const ext = stored.extension?.find((e) => e.url === COVERAGE_INFORMATION_URL);
    assert.ok(ext, 'the EHR order carries the coverage information');
    // sec-7: the coverage named in it is the EHR's own (mapped back from the payer's opaque id).
    const coverage = ext!.extension?.find((e) => e.url === 'coverage')?.valueReference?.reference;
    assert.equal(coverage, ehr.side.demo!['coverage-avery']);
    assert.ok(client.kept.get(order)?.length, 'resp-46: kept for DTR and PAS');

    const events: AuditEvent[] = [];
    for await (const e of ehr.side.audit.export({})) events.push(e);
    const mine = events.find(
      (e) =>
        JSON.stringify(e).includes(result!.hookInstance!) &&
        e.agent?.[1]?.who?.display?.startsWith(crd.base),
    );
    assert.ok(mine, 'found-37: the client recorded its call');
  });

  test('found-39: the same advice on a re-invocation is not shown again', async () => {
    const call = {
      hook: 'order-sign' as const,
      patient: avery(),
      user: ehr.side.demo!['pract-morgan'],
      orders: [ehr.side.demo!['order-oxygen']],
    };
    const second = await client.call(call);
    const [result] = second.results;
    assert.equal(result!.status, 'done', result!.error);
    assert.equal(result!.cards.length, 0);
    assert.ok(result!.repeated > 0);
  });

  test('dev-26: a patient without coverage is not sent to any payer', async () => {
    const casey = ehr.side.demo!['patient-casey'].split('/')[1]!;
    const report = await client.call({
      hook: 'encounter-start',
      patient: casey,
      user: ehr.side.demo!['pract-morgan'],
    });
    assert.equal(report.results.length, 0);
    assert.match(report.note ?? '', /no active coverage/);
  });

  test("sec-5: another patient's order, an unknown patient or user is refused before any payer is called", async () => {
    const blake = ehr.side.demo!['patient-blake'].split('/')[1]!;
    const user = ehr.side.demo!['pract-morgan'];
    const cases: Array<[Parameters<CrdClient['call']>[0], RegExp]> = [
      [
        { hook: 'order-sign', patient: blake, user, orders: [ehr.side.demo!['order-oxygen']] },
        /is not an order of Patient\//,
      ],
      [{ hook: 'order-sign', patient: 'no-such-patient', user, orders: [] }, /not found/],
      [{ hook: 'order-sign', patient: blake, user }, /needs at least one order/],
      [
        {
          hook: 'order-sign',
          patient: blake,
          user: 'Practitioner/nobody',
          orders: [ehr.side.demo!['order-blepharoplasty']],
        },
        /Practitioner\/nobody not found/,
      ],
    ];
    for (const [call, message] of cases) {
      await assert.rejects(
        client.call(call),
        (err: Error) => err.name === 'CallError' && message.test(err.message),
      );
    }
  });
});
