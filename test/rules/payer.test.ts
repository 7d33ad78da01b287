import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Coverage, Resource } from '@medplum/fhirtypes';
import { loadRules, matchPayer, planOf } from '../../src/rules/index.js';
import { fixture, SKIP } from '../crd/fixtures.js';

const rules = loadRules(join(process.cwd(), 'rules', 'sample-rules.yaml'));
const NAIC = 'urn:oid:2.16.840.1.113883.6.300';
const coverage = (payor: Coverage['payor'], extra: Partial<Coverage> = {}): Coverage => ({
  resourceType: 'Coverage',
  status: 'active',
  beneficiary: { reference: 'Patient/1' },
  payor,
  ...extra,
});
const payerOf = (c: Coverage, orgs: Resource[] = []) => {
  const m = matchPayer(rules, c, orgs);
  return 'error' in m ? m.error : m.payer.id;
};

describe('matchPayer', () => {
  test('hook-13: the IG example Coverage (payor Organization/acme-payer) is Acme', (t) => {
    const req = fixture('crd-ig/CRDServiceRequest.json') as
      { prefetch: { coverage: { entry: Array<{ resource: Coverage }> } } } | undefined;
    if (req === undefined) return t.skip(SKIP);
    const cov = req.prefetch.coverage.entry[0]?.resource as Coverage;
    assert.equal(payerOf(cov), 'acme');
    assert.equal(planOf(cov), 'gold');
  });

  test('hook-13: the Inferno Coverage (Organization/example-payer) is Payer XYZ', (t) => {
    const cov = fixture('inferno/crd_coverage_example.json') as Coverage | undefined;
    if (cov === undefined) return t.skip(SKIP);
    assert.equal(payerOf(cov), 'payer-xyz');
  });

  test('the payor reference identifier comes first', () => {
    const c = coverage([
      { reference: 'Organization/example-payer', identifier: { system: NAIC, value: '99999' } },
    ]);
    assert.equal(payerOf(c), 'acme');
  });

  test('then the payor Organization identifiers (by id, or contained)', () => {
    const org = {
      resourceType: 'Organization',
      id: 'org-7',
      identifier: [{ system: NAIC, value: '99999' }],
    } as Resource;
    assert.equal(
      payerOf(coverage([{ reference: 'http://ehr/fhir/Organization/org-7' }]), [org]),
      'acme',
    );
    const contained = coverage([{ reference: '#o' }], { contained: [{ ...org, id: 'o' }] });
    assert.equal(payerOf(contained), 'acme');
    const wrongType = { ...org, resourceType: 'Practitioner' } as Resource;
    assert.equal(
      payerOf(coverage([{ reference: 'Organization/org-7' }]), [wrongType]),
      'unknown-payer',
    );
  });

  test('hook-13: errors no-payor, no-identifier, unknown-payer', () => {
    assert.equal(payerOf(coverage([])), 'no-payor');
    assert.equal(payerOf(coverage([{ display: 'Some plan' }])), 'no-identifier');
    assert.equal(payerOf(coverage([{ reference: '#missing' }])), 'no-identifier');
    assert.equal(payerOf(coverage([{ reference: 'Organization/other' }])), 'unknown-payer');
    assert.equal(
      payerOf(coverage([{ identifier: { system: NAIC, value: '1' } }])),
      'unknown-payer',
    );
    assert.equal(
      payerOf(coverage([{ reference: 'Patient/acme-payer' }])),
      'no-identifier',
      'organizationIds only match Organization references',
    );
  });
});
