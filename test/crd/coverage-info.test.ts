import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Extension, Resource } from '@medplum/fhirtypes';
import {
  assertValidCoverageInformation,
  buildCoverageInformation,
  checkCoverageInformation,
  COVERAGE_INFORMATION_URL,
  CoverageInformationError,
  coverageInformationAction,
} from '../../src/crd/coverage-info.js';
import type { Determination, HookName } from '../../src/crd/types.js';
import { findByUrl, fixture, SKIP } from './fixtures.js';

const opts = (hook: HookName = 'order-sign') => ({
  coverageReference: 'Coverage/COV1',
  assertionId: 'A-1',
  date: '2026-01-05',
  hook,
});
const build = (d: Determination, hook?: HookName) => buildCoverageInformation(d, opts(hook));
const urls = (e: Extension) => (e.extension ?? []).map((x) => x.url);
const sub = (e: Extension, url: string) => (e.extension ?? []).filter((x) => x.url === url);
/** Checks a hand-made extension: a base valid one plus `extra` sub-extensions. */
const check = (...extra: Extension[]) =>
  checkCoverageInformation({
    url: COVERAGE_INFORMATION_URL,
    extension: [
      { url: 'coverage', valueReference: { reference: 'Coverage/1' } },
      { url: 'date', valueDate: '2026-01-05' },
      { url: 'coverage-assertion-id', valueString: 'x' },
      ...(extra.some((e) => e.url === 'covered') ? [] : [{ url: 'covered', valueCode: 'covered' }]),
      ...extra,
    ],
  });
const code = (url: string, valueCode: string): Extension => ({ url, valueCode });
const reason = (text?: string, c?: string): Extension => ({
  url: 'reason',
  valueCodeableConcept: {
    ...(c
      ? { coding: [{ system: 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp', code: c }] }
      : {}),
    ...(text ? { text } : {}),
  },
});

const full: Determination = {
  covered: 'covered',
  paNeeded: 'satisfied',
  satisfiedPaId: 'Q8U119',
  docNeeded: ['conditional'],
  docPurpose: ['withclaim'],
  infoNeeded: ['OTH'],
  billingCodes: [{ system: 'http://www.ama-assn.org/go/cpt', code: '77065' }],
  reasons: [
    { code: 'auth-out-network', text: 'In-network required' },
    { text: 'Diagnosis needed' },
  ],
  details: [
    {
      category: 'cat-limitation',
      code: 'allowed-quantity',
      value: { quantity: { value: 10, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } },
      qualification: 'Copay minimum is $15',
    },
  ],
  questionnaires: ['http://example.org/Questionnaire/q|1'],
  contacts: [{ telecom: [{ system: 'url', value: 'http://some-payer/help.html' }] }],
  expiryDate: '2026-06-30',
};

describe('buildCoverageInformation', () => {
  test('crd-ci-card: the IG shape, sub-extensions in the IG order with relative urls', () => {
    const ext = build(full);
    assert.equal(ext.url, COVERAGE_INFORMATION_URL);
    assert.deepEqual(urls(ext), [
      'coverage',
      'covered',
      'pa-needed',
      'doc-needed',
      'doc-purpose',
      'info-needed',
      'billingCode',
      'reason',
      'reason',
      'detail',
      'questionnaire',
      'date',
      'coverage-assertion-id',
      'satisfied-pa-id',
      'contact',
      'expiry-date',
    ]);
    assert.deepEqual(sub(ext, 'reason')[0]?.valueCodeableConcept, {
      coding: [
        {
          system: 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp',
          code: 'auth-out-network',
          display: 'Authorization needed out-of-network',
        },
      ],
      text: 'In-network required',
    });
    const detail = sub(ext, 'detail')[0]?.extension ?? [];
    assert.deepEqual(
      detail.map((d) => d.url),
      ['category', 'code', 'value', 'qualification'],
    );
    assert.equal(
      detail[1]?.valueCodeableConcept?.coding?.[0]?.system,
      'http://terminology.hl7.org/CodeSystem/crd-coverage-detail',
    );
    assert.equal(detail[2]?.valueQuantity?.value, 10);
    assert.deepEqual(sub(ext, 'contact')[0]?.valueContactDetail, full.contacts?.[0]);
    assert.equal(sub(ext, 'date')[0]?.valueDate, '2026-01-05');
    assert.equal(sub(ext, 'coverage-assertion-id')[0]?.valueString, 'A-1');
  });

  test('crd-ci-card: same sub-extension order as CRDServiceResponse.json', (t) => {
    const resp = fixture('crd-ig/CRDServiceResponse.json');
    if (resp === undefined) return t.skip(SKIP);
    const [ig] = findByUrl<Extension>(resp, COVERAGE_INFORMATION_URL);
    assert.ok(ig);
    const igOrder = [...new Set(urls(ig).filter((u) => u !== 'dependency'))];
    const ours = [...new Set(urls(build(full)))].filter((u) => igOrder.includes(u));
    assert.deepEqual(ours, igOrder);
    assert.deepEqual(checkCoverageInformation(ig), []);
  });

  test('crd-ci-q1..q9: throws CoverageInformationError naming the invariants', () => {
    assert.throws(
      () => build({ covered: 'not-covered', paNeeded: 'auth-needed' }),
      (e: unknown) =>
        e instanceof CoverageInformationError &&
        e.code === 'CRD_CI_INVALID' &&
        e.violations.join() === 'crd-ci-q2',
    );
    assert.throws(
      () => build({ covered: 'indeterminate', paNeeded: 'satisfied' }),
      (e: unknown) =>
        e instanceof CoverageInformationError && e.violations.join() === 'crd-ci-q5,crd-ci-q9',
    );
  });

  test('hook-19: secondary hooks never carry doc-needed clinical or admin', () => {
    const det: Determination = {
      covered: 'covered',
      paNeeded: 'auth-needed',
      docNeeded: ['clinical', 'admin'],
      docPurpose: ['withpa'],
      reasons: [{ text: 'why' }],
      questionnaires: ['http://example.org/Questionnaire/q'],
    };
    for (const hook of ['order-select', 'encounter-start', 'encounter-discharge'] as const) {
      const ext = build(det, hook);
      assert.deepEqual(sub(ext, 'doc-needed'), [], hook);
      assert.deepEqual(sub(ext, 'questionnaire'), [], `${hook}: crd-ci-q1 keeps them out`);
      assert.deepEqual(sub(ext, 'doc-purpose'), [], hook);
      assert.deepEqual(checkCoverageInformation(ext), []);
    }
    const kept = build({ ...det, docNeeded: ['clinical', 'patient'] }, 'order-select');
    assert.deepEqual(
      sub(kept, 'doc-needed').map((e) => e.valueCode),
      ['patient'],
    );
    assert.equal(sub(kept, 'questionnaire').length, 1);
    assert.deepEqual(
      sub(build(det, 'order-sign'), 'doc-needed').map((e) => e.valueCode),
      ['clinical', 'admin'],
      'primary hooks keep them',
    );
  });
});

describe('checkCoverageInformation', () => {
  test('crd-ci-card: coverage, covered, date and coverage-assertion-id exactly once', () => {
    assert.deepEqual(check(), []);
    const minimal = { url: COVERAGE_INFORMATION_URL, extension: [code('covered', 'covered')] };
    assert.deepEqual(checkCoverageInformation(minimal), ['crd-ci-card']);
    assert.deepEqual(check(code('covered', 'covered'), code('covered', 'covered')), [
      'crd-ci-card',
    ]);
    assert.deepEqual(check(code('pa-needed', 'no-auth'), code('pa-needed', 'no-auth')), [
      'crd-ci-card',
    ]);
    assert.deepEqual(checkCoverageInformation({ ...minimal, url: 'http://other' }), [
      'crd-ci-card',
    ]);
  });

  test('crd-ci-binding: codes outside the required value sets', () => {
    assert.deepEqual(check(code('covered', 'maybe')), ['crd-ci-binding']);
    assert.deepEqual(check(code('doc-purpose', 'PA'), reason('r')), ['crd-ci-binding']);
  });

  test('crd-ci-q1: questionnaire requires doc-needed', () => {
    const q = { url: 'questionnaire', valueCanonical: 'http://x/Q' };
    assert.deepEqual(check(q), ['crd-ci-q1']);
    assert.deepEqual(check(q, code('doc-needed', 'patient')), []);
  });

  test('crd-ci-q2: not-covered has no pa-needed', () => {
    assert.deepEqual(check(code('covered', 'not-covered'), code('pa-needed', 'no-auth')), [
      'crd-ci-q2',
    ]);
    assert.deepEqual(check(code('covered', 'not-covered')), []);
  });

  test('crd-ci-q3: a conditional covered, pa-needed or doc-needed needs info-needed', () => {
    for (const url of ['covered', 'pa-needed', 'doc-needed']) {
      assert.deepEqual(check(code(url, 'conditional')), ['crd-ci-q3'], url);
      assert.deepEqual(check(code(url, 'conditional'), code('info-needed', 'location')), [], url);
    }
  });

  test('crd-ci-q4: no withpa when pa-needed is no-auth (the real code) or satisfied', () => {
    const withpa = [code('doc-purpose', 'withpa'), reason('r')];
    assert.deepEqual(check(code('pa-needed', 'no-auth'), ...withpa), ['crd-ci-q4']);
    assert.deepEqual(check(code('covered', 'not-covered'), ...withpa), ['crd-ci-q4']);
    assert.deepEqual(check(code('pa-needed', 'auth-needed'), ...withpa), []);
  });

  test('crd-ci-q5: satisfied-pa-id only with pa-needed satisfied', () => {
    const id = { url: 'satisfied-pa-id', valueString: 'PA1' };
    assert.deepEqual(check(code('pa-needed', 'satisfied')), ['crd-ci-q5']);
    assert.deepEqual(check(code('pa-needed', 'auth-needed'), id), ['crd-ci-q5']);
    assert.deepEqual(check(code('pa-needed', 'satisfied'), id), []);
  });

  test('crd-ci-q6: info-needed OTH needs a reason', () => {
    const oth = [code('covered', 'conditional'), code('info-needed', 'OTH')];
    assert.deepEqual(check(...oth), ['crd-ci-q6']);
    assert.deepEqual(check(...oth, reason('the diagnosis')), []);
  });

  test('crd-ci-q7: a reason outside the value set needs text', () => {
    const other: Extension = {
      url: 'reason',
      valueCodeableConcept: { coding: [{ system: 'http://example.org', code: 'x' }] },
    };
    assert.deepEqual(check(other), ['crd-ci-q7']);
    assert.deepEqual(check(reason(undefined, 'gold-card')), []);
    assert.deepEqual(check(reason(undefined, 'auth-out-network-only')), ['crd-ci-q7']);
  });

  test('crd-ci-q8: any doc-purpose needs a reason (DocReason has no "conditional")', () => {
    assert.deepEqual(check(code('doc-purpose', 'withclaim')), ['crd-ci-q8']);
    assert.deepEqual(check(code('doc-purpose', 'withclaim'), reason('r')), []);
  });

  test('crd-ci-q8: the Inferno (CRD 2.0.1) conditional example fails only q8', (t) => {
    const action = fixture('inferno/coverage_info_system_action_conditional.json');
    if (action === undefined) return t.skip(SKIP);
    const [ext] = findByUrl<Extension>(action, COVERAGE_INFORMATION_URL);
    assert.deepEqual(checkCoverageInformation(ext ?? ({} as Extension)), ['crd-ci-q8']);
  });

  test('crd-ci-q9: indeterminate needs a reason', () => {
    assert.deepEqual(check(code('covered', 'indeterminate')), ['crd-ci-q9']);
    assert.deepEqual(check(code('covered', 'indeterminate'), reason(undefined, 'technical')), []);
  });

  test('assertValidCoverageInformation throws with the invariant ids', () => {
    const bad = { url: COVERAGE_INFORMATION_URL, extension: [code('covered', 'indeterminate')] };
    assert.throws(() => assertValidCoverageInformation(bad), /crd-ci-q9/);
  });
});

describe('coverageInformationAction', () => {
  const ext = build({ covered: 'covered', paNeeded: 'no-auth' });

  test('resp-37: the update changes nothing but the coverage-information extension', () => {
    const order = {
      resourceType: 'ServiceRequest',
      id: '1357',
      status: 'draft',
      intent: 'original-order',
      subject: { reference: 'Patient/123' },
      extension: [
        { url: 'http://example.org/other', valueString: 'kept' },
        { url: COVERAGE_INFORMATION_URL, extension: [] },
      ],
      code: { coding: [{ system: 'http://snomed.info/sct', code: '726551006' }] },
    } as Resource;
    const before = structuredClone(order);
    const action = coverageInformationAction(order, [ext]);
    assert.deepEqual(order, before, 'input not modified');
    assert.equal(action.type, 'update');
    assert.equal(action.description, 'Coverage information for ServiceRequest/1357');
    const { extension, ...rest } = action.resource as Resource & { extension: Extension[] };
    const { extension: oldExt, ...oldRest } = before as Resource & { extension: Extension[] };
    assert.deepEqual(rest, oldRest);
    assert.deepEqual(extension, [oldExt[0], ext]);
  });

  test('resp-37: the Inferno NutritionOrder keeps its other extensions', (t) => {
    const req = fixture('inferno/order_sign_hook_request.json') as
      { context: { draftOrders: { entry: Array<{ resource: Resource }> } } } | undefined;
    if (req === undefined) return t.skip(SKIP);
    const order = req.context.draftOrders.entry[0]?.resource;
    assert.equal(order?.resourceType, 'NutritionOrder');
    const updated = coverageInformationAction(order, [ext]).resource as Resource & {
      extension: Extension[];
    };
    assert.deepEqual(
      updated.extension.map((e) => e.url),
      ['existing_extension', 'to_replace', COVERAGE_INFORMATION_URL],
    );
    assert.deepEqual({ ...updated, extension: undefined }, { ...order, extension: undefined });
  });

  test('resp-37: refuses invalid or foreign extensions', () => {
    const order = { resourceType: 'ServiceRequest', id: '1' } as Resource;
    assert.throws(
      () => coverageInformationAction(order, [{ url: 'http://other' }]),
      CoverageInformationError,
    );
    const bad = { url: COVERAGE_INFORMATION_URL, extension: [code('covered', 'indeterminate')] };
    assert.throws(() => coverageInformationAction(order, [bad]), /crd-ci-card, crd-ci-q9/);
  });
});
