/**
 * HRex sec-5: the patient's active privacy Consents decide what the payer may receive: deny
 * provisions naming the payer (or anyone) for resource types, codes, labels or instances; permit
 * provisions under a base deny; periods, purposes and actions; nesting; several consents.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Consent, ConsentProvision, ConsentProvisionActor } from '@medplum/fhirtypes';
import {
  applySharingPolicy,
  type SharingInput,
  type SharingResult,
} from '../../../src/client/policy/index.js';
import {
  ACT,
  bundle,
  concept,
  condition,
  HCPCS,
  NOW,
  patient,
  PAYER,
  SCT,
  serviceRequest,
  testPolicy,
} from './helpers.js';

const RESOURCE_TYPES = 'http://hl7.org/fhir/resource-types';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const ACTION = 'http://terminology.hl7.org/CodeSystem/consentaction';

function consent(id: string, provision?: ConsentProvision, extra: Partial<Consent> = {}): Consent {
  return {
    resourceType: 'Consent',
    id,
    status: 'active',
    scope: {
      coding: [
        { system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' },
      ],
    },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: 'Patient/p1' },
    ...(provision ? { provision } : {}),
    ...extra,
  };
}

const recipient = (reference: ConsentProvisionActor['reference']): ConsentProvisionActor => ({
  role: concept('http://terminology.hl7.org/CodeSystem/v3-ParticipationType', 'IRCP'),
  reference,
});
const toPayer = { actor: [recipient({ reference: PAYER })] };
const types = (...codes: string[]) => codes.map((code) => ({ system: RESOURCE_TYPES, code }));

const order = serviceRequest('o2', HCPCS, 'E0431');
const coverage = { resourceType: 'Coverage', id: 'cov1', status: 'active' };
const heart = condition('heart', SCT, '49436004');
const knee = condition('knee', SCT, '239873007');

/** Applies the test policy to an order-sign call with a patient, coverage and two conditions. */
function call(consents: Consent[], over: Partial<SharingInput> = {}): SharingResult {
  return applySharingPolicy(testPolicy(), {
    context: { patientId: 'p1', draftOrders: bundle([order]) },
    prefetch: {
      patient: patient(),
      coverage: bundle([coverage], 'searchset'),
      conditions: bundle([heart, knee], 'searchset'),
    },
    consents,
    payer: { organization: PAYER },
    now: NOW,
    ...over,
  });
}

/** What reached the payer, as references; `[]` when no call is made. */
function shared(result: SharingResult): string[] {
  if (result.outcome !== 'send') return [];
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object' && v !== null) {
      const r = v as { resourceType?: string; id?: string };
      if (r.resourceType && r.resourceType !== 'Bundle') out.push(`${r.resourceType}/${r.id}`);
      Object.values(v).forEach(walk);
    }
  };
  walk([result.context, result.prefetch]);
  return out.sort();
}

const EVERYTHING = [
  'Condition/heart',
  'Condition/knee',
  'Coverage/cov1',
  'Patient/p1',
  'ServiceRequest/o2',
];

describe('patient consent', () => {
  test('hrex-sec-5: with no consent everything the policy permits is shared', () => {
    assert.deepEqual(shared(call([])), EVERYTHING);
  });

  test('hrex-sec-5: an active deny naming the payer withholds everything: no call is made', () => {
    const result = call([consent('c1', { type: 'deny', ...toPayer })]);
    assert.equal(result.outcome, 'withheld-order');
    assert.deepEqual(result.withheldOrders, ['ServiceRequest/o2']);
    assert.deepEqual(
      result.withheld.map((w) => `${w.reference} ${w.reason} ${w.detail}`).sort(),
      EVERYTHING.map((r) => `${r} consent Consent/c1`),
    );
  });

  test('hrex-sec-5: a deny naming another payer changes nothing; one naming no actor applies to all', () => {
    const other = { actor: [recipient({ reference: 'Organization/other' })] };
    assert.deepEqual(shared(call([consent('c1', { type: 'deny', ...other })])), EVERYTHING);
    assert.equal(call([consent('c2', { type: 'deny' })]).outcome, 'withheld-order');
  });

  test('hrex-sec-5: the payer is recognised by absolute reference and by identifier', () => {
    const absolute = { actor: [recipient({ reference: `https://ehr.example/fhir/${PAYER}` })] };
    const byId = {
      actor: [recipient({ identifier: { system: 'http://hl7.org/fhir/sid/us-npi', value: '99' } })],
    };
    assert.equal(call([consent('a', { type: 'deny', ...absolute })]).outcome, 'withheld-order');
    const payer = (identifier: string) => ({ payer: { identifier } });
    const full = call(
      [consent('b', { type: 'deny', ...byId })],
      payer('http://hl7.org/fhir/sid/us-npi|99'),
    );
    assert.equal(full.outcome, 'withheld-order');
    assert.equal(
      call([consent('b', { type: 'deny', ...byId })], payer('99')).outcome,
      'withheld-order',
    );
    assert.equal(
      call([consent('b', { type: 'deny', ...byId })], payer('urn:x|99')).outcome,
      'send',
    );
  });

  test('hrex-sec-5: a deny for resource types withholds those types only', () => {
    const c = consent('c1', {
      type: 'permit',
      provision: [{ type: 'deny', ...toPayer, class: types('Condition') }],
    });
    const result = call([c]);
    assert.deepEqual(shared(result), ['Coverage/cov1', 'Patient/p1', 'ServiceRequest/o2']);
    assert.deepEqual(result.withheld, [
      { reference: 'Condition/heart', reason: 'consent', detail: 'Consent/c1' },
      { reference: 'Condition/knee', reason: 'consent', detail: 'Consent/c1' },
    ]);
  });

  test('hrex-sec-5: a deny for codes, security labels or one instance withholds just those', () => {
    const byCode = consent('code', { type: 'deny', code: [concept(SCT, '49436004')] });
    assert.deepEqual(
      shared(call([byCode])),
      EVERYTHING.filter((r) => r !== 'Condition/heart'),
    );
    const psy = { ...knee, meta: { security: [{ system: ACT, code: 'PSY' }] } };
    const byLabel = consent('label', {
      type: 'deny',
      securityLabel: [{ system: ACT, code: 'PSY' }],
    });
    const prefetch = { conditions: bundle([heart, psy], 'searchset') };
    assert.deepEqual(shared(call([byLabel], { prefetch })), [
      'Condition/heart',
      'ServiceRequest/o2',
    ]);
    const byData = consent('data', {
      type: 'deny',
      data: [{ meaning: 'instance', reference: { reference: 'Condition/knee' } }],
    });
    assert.deepEqual(
      shared(call([byData])),
      EVERYTHING.filter((r) => r !== 'Condition/knee'),
    );
  });

  test('hrex-sec-5: a permit under a base deny lets only what it names through', () => {
    const c = consent('c1', {
      type: 'deny',
      ...toPayer,
      provision: [
        { type: 'permit', ...toPayer, class: types('Patient', 'Coverage', 'ServiceRequest') },
      ],
    });
    assert.deepEqual(shared(call([c])), ['Coverage/cov1', 'Patient/p1', 'ServiceRequest/o2']);
  });

  test('hrex-sec-5: nested provisions: the deepest that applies decides', () => {
    const c = consent('c1', {
      type: 'permit',
      provision: [
        {
          type: 'deny',
          class: types('Condition'),
          provision: [{ type: 'permit', code: [concept(SCT, '239873007')] }],
        },
      ],
    });
    assert.deepEqual(
      shared(call([c])),
      EVERYTHING.filter((r) => r !== 'Condition/heart'),
    );
  });

  test('hrex-sec-5: deny wins across consents', () => {
    const optIn = consent('in', { type: 'permit', ...toPayer });
    const deny = consent('out', { type: 'deny', class: types('Coverage') });
    const result = call([optIn, deny]);
    assert.deepEqual(
      shared(result),
      EVERYTHING.filter((r) => r !== 'Coverage/cov1'),
    );
    assert.deepEqual(result.withheld, [
      { reference: 'Coverage/cov1', reason: 'consent', detail: 'Consent/out' },
    ]);
  });

  test('hrex-sec-5: only active patient-privacy consents count', () => {
    const deny = { type: 'deny' as const, ...toPayer };
    const ignored = [
      consent('a', deny, { status: 'inactive' }),
      consent('b', deny, { status: 'proposed' }),
      consent('c', deny, { status: 'entered-in-error' }),
      consent('d', deny, {
        scope: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'research' },
          ],
        },
      }),
    ];
    assert.deepEqual(shared(call(ignored)), EVERYTHING);
  });

  test('hrex-sec-5: periods: an expired consent has no effect; a partial end date covers its year', () => {
    const ended = consent('a', { type: 'deny', period: { end: '2025-12-31' } });
    assert.deepEqual(shared(call([ended])), EVERYTHING);
    const thisYear = consent('b', { type: 'deny', period: { start: '2020', end: '2026' } });
    assert.equal(call([thisYear]).outcome, 'withheld-order');
    const later = consent('c', {
      type: 'permit',
      provision: [{ type: 'deny', class: types('Condition'), period: { start: '2026-04-01' } }],
    });
    assert.deepEqual(shared(call([later])), EVERYTHING);
  });

  test('hrex-sec-5: purposes and actions: a deny for marketing or collection does not stop CRD', () => {
    const deny = (extra: Partial<ConsentProvision>) =>
      call([consent('c', { type: 'permit', provision: [{ type: 'deny', ...extra }] })]).outcome;
    assert.equal(deny({ purpose: [{ system: ACT_REASON, code: 'HMARKT' }] }), 'send');
    assert.equal(deny({ purpose: [{ system: ACT_REASON, code: 'HPAYMT' }] }), 'withheld-order');
    assert.equal(deny({ action: [concept(ACTION, 'collect')] }), 'send');
    assert.equal(deny({ action: [concept(ACTION, 'disclose')] }), 'withheld-order');
    assert.equal(deny({ action: [concept(ACTION, 'use')] }), 'withheld-order');
  });

  test('hrex-sec-5: a condition not understood counts towards withholding, in deny and in permit', () => {
    const unknownDeny = consent('a', {
      type: 'permit',
      provision: [{ type: 'deny', class: types('Condition'), dataPeriod: { start: '2010' } }],
    });
    assert.deepEqual(shared(call([unknownDeny])), [
      'Coverage/cov1',
      'Patient/p1',
      'ServiceRequest/o2',
    ]);
    const permit = (meaning: 'instance' | 'related') =>
      consent('b', {
        type: 'deny',
        provision: [
          { type: 'permit', data: [{ meaning, reference: { reference: 'ServiceRequest/o2' } }] },
        ],
      });
    assert.deepEqual(shared(call([permit('instance')])), ['ServiceRequest/o2']);
    assert.equal(call([permit('related')]).outcome, 'withheld-order');
  });

  test('hrex-sec-5: a modifier extension is not ignored: on a consent it denies everything', () => {
    const modifier = [{ url: 'urn:x:unknown-modifier', valueBoolean: true }];
    const onConsent = consent('a', { type: 'permit' }, { modifierExtension: modifier });
    assert.equal(call([onConsent]).outcome, 'withheld-order');
    const onPermit = consent('b', {
      type: 'deny',
      provision: [{ type: 'permit', modifierExtension: modifier }],
    });
    assert.equal(call([onPermit]).outcome, 'withheld-order');
  });

  test('hrex-sec-5: without a root type, policyRule OPTOUT denies and OPTIN permits', () => {
    const rule = (code: string) => ({ policyRule: concept(ACT, code) });
    assert.equal(call([consent('a', toPayer, rule('OPTOUT'))]).outcome, 'withheld-order');
    assert.deepEqual(shared(call([consent('b', toPayer, rule('OPTIN'))])), EVERYTHING);
  });

  test('hrex-sec-5: with honourConsent off, consents are not applied', () => {
    const result = applySharingPolicy(testPolicy({ honourConsent: false }), {
      context: {},
      prefetch: { patient: patient() },
      consents: [consent('c1', { type: 'deny' })],
      payer: { organization: PAYER },
      now: NOW,
    });
    assert.equal(result.outcome, 'send');
    assert.deepEqual(result.withheld, []);
  });
});
