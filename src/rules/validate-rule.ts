/**
 * Reading one rule of a rules file: codes, filters, FHIRPath conditions (compiled here, at
 * load time), needs, outcome and card templates.
 */
import { CARD_TYPES, MAX_SUMMARY } from '../crd/cards.js';
import { INFO_NEEDED_CODES } from '../crd/coverage-info.js';
import type { CardTemplate, HookName } from '../crd/types.js';
import { systemsFor } from './code-systems.js';
import { type CompiledExpression, compileExpression } from './fhirpath.js';
import { defaultConditional } from './outcome.js';
import type { Path, Reader } from './read.js';
import type { CodeMatcher, ConditionalTarget, Need, Rule } from './schema.js';
import { readOutcome } from './validate-outcome.js';

/** The six CRD hooks. */
export const HOOKS: readonly HookName[] = [
  'appointment-book',
  'encounter-discharge',
  'encounter-start',
  'order-dispatch',
  'order-select',
  'order-sign',
];
/** Resource types a rule can be about (CRD §2 order types plus Appointment). */
export const ORDER_TYPES = [
  'ServiceRequest',
  'DeviceRequest',
  'MedicationRequest',
  'NutritionOrder',
  'VisionPrescription',
  'CommunicationRequest',
  'Appointment',
] as const;
const RULE_KEYS = [
  'description',
  'codes',
  'resourceTypes',
  'plans',
  'hooks',
  'when',
  'needs',
  'cards',
];
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const TARGETS: readonly ConditionalTarget[] = ['covered', 'paNeeded', 'docNeeded'];

/** Reads an identifier (`id` of a rule, payer or plan). */
export function readId(r: Reader, v: unknown, path: Path): string | undefined {
  const s = r.string(v, path);
  if (s !== undefined && !ID.test(s)) {
    r.issue(path, 'RULES_BAD_VALUE', 'ids are 1-64 letters, digits, ".", "_" or "-"');
    return undefined;
  }
  return s;
}

/** Compiles a FHIRPath expression, reporting `RULES_FHIRPATH` with the compiler's message. */
export function readExpression(r: Reader, v: unknown, path: Path): CompiledExpression | undefined {
  const s = r.string(v, path);
  if (s === undefined) return undefined;
  try {
    return compileExpression(s);
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    r.issue(path, 'RULES_FHIRPATH', `FHIRPath does not compile: ${msg.slice(0, 300)}`);
    return undefined;
  }
}

/** Reads one rule; undefined when it is unusable (issues recorded). */
export function readRule(r: Reader, v: unknown, path: Path): Rule | undefined {
  const o = r.object(v, path, ['id', 'then'], RULE_KEYS);
  if (o === undefined) return undefined;
  const id = readId(r, o.id, [...path, 'id']);
  const then = readOutcome(r, o.then, [...path, 'then']);
  const rule: Rule = {
    id: id ?? '',
    codes: r
      .list(o.codes, [...path, 'codes'])
      .map((c, i) => readMatcher(r, c, [...path, 'codes', i]))
      .filter((m): m is CodeMatcher => m !== undefined),
    needs: [],
    then: then ?? { covered: 'covered' },
    cards: r
      .list(o.cards, [...path, 'cards'])
      .map((c, i) => readCard(r, c, [...path, 'cards', i]))
      .filter((c): c is CardTemplate => c !== undefined),
    path: '',
  };
  if (o.description !== undefined) {
    rule.description = r.string(o.description, [...path, 'description']);
  }
  if (o.resourceTypes !== undefined) {
    rule.resourceTypes = r.codes(o.resourceTypes, ORDER_TYPES, [...path, 'resourceTypes']);
  }
  if (o.plans !== undefined) rule.plans = r.strings(o.plans, [...path, 'plans']);
  if (o.hooks !== undefined) rule.hooks = r.codes(o.hooks, HOOKS, [...path, 'hooks']);
  if (o.when !== undefined) rule.when = readExpression(r, o.when, [...path, 'when']);
  if (o.codes === undefined && o.resourceTypes === undefined && o.when === undefined) {
    r.issue(
      path,
      'RULES_MISSING_KEY',
      'a rule needs "codes", "resourceTypes" or "when" ' +
        '(for every other order, use the payer\'s "default")',
    );
  }
  if (then !== undefined) {
    rule.needs = r
      .list(o.needs, [...path, 'needs'])
      .map((n, i) => readNeed(r, n, [...path, 'needs', i], defaultConditional(then)))
      .filter((n): n is Need => n !== undefined);
  }
  return id === undefined || then === undefined ? undefined : rule;
}

/** `{system, code | codes | range: {from, to}, display?}`. */
function readMatcher(r: Reader, v: unknown, path: Path): CodeMatcher | undefined {
  const o = r.object(v, path, ['system'], ['code', 'codes', 'range', 'display']);
  if (o === undefined) return undefined;
  const system = r.string(o.system, [...path, 'system']);
  const systems = system === undefined ? undefined : systemsFor(system);
  if (system !== undefined && systems === undefined) {
    r.issue(
      [...path, 'system'],
      'RULES_UNKNOWN_CODE',
      `unknown code system "${system}": use an ` +
        'absolute URI or an alias (hcpcs, cpt, rxnorm, snomed, loinc, ndc, icd10pcs, service-type)',
    );
  }
  const given = ['code', 'codes', 'range'].filter((k) => o[k] !== undefined);
  if (given.length !== 1) {
    r.issue(path, 'RULES_BAD_VALUE', 'give exactly one of "code", "codes" or "range"');
    return undefined;
  }
  if (systems === undefined || systems[0] === undefined) return undefined;
  const m: CodeMatcher = { system: systems[0], systems };
  if (o.code !== undefined) {
    const c = r.string(o.code, [...path, 'code']);
    if (c !== undefined) m.codes = new Set([c]);
  } else if (o.codes !== undefined) {
    const list = r.strings(o.codes, [...path, 'codes']);
    if (list.length === 0) r.issue([...path, 'codes'], 'RULES_BAD_VALUE', 'empty code list');
    m.codes = new Set(list);
  } else {
    const rp = [...path, 'range'];
    const ro = r.object(o.range, rp, ['from', 'to']);
    const from = ro && r.string(ro.from, [...rp, 'from']);
    const to = ro && r.string(ro.to, [...rp, 'to']);
    if (from === undefined || to === undefined) return undefined;
    if (from.length !== to.length || from > to) {
      r.issue(rp, 'RULES_BAD_VALUE', '"from" and "to" must have the same length, from ≤ to');
      return undefined;
    }
    m.range = { from, to };
  }
  return m;
}

function readNeed(r: Reader, v: unknown, path: Path, dflt: ConditionalTarget[]): Need | undefined {
  const o = r.object(v, path, ['fhirpath', 'infoNeeded'], ['conditional', 'reason']);
  if (o === undefined) return undefined;
  const expr = readExpression(r, o.fhirpath, [...path, 'fhirpath']);
  const infoNeeded = r.code(o.infoNeeded, INFO_NEEDED_CODES, [...path, 'infoNeeded']);
  const conditional =
    o.conditional === undefined ? dflt : r.codes(o.conditional, TARGETS, [...path, 'conditional']);
  if (o.conditional !== undefined && conditional.length === 0) {
    r.issue([...path, 'conditional'], 'RULES_BAD_VALUE', 'name at least one target');
  }
  if (expr === undefined || infoNeeded === undefined) return undefined;
  const need: Need = { expr, infoNeeded, conditional };
  if (o.reason !== undefined) {
    const reason = r.string(o.reason, [...path, 'reason']);
    if (reason !== undefined) need.reason = reason;
  }
  return need;
}

/** A card template: Instructions need a detail and no links, External References ≥ 1 link. */
function readCard(r: Reader, v: unknown, path: Path): CardTemplate | undefined {
  const o = r.object(v, path, ['kind', 'summary', 'topic'], ['detail', 'indicator', 'links']);
  if (o === undefined) return undefined;
  const kind = r.code(o.kind, ['instructions', 'external-reference'] as const, [...path, 'kind']);
  const summary = r.string(o.summary, [...path, 'summary']);
  if (summary !== undefined && [...summary].length > MAX_SUMMARY) {
    r.issue(
      [...path, 'summary'],
      'RULES_SUMMARY_TOO_LONG',
      `summary has ${[...summary].length} characters; resp-6 wants under 140`,
    );
  }
  const topic = r.code(o.topic, Object.keys(CARD_TYPES), [...path, 'topic']);
  if (kind === undefined || summary === undefined || topic === undefined) return undefined;
  const card: CardTemplate = { kind, summary, topic };
  if (o.detail !== undefined) card.detail = r.string(o.detail, [...path, 'detail']);
  if (o.indicator !== undefined) {
    card.indicator = r.code(o.indicator, ['info', 'warning', 'critical'] as const, [
      ...path,
      'indicator',
    ]);
  }
  const links = r.list(o.links, [...path, 'links']).flatMap((l, i) => {
    const lp = [...path, 'links', i];
    const lo = r.object(l, lp, ['label', 'url']);
    const label = lo && r.string(lo.label, [...lp, 'label']);
    const url = lo && r.url(lo.url, [...lp, 'url']);
    return label && url ? [{ label, url }] : [];
  });
  if (kind === 'instructions') {
    if (card.detail === undefined) {
      r.issue(
        [...path, 'detail'],
        'RULES_MISSING_KEY',
        'Instructions cards need a detail (resp-24)',
      );
    }
    if (o.links !== undefined) {
      r.issue([...path, 'links'], 'RULES_BAD_VALUE', 'Instructions cards have no links (resp-24)');
    }
  } else if (links.length === 0) {
    r.issue(
      [...path, 'links'],
      'RULES_MISSING_KEY',
      'External Reference cards need a link (resp-18)',
    );
  } else card.links = links;
  return card;
}
