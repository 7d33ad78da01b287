/**
 * The Coverage Information extension (CRD §3.3): build it from a {@link Determination}, check
 * it against invariants crd-ci-q1..q9, and wrap it in the `update` system action (resp-37).
 * The server never emits an extension that fails {@link checkCoverageInformation}.
 */
import type { CodeableConcept, Extension, Resource } from '@medplum/fhirtypes';
import type {
  CoverageDetail,
  Covered,
  Determination,
  DocNeeded,
  DocPurpose,
  HookName,
  InfoNeeded,
  PaNeeded,
  Reason,
  ReasonCode,
} from './types.js';
import { PRIMARY_HOOKS } from './types.js';

/** Canonical URL of the extension. */
export const COVERAGE_INFORMATION_URL =
  'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
/** System of the `coverageAssertionReasons` codes (CRD `CodeSystem/temp`). */
export const CRD_TEMP_SYSTEM = 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp';
/** System of the coverage-detail codes (`ValueSet/coverageDetailNew`). */
export const COVERAGE_DETAIL_SYSTEM = 'http://terminology.hl7.org/CodeSystem/crd-coverage-detail';

/** `ValueSet/coverageInfo` (required binding of `covered`), in the IG's order. */
export const COVERED_CODES: readonly Covered[] = [
  'covered',
  'not-covered',
  'conditional',
  'indeterminate',
];
/** `ValueSet/coveragePaDetail` (`pa-needed`). */
export const PA_NEEDED_CODES: readonly PaNeeded[] = [
  'no-auth',
  'auth-needed',
  'satisfied',
  'performpa',
  'conditional',
  'indeterminate',
];
/** `ValueSet/AdditionalDocumentation` (`doc-needed`). */
export const DOC_NEEDED_CODES: readonly DocNeeded[] = [
  'clinical',
  'admin',
  'patient',
  'conditional',
  'indeterminate',
];
/** `ValueSet/DocReason` (`doc-purpose`; `OTH` is v3-NullFlavor). */
export const DOC_PURPOSE_CODES: readonly DocPurpose[] = [
  'withpa',
  'withclaim',
  'withorder',
  'retain-doc',
  'OTH',
];
/** `ValueSet/informationNeeded` (`info-needed`; `OTH` is v3-NullFlavor). */
export const INFO_NEEDED_CODES: readonly InfoNeeded[] = [
  'performer',
  'location',
  'timeframe',
  'contract-window',
  'detail-code',
  'OTH',
];
/** `ValueSet/coverageDetailCategories` (`detail.category`). */
export const DETAIL_CATEGORIES = ['cat-limitation', 'cat-decisional', 'cat-other'] as const;

/** `coverageAssertionReasons` (extensible) with the CodeSystem displays. */
export const REASON_DISPLAY: Readonly<Record<ReasonCode, string>> = {
  'gold-card': 'Gold card',
  'no-member-found': 'Member not found',
  'no-active-coverage': 'Coverage not active',
  'coverage-not-found': 'Coverage not found',
  'auth-out-network': 'Authorization needed out-of-network',
  technical: 'Technical issues',
};

/**
 * `crd-coverage-detail` codes with their category (`undefined`: any category) and the value
 * type the CodeSystem says the value "should be".
 */
export const DETAIL_CODES: Readonly<
  Record<string, { category?: CoverageDetail['category']; value: DetailValueKind }>
> = {
  'allowed-quantity': { category: 'cat-limitation', value: 'quantity' },
  'allowed-period': { category: 'cat-limitation', value: 'period' },
  'in-network-copay': { category: 'cat-decisional', value: 'quantity' },
  'out-network-copay': { category: 'cat-decisional', value: 'quantity' },
  'concurrent-review': { category: 'cat-decisional', value: 'boolean' },
  'appropriate-use-needed': { category: 'cat-decisional', value: 'boolean' },
  'policy-link': { category: 'cat-other', value: 'url' },
  instructions: { value: 'string' },
};

/** The value[x] kinds a detail can carry. */
export type DetailValueKind = 'boolean' | 'string' | 'url' | 'quantity' | 'period';

/** Thrown when an extension would violate an invariant; `violations` holds the ids. */
export class CoverageInformationError extends Error {
  override name = 'CoverageInformationError';
  /** Stable error code for logs and OperationOutcomes. */
  readonly code = 'CRD_CI_INVALID';

  constructor(readonly violations: string[]) {
    super(`coverage-information violates ${violations.join(', ')}`);
  }
}

/** What {@link buildCoverageInformation} needs besides the determination. */
export interface CoverageInformationOptions {
  /** Reference to the EHR's Coverage, e.g. `Coverage/COV1` (the `coverage` sub-extension). */
  coverageReference: string;
  /** Trace id for DTR, PAS and the claim (`coverage-assertion-id`, resp-31). */
  assertionId: string;
  /** Assertion date, `YYYY-MM-DD`. */
  date: string;
  /** The hook being answered: secondary hooks get the hook-19 treatment. */
  hook: HookName;
}

/**
 * hook-19: coverage information on order-select, encounter-start and encounter-discharge SHALL
 * NOT carry doc-needed `clinical` or `admin`. Drops them, and when no doc-needed is left also
 * drops what would then be inconsistent or meaningless: questionnaires (crd-ci-q1) and
 * doc-purpose. Primary hooks get the determination back unchanged.
 */
export function applyHookRestrictions(det: Determination, hook: HookName): Determination {
  if (PRIMARY_HOOKS.has(hook) || det.docNeeded === undefined) return det;
  const docNeeded = det.docNeeded.filter((d) => d !== 'clinical' && d !== 'admin');
  if (docNeeded.length === det.docNeeded.length) return det;
  const out: Determination = { ...det, docNeeded };
  if (docNeeded.length === 0) {
    delete out.docNeeded;
    delete out.questionnaires;
    delete out.docPurpose;
  }
  return out;
}

/**
 * Builds one `ext-coverage-information` with its sub-extensions in the IG's order (as in
 * `CRDServiceResponse.json`). Applies hook-19 for secondary hooks, then throws a
 * {@link CoverageInformationError} if the result would violate any invariant.
 */
export function buildCoverageInformation(
  det: Determination,
  opts: CoverageInformationOptions,
): Extension {
  const d = applyHookRestrictions(det, opts.hook);
  const sub: Extension[] = [];
  const code = (url: string, valueCode: string): void => void sub.push({ url, valueCode });

  sub.push({ url: 'coverage', valueReference: { reference: opts.coverageReference } });
  code('covered', d.covered);
  if (d.paNeeded !== undefined) code('pa-needed', d.paNeeded);
  for (const c of unique(d.docNeeded)) code('doc-needed', c);
  for (const c of unique(d.docPurpose)) code('doc-purpose', c);
  for (const c of unique(d.infoNeeded)) code('info-needed', c);
  for (const c of d.billingCodes ?? []) {
    sub.push({ url: 'billingCode', valueCoding: stripUndefined({ ...c }) });
  }
  for (const r of d.reasons ?? []) sub.push({ url: 'reason', valueCodeableConcept: reason(r) });
  for (const x of d.details ?? []) sub.push(detail(x));
  for (const q of d.questionnaires ?? []) sub.push({ url: 'questionnaire', valueCanonical: q });
  sub.push({ url: 'date', valueDate: opts.date });
  sub.push({ url: 'coverage-assertion-id', valueString: opts.assertionId });
  if (d.satisfiedPaId !== undefined) {
    sub.push({ url: 'satisfied-pa-id', valueString: d.satisfiedPaId });
  }
  for (const c of d.contacts ?? []) {
    sub.push({ url: 'contact', valueContactDetail: structuredClone(c) });
  }
  if (d.expiryDate !== undefined) sub.push({ url: 'expiry-date', valueDate: d.expiryDate });

  const ext: Extension = { url: COVERAGE_INFORMATION_URL, extension: sub };
  assertValidCoverageInformation(ext);
  return ext;
}

/** A CRD reason code gets the `temp` system and its display; another coding is kept as is. */
function reason(r: Reason): CodeableConcept {
  const cc: CodeableConcept = {};
  const coding = [];
  if (r.code !== undefined) {
    coding.push({ system: CRD_TEMP_SYSTEM, code: r.code, display: REASON_DISPLAY[r.code] });
  }
  if (r.coding !== undefined) coding.push(stripUndefined({ ...r.coding }));
  if (coding.length > 0) cc.coding = coding;
  if (r.text !== undefined) cc.text = r.text;
  return cc;
}

function detail(x: CoverageDetail): Extension {
  const sub: Extension[] = [
    { url: 'category', valueCode: x.category },
    {
      url: 'code',
      valueCodeableConcept: { coding: [{ system: COVERAGE_DETAIL_SYSTEM, code: x.code }] },
    },
    detailValue(x.value),
  ];
  if (x.qualification !== undefined) {
    sub.push({ url: 'qualification', valueString: x.qualification });
  }
  return { url: 'detail', extension: sub };
}

function detailValue(v: CoverageDetail['value']): Extension {
  if ('boolean' in v) return { url: 'value', valueBoolean: v.boolean };
  if ('string' in v) return { url: 'value', valueString: v.string };
  if ('url' in v) return { url: 'value', valueUrl: v.url };
  if ('quantity' in v) return { url: 'value', valueQuantity: stripUndefined({ ...v.quantity }) };
  return { url: 'value', valuePeriod: stripUndefined({ ...v.period }) };
}

function unique<T>(list: readonly T[] | undefined): T[] {
  return [...new Set(list ?? [])];
}

function stripUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

/** Throws a {@link CoverageInformationError} naming every violated invariant id. */
export function assertValidCoverageInformation(ext: Extension): void {
  const violations = checkCoverageInformation(ext);
  if (violations.length > 0) throw new CoverageInformationError(violations);
}

/** The Coverage Information system action (CRDHooksResponse-coverageInformation). */
export interface CoverageInformationAction {
  type: 'update';
  description: string;
  resource: Resource;
}

/**
 * resp-37: the `update` of the order (or Appointment) that changes nothing but the
 * coverage-information extensions: a deep copy with any existing ones removed and `extensions`
 * appended. The input is not modified. Every extension is checked first (never emit an invalid
 * one). The description names the resource by type and id only (no PHI).
 */
export function coverageInformationAction(
  resource: Resource,
  extensions: Extension[],
): CoverageInformationAction {
  for (const e of extensions) {
    if (e.url !== COVERAGE_INFORMATION_URL) throw new CoverageInformationError(['crd-ci-card']);
    assertValidCoverageInformation(e);
  }
  const copy = structuredClone(resource) as Resource & { extension?: Extension[] };
  const kept = (copy.extension ?? []).filter((e) => e.url !== COVERAGE_INFORMATION_URL);
  const next = [...kept, ...structuredClone(extensions)];
  if (next.length > 0) copy.extension = next;
  else delete copy.extension;
  const name = `${resource.resourceType}/${resource.id ?? '(no id)'}`;
  return { type: 'update', description: `Coverage information for ${name}`, resource: copy };
}

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
  const subs = ext.extension ?? [];
  const all = (url: string): Extension[] => subs.filter((e) => e.url === url);
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
