/**
 * Properties of the sharing policy, whatever the policy and the hook input: nothing that leaves
 * carries a withheld label, a code of an enabled category or a stripped element; everything
 * removed is accounted for in `withheld`; the input is never changed. The checks below compare
 * codes on their own (an oracle), not with the code under test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Consent } from '@medplum/fhirtypes';
import {
  applySharingPolicy,
  type PolicyCoding,
  type SharingPolicy,
} from '../../../src/client/policy/index.js';
import { ACT, CONF, HCPCS, ICD, NOW, PAYER, RXN, SCT } from './helpers.js';

type Json = Record<string, unknown>;
type Found = { system?: string; code: string };

const OIDS: Record<string, string> = {
  'urn:oid:2.16.840.1.113883.6.90': ICD,
  'urn:oid:2.16.840.1.113883.5.25': CONF,
};
const CODINGS: Found[] = [
  { system: ICD, code: 'F11.20' },
  { system: ICD, code: 'f1120' },
  { system: ICD, code: 'B20' },
  { system: ICD, code: 'Z15.01' },
  { system: ICD, code: 'I10' },
  { system: 'urn:oid:2.16.840.1.113883.6.90', code: 'F11.9' },
  { code: 'B20' },
  { system: RXN, code: '1819' },
  { system: SCT, code: '111' },
  { system: SCT, code: '222' },
  { system: HCPCS, code: 'H0020' },
  { system: HCPCS, code: 'E0431' },
];
const POLICY_CODES: PolicyCoding[] = [
  { system: ICD, code: 'F11*' },
  { system: ICD, code: 'B20' },
  { system: ICD, code: 'Z15*' },
  { system: ICD, code: 'I1*' },
  { system: RXN, code: '1819' },
  { system: SCT, code: '111' },
  { system: HCPCS, code: 'H0020' },
];
const LABELS: Found[] = [
  { system: CONF, code: 'R' },
  { system: CONF, code: 'N' },
  { system: 'urn:oid:2.16.840.1.113883.5.25', code: 'R' },
  { system: ACT, code: 'ETH' },
  { system: ACT, code: 'PSY' },
];
const ELEMENTS = [
  { resourceType: 'Patient', path: 'photo' },
  { resourceType: '*', path: 'text' },
  { resourceType: 'ServiceRequest', path: 'note' },
  { resourceType: 'Observation', path: 'value[x]' },
];
const TYPES = ['Condition', 'Observation', 'ServiceRequest', 'MedicationRequest', 'Patient'];
const PLACES = ['code', 'category', 'reasonCode', 'extension', 'billing', 'component', 'contained'];

const subset = <T>(items: T[]) => fc.subarray(items);

const policyArb: fc.Arbitrary<SharingPolicy> = fc.record({
  withholdSecurityLabels: subset(
    LABELS.filter((l) => !l.system!.startsWith('urn')) as PolicyCoding[],
  ),
  categories: fc.record({
    a: fc.record({ enabled: fc.boolean(), codes: subset(POLICY_CODES) }),
    b: fc.record({ enabled: fc.boolean(), codes: subset(POLICY_CODES) }),
  }),
  honourConsent: fc.boolean(),
  elements: subset(ELEMENTS),
});

const resourceArb = fc.record({
  type: fc.constantFrom(...TYPES),
  codes: fc.array(fc.tuple(fc.constantFrom(...PLACES), fc.constantFrom(...CODINGS)), {
    maxLength: 3,
  }),
  labels: subset(LABELS),
  extras: fc.record({ photo: fc.boolean(), text: fc.boolean(), note: fc.boolean() }),
});

type Spec = typeof resourceArb extends fc.Arbitrary<infer T> ? T : never;

/** Builds a resource with its codes where the policy documents it reads them. */
function build(spec: Spec, id: string): Json {
  const r: Json = { resourceType: spec.type, id };
  const cc = (c: Found) => ({ coding: [{ ...c }] });
  const push = (key: string, value: unknown) => ((r[key] ??= []) as unknown[]).push(value);
  spec.codes.forEach(([place, coding], i) => {
    if (place === 'category' || place === 'reasonCode') push(place, cc(coding));
    else if (place === 'extension') push('extension', { url: 'urn:x', valueCoding: { ...coding } });
    else if (place === 'contained')
      push('contained', { resourceType: 'Medication', id: `m${i}`, code: cc(coding) });
    else if (place === 'component' && spec.type === 'Observation')
      push('component', { code: cc(coding) });
    else if (place === 'billing') {
      const url = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options';
      const code = (r.code ??= { coding: [] }) as Json;
      ((code.extension ??= []) as unknown[]).push({ url, valueCodeableConcept: cc(coding) });
    } else {
      r.code ??= { coding: [] };
      ((r.code as Json).coding as unknown[]).push({ ...coding });
    }
  });
  if (spec.labels.length > 0) r.meta = { security: spec.labels.map((l) => ({ ...l })) };
  if (spec.extras.photo) r.photo = [{ data: 'AAAA' }];
  if (spec.extras.text) r.text = { status: 'generated', div: '<div>x</div>' };
  if (spec.extras.note) r.note = [{ text: 'x' }];
  if (spec.type === 'Observation') r.valueString = 'x';
  return r;
}

const inputArb = fc.record({
  orders: fc.array(resourceArb, { minLength: 1, maxLength: 3 }),
  single: resourceArb,
  searchset: fc.array(resourceArb, { maxLength: 4 }),
  consentClass: fc.option(fc.constantFrom(...TYPES), { nil: undefined }),
});

// The oracle: its own reading of systems and codes.
const sys = (s?: string) => (s ? (OIDS[s] ?? s) : undefined);
const norm = (c: Found) => {
  const code = c.code.toUpperCase();
  return sys(c.system) === ICD || c.system === undefined ? code.replace(/\./g, '') : code;
};
function onList(c: Found, list: PolicyCoding[]): boolean {
  return list.some((p) => {
    if (c.system !== undefined && sys(c.system) !== p.system) return false;
    const want = norm({ system: p.system, code: p.code.replace(/\*$/, '') });
    return p.code.endsWith('*') ? norm(c).startsWith(want) : norm(c) === want;
  });
}

function walk(value: unknown, visit: (o: Json, inSecurity: boolean) => void, sec = false): void {
  if (Array.isArray(value)) value.forEach((v) => walk(v, visit, sec));
  else if (typeof value === 'object' && value !== null) {
    visit(value as Json, sec);
    for (const [k, v] of Object.entries(value)) walk(v, visit, sec || k === 'security');
  }
}

test('hrex-sec-5: whatever the policy and input, nothing withheld leaves and the input is unchanged', () => {
  fc.assert(
    fc.property(policyArb, inputArb, (policy, spec) => {
      let n = 0;
      const orders = spec.orders.map((o) => build(o, `o${n++}`));
      const searchset = spec.searchset.map((o) => build(o, `s${n++}`));
      const entry = (r: Json) => ({
        fullUrl: `https://ehr/fhir/${r.resourceType}/${r.id}`,
        resource: r,
      });
      const input = {
        context: {
          patientId: 'p1',
          draftOrders: { resourceType: 'Bundle', type: 'collection', entry: orders.map(entry) },
        },
        prefetch: {
          one: build(spec.single, `x${n++}`),
          many: {
            resourceType: 'Bundle',
            type: 'searchset',
            total: searchset.length,
            entry: searchset.map(entry),
          },
          none: null,
        },
      };
      const consents: Consent[] = spec.consentClass
        ? [
            {
              resourceType: 'Consent',
              id: 'k',
              status: 'active',
              scope: { coding: [{ code: 'patient-privacy' }] },
              category: [],
              provision: {
                type: 'deny',
                actor: [{ role: {}, reference: { reference: PAYER } }],
                class: [{ code: spec.consentClass }],
              },
            },
          ]
        : [];
      const before = structuredClone(input);
      const result = applySharingPolicy(policy, {
        ...input,
        consents,
        payer: { organization: PAYER },
        now: NOW,
      });
      assert.deepEqual(input, before, 'the input is unchanged');

      const enabled = Object.values(policy.categories)
        .filter((c) => c.enabled)
        .flatMap((c) => c.codes);
      const withheldRefs = new Set(
        result.withheld.filter((w) => w.reason !== 'element').map((w) => w.reference),
      );
      for (const w of result.withheld) {
        assert.ok(['security-label', 'category', 'consent', 'element'].includes(w.reason));
      }
      const sent = result.outcome === 'send' ? [result.context, result.prefetch] : [];
      const out = new Set<string>();
      walk(sent, (o, inSecurity) => {
        if (typeof o.code === 'string') {
          const c = o as Found;
          if (inSecurity)
            assert.ok(!onList(c, policy.withholdSecurityLabels), `label ${c.code} left`);
          else assert.ok(!onList(c, enabled), `code ${c.code} of an enabled category left`);
        }
        if (typeof o.resourceType !== 'string') return;
        out.add(`${o.resourceType}/${o.id}`);
        for (const e of policy.elements ?? []) {
          if (e.resourceType !== '*' && e.resourceType !== o.resourceType) continue;
          const base = e.path.replace('[x]', '');
          assert.ok(
            !Object.keys(o).some(
              (k) => k === base || (e.path.endsWith('[x]') && k.startsWith(base)),
            ),
            `${e.path} left`,
          );
        }
        if (spec.consentClass && policy.honourConsent && o.resourceType !== 'Bundle') {
          const types = [
            o.resourceType,
            ...((o.contained as Json[] | undefined) ?? []).map((c) => c.resourceType),
          ];
          assert.ok(!types.includes(spec.consentClass), 'a type the consent denies left');
        }
      });
      // Everything removed is accounted for.
      for (const r of [...orders, ...searchset, input.prefetch.one]) {
        const ref = `${r.resourceType}/${r.id}`;
        if (!out.has(ref))
          assert.ok(
            withheldRefs.has(ref) || result.outcome === 'withheld-order',
            `${ref} vanished`,
          );
      }
      if (result.outcome === 'withheld-order') {
        assert.deepEqual(
          result.withheldOrders.sort(),
          orders.map((o) => `${o.resourceType}/${o.id}`).sort(),
        );
      }
    }),
    { numRuns: 300 },
  );
});
