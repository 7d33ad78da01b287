/** The invariants of the Coverage Information extension: crd-ci-q1..q9 and structure. */
import type { Extension } from '@medplum/fhirtypes';
import {
  COVERED_CODES,
  DETAIL_CATEGORIES,
  DOC_NEEDED_CODES,
  DOC_PURPOSE_CODES,
  INFO_NEEDED_CODES,
  PA_NEEDED_CODES,
  COVERAGE_INFORMATION_URL,
  CRD_TEMP_SYSTEM,
  REASON_DISPLAY,
} from './coverage-codes.js';

const DATE = /^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$/;
const isIn = <T extends string>(list: readonly T[], v: unknown): v is T =>
  typeof v === 'string' && (list as readonly string[]).includes(v);

/**
 * Returns the invariant ids `ext` violates (structural ids first, then q1..q9); empty when
 * valid. Besides crd-ci-q1..q9:
 * `crd-ci-card` (url, cardinality or value type: coverage, covered, date and
 * coverage-assertion-id exactly once, pa-needed, satisfied-pa-id and expiry-date at most once,
 * detail parts) and `crd-ci-binding` (a code outside a required value set).
 * Deviations from the IG's FHIRPath, on purpose: q4 uses the real code `no-auth` (the IG says
 * 'noauth') and also covers `covered` = `not-covered` (the IG tests pa-needed for that code,
 * which it can never hold); q7 is checked per reason. q3 and q8 follow the FHIRPath literally:
 * q3 is one-way (conditional implies info-needed); q8 fires for every doc-purpose, since the
 * DocReason value set has no `conditional`.
 */
export function checkCoverageInformation(ext: Extension): string[] {
  const v = new Set<string>();
  // Grouped once by url: every rule below reads its sub-extensions from here.
  const byUrl = new Map<string, Extension[]>();
  for (const e of ext.extension ?? []) {
    const list = byUrl.get(e.url);
    if (list) list.push(e);
    else byUrl.set(e.url, [e]);
  }
  const all = (url: string): Extension[] => byUrl.get(url) ?? [];
  const codes = (url: string): unknown[] => all(url).map((e) => e.valueCode);
  const has = (url: string): boolean => all(url).length > 0;

  if (ext.url !== COVERAGE_INFORMATION_URL || hasValue(ext)) v.add('crd-ci-card');
  const once = (url: string, ok: (e: Extension) => boolean, max1 = false): void => {
    const found = all(url);
    if ((max1 ? found.length > 1 : found.length !== 1) || !found.every(ok)) v.add('crd-ci-card');
  };
  once(
    'coverage',
    (e) => (e.valueReference?.reference ?? '') !== '' || e.valueReference?.identifier !== undefined,
  );
  once('covered', (e) => typeof e.valueCode === 'string');
  once('date', (e) => typeof e.valueDate === 'string' && DATE.test(e.valueDate));
  once('coverage-assertion-id', (e) => typeof e.valueString === 'string' && e.valueString !== '');
  once('pa-needed', (e) => typeof e.valueCode === 'string', true);
  once('satisfied-pa-id', (e) => typeof e.valueString === 'string' && e.valueString !== '', true);
  once('expiry-date', (e) => typeof e.valueDate === 'string' && DATE.test(e.valueDate), true);
  for (const url of ['doc-needed', 'doc-purpose', 'info-needed']) {
    if (!codes(url).every((c) => typeof c === 'string')) v.add('crd-ci-card');
  }
  if (!all('questionnaire').every((e) => typeof e.valueCanonical === 'string')) {
    v.add('crd-ci-card');
  }
  for (const d of all('detail')) checkDetail(d, v);

  const bind = (url: string, list: readonly string[]): void => {
    if (!codes(url).every((c) => c === undefined || isIn(list, c))) v.add('crd-ci-binding');
  };
  bind('covered', COVERED_CODES);
  bind('pa-needed', PA_NEEDED_CODES);
  bind('doc-needed', DOC_NEEDED_CODES);
  bind('doc-purpose', DOC_PURPOSE_CODES);
  bind('info-needed', INFO_NEEDED_CODES);

  const covered = codes('covered');
  const pa = codes('pa-needed');
  const anyOf = (value: string): boolean =>
    [...covered, ...pa, ...codes('doc-needed')].includes(value);
  const reasons = all('reason');

  if (has('questionnaire') && !has('doc-needed')) v.add('crd-ci-q1');
  if (covered.includes('not-covered') && has('pa-needed')) v.add('crd-ci-q2');
  if (anyOf('conditional') && !has('info-needed')) v.add('crd-ci-q3');
  const noPa =
    pa.includes('satisfied') || pa.includes('no-auth') || covered.includes('not-covered');
  if (noPa && codes('doc-purpose').includes('withpa')) v.add('crd-ci-q4');
  if (pa.includes('satisfied') !== has('satisfied-pa-id')) v.add('crd-ci-q5');
  if (codes('info-needed').includes('OTH') && reasons.length === 0) v.add('crd-ci-q6');
  if (!reasons.every(reasonOk)) v.add('crd-ci-q7');
  if (codes('doc-purpose').some((c) => c !== 'conditional') && reasons.length === 0) {
    v.add('crd-ci-q8');
  }
  if (anyOf('indeterminate') && reasons.length === 0) v.add('crd-ci-q9');
  return [...v].sort(byId);
}

/** crd-ci-q7: text, or at least one coding from `coverageAssertionReasons`. */
function reasonOk(e: Extension): boolean {
  const cc = e.valueCodeableConcept;
  if (cc === undefined) return false;
  if (typeof cc.text === 'string' && cc.text.trim() !== '') return true;
  return (cc.coding ?? []).some(
    (c) =>
      c.system === CRD_TEMP_SYSTEM && c.code !== undefined && Object.hasOwn(REASON_DISPLAY, c.code),
  );
}

function checkDetail(d: Extension, v: Set<string>): void {
  const parts = d.extension ?? [];
  const one = (url: string): Extension[] => parts.filter((p) => p.url === url);
  const category = one('category');
  const code = one('code');
  const value = one('value');
  if (
    category.length !== 1 ||
    code.length !== 1 ||
    value.length !== 1 ||
    one('qualification').length > 1 ||
    hasValue(d) ||
    code[0]?.valueCodeableConcept === undefined ||
    !value.every(hasValue)
  ) {
    v.add('crd-ci-card');
  }
  if (!category.every((c) => isIn(DETAIL_CATEGORIES, c.valueCode))) v.add('crd-ci-binding');
}

function hasValue(e: Extension): boolean {
  return Object.keys(e).some((k) => k.startsWith('value'));
}

function byId(a: string, b: string): number {
  const n = (s: string): number => (/^crd-ci-q\d$/.test(s) ? Number(s.slice(8)) : 0);
  return n(a) - n(b) || a.localeCompare(b);
}
