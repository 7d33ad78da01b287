import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkCoverageInformation, COVERAGE_INFORMATION_URL } from '../../src/crd/coverage-info.js';
import type { FhirStub } from '../helpers/fhir-stub.js';
import {
  bundle,
  coverage,
  CPT,
  deviceRequest,
  medicationRequest,
  orderRequest,
  patient,
  serviceRequest,
} from '../helpers/requests.js';
import { startServerWithStub, type TestServer } from '../helpers/server.js';

let server: TestServer;
let stub: FhirStub;
let close: () => Promise<void>;
before(async () => {
  ({ server, stub, close } = await startServerWithStub([patient(), coverage()]));
});
after(() => close());

const SIGN = '/cds-services/order-sign-crd';
type Json = Record<string, any>;

const coverageInfo = (resource: Json): any[] =>
  (resource.extension ?? []).filter((e: Json) => e.url === COVERAGE_INFORMATION_URL);
const sub = (ext: Json, url: string): Json[] => ext.extension.filter((e: Json) => e.url === url);
const code = (ext: Json, url: string) => sub(ext, url)[0]?.valueCode;
const reasons = (ext: Json) =>
  sub(ext, 'reason').map((r) => r.valueCodeableConcept.coding?.[0]?.code);

describe('coverage information on primary hooks (hook-16, resp-29, resp-37)', () => {
  it('hook-16/resp-26/resp-29/resp-52: one valid update system action per order (crd-ci-q1..q9)', async () => {
    const orders = [deviceRequest('dr-1', 'E0431'), serviceRequest('sr-1', CPT, '77067')];
    const res = await server.post(SIGN, orderRequest({ orders }));
    assert.equal(res.status, 200);
    assert.equal(res.json.systemActions.length, 2);
    for (const [i, action] of res.json.systemActions.entries()) {
      assert.equal(action.type, 'update');
      const exts = coverageInfo(action.resource);
      assert.equal(exts.length, 1);
      assert.deepEqual(checkCoverageInformation(exts[0]!), []);
      assert.equal(sub(exts[0]!, 'coverage')[0]?.valueReference.reference, 'Coverage/cov-1');
      // resp-37: only the coverage-information extension differs from the order sent
      const { extension: _e, ...rest } = action.resource;
      assert.deepEqual(rest, orders[i]);
    }
  });

  it('resp-32/resp-33: one assertion id per coverage in a response, a new one per response', async () => {
    const orders = [deviceRequest('dr-1', 'E0431'), serviceRequest('sr-1', CPT, '77067')];
    const a = await server.post(SIGN, orderRequest({ orders }));
    const b = await server.post(SIGN, orderRequest({ orders }));
    const ids = (r: Json) =>
      r.json.systemActions.map(
        (s: Json) => sub(coverageInfo(s.resource)[0]!, 'coverage-assertion-id')[0]?.valueString,
      );
    assert.equal(new Set(ids(a)).size, 1);
    assert.notEqual(ids(a)[0], ids(b)[0]);
  });

  it('resp-37: an existing coverage-information extension is replaced, other extensions kept', async () => {
    const order = {
      ...deviceRequest('dr-1', 'E0431'),
      extension: [
        { url: 'http://example.org/keep-me', valueString: 'kept' },
        { url: COVERAGE_INFORMATION_URL, extension: [{ url: 'covered', valueCode: 'covered' }] },
      ],
    };
    const res = await server.post(SIGN, orderRequest({ orders: [order] }));
    const exts = res.json.systemActions[0].resource.extension;
    assert.equal(exts.length, 2);
    assert.equal(exts[0].url, 'http://example.org/keep-me');
    assert.deepEqual(checkCoverageInformation(exts[1]), []);
  });

  it('resp-4/resp-5/resp-3/resp-6: cards name the payer, carry a card-type topic, a uuid and a short summary', async () => {
    const res = await server.post(SIGN, orderRequest());
    assert.ok(res.json.cards.length > 0);
    for (const card of res.json.cards) {
      assert.match(card.uuid, /^[0-9a-f-]{36}$/);
      assert.equal(card.source.label, 'Acme Health Plan');
      assert.equal(
        card.source.topic.system,
        'http://terminology.hl7.org/CodeSystem/cdshooks-card-type',
      );
      assert.ok(card.summary.length < 140);
      assert.ok(['info', 'warning', 'critical'].includes(card.indicator));
    }
  });
});

describe('configuration and versions (dev-3, dev-14 to dev-17)', () => {
  it('dev-14/resp-28: "coverage-info": false turns the system actions off', async () => {
    const res = await server.post(
      SIGN,
      orderRequest({
        extension: { 'davinci-crd.configuration': { 'coverage-info': false } },
      }),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.systemActions, []);
  });

  it('dev-14: "max-cards" caps the cards', async () => {
    const orders = [deviceRequest('dr-1', 'E0431'), serviceRequest('sr-2', CPT, '15823')];
    const all = await server.post(SIGN, orderRequest({ orders }));
    assert.ok(all.json.cards.length >= 2);
    const one = await server.post(
      SIGN,
      orderRequest({ orders, extension: { 'davinci-crd.configuration': { 'max-cards': 1 } } }),
    );
    assert.equal(one.json.cards.length, 1);
  });

  it('dev-14/dev-6: every card type switched off gives an empty answer, not an error', async () => {
    const res = await server.post(
      SIGN,
      orderRequest({
        extension: {
          'davinci-crd.configuration': {
            'coverage-info': false,
            guideline: false,
            network: false,
            'clinical-reminder': false,
          },
        },
      }),
    );
    assert.deepEqual(res.json.cards, []);
    assert.deepEqual(res.json.systemActions, []);
  });

  it('dev-17: unknown configuration keys are ignored', async () => {
    const res = await server.post(
      SIGN,
      orderRequest({
        extension: { 'davinci-crd.configuration': { 'no-such-option': 7, cost: false } },
      }),
    );
    assert.equal(res.status, 200);
  });

  it('dev-15: no configuration is required', async () => {
    const res = await server.post(SIGN, orderRequest());
    assert.equal(res.status, 200);
  });

  it('dev-14: a supported option with the wrong type is a 400 naming it', async () => {
    const res = await server.post(
      SIGN,
      orderRequest({
        extension: { 'davinci-crd.configuration': { 'max-cards': 'five' } },
      }),
    );
    assert.equal(res.status, 400);
    assert.deepEqual(res.json.issue[0].expression, [
      'extension.davinci-crd.configuration.max-cards',
    ]);
  });

  it('dev-3: a supported requestedVersion is honoured; an unsupported one is an error', async () => {
    const ok = await server.post(
      SIGN,
      orderRequest({ extension: { 'davinci-crd.requestedVersion': '2.2' } }),
    );
    assert.equal(ok.status, 200);
    const no = await server.post(
      SIGN,
      orderRequest({ extension: { 'davinci-crd.requestedVersion': '1.9' } }),
    );
    assert.equal(no.status, 422);
    assert.equal(no.json.issue[0].details.coding[0].code, 'ERR_VERSION_UNSUPPORTED');
  });
});

describe('secondary hooks (hook-17, hook-19)', () => {
  it('hook-19: order-select coverage information carries no doc-needed clinical or admin', async () => {
    const res = await server.post(
      '/cds-services/order-select-crd',
      orderRequest({ hook: 'order-select', orders: [deviceRequest('dr-1', 'E0431')] }),
    );
    assert.equal(res.status, 200);
    for (const action of res.json.systemActions ?? []) {
      for (const ext of coverageInfo(action.resource)) {
        const docs = sub(ext, 'doc-needed').map((d) => d.valueCode);
        assert.ok(!docs.includes('clinical') && !docs.includes('admin'));
        assert.deepEqual(checkCoverageInformation(ext), []);
      }
    }
  });
});

describe('patient and coverage (hook-13, resp-44, resp-45)', () => {
  it('hook-13: no Coverage accessible is a 400 OperationOutcome, never a 412 (found-32)', async () => {
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: { patient: patient(), coverage: null } }),
    );
    assert.equal(res.status, 400);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_COVERAGE_NOT_ACCESSIBLE');
  });

  it('hook-13: several Coverages are a 400', async () => {
    const two = bundle([coverage(), coverage({ id: 'cov-2' })], 'searchset');
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: { patient: patient(), coverage: two } }),
    );
    assert.equal(res.status, 400);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_COVERAGE_AMBIGUOUS');
  });

  it('hook-13: a Coverage of a payer this endpoint does not handle is a 400', async () => {
    const other = bundle([coverage({ payor: [{ reference: 'Organization/other-payer' }] })]);
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: { patient: patient(), coverage: other } }),
    );
    assert.equal(res.status, 400);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_PAYER_NOT_HANDLED');
  });

  it('resp-45: an inactive coverage gives not-covered with reason no-active-coverage', async () => {
    const ended = bundle([coverage({ period: { start: '2019-01-01', end: '2019-12-31' } })]);
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: { patient: patient(), coverage: ended } }),
    );
    assert.equal(res.status, 200);
    const ext = coverageInfo(res.json.systemActions[0].resource)[0]!;
    assert.equal(code(ext, 'covered'), 'not-covered');
    assert.deepEqual(reasons(ext), ['no-active-coverage']);
  });

  it('resp-44: a patient the EHR reports absent gives not-covered with reason no-member-found', async () => {
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: { patient: null, coverage: bundle([coverage()]) } }),
    );
    const ext = coverageInfo(res.json.systemActions[0].resource)[0]!;
    assert.equal(code(ext, 'covered'), 'not-covered');
    assert.deepEqual(reasons(ext), ['no-member-found']);
  });
});

describe('FHIR queries (found-5, conf-12, resp-43) and the token boundary', () => {
  it('found-5: data missing from prefetch is read from fhirServer with the access token', async () => {
    stub.requests.length = 0;
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: undefined, fhirServer: stub.base, accessToken: 'token-for-stub-1' }),
    );
    assert.equal(res.status, 200);
    assert.equal(res.json.systemActions.length, 1);
    const paths = stub.requests.map((r) => r.path).sort();
    assert.deepEqual(paths, ['/fhir/Coverage?patient=pat-1&status=active', '/fhir/Patient/pat-1']);
    for (const r of stub.requests) assert.equal(r.authorization, 'Bearer token-for-stub-1');
  });

  it('prefetch is used when present: nothing is queried', async () => {
    stub.requests.length = 0;
    const res = await server.post(SIGN, orderRequest({ fhirServer: stub.base }));
    assert.equal(res.status, 200);
    assert.equal(stub.requests.length, 0);
  });

  it('a prefetch key sent as null is not queried again', async () => {
    stub.requests.length = 0;
    await server.post(
      SIGN,
      orderRequest({
        fhirServer: stub.base,
        prefetch: { patient: null, coverage: bundle([coverage()]) },
      }),
    );
    assert.equal(stub.requests.length, 0);
  });

  it('sec-9/SSRF: an unregistered fhirServer is never contacted', async () => {
    stub.requests.length = 0;
    const res = await server.post(
      SIGN,
      orderRequest({
        prefetch: undefined,
        fhirServer: stub.base.replace('127.0.0.1', 'localhost'),
      }),
    );
    assert.equal(res.status, 400);
    assert.equal(stub.requests.length, 0);
  });

  it('sec-2/SSRF: an http fhirServer is never contacted', async () => {
    stub.requests.length = 0;
    await server.post(
      SIGN,
      orderRequest({ prefetch: undefined, fhirServer: stub.base.replace('https:', 'http:') }),
    );
    assert.equal(stub.requests.length, 0);
  });

  it('sec-9: absolute references to other hosts are never fetched; the token stays with fhirServer', async () => {
    stub.requests.length = 0;
    const order = {
      ...medicationRequest('mr-1', '1049221'),
      medicationCodeableConcept: undefined,
      medicationReference: { reference: 'https://other-host.test/fhir/Medication/med-9' },
    };
    const res = await server.post(SIGN, orderRequest({ fhirServer: stub.base, orders: [order] }));
    assert.equal(res.status, 200);
    // Looked up on fhirServer only, as Medication/med-9.
    assert.deepEqual(
      stub.requests.map((r) => r.path),
      ['/fhir/Medication/med-9'],
    );
  });

  it('conf-12: data looked for and absent is not an error: 200 with coverage information', async () => {
    const order = {
      ...medicationRequest('mr-1', '1049221'),
      medicationCodeableConcept: undefined,
      medicationReference: { reference: 'Medication/absent-med' },
    };
    const res = await server.post(SIGN, orderRequest({ fhirServer: stub.base, orders: [order] }));
    assert.equal(res.status, 200);
    assert.deepEqual(
      checkCoverageInformation(coverageInfo(res.json.systemActions[0].resource)[0]!),
      [],
    );
  });

  it('resp-43: a failing EHR FHIR API gives indeterminate with reason technical', async () => {
    const order = {
      ...medicationRequest('mr-1', '1049221'),
      medicationCodeableConcept: undefined,
      medicationReference: { reference: 'Medication/med-1' },
    };
    stub.failWith = 500;
    try {
      const res = await server.post(SIGN, orderRequest({ fhirServer: stub.base, orders: [order] }));
      assert.equal(res.status, 200);
      const ext = coverageInfo(res.json.systemActions[0].resource)[0]!;
      assert.equal(code(ext, 'covered'), 'indeterminate');
      assert.deepEqual(reasons(ext), ['technical']);
      assert.match(sub(ext, 'reason')[0]!.valueCodeableConcept.text, /ERR_FHIR_STATUS/);
    } finally {
      delete stub.failWith;
    }
  });

  it('resp-43: a FHIR server that never answers is abandoned at the deadline', async () => {
    const order = {
      ...medicationRequest('mr-1', '1049221'),
      medicationCodeableConcept: undefined,
      medicationReference: { reference: 'Medication/med-1' },
    };
    stub.failWith = 'hang';
    try {
      const res = await server.post(SIGN, orderRequest({ fhirServer: stub.base, orders: [order] }));
      assert.equal(res.status, 200);
      const ext = coverageInfo(res.json.systemActions[0].resource)[0]!;
      assert.equal(code(ext, 'covered'), 'indeterminate');
    } finally {
      delete stub.failWith;
    }
  });

  it('no log line holds the JWT, the access token or patient data', async () => {
    const before = server.logs.length;
    await server.post(
      SIGN,
      orderRequest({ accessToken: 'secret-token-xyz', prefetch: undefined, fhirServer: stub.base }),
    );
    const lines = server.logs.slice(before).join('\n');
    assert.ok(lines.length > 0);
    for (const secret of ['secret-token-xyz', 'Tester', '1948-02-01', 'eyJ']) {
      assert.ok(!lines.includes(secret), secret);
    }
  });
});
