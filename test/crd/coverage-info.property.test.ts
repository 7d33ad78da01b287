import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  buildCoverageInformation,
  checkCoverageInformation,
  COVERED_CODES,
  CoverageInformationError,
  DETAIL_CATEGORIES,
  DOC_NEEDED_CODES,
  DOC_PURPOSE_CODES,
  INFO_NEEDED_CODES,
  PA_NEEDED_CODES,
  REASON_DISPLAY,
} from '../../src/crd/coverage-info.js';
import type { Determination, HookName, ReasonCode } from '../../src/crd/types.js';

const HOOKS: HookName[] = [
  'appointment-book',
  'encounter-discharge',
  'encounter-start',
  'order-dispatch',
  'order-select',
  'order-sign',
];
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const few = <T>(a: fc.Arbitrary<T>) => opt(fc.array(a, { maxLength: 3 }));

const reason = fc.oneof(
  fc.record(
    {
      code: fc.constantFrom(...(Object.keys(REASON_DISPLAY) as ReasonCode[])),
      text: opt(fc.string({ minLength: 1 })),
    },
    { requiredKeys: ['code'] },
  ),
  fc.record(
    {
      coding: fc.record({
        system: fc.constant('http://example.org/cs'),
        code: fc.string({ minLength: 1 }),
      }),
      text: opt(fc.constant('why')),
    },
    { requiredKeys: ['coding'] },
  ),
  fc.record({ text: fc.string({ minLength: 1 }) }),
);
const detail = fc.record({
  category: fc.constantFrom(...DETAIL_CATEGORIES),
  code: fc.constantFrom('allowed-quantity', 'instructions', 'policy-link'),
  value: fc.oneof(
    fc.record({ boolean: fc.boolean() }),
    fc.record({ string: fc.string({ minLength: 1 }) }),
    fc.record({ quantity: fc.record({ value: fc.integer() }) }),
  ),
});

/** Arbitrary determinations: every code from its value set, any combination. */
const determination: fc.Arbitrary<Determination> = fc.record(
  {
    covered: fc.constantFrom(...COVERED_CODES),
    paNeeded: opt(fc.constantFrom(...PA_NEEDED_CODES)),
    docNeeded: few(fc.constantFrom(...DOC_NEEDED_CODES)),
    docPurpose: few(fc.constantFrom(...DOC_PURPOSE_CODES)),
    infoNeeded: few(fc.constantFrom(...INFO_NEEDED_CODES)),
    reasons: few(reason),
    details: few(detail),
    questionnaires: few(fc.constant('http://example.org/Questionnaire/q')),
    satisfiedPaId: opt(fc.constant('PA-1')),
    expiryDate: opt(fc.constant('2026-12-31')),
  },
  { requiredKeys: ['covered'] },
);

test('crd-ci-q1..q9: buildCoverageInformation never emits an invalid extension', () => {
  let built = 0;
  fc.assert(
    fc.property(determination, fc.constantFrom(...HOOKS), (det, hook) => {
      try {
        const ext = buildCoverageInformation(det, {
          coverageReference: 'Coverage/1',
          assertionId: 'id',
          date: '2026-01-05',
          hook,
        });
        built += 1;
        assert.deepEqual(checkCoverageInformation(ext), []);
      } catch (e) {
        assert.ok(e instanceof CoverageInformationError, String(e));
        assert.ok(e.violations.length > 0);
      }
    }),
    { numRuns: 2000 },
  );
  assert.ok(built > 50, `only ${built} determinations were valid: the generator is too narrow`);
});

test('hook-19: secondary hooks never carry doc-needed clinical or admin (property)', () => {
  fc.assert(
    fc.property(
      determination,
      fc.constantFrom<HookName>('order-select', 'encounter-start', 'encounter-discharge'),
      (det, hook) => {
        try {
          const ext = buildCoverageInformation(det, {
            coverageReference: 'Coverage/1',
            assertionId: 'id',
            date: '2026-01-05',
            hook,
          });
          const doc = (ext.extension ?? []).filter((e) => e.url === 'doc-needed');
          assert.ok(doc.every((e) => e.valueCode !== 'clinical' && e.valueCode !== 'admin'));
        } catch (e) {
          assert.ok(e instanceof CoverageInformationError);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('crd-ci-q1..q9: a valid determination is accepted on every hook it is valid on', () => {
  const det: Determination = {
    covered: 'conditional',
    paNeeded: 'auth-needed',
    docNeeded: ['clinical'],
    docPurpose: ['withpa'],
    infoNeeded: ['performer'],
    reasons: [{ text: 'r' }],
    questionnaires: ['http://example.org/Questionnaire/q'],
  };
  for (const hook of HOOKS) {
    const ext = buildCoverageInformation(det, {
      coverageReference: 'Coverage/1',
      assertionId: 'id',
      date: '2026-01-05',
      hook,
    });
    assert.deepEqual(checkCoverageInformation(ext), [], hook);
  }
});
