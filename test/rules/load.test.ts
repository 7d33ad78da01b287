import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadRules, parseRules, RulesError, type RulesIssue } from '../../src/rules/index.js';

const SAMPLE = join(process.cwd(), 'rules', 'sample-rules.yaml');
const dir = mkdtempSync(join(tmpdir(), 'crdkit-rules-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A valid file whose first rule is `rule` (YAML, indented for the rules list). */
const withRule = (rule: string, extra = '') => `version: 1
payers:
  - id: p
    name: P
    match: { organizationIds: [p-org] }
    default: { covered: covered, paNeeded: no-auth }${extra}
    rules:
${rule
  .trim()
  .split('\n')
  .map((l) => `      ${l}`)
  .join('\n')}
`;
const OK_RULE = `- id: r1
  codes: [{ system: cpt, code: "77065" }]
  then: { covered: covered, paNeeded: no-auth }`;

let n = 0;
/** Writes `text` to a temp file and returns the issues loading it raises. */
function issuesOf(text: string, ext = 'yaml'): RulesIssue[] {
  const file = join(dir, `rules-${(n += 1)}.${ext}`);
  writeFileSync(file, text);
  try {
    loadRules(file);
  } catch (e) {
    assert.ok(e instanceof RulesError, String(e));
    assert.equal(e.code, 'RULES_INVALID');
    assert.ok(e.message.startsWith(file));
    return e.issues;
  }
  assert.fail('expected a RulesError');
}
const has = (issues: RulesIssue[], path: string, code: string) =>
  assert.ok(
    issues.some((i) => i.path === path && i.code === code),
    `expected ${code} at ${path}, got ${JSON.stringify(issues)}`,
  );

describe('loadRules', () => {
  test('the sample rules file loads: its three payers share the rule set', () => {
    const rules = loadRules(SAMPLE);
    assert.deepEqual(
      rules.payers.map((p) => [p.id, p.name]),
      [
        ['acme', 'Acme Health Plan'],
        ['payer-xyz', 'Payer XYZ'],
        ['example-health-plan', 'Example Health Plan'],
      ],
    );
    const ids = (i: number) => rules.payers[i]?.rules.map((r) => r.id);
    assert.deepEqual(ids(0), ids(1));
    assert.deepEqual(ids(2), ids(1));
    for (const id of [
      'home-oxygen',
      'power-mobility',
      'opd-blepharoplasty',
      'opd-botulinum-toxin',
      'opd-rhinoplasty',
      'opd-vein-ablation',
      'opd-cervical-fusion',
      'contrast-mammography',
      'specialty-biologic-adalimumab',
      'gold-card-lumbar-mri',
      'nutrition-default',
    ]) {
      assert.ok(ids(0)?.includes(id), id);
    }
    assert.deepEqual(rules.payers[0]?.match.organizationIds, ['acme-payer']);
    assert.deepEqual(rules.payers[1]?.match.organizationIds, ['example-payer']);
  });

  test('a JSON rules file loads (chosen by extension)', () => {
    const json = JSON.stringify({
      version: 1,
      payers: [
        {
          id: 'p',
          name: 'P',
          match: { organizationIds: ['o'] },
          default: { covered: 'covered' },
          rules: [{ id: 'r', resourceTypes: ['NutritionOrder'], then: { covered: 'covered' } }],
        },
      ],
    });
    const file = join(dir, 'rules.json');
    writeFileSync(file, json);
    assert.equal(loadRules(file).payers[0]?.rules[0]?.id, 'r');
    assert.equal(parseRules(json, 'inline.json', 'json').payers.length, 1);
  });

  test('loading errors name the path: unknown keys, with the YAML line', () => {
    const issues = issuesOf(withRule(`${OK_RULE}\n  colour: blue`));
    has(issues, 'payers[0].rules[0].colour', 'RULES_UNKNOWN_KEY');
    assert.equal(issues[0]?.line, 11);
  });

  test('loading errors name the path: wrong types and missing keys', () => {
    const issues = issuesOf(
      withRule(`- id: r1
  codes: { system: cpt, code: "1" }
  hooks: order-sign
  then: { paNeeded: no-auth }`),
    );
    has(issues, 'payers[0].rules[0].codes', 'RULES_TYPE');
    has(issues, 'payers[0].rules[0].hooks', 'RULES_TYPE');
    has(issues, 'payers[0].rules[0].then.covered', 'RULES_MISSING_KEY');
  });

  test('loading errors name the path: unknown codes from every value set', () => {
    const issues = issuesOf(
      withRule(`- id: r1
  codes: [{ system: cpt-codes, code: "1" }]
  hooks: [order-submit]
  resourceTypes: [Encounter]
  then:
    covered: yes
    docPurpose: [PA]
    reasons: [{ code: auth-out-network-only }]
    details: [{ code: max-quantity, value: { string: x } }]
  cards: [{ kind: instructions, topic: billing, summary: s, detail: d }]`),
    );
    for (const p of [
      'codes[0].system',
      'hooks[0]',
      'resourceTypes[0]',
      'then.covered',
      'then.docPurpose[0]',
      'then.reasons[0].code',
      'then.details[0].code',
      'cards[0].topic',
    ]) {
      has(issues, `payers[0].rules[0].${p}`, 'RULES_UNKNOWN_CODE');
    }
  });

  test('resp-6: summaries of 140 characters or more are refused', () => {
    const issues = issuesOf(
      withRule(`${OK_RULE}
  cards: [{ kind: instructions, topic: guideline, detail: d, summary: "${'x'.repeat(140)}" }]`),
    );
    has(issues, 'payers[0].rules[0].cards[0].summary', 'RULES_SUMMARY_TOO_LONG');
  });

  test('FHIRPath that does not compile, calls the network or logs is refused', () => {
    const issues = issuesOf(
      withRule(`${OK_RULE}
  when: "order.code.coding.where(code = "
  needs:
    - { fhirpath: "order.subject.resolve().exists()", infoNeeded: OTH, reason: r }
    - { fhirpath: "order.code.trace('x').exists()", infoNeeded: OTH, reason: r }
    - { fhirpath: "%secret.exists()", infoNeeded: OTH, reason: r }
    - { fhirpath: "order.noSuchFunction()", infoNeeded: OTH, reason: r }`),
    );
    has(issues, 'payers[0].rules[0].when', 'RULES_FHIRPATH');
    for (const i of [0, 1, 2, 3]) {
      has(issues, `payers[0].rules[0].needs[${i}].fhirpath`, 'RULES_FHIRPATH');
    }
  });

  test('duplicate rule ids are refused', () => {
    const issues = issuesOf(withRule(`${OK_RULE}\n${OK_RULE}`));
    has(issues, 'payers[0].rules[1].id', 'RULES_DUPLICATE_ID');
  });

  test('crd-ci-q1..q9: a `then` that would violate an invariant is refused', () => {
    const issues = issuesOf(
      withRule(`- id: r1
  resourceTypes: [ServiceRequest]
  then: { covered: not-covered, paNeeded: auth-needed }
- id: r2
  resourceTypes: [ServiceRequest]
  then: { covered: covered, paNeeded: no-auth, docNeeded: [clinical], docPurpose: [withpa] }
- id: r3
  resourceTypes: [ServiceRequest]
  then: { covered: covered, paNeeded: satisfied }
- id: r4
  resourceTypes: [ServiceRequest]
  needs: [{ fhirpath: order.performer.exists(), infoNeeded: OTH }]
  then: { covered: covered }`),
    );
    const at = (i: number) => issues.find((x) => x.path.startsWith(`payers[0].rules[${i}]`));
    assert.equal(at(0)?.code, 'RULES_INVARIANT');
    assert.match(at(0)?.message ?? '', /crd-ci-q2/);
    assert.match(at(1)?.message ?? '', /crd-ci-q4.*crd-ci-q8/);
    assert.equal(at(2)?.code, 'RULES_BAD_VALUE', 'satisfied needs a PA number');
    assert.equal(at(3)?.path, 'payers[0].rules[3].needs');
    assert.match(at(3)?.message ?? '', /when unmet violates crd-ci-q6/);
  });

  test('cards, includes, payers: structural rules', () => {
    const issues = issuesOf(
      `${withRule(`${OK_RULE}
  cards:
    - { kind: instructions, topic: guideline, summary: s }
    - { kind: external-reference, topic: guideline, summary: s }
- include: missing-set`)}  - { id: q, name: Q, match: {}, default: { covered: covered } }\n`,
    );
    has(issues, 'payers[0].rules[0].cards[0].detail', 'RULES_MISSING_KEY');
    has(issues, 'payers[0].rules[0].cards[1].links', 'RULES_MISSING_KEY');
    has(issues, 'payers[0].rules[1].include', 'RULES_UNKNOWN_REFERENCE');
    has(issues, 'payers[1].match', 'RULES_MISSING_KEY');
  });

  test('parse errors and unreadable files have stable codes', () => {
    has(issuesOf('version: 1\npayers: [\n'), '(file)', 'RULES_PARSE');
    has(issuesOf('{ "version": 1, ', 'json'), '(file)', 'RULES_PARSE');
    assert.throws(
      () => loadRules(join(dir, 'nope.yaml')),
      (e: unknown) => e instanceof RulesError && e.issues[0]?.code === 'RULES_IO',
    );
  });

  test('YAML codes with leading zeros stay strings', () => {
    const rules = parseRules(
      withRule(`- id: r1
  codes: [{ system: cpt, codes: [0001U, 01234] }]
  then: { covered: covered }`),
    );
    assert.deepEqual([...(rules.payers[0]?.rules[0]?.codes[0]?.codes ?? [])], ['0001U', '01234']);
  });
});

test('a YAML syntax error names its line', () => {
  const err = (() => {
    try {
      parseRules('version: 1\npayers:\n  - id: a\n    name: [unclosed\n', 'bad.yaml');
    } catch (e) {
      return e as RulesError;
    }
    assert.fail('accepted');
  })();
  assert.equal(err.issues[0]?.code, 'RULES_PARSE');
  assert.equal(typeof err.issues[0]?.line, 'number');
});
