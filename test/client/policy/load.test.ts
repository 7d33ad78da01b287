/**
 * Loading the sharing policy: the shipped lists load, and every problem stops start-up with a
 * ConfigError naming the key.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../../../src/config/load.js';
import {
  checkSharingPolicy,
  DEFAULT_POLICY_FILE,
  loadSharingPolicy,
  parseSharingPolicy,
} from '../../../src/client/policy/index.js';
import { CONF, ICD, testPolicy } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'crdkit-policy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function refusal(raw: unknown): ConfigError {
  try {
    checkSharingPolicy(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err;
  }
  assert.fail('the policy was accepted');
}

describe('loading the sharing policy', () => {
  test('hrex-sec-5: the shipped policy loads, with every category enabled and consent honoured', () => {
    const policy = loadSharingPolicy();
    assert.ok(DEFAULT_POLICY_FILE.endsWith(join('policy', 'sensitive-codes.yaml')));
    assert.deepEqual(Object.keys(policy.categories), [
      'substance-use',
      'behavioral-health',
      'hiv',
      'reproductive-health',
      'genetic',
      'sexual-assault',
    ]);
    for (const category of Object.values(policy.categories)) {
      assert.equal(category.enabled, true);
      assert.ok(category.codes.length > 0);
    }
    assert.equal(policy.honourConsent, true);
    assert.deepEqual(policy.withholdSecurityLabels[0], { system: CONF, code: 'R' });
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.categories.hiv!.codes));
  });

  test('numeric codes stay as written in YAML; JSON files are read as JSON', () => {
    const yaml = [
      'withholdSecurityLabels: []',
      'categories:',
      '  x:',
      '    enabled: false',
      '    codes: [{ system: "http://snomed.info/sct", code: 0123 }]',
      'honourConsent: true',
    ].join('\n');
    const policy = parseSharingPolicy(yaml, 'inline', 'yaml');
    assert.deepEqual(policy.categories.x!.codes, [
      { system: 'http://snomed.info/sct', code: '0123' },
    ]);
    const file = join(dir, 'policy.json');
    writeFileSync(file, JSON.stringify(testPolicy()));
    assert.deepEqual(loadSharingPolicy(file), testPolicy());
  });

  test('an unreadable file, bad YAML and bad JSON are refused, naming the file', () => {
    assert.throws(() => loadSharingPolicy(join(dir, 'missing.yaml')), {
      name: 'ConfigError',
      message: `cannot read the sharing policy file ${join(dir, 'missing.yaml')}`,
    });
    const yaml = join(dir, 'bad.yaml');
    writeFileSync(yaml, 'categories: [\n');
    assert.throws(() => loadSharingPolicy(yaml), /bad\.yaml is not valid YAML/);
    const json = join(dir, 'bad.json');
    writeFileSync(json, '{');
    assert.throws(() => loadSharingPolicy(json), /bad\.json is not valid JSON/);
  });

  test('unknown and missing keys are named by their path', () => {
    assert.equal(refusal({ ...testPolicy(), honorConsent: true }).key, 'honorConsent');
    const { honourConsent: _, ...missing } = testPolicy();
    const err = refusal(missing);
    assert.equal(err.message, 'honourConsent: required key is missing');
    const extra = { x: { enabled: true, codes: [], colour: 'red' } };
    assert.equal(refusal({ ...testPolicy(), categories: extra }).key, 'categories.x.colour');
  });

  test('a bad code names the entry: system not a URI, "*" not last, "*" in a label', () => {
    const category = (code: unknown) => ({
      ...testPolicy(),
      categories: { hiv: { enabled: true, codes: [{ system: ICD, code: 'B20' }, code] } },
    });
    const noUri = refusal(category({ system: 'icd10', code: 'B20' }));
    assert.equal(noUri.message, 'categories.hiv.codes[1].system: must be an absolute URI');
    assert.equal(
      refusal(category({ system: ICD, code: 'B*2' })).key,
      'categories.hiv.codes[1].code',
    );
    assert.equal(refusal(category({ system: ICD, code: '*' })).key, 'categories.hiv.codes[1].code');
    assert.equal(refusal(category({ system: ICD, code: 12 })).key, 'categories.hiv.codes[1].code');
    const label = { ...testPolicy(), withholdSecurityLabels: [{ system: CONF, code: 'R*' }] };
    assert.equal(
      refusal(label).message,
      'withholdSecurityLabels[0].code: "*" is not allowed in a label',
    );
  });

  test('REDACTED cannot be a withheld label: crdkit marks stripped resources with it', () => {
    const redacted = {
      system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
      code: 'REDACTED',
    };
    const err = refusal({ ...testPolicy(), withholdSecurityLabels: [redacted] });
    assert.equal(err.key, 'withholdSecurityLabels[0]');
  });

  test('elements: a top-level element name, never id or meta, for a resource type or "*"', () => {
    const with_ = (e: unknown) => ({ ...testPolicy(), elements: [e] });
    assert.equal(
      refusal(with_({ resourceType: 'Patient', path: 'name.given' })).key,
      'elements[0].path',
    );
    assert.equal(
      refusal(with_({ resourceType: 'Patient', path: 'meta' })).message,
      'elements[0].path: "meta" cannot be stripped',
    );
    assert.equal(
      refusal(with_({ resourceType: 'patient', path: 'photo' })).key,
      'elements[0].resourceType',
    );
    const ok = checkSharingPolicy(with_({ resourceType: '*', path: 'value[x]' }));
    assert.deepEqual(ok.elements, [{ resourceType: '*', path: 'value[x]' }]);
  });

  test('a category name is lower-case-with-dashes', () => {
    const bad = { ...testPolicy(), categories: { 'Substance Use': { enabled: true, codes: [] } } };
    assert.equal(refusal(bad).key, 'categories.Substance Use');
  });

  test('checkSharingPolicy names keys under a prefix when the policy sits in a larger file', () => {
    try {
      checkSharingPolicy({ ...testPolicy(), categories: 3 }, 'client.sharingPolicy');
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, 'client.sharingPolicy.categories');
    }
  });
});
