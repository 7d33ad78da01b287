/**
 * The client is the final arbiter of what leaves the EHR (CRD security.md; HRex sec-5, sec-6):
 * labels, sensitive-code categories, stripped elements, and how a withholding shows to the payer.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/config/load.js';
import {
  applySharingPolicy,
  loadSharingPolicy,
  REDACTED,
  SharingInputError,
  type SharingInput,
  type SharingPolicy,
  type SharingResult,
} from '../../../src/client/policy/index.js';
import {
  ACT,
  bundle,
  concept,
  condition,
  CONF,
  HCPCS,
  ICD,
  labelled,
  medicationRequest,
  NOW,
  patient,
  PAYER,
  RXN,
  SCT,
  serviceRequest,
  testPolicy,
} from './helpers.js';

function apply(input: Partial<SharingInput>, policy: SharingPolicy = testPolicy()): SharingResult {
  return applySharingPolicy(policy, {
    context: {},
    prefetch: {},
    consents: [],
    payer: { organization: PAYER },
    now: NOW,
    ...input,
  });
}

function sent(result: SharingResult) {
  assert.equal(result.outcome, 'send');
  return result as Extract<SharingResult, { outcome: 'send' }>;
}

const oxygenOrder = serviceRequest('o2', HCPCS, 'E0431');

const entries = (b: unknown) =>
  ((b as { entry: Array<{ resource: { id: string } }> }).entry ?? []).map((e) => e.resource.id);

describe('security labels and sensitive categories', () => {
  test('hrex-sec-6: a prefetch resource labelled restricted is withheld: its key is omitted, not null', () => {
    const result = sent(
      apply({ prefetch: { patient: labelled(patient(), CONF, 'R'), none: null } }),
    );
    assert.equal(Object.hasOwn(result.prefetch, 'patient'), false);
    assert.equal(result.prefetch.none, null, 'a null (no data) stays null');
    assert.deepEqual(result.withheld, [
      { reference: 'Patient/p1', reason: 'security-label', detail: 'v3-Confidentiality#R' },
    ]);
  });

  test('hrex-sec-6: labels match through system aliases (urn:oid, the old v3 URL) and case', () => {
    const oid = labelled(condition('c1', SCT, '38341003'), 'urn:oid:2.16.840.1.113883.5.4', 'eth');
    const old = labelled(
      condition('c2', SCT, '38341003'),
      'http://hl7.org/fhir/v3/Confidentiality',
      'R',
    );
    const result = sent(apply({ prefetch: { conditions: bundle([oid, old], 'searchset') } }));
    assert.equal(Object.hasOwn(result.prefetch, 'conditions'), false);
    assert.deepEqual(result.withheld, [
      { reference: 'Condition/c1', reason: 'security-label', detail: 'v3-ActCode#ETH' },
      { reference: 'Condition/c2', reason: 'security-label', detail: 'v3-Confidentiality#R' },
    ]);
  });

  test('hrex-sec-5: an ICD-10-CM code under an enabled prefix is withheld from a searchset; total is lowered', () => {
    const conditions = bundle(
      [condition('c1', ICD, 'F11.20'), condition('c2', ICD, 'I10')],
      'searchset',
      { total: 2 },
    );
    const result = sent(apply({ prefetch: { conditions } }));
    const out = result.prefetch.conditions as { total: number };
    assert.deepEqual(entries(out), ['c2']);
    assert.equal(out.total, 1);
    assert.deepEqual(result.withheld, [
      { reference: 'Condition/c1', reason: 'category', detail: 'substance-use' },
    ]);
  });

  test('hrex-sec-5: ICD dots and case are ignored; WHO ICD-10, OID systems and system-less codings count', () => {
    const resources = [
      condition('dotless', ICD, 'F1120'),
      condition('lower', ICD, 'f11.20'),
      condition('who', 'http://hl7.org/fhir/sid/icd-10', 'F11.2'),
      condition('oid', 'urn:oid:2.16.840.1.113883.6.90', 'B20'),
      { resourceType: 'Condition', id: 'bare', code: { coding: [{ code: 'B20' }] } },
      condition('other', ICD, 'F10.20'),
    ];
    const result = sent(apply({ prefetch: { c: bundle(resources, 'searchset') } }));
    assert.deepEqual(entries(result.prefetch.c), ['other']);
  });

  test('hrex-sec-5: a disabled category withholds nothing', () => {
    const result = sent(apply({ prefetch: { c: condition('c1', ICD, 'Z15.01') } }));
    assert.deepEqual(result.withheld, []);
    assert.deepEqual(result.prefetch.c, condition('c1', ICD, 'Z15.01'));
  });

  test('hrex-sec-5: codes are read in nested elements, extensions and contained resources', () => {
    const observation = {
      resourceType: 'Observation',
      id: 'o1',
      code: concept(SCT, '1'),
      component: [{ code: concept(SCT, '2') }, { code: concept(ICD, 'B20') }],
    };
    const billing = serviceRequest('s1', SCT, '3');
    billing.code = {
      ...billing.code,
      extension: [
        {
          url: 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options',
          valueCodeableConcept: concept(HCPCS, 'H0020'),
        },
      ],
    } as typeof billing.code;
    const extended = {
      ...serviceRequest('s2', SCT, '4'),
      extension: [{ url: 'urn:x', valueCoding: { system: ICD, code: 'F11.9' } }],
    };
    const container = {
      ...serviceRequest('s3', SCT, '5'),
      contained: [{ resourceType: 'Medication', id: 'm', code: concept(RXN, '1819') }],
    };
    const reasons = { ...serviceRequest('s4', SCT, '6'), reasonCode: [concept(ICD, 'F11.20')] };
    const clean = serviceRequest('s5', SCT, '7');
    const all = [observation, billing, extended, container, reasons, clean];
    const result = sent(apply({ prefetch: { b: bundle(all, 'searchset') } }));
    assert.deepEqual(entries(result.prefetch.b), ['s5']);
    assert.deepEqual(
      result.withheld.map((w) => `${w.reference} ${w.detail}`),
      [
        'Observation/o1 hiv',
        'ServiceRequest/s1 substance-use',
        'ServiceRequest/s2 substance-use',
        'ServiceRequest/s3 substance-use',
        'ServiceRequest/s4 substance-use',
      ],
    );
  });

  test('hrex-sec-5: a resource withheld for several reasons lists each reason once', () => {
    const both = labelled(condition('c1', ICD, 'B20'), ACT, 'ETH');
    const result = sent(apply({ prefetch: { a: both, b: bundle([both], 'searchset') } }));
    assert.deepEqual(result.withheld, [
      { reference: 'Condition/c1', reason: 'security-label', detail: 'v3-ActCode#ETH' },
      { reference: 'Condition/c1', reason: 'category', detail: 'hiv' },
    ]);
  });

  test('hrex-sec-5: the shipped lists withhold opioid dependence but not nicotine dependence', () => {
    const conditions = [condition('opioid', ICD, 'F11.20'), condition('nicotine', ICD, 'F17.210')];
    const policy = loadSharingPolicy();
    const result = sent(apply({ prefetch: { c: bundle(conditions, 'searchset') } }, policy));
    assert.deepEqual(entries(result.prefetch.c), ['nicotine']);
  });
});

describe('how a withholding shows to the payer', () => {
  test('crd-7-consent: a prefetch Bundle whose every entry is withheld is omitted; an empty one stays', () => {
    const prefetch = {
      conditions: bundle([condition('c1', ICD, 'B20')], 'searchset', { total: 1 }),
      devices: bundle([], 'searchset', { total: 0 }),
    };
    const result = sent(apply({ prefetch }));
    assert.equal(Object.hasOwn(result.prefetch, 'conditions'), false);
    assert.deepEqual(result.prefetch.devices, prefetch.devices);
  });

  test('crd-7-consent: configured elements are stripped, recorded, and the resource is labelled REDACTED', () => {
    const policy = testPolicy({
      elements: [
        { resourceType: 'Patient', path: 'photo' },
        { resourceType: 'Patient', path: 'deceased[x]' },
        { resourceType: '*', path: 'text' },
      ],
    });
    const p = patient({
      photo: [{ contentType: 'image/png', data: 'AAAA' }],
      deceasedBoolean: false,
      _deceasedBoolean: { id: 'x' },
      text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' },
    });
    const result = sent(apply({ prefetch: { patient: p } }, policy));
    assert.deepEqual(result.prefetch.patient, {
      resourceType: 'Patient',
      id: 'p1',
      gender: 'female',
      meta: { security: [REDACTED] },
    });
    assert.deepEqual(result.withheld, [
      { reference: 'Patient/p1', reason: 'element', detail: 'Patient.photo' },
      { reference: 'Patient/p1', reason: 'element', detail: 'Patient.deceased[x]' },
      { reference: 'Patient/p1', reason: 'element', detail: 'Patient.text' },
    ]);
  });

  test('crd-7-consent: a resource without an element to strip is sent unchanged, unlabelled', () => {
    const result = sent(apply({ prefetch: { patient: patient() } }));
    assert.deepEqual(result.prefetch.patient, patient());
    assert.deepEqual(result.withheld, []);
  });

  test('conf-3: what the policy permits is sent as it is (the IG order-sign example)', (t) => {
    const file = '../shared/fixtures/crd-ig/CRDServiceRequest.json';
    if (!existsSync(file)) return t.skip('the shared fixtures folder is absent');
    const request = JSON.parse(readFileSync(file, 'utf8'));
    const policy = testPolicy({ elements: [] });
    const result = sent(apply({ context: request.context, prefetch: request.prefetch }, policy));
    assert.deepEqual(result.context, request.context);
    assert.deepEqual(result.prefetch, request.prefetch);
    assert.deepEqual(result.withheld, []);
  });

  test('crd-7-consent: a resource withheld in one place is withheld wherever else it appears', () => {
    const twin = condition('c1', SCT, '1');
    const prefetch = {
      a: labelled(twin, CONF, 'R'),
      b: bundle([twin, condition('c2', SCT, '2')], 'searchset', { total: 2 }),
    };
    const result = sent(apply({ context: { draftOrders: bundle([twin, oxygenOrder]) }, prefetch }));
    assert.deepEqual(Object.keys(result.prefetch), ['b']);
    assert.deepEqual(entries(result.prefetch.b), ['c2']);
    assert.equal((result.prefetch.b as { total: number }).total, 1);
    assert.deepEqual(entries(result.context.draftOrders), ['o2']);
    assert.deepEqual(result.withheldOrders, ['Condition/c1']);
    assert.deepEqual(result.withheld, [
      { reference: 'Condition/c1', reason: 'security-label', detail: 'v3-Confidentiality#R' },
    ]);
  });

  test('crd-7-consent: the input is never changed', () => {
    const input = {
      context: { patientId: 'p1', draftOrders: bundle([medicationRequest('m1', '1819')]) },
      prefetch: {
        patient: patient({ photo: [{ data: 'AAAA' }] }),
        conditions: bundle(
          [condition('c1', ICD, 'B20'), condition('c2', ICD, 'I10')],
          'searchset',
          {
            total: 2,
          },
        ),
      },
    };
    const before = structuredClone(input);
    const result = apply(input);
    assert.deepEqual(input, before);
    assert.equal(result.withheld.length, 3);
  });

  test('crd-7-consent: withheld names references, reasons and code or category names only', () => {
    const secret = 'Patient disclosed heroin use to Dr. Jones';
    const c = {
      ...condition('c1', ICD, 'F11.20'),
      note: [{ text: secret }],
      code: {
        coding: [{ system: ICD, code: 'F11.20', display: 'Opioid dependence' }],
        text: secret,
      },
    };
    const result = sent(apply({ prefetch: { c: labelled(c, CONF, 'R') } }));
    const text = JSON.stringify(result.withheld);
    for (const leak of ['heroin', 'Opioid', 'F11', 'Dr. Jones']) assert.ok(!text.includes(leak));
    for (const w of result.withheld) {
      assert.match(w.detail, /^([\w-]+#[\w-]+|[a-z0-9-]+|Consent\/[\w.-]+|[A-Z]\w+\.\w+(\[x\])?)$/);
    }
  });

  test('crd-7-consent: a resource without an id is named by its fullUrl, or by its place', () => {
    const noId = { resourceType: 'Condition', code: concept(ICD, 'B20') };
    const prefetch = {
      a: {
        resourceType: 'Bundle',
        type: 'searchset',
        entry: [{ fullUrl: 'urn:uuid:1', resource: noId }],
      },
      b: noId,
    };
    const result = sent(apply({ prefetch }));
    assert.deepEqual(
      result.withheld.map((w) => w.reference),
      ['urn:uuid:1', 'prefetch.b'],
    );
  });
});

describe('withheld orders', () => {
  const oxygen = serviceRequest('o2', HCPCS, 'E0431');
  const bup = medicationRequest('bup', '1819');

  test('crd-7-consent: a withheld draft order leaves draftOrders and gets no call; the others go ahead', () => {
    const context = { patientId: 'p1', draftOrders: bundle([bup, oxygen]) };
    const result = sent(apply({ context }));
    assert.deepEqual(entries(result.context.draftOrders), ['o2']);
    assert.deepEqual(result.withheldOrders, ['MedicationRequest/bup']);
    assert.deepEqual(result.withheld, [
      { reference: 'MedicationRequest/bup', reason: 'category', detail: 'substance-use' },
    ]);
  });

  test('crd-7-consent: when every draft order is withheld the outcome is withheld-order, with no request', () => {
    const context = { patientId: 'p1', draftOrders: bundle([bup]) };
    const result = apply({ context, prefetch: { patient: patient() } });
    assert.deepEqual(result, {
      outcome: 'withheld-order',
      withheld: [
        { reference: 'MedicationRequest/bup', reason: 'category', detail: 'substance-use' },
      ],
      withheldOrders: ['MedicationRequest/bup'],
    });
  });

  test('crd-7-consent: a draftOrders Bundle labelled restricted withholds each of its orders', () => {
    const context = { draftOrders: labelled(bundle([oxygen]), CONF, 'R') };
    const result = apply({ context });
    assert.equal(result.outcome, 'withheld-order');
    assert.deepEqual(result.withheldOrders, ['ServiceRequest/o2']);
  });

  test('crd-7-consent: order-select: a withheld selection leaves selections; with none left, no call', () => {
    const other = serviceRequest('o3', HCPCS, 'E0260');
    const draftOrders = bundle([bup, oxygen, other]);
    const keep = sent(
      apply({
        context: { draftOrders, selections: ['ServiceRequest/o2', 'MedicationRequest/bup'] },
      }),
    );
    assert.deepEqual(keep.context.selections, ['ServiceRequest/o2']);
    assert.deepEqual(entries(keep.context.draftOrders), ['o2', 'o3']);
    const none = apply({ context: { draftOrders, selections: ['MedicationRequest/bup'] } });
    assert.equal(none.outcome, 'withheld-order');
  });

  test('crd-7-consent: order-dispatch: an order withheld in prefetch leaves dispatchedOrders with its Task', () => {
    const task = (id: string, focus: string) => ({
      resourceType: 'Task',
      id,
      status: 'requested',
      intent: 'order',
      focus: { reference: focus },
    });
    const context = {
      patientId: 'p1',
      performer: 'Organization/pharm1',
      dispatchedOrders: ['MedicationRequest/bup', 'MedicationRequest/ok'],
      fulfillmentTasks: [task('t1', 'MedicationRequest/bup'), task('t2', 'MedicationRequest/ok')],
    };
    const prefetch = {
      medicationRequests: bundle([bup, medicationRequest('ok', '197361')], 'searchset'),
    };
    const result = sent(apply({ context, prefetch }));
    assert.deepEqual(result.context.dispatchedOrders, ['MedicationRequest/ok']);
    assert.deepEqual(
      (result.context.fulfillmentTasks as Array<{ id: string }>).map((t) => t.id),
      ['t2'],
    );
    assert.deepEqual(result.withheldOrders, ['MedicationRequest/bup']);
    assert.deepEqual(result.withheld, [
      { reference: 'MedicationRequest/bup', reason: 'category', detail: 'substance-use' },
      { reference: 'Task/t1', reason: 'category', detail: 'substance-use' },
    ]);
  });

  test('crd-7-consent: appointment-book: an appointment for a sensitive reason gets no call', () => {
    const appointment = {
      resourceType: 'Appointment',
      id: 'a1',
      status: 'proposed',
      reasonCode: [concept(ICD, 'F11.20')],
      participant: [],
    };
    const result = apply({ context: { patientId: 'p1', appointments: bundle([appointment]) } });
    assert.equal(result.outcome, 'withheld-order');
    assert.deepEqual(result.withheldOrders, ['Appointment/a1']);
  });

  test('crd-7-consent: encounter-start has no order: a withheld encounter is omitted and the call goes ahead', () => {
    const encounter = { resourceType: 'Encounter', id: 'e1', reasonCode: [concept(ICD, 'B20')] };
    const result = sent(
      apply({ context: { patientId: 'p1', encounterId: 'e1' }, prefetch: { encounter } }),
    );
    assert.deepEqual(result.context, { patientId: 'p1', encounterId: 'e1' });
    assert.deepEqual(result.prefetch, {});
    assert.deepEqual(result.withheldOrders, []);
  });
});

describe('input and policy errors', () => {
  test('a prefetch value that is not a resource or null is refused, naming the key only', () => {
    assert.throws(
      () => apply({ prefetch: { odd: { entry: [{ resource: condition('c', ICD, 'B20') }] } } }),
      (e: unknown) =>
        e instanceof SharingInputError &&
        e.code === 'ERR_SHARING_INPUT' &&
        e.message === 'prefetch.odd: must be a FHIR resource or null',
    );
  });

  test('a context object hiding a resource is refused', () => {
    assert.throws(() => apply({ context: { wrapper: { inner: condition('c', ICD, 'B20') } } }), {
      name: 'SharingInputError',
      message: 'context.wrapper: holds a resource out of place',
    });
  });

  test('an invalid policy is refused with a ConfigError naming the key', () => {
    const policy = { ...testPolicy(), honourConsent: 'yes' } as unknown as SharingPolicy;
    assert.throws(
      () => apply({}, policy),
      (e: unknown) => e instanceof ConfigError && e.key === 'honourConsent',
    );
  });
});
