/**
 * Reading a whole rules file: version, shared rule sets, payers and plans, include expansion,
 * duplicate ids, and the invariant check of every outcome (crd-ci-q1..q9) the file can produce.
 */
import { buildCoverageInformation, CoverageInformationError } from '../crd/coverage-info.js';
import type { HookName } from '../crd/types.js';
import { toDetermination, withUnmetNeeds } from './outcome.js';
import { formatPath, type Path, type Reader } from './read.js';
import { type Outcome, type Payer, type Plan, type Rule, RULES_VERSION } from './schema.js';
import { readContacts, readOutcome } from './validate-outcome.js';
import { readId, readRule } from './validate-rule.js';

const INVARIANT_HELP: Readonly<Record<string, string>> = {
  'crd-ci-q1': 'questionnaires need docNeeded',
  'crd-ci-q2': 'covered "not-covered" must not have paNeeded',
  'crd-ci-q3': 'a "conditional" covered, paNeeded or docNeeded needs infoNeeded',
  'crd-ci-q4': 'docPurpose "withpa" contradicts paNeeded "no-auth"/"satisfied" or "not-covered"',
  'crd-ci-q5': 'satisfied-pa-id only with paNeeded "satisfied"',
  'crd-ci-q6': 'infoNeeded "OTH" needs a reason',
  'crd-ci-q7': 'a reason that is not a CRD reason code needs a text',
  'crd-ci-q8': 'docPurpose needs a reason saying why the documentation is needed',
  'crd-ci-q9': '"indeterminate" needs a reason',
};

/** Reads the parsed document `doc`; issues go to `r`. */
export function readRulesFile(r: Reader, doc: unknown): { payers: Payer[] } {
  const top = r.object(doc, [], ['version', 'payers'], ['description', 'ruleSets']);
  if (top === undefined) return { payers: [] };
  if (top.version !== undefined && top.version !== RULES_VERSION) {
    r.issue(
      ['version'],
      'RULES_BAD_VALUE',
      `unsupported version ${String(top.version)}; ` + `this server reads version ${RULES_VERSION}`,
    );
  }
  if (top.description !== undefined) r.string(top.description, ['description']);
  const ruleIds = new Map<string, string>();
  const register = (rule: Rule, path: Path): void => {
    rule.path = formatPath(path);
    const first = ruleIds.get(rule.id);
    if (first !== undefined) {
      r.issue(
        [...path, 'id'],
        'RULES_DUPLICATE_ID',
        `rule id "${rule.id}" is already used at ${first}`,
      );
    } else ruleIds.set(rule.id, rule.path);
    checkRule(r, rule, path);
  };

  const ruleSets = new Map<string, Rule[]>();
  if (top.ruleSets !== undefined) {
    for (const [name, list] of Object.entries(r.map(top.ruleSets, ['ruleSets']))) {
      readId(r, name, ['ruleSets', name]);
      const rules: Rule[] = [];
      r.list(list, ['ruleSets', name], false).forEach((v, i) => {
        const rule = readRule(r, v, ['ruleSets', name, i]);
        if (rule === undefined) return;
        register(rule, ['ruleSets', name, i]);
        rules.push(rule);
      });
      ruleSets.set(name, rules);
    }
  }
  /** A rules list: rule mappings and `{include: <rule set>}` items, in order. */
  const readRules = (v: unknown, path: Path): Rule[] =>
    r.list(v, path).flatMap((item, i) => {
      const p = [...path, i];
      if (item !== null && typeof item === 'object' && 'include' in item) {
        const inc = r.object(item, p, ['include']);
        const name = inc && r.string(inc.include, [...p, 'include']);
        const set = name === undefined ? undefined : ruleSets.get(name);
        if (name !== undefined && set === undefined) {
          r.issue(
            [...p, 'include'],
            'RULES_UNKNOWN_REFERENCE',
            `no rule set "${name}" in ruleSets`,
          );
        }
        return set ?? [];
      }
      const rule = readRule(r, item, p);
      if (rule !== undefined) register(rule, p);
      return rule === undefined ? [] : [rule];
    });

  const payers = r
    .list(top.payers, ['payers'], false)
    .map((v, i) => readPayer(r, v, ['payers', i], readRules))
    .filter((p): p is Payer => p !== undefined);
  checkPayerUniqueness(r, payers);
  return { payers };
}

function readPayer(
  r: Reader,
  v: unknown,
  path: Path,
  readRules: (v: unknown, path: Path) => Rule[],
): Payer | undefined {
  const o = r.object(v, path, ['id', 'name', 'match', 'default'], ['contacts', 'plans', 'rules']);
  if (o === undefined) return undefined;
  const id = readId(r, o.id, [...path, 'id']);
  const name = r.string(o.name, [...path, 'name']);
  const mp = [...path, 'match'];
  const m = r.object(o.match, mp, [], ['identifiers', 'organizationIds']);
  const identifiers = r.list(m?.identifiers, [...mp, 'identifiers']).flatMap((x, i) => {
    const ip = [...mp, 'identifiers', i];
    const io = r.object(x, ip, ['system', 'value']);
    const system = io && r.string(io.system, [...ip, 'system']);
    const value = io && r.string(io.value, [...ip, 'value']);
    return system && value ? [{ system, value }] : [];
  });
  const organizationIds = r.strings(m?.organizationIds, [...mp, 'organizationIds']);
  if (m !== undefined && identifiers.length + organizationIds.length === 0) {
    r.issue(mp, 'RULES_MISSING_KEY', 'give at least one identifier or organizationId');
  }
  const dflt = readOutcome(r, o.default, [...path, 'default']);
  if (dflt !== undefined) checkOutcome(r, dflt, [...path, 'default']);
  const plans = r
    .list(o.plans, [...path, 'plans'])
    .map((p, i) => readPlan(r, p, [...path, 'plans', i], readRules))
    .filter((p): p is Plan => p !== undefined);
  const rules = readRules(o.rules, [...path, 'rules']);
  if (id === undefined || name === undefined || dflt === undefined) return undefined;
  const payer: Payer = {
    id,
    name,
    match: { identifiers, organizationIds },
    default: dflt,
    plans,
    rules,
  };
  if (o.contacts !== undefined) payer.contacts = readContacts(r, o.contacts, [...path, 'contacts']);
  return payer;
}

function readPlan(
  r: Reader,
  v: unknown,
  path: Path,
  readRules: (v: unknown, path: Path) => Rule[],
): Plan | undefined {
  const o = r.object(v, path, ['id'], ['name', 'default', 'rules']);
  if (o === undefined) return undefined;
  const id = r.string(o.id, [...path, 'id']);
  const plan: Plan = { id: id ?? '', rules: readRules(o.rules, [...path, 'rules']) };
  if (o.name !== undefined) plan.name = r.string(o.name, [...path, 'name']);
  if (o.default !== undefined) {
    plan.default = readOutcome(r, o.default, [...path, 'default']);
    if (plan.default !== undefined) checkOutcome(r, plan.default, [...path, 'default']);
  }
  return id === undefined ? undefined : plan;
}

/** Payer ids, plan ids, identifiers and organizationIds must each pick one payer. */
function checkPayerUniqueness(r: Reader, payers: Payer[]): void {
  const seen = new Map<string, string>();
  const once = (key: string, path: Path, what: string): void => {
    const first = seen.get(key);
    if (first !== undefined) {
      r.issue(path, 'RULES_DUPLICATE_ID', `${what} already used at ${first}`);
    } else seen.set(key, formatPath(path));
  };
  payers.forEach((p, i) => {
    once(`id|${p.id}`, ['payers', i, 'id'], `payer id "${p.id}"`);
    p.match.identifiers.forEach((x, j) =>
      once(
        `ident|${x.system}|${x.value}`,
        ['payers', i, 'match', 'identifiers', j],
        `identifier ${x.system}|${x.value}`,
      ),
    );
    p.match.organizationIds.forEach((x, j) =>
      once(`org|${x}`, ['payers', i, 'match', 'organizationIds', j], `organizationId "${x}"`),
    );
    const plans = new Set<string>();
    p.plans.forEach((plan, j) => {
      if (plans.has(plan.id)) {
        r.issue(
          ['payers', i, 'plans', j, 'id'],
          'RULES_DUPLICATE_ID',
          `plan "${plan.id}" repeated`,
        );
      }
      plans.add(plan.id);
    });
  });
}

/** The rule's outcome, with and without its needs met, on a primary and a secondary hook. */
function checkRule(r: Reader, rule: Rule, path: Path): void {
  checkOutcome(r, rule.then, [...path, 'then']);
  if (rule.needs.length > 0) {
    checkOutcome(r, withUnmetNeeds(rule.then, rule.needs), [...path, 'needs'], ' when unmet');
  }
}

/** Builds the extension with dummy ids and reports crd-ci-* violations as RULES_INVARIANT. */
function checkOutcome(r: Reader, o: Outcome, path: Path, when = ''): void {
  for (const hook of ['order-sign', 'order-select'] as HookName[]) {
    try {
      buildCoverageInformation(toDetermination(o, '2000-01-01'), {
        coverageReference: 'Coverage/check',
        assertionId: 'check',
        date: '2000-01-01',
        hook,
      });
    } catch (e) {
      if (!(e instanceof CoverageInformationError)) throw e;
      const why = e.violations.map((id) => `${id} (${INVARIANT_HELP[id] ?? 'invalid value'})`);
      r.issue(path, 'RULES_INVARIANT', `outcome${when} violates ${why.join('; ')}`);
      return;
    }
  }
}
