/**
 * The Coverage Information extension (CRD §3.3): build it from a {@link Determination}, check
 * it against invariants crd-ci-q1..q9, and wrap it in the `update` system action (resp-37).
 * The server never emits an extension that fails {@link checkCoverageInformation}.
 */
import type { CodeableConcept, Extension, Resource } from '@medplum/fhirtypes';
import type { CoverageDetail, Determination, HookName, Reason } from './types.js';
import { PRIMARY_HOOKS } from './types.js';
import {
  COVERAGE_DETAIL_SYSTEM,
  COVERAGE_INFORMATION_URL,
  CRD_TEMP_SYSTEM,
  REASON_DISPLAY,
} from './coverage-codes.js';
import { checkCoverageInformation } from './coverage-info-check.js';

export * from './coverage-codes.js';
export { checkCoverageInformation } from './coverage-info-check.js';

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
    sub.push({ url: 'contact', valueContactDetail: c });
  }
  if (d.expiryDate !== undefined) sub.push({ url: 'expiry-date', valueDate: d.expiryDate });

  const ext: Extension = { url: COVERAGE_INFORMATION_URL, extension: sub };
  assertValidCoverageInformation(ext);
  CHECKED.add(ext);
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

/** Extensions built and checked here, so the action does not check them again. */
const CHECKED = new WeakSet<Extension>();

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
 * appended. The input is not modified. Every extension is checked (never emit an invalid one),
 * once: those from {@link buildCoverageInformation} were checked there. The description names the resource by type and id only (no PHI).
 */
export function coverageInformationAction(
  resource: Resource,
  extensions: Extension[],
): CoverageInformationAction {
  for (const e of extensions) {
    if (e.url !== COVERAGE_INFORMATION_URL) throw new CoverageInformationError(['crd-ci-card']);
    if (!CHECKED.has(e)) assertValidCoverageInformation(e);
  }
  // A shallow copy: only `extension` differs, and nothing here modifies what it shares.
  const copy = { ...resource } as Resource & { extension?: Extension[] };
  const kept = (copy.extension ?? []).filter((e) => e.url !== COVERAGE_INFORMATION_URL);
  const next = [...kept, ...extensions];
  if (next.length > 0) copy.extension = next;
  else delete copy.extension;
  const name = `${resource.resourceType}/${resource.id ?? '(no id)'}`;
  return { type: 'update', description: `Coverage information for ${name}`, resource: copy };
}
