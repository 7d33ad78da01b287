/**
 * Reading the `then`/`default` outcome of a rules file: every code from its value set
 * (CRD §3.3), detail values of the type the code calls for.
 */
import {
  COVERED_CODES,
  CRD_TEMP_SYSTEM,
  DETAIL_CATEGORIES,
  DETAIL_CODES,
  DOC_NEEDED_CODES,
  DOC_PURPOSE_CODES,
  INFO_NEEDED_CODES,
  PA_NEEDED_CODES,
  REASON_DISPLAY,
} from '../crd/coverage-info.js';
import type { Coding, ContactDetail, CoverageDetail, Reason, ReasonCode } from '../crd/types.js';
import { systemsFor } from './code-systems.js';
import type { Path, Reader } from './read.js';
import type { Outcome } from './schema.js';

const OUTCOME_KEYS = [
  'paNeeded',
  'docNeeded',
  'docPurpose',
  'infoNeeded',
  'questionnaires',
  'details',
  'reasons',
  'billingCodes',
  'contacts',
  'expiresInDays',
];
const REASON_CODES = Object.keys(REASON_DISPLAY) as ReasonCode[];
const TELECOM = ['phone', 'fax', 'email', 'url'] as const;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Reads an outcome (`then` of a rule, `default` of a payer or plan). */
export function readOutcome(r: Reader, v: unknown, path: Path): Outcome | undefined {
  const o = r.object(v, path, ['covered'], OUTCOME_KEYS);
  if (o === undefined) return undefined;
  const covered = r.code(o.covered, COVERED_CODES, [...path, 'covered']);
  const out: Outcome = { covered: covered ?? 'covered' }; // read on to report every issue
  if (o.paNeeded !== undefined) {
    const pa = r.code(o.paNeeded, PA_NEEDED_CODES, [...path, 'paNeeded']);
    if (pa === 'satisfied') {
      r.issue(
        [...path, 'paNeeded'],
        'RULES_BAD_VALUE',
        '"satisfied" needs the PA number ' +
          '(satisfied-pa-id, crd-ci-q5), which a rule cannot know',
      );
    } else if (pa !== undefined) out.paNeeded = pa;
  }
  const list = <T>(key: string, read: () => T[]): void => {
    if (o[key] === undefined) return;
    const values = read();
    if (values.length > 0) (out as unknown as Record<string, unknown>)[key] = values;
  };
  list('docNeeded', () => r.codes(o.docNeeded, DOC_NEEDED_CODES, [...path, 'docNeeded']));
  list('docPurpose', () => r.codes(o.docPurpose, DOC_PURPOSE_CODES, [...path, 'docPurpose']));
  list('infoNeeded', () => r.codes(o.infoNeeded, INFO_NEEDED_CODES, [...path, 'infoNeeded']));
  list('questionnaires', () =>
    r
      .list(o.questionnaires, [...path, 'questionnaires'])
      .map((q, i) => canonical(r, q, [...path, 'questionnaires', i]))
      .filter((q): q is string => q !== undefined),
  );
  list('details', () =>
    r
      .list(o.details, [...path, 'details'])
      .map((d, i) => readDetail(r, d, [...path, 'details', i]))
      .filter((d): d is CoverageDetail => d !== undefined),
  );
  list('reasons', () =>
    r
      .list(o.reasons, [...path, 'reasons'])
      .map((x, i) => readReason(r, x, [...path, 'reasons', i]))
      .filter((x): x is Reason => x !== undefined),
  );
  list('billingCodes', () =>
    r
      .list(o.billingCodes, [...path, 'billingCodes'])
      .map((c, i) => readCoding(r, c, [...path, 'billingCodes', i]))
      .filter((c): c is Coding => c !== undefined),
  );
  if (o.contacts !== undefined) out.contacts = readContacts(r, o.contacts, [...path, 'contacts']);
  if (o.expiresInDays !== undefined) {
    const n = r.number(o.expiresInDays, [...path, 'expiresInDays'], true, 1);
    if (n !== undefined) out.expiresInDays = n;
  }
  return covered === undefined ? undefined : out;
}

/** A Questionnaire canonical: absolute URL, optionally `|version`. */
function canonical(r: Reader, v: unknown, path: Path): string | undefined {
  const s = r.string(v, path);
  if (s !== undefined && !/^(https?:\/\/|urn:)[^\s|]+(\|[^\s|]+)?$/.test(s)) {
    r.issue(path, 'RULES_BAD_VALUE', `expected a canonical URL (optionally |version), got "${s}"`);
    return undefined;
  }
  return s;
}

function readDetail(r: Reader, v: unknown, path: Path): CoverageDetail | undefined {
  const o = r.object(v, path, ['code', 'value'], ['category', 'qualification']);
  if (o === undefined) return undefined;
  const code = r.code(o.code, Object.keys(DETAIL_CODES), [...path, 'code']);
  const spec = code === undefined ? undefined : DETAIL_CODES[code];
  if (code === undefined || spec === undefined) return undefined;
  let category = spec.category;
  if (o.category !== undefined) {
    const c = r.code(o.category, DETAIL_CATEGORIES, [...path, 'category']);
    if (c !== undefined && spec.category !== undefined && c !== spec.category) {
      r.issue([...path, 'category'], 'RULES_BAD_VALUE', `${code} is a ${spec.category} detail`);
    }
    category = c ?? category;
  }
  if (category === undefined) {
    r.issue([...path, 'category'], 'RULES_MISSING_KEY', `"category" is required for ${code}`);
    return undefined;
  }
  const vp = [...path, 'value', spec.value];
  const val = r.object(o.value, [...path, 'value'], [spec.value]);
  if (val === undefined || val[spec.value] === undefined) return undefined;
  const raw = val[spec.value];
  let value: CoverageDetail['value'] | undefined;
  if (spec.value === 'boolean') {
    const b = r.boolean(raw, vp);
    value = b === undefined ? undefined : { boolean: b };
  } else if (spec.value === 'string') {
    const s = r.string(raw, vp);
    value = s === undefined ? undefined : { string: s };
  } else if (spec.value === 'url') {
    const u = r.url(raw, vp);
    value = u === undefined ? undefined : { url: u };
  } else if (spec.value === 'quantity') {
    const q = r.object(raw, vp, ['value'], ['unit', 'system', 'code']);
    const n = q === undefined ? undefined : r.number(q.value, [...vp, 'value']);
    const quantity: { value: number; unit?: string; system?: string; code?: string } | undefined =
      n === undefined ? undefined : { value: n };
    for (const k of ['unit', 'system', 'code'] as const) {
      if (quantity && q?.[k] !== undefined) {
        const s = r.string(q[k], [...vp, k]);
        if (s !== undefined) quantity[k] = s;
      }
    }
    value = quantity === undefined ? undefined : { quantity };
  } else {
    const p = r.object(raw, vp, [], ['start', 'end']);
    const period: { start?: string; end?: string } = {};
    for (const k of ['start', 'end'] as const) {
      if (p?.[k] === undefined) continue;
      const s = r.string(p[k], [...vp, k]);
      if (s !== undefined && !DATE.test(s)) r.issue([...vp, k], 'RULES_BAD_VALUE', 'YYYY-MM-DD');
      else if (s !== undefined) period[k] = s;
    }
    value = p === undefined ? undefined : { period };
  }
  if (value === undefined) return undefined;
  const detail: CoverageDetail = { category, code, value };
  if (o.qualification !== undefined) {
    const q = r.string(o.qualification, [...path, 'qualification']);
    if (q !== undefined) detail.qualification = q;
  }
  return detail;
}

/**
 * A reason: `{code: gold-card}` (a CRD code), `{system, code, display?, text}` (another code
 * system: crd-ci-q7 then requires text, checked with the invariants), or `{text}`.
 */
function readReason(r: Reader, v: unknown, path: Path): Reason | undefined {
  const o = r.object(v, path, [], ['code', 'system', 'display', 'text']);
  if (o === undefined) return undefined;
  const reason: Reason = {};
  if (o.text !== undefined) {
    const t = r.string(o.text, [...path, 'text']);
    if (t !== undefined) reason.text = t;
  }
  if (o.system === undefined || o.system === CRD_TEMP_SYSTEM) {
    if (o.display !== undefined)
      r.issue([...path, 'display'], 'RULES_BAD_VALUE', 'CRD reason codes carry their own display');
    if (o.code !== undefined) {
      const c = r.code(o.code, REASON_CODES, [...path, 'code']);
      if (c !== undefined) reason.code = c;
    }
  } else {
    const coding = readCoding(r, o, path, true);
    if (coding !== undefined) reason.coding = coding;
  }
  if (reason.code === undefined && reason.coding === undefined && reason.text === undefined) {
    r.issue(path, 'RULES_MISSING_KEY', 'a reason needs a code or a text');
    return undefined;
  }
  return reason;
}

/** `{system, code, display?}` with `system` an alias (`cpt`) or a URI; emits the canonical. */
export function readCoding(r: Reader, v: unknown, path: Path, lenient = false): Coding | undefined {
  const o = lenient
    ? (v as Record<string, unknown>)
    : r.object(v, path, ['system', 'code'], ['display']);
  if (o === undefined) return undefined;
  const system = r.string(o.system, [...path, 'system']);
  const code = r.string(o.code, [...path, 'code']);
  const systems = system === undefined ? undefined : systemsFor(system);
  if (system !== undefined && systems === undefined) {
    r.issue(
      [...path, 'system'],
      'RULES_UNKNOWN_CODE',
      `unknown code system "${system}": use an ` +
        'absolute URI or an alias (hcpcs, cpt, rxnorm, snomed, loinc, ndc, icd10pcs, service-type)',
    );
  }
  const canon = systems?.[0];
  if (canon === undefined || code === undefined) return undefined;
  const coding: Coding = { system: canon, code };
  if (o.display !== undefined) {
    const d = r.string(o.display, [...path, 'display']);
    if (d !== undefined) coding.display = d;
  }
  return coding;
}

/** ContactDetail list: `[{name?, telecom: [{system: phone|fax|email|url, value}]}]`. */
export function readContacts(r: Reader, v: unknown, path: Path): ContactDetail[] {
  return r.list(v, path).flatMap((c, i) => {
    const p = [...path, i];
    const o = r.object(c, p, ['telecom'], ['name']);
    if (o === undefined) return [];
    const contact: ContactDetail = { telecom: [] };
    const name = o.name === undefined ? undefined : r.string(o.name, [...p, 'name']);
    if (name !== undefined) contact.name = name;
    r.list(o.telecom, [...p, 'telecom'], false).forEach((t, j) => {
      const tp = [...p, 'telecom', j];
      const to = r.object(t, tp, ['system', 'value']);
      const system = to && r.code(to.system, TELECOM, [...tp, 'system']);
      const value = to && r.string(to.value, [...tp, 'value']);
      if (system && value) contact.telecom?.push({ system, value });
    });
    return [contact];
  });
}
