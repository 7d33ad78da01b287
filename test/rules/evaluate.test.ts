import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Coverage, Resource } from '@medplum/fhirtypes';
import { buildCoverageInformation, checkCoverageInformation } from '../../src/crd/coverage-info.js';
import type { DecisionInput, HookName } from '../../src/crd/types.js';
import { decide, loadRules, parseRules } from '../../src/rules/index.js';
import { fixture, SKIP } from '../crd/fixtures.js';

const rules = loadRules(join(process.cwd(), 'rules', 'sample-rules.yaml'));
const HCPCS = 'https://bluebutton.cms.gov/resources/codesystem/hcpcs';
const CPT = 'http://www.ama-assn.org/go/cpt';
const BILLING = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options';
const gold = {
  type: {
    coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'plan' }],
  },
  value: 'gold',
};
const cov: Coverage = {
  resourceType: 'Coverage',
  id: 'c1',
  status: 'active',
  beneficiary: { reference: 'Patient/1' },
  payor: [{ reference: 'Organization/acme-payer' }],
};
const sr = (code: object, extra: object = {}) =>
  ({
    resourceType: 'ServiceRequest',
    id: 'o1',
    status: 'draft',
    intent: 'order',
    subject: { reference: 'Patient/1' },
    code,
    ...extra,
  }) as Resource;
const cc = (system: string, code: string) => ({ coding: [{ system, code }] });

function input(
  order: Resource,
  o: Partial<DecisionInput> & { prefetch?: object } = {},
): DecisionInput {
  const coverage = o.coverage ?? cov;
  return {
    hook: o.hook ?? 'order-sign',
    order,
    coverage,
    payerId: o.payerId ?? 'acme',
    today: '2026-01-05',
    data: o.data ?? { context: {}, prefetch: o.prefetch ?? {}, order, coverage },
  };
}
/** The determination must also survive the builder (invariants) on the hook used. */
function valid(d: ReturnType<typeof decide>, hook: HookName = 'order-sign') {
  const ext = buildCoverageInformation(d.determination, {
    coverageReference: 'Coverage/c1',
    assertionId: 'a',
    date: '2026-01-05',
    hook,
  });
  assert.deepEqual(checkCoverageInformation(ext), []);
  return ext;
}

describe('decide', () => {
  test('the IG example order-sign: mammography no-auth, oxygen PA with DTR', (t) => {
    const req = fixture('crd-ig/CRDServiceRequest.json') as
      | {
          context: { draftOrders: { entry: Array<{ resource: Resource }> } };
          prefetch: Record<string, unknown>;
        }
      | undefined;
    if (req === undefined) return t.skip(SKIP);
    const [mammo, oxygen] = req.context.draftOrders.entry.map((e) => e.resource as Resource);
    const data = { context: req.context, prefetch: req.prefetch };
    const d1 = decide(rules, input(mammo as Resource, { data }));
    assert.equal(d1.ruleId, 'contrast-mammography');
    assert.deepEqual(
      d1.determination.billingCodes?.map((c) => c.code),
      ['77065', '77066', '77067'],
    );
    const d2 = decide(rules, input(oxygen as Resource, { data }));
    assert.equal(d2.ruleId, 'home-oxygen');
    assert.equal(d2.determination.paNeeded, 'auth-needed');
    assert.deepEqual(d2.determination.docNeeded, ['clinical']);
    assert.equal(d2.determination.expiryDate, '2026-04-05');
    assert.deepEqual(
      d2.cards.map((c) => c.kind),
      ['instructions', 'external-reference'],
    );
    valid(d1);
    valid(d2);
  });

  test('billopt-3: billing options are considered when present', () => {
    const order = sr(
      {
        ...cc('http://snomed.info/sct', '1'),
        extension: [{ url: BILLING, valueCodeableConcept: cc(CPT, '30410') }],
      },
      { locationCode: [cc('http://terminology.hl7.org/CodeSystem/v3-RoleCode', 'HOSP')] },
    );
    assert.equal(decide(rules, input(order)).ruleId, 'opd-rhinoplasty');
  });

  test('billopt-2: the rules never require billing options', () => {
    const d = decide(
      rules,
      input(sr(cc('https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', 'E1390'))),
    );
    assert.equal(d.ruleId, 'home-oxygen');
  });

  test('conf-12: missing data gives conditional with info-needed, not an error', () => {
    const wheelchair = sr(cc(HCPCS, 'K0823'));
    const missing = decide(rules, input(wheelchair));
    assert.equal(missing.ruleId, 'power-mobility');
    assert.equal(missing.determination.covered, 'covered');
    assert.equal(missing.determination.paNeeded, 'conditional');
    assert.deepEqual(missing.determination.infoNeeded, ['performer']);
    valid(missing);
    const known = decide(
      rules,
      input(sr(cc(HCPCS, 'K0823'), { performer: [{ reference: 'Organization/supplier' }] })),
    );
    assert.equal(known.determination.paNeeded, 'auth-needed');
    assert.equal(known.determination.infoNeeded, undefined);
    const opd = decide(rules, input(sr(cc(CPT, '22551'))));
    assert.deepEqual(
      [opd.ruleId, opd.determination.paNeeded, opd.determination.infoNeeded],
      ['opd-cervical-fusion', 'conditional', ['location']],
    );
  });

  test('gold card: the first applicable rule wins (gold-card before lumbar-mri)', (t) => {
    const req = fixture('crd-ig/CRDServiceRequest.json') as { prefetch: object } | undefined;
    if (req === undefined) return t.skip(SKIP);
    const mri = sr(cc(CPT, '72148'));
    const goldCard = decide(rules, input(mri, { prefetch: req.prefetch }));
    assert.equal(goldCard.ruleId, 'gold-card-lumbar-mri');
    assert.equal(goldCard.determination.paNeeded, 'no-auth');
    assert.equal(goldCard.determination.reasons?.[0]?.code, 'gold-card');
    valid(goldCard);
    const other = decide(rules, input(mri));
    assert.equal(other.ruleId, 'lumbar-mri');
    assert.equal(other.determination.paNeeded, 'auth-needed');
  });

  test('plans, resource types and defaults', () => {
    const vision = {
      resourceType: 'VisionPrescription',
      id: 'v',
      status: 'draft',
      created: '2026',
      patient: {},
      dateWritten: '2026',
      prescriber: {},
      lensSpecification: [],
    } as unknown as Resource;
    const goldCov = { ...cov, class: [gold] };
    assert.equal(decide(rules, input(vision, { coverage: goldCov })).ruleId, 'acme-gold-vision');
    assert.equal(decide(rules, input(vision)).ruleId, 'default:acme');
    assert.equal(
      decide(rules, input(vision, { payerId: 'payer-xyz' })).ruleId,
      'default:payer-xyz',
    );
    const diet = {
      resourceType: 'NutritionOrder',
      id: 'n',
      status: 'draft',
      intent: 'order',
      patient: {},
      dateTime: '2026',
    } as unknown as Resource;
    assert.equal(decide(rules, input(diet)).ruleId, 'nutrition-default');
  });

  test('hook-19: an order-select decision builds without doc-needed clinical', () => {
    const d = decide(rules, input(sr(cc(HCPCS, 'E0431')), { hook: 'order-select' }));
    const ext = valid(d, 'order-select');
    assert.equal(
      ext.extension?.some((e) => e.url === 'doc-needed'),
      false,
    );
  });

  test('hooks filter: a rule limited to order-dispatch is skipped on order-sign', () => {
    const file = parseRules(`version: 1
payers:
  - id: p
    name: P
    match: { organizationIds: [o] }
    default: { covered: covered }
    rules:
      - { id: r, hooks: [order-dispatch], resourceTypes: [ServiceRequest],
          then: { covered: not-covered } }`);
    const order = sr(cc(CPT, '1'));
    assert.equal(decide(file, input(order, { payerId: 'p' })).ruleId, 'default:p');
    assert.equal(decide(file, input(order, { payerId: 'p', hook: 'order-dispatch' })).ruleId, 'r');
  });
});

describe('decide: runtime failures', () => {
  const file = (when: string) =>
    parseRules(`version: 1
payers:
  - id: p
    name: P
    match: { organizationIds: [o] }
    default: { covered: covered }
    rules:
      - id: fragile
        resourceTypes: [ServiceRequest]
        when: "${when}"
        then: { covered: not-covered }`);

  test('resp-43: a FHIRPath error gives indeterminate + technical, without PHI', () => {
    const errors: Array<{ ruleId: string; code: string }> = [];
    // Comparing a date with a string throws at run time and quotes the data in its message.
    const d = decide(
      file('order.authoredOn < %today'),
      input(sr(cc(CPT, '1'), { authoredOn: '1987-02-20' }), { payerId: 'p' }),
      { onError: (e) => errors.push(e) },
    );
    assert.equal(d.determination.covered, 'indeterminate');
    assert.equal(d.determination.reasons?.[0]?.code, 'technical');
    assert.ok(!JSON.stringify(d).includes('1987'), 'no request data in the decision');
    assert.deepEqual(errors, [{ ruleId: 'fragile', code: 'RULES_FHIRPATH_EVAL' }]);
    valid(d);
  });

  test('resp-43: an expression over its evaluation budget is stopped', () => {
    const errors: Array<{ code: string }> = [];
    const started = Date.now();
    const d = decide(
      file('(1).repeat(iif($this < 100000000, $this + 1, {})).count() > 0'),
      input(sr(cc(CPT, '1')), { payerId: 'p' }),
      { onError: (e) => errors.push(e) },
    );
    assert.ok(Date.now() - started < 2000);
    assert.equal(d.determination.covered, 'indeterminate');
    assert.equal(errors[0]?.code, 'RULES_FHIRPATH_BUDGET');
  });

  test('resp-43: an unknown payer id is technical, not a crash', () => {
    const d = decide(rules, input(sr(cc(CPT, '1')), { payerId: 'nobody' }));
    assert.equal(d.determination.reasons?.[0]?.code, 'technical');
  });
});
