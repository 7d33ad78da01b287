/**
 * The patient's Consent resources (FHIR R4), applied to one disclosure: this resource, to this
 * payer, now, for coverage determination (HRex sec-5; CRD's `indeterminate` covers "consent
 * restrictions by the patient").
 *
 * The subset understood:
 * - A consent counts when `status` is `active` and `scope` is `patient-privacy`.
 * - A provision applies when every condition it states holds: `period` holds now; one `actor`
 *   names the payer (its Organization reference or identifier; the role is not read); `action`
 *   is a disclosure (`disclose`, `access`; a deny also on `use`); `purpose` is a payment purpose
 *   (v3-ActReason HPAYMT, COVAUTH, COVERAGE, CLMATTCH, ELIGDTRM, ELIGVER); `class` names the
 *   resource type (or a contained one, or a `meta.profile`); `code` holds one of the resource's
 *   codes; `securityLabel` one of its labels; `data` with meaning `instance` is the resource.
 * - A condition not understood (`dataPeriod`, `data` with another meaning, a `class` outside
 *   resource types and profiles, an unreadable date, a `modifierExtension`) counts as met in a
 *   deny provision and as unmet in a permit provision: either way, towards withholding. A
 *   consent with a `modifierExtension` of its own denies everything.
 * - The root provision's `type` decides when the root applies; without one, `policyRule` OPTOUT
 *   denies and anything else permits. A nested provision that applies overrides its parent (a
 *   nested one without `type` counts as deny); among siblings that apply, deny wins. Across
 *   consents, one deny is enough.
 */
import type { Consent, ConsentProvision } from '@medplum/fhirtypes';
import { canonicalSystem, CodeList, type FoundCoding } from './codes.js';
import type { ResourceFacts } from './facts.js';
import type { PayerIdentity } from './types.js';

type Decision = 'permit' | 'deny';

const RESOURCE_TYPES = 'http://hl7.org/fhir/resource-types';
const PAYMENT_PURPOSES = new Set([
  'HPAYMT',
  'COVAUTH',
  'COVERAGE',
  'CLMATTCH',
  'ELIGDTRM',
  'ELIGVER',
]);
const PURPOSE_SYSTEMS = new Set(
  [
    'http://terminology.hl7.org/CodeSystem/v3-ActReason',
    'http://terminology.hl7.org/ValueSet/v3-PurposeOfUse',
  ].map(canonicalSystem),
);

/** The disclosure being judged. */
interface Disclosure {
  facts: ResourceFacts;
  payer: PayerIdentity;
  now: Date;
}

/** The consents that deny this disclosure, as `Consent/id` (or `Consent[i]` without an id). */
export function consentDenials(
  consents: readonly Consent[],
  facts: ResourceFacts,
  payer: PayerIdentity,
  now: Date,
): string[] {
  const denials: string[] = [];
  consents.forEach((consent, i) => {
    if (decideConsent(consent, { facts, payer, now }) === 'deny') {
      denials.push(typeof consent.id === 'string' ? `Consent/${consent.id}` : `Consent[${i}]`);
    }
  });
  return denials;
}

function decideConsent(consent: Consent, d: Disclosure): Decision | undefined {
  if (consent?.resourceType !== 'Consent' || consent.status !== 'active') return undefined;
  const privacy = (consent.scope?.coding ?? []).some((c) => c.code === 'patient-privacy');
  if (!privacy) return undefined;
  // A modifier extension changes the meaning of what it sits on; not understood, it cannot be
  // ignored (FHIR), so the whole consent counts as a deny.
  if (consent.modifierExtension?.length) return 'deny';
  const optOut = (consent.policyRule?.coding ?? []).some((c) => c.code?.toUpperCase() === 'OPTOUT');
  const base: Decision = consent.provision?.type ?? (optOut ? 'deny' : 'permit');
  if (!consent.provision) return base;
  if (!applies(consent.provision, base, d)) return undefined;
  return refine(consent.provision, base, d);
}

/** The decision of a provision that applies, after its nested provisions. */
function refine(provision: ConsentProvision, decision: Decision, d: Disclosure): Decision {
  const nested = (provision.provision ?? [])
    .map((p) => ({ p, type: p.type ?? ('deny' as const) }))
    .filter(({ p, type }) => applies(p, type, d))
    .map(({ p, type }) => refine(p, type, d));
  if (nested.length === 0) return decision;
  return nested.includes('deny') ? 'deny' : 'permit';
}

/** Whether every condition of the provision holds; what is not understood counts towards deny. */
function applies(p: ConsentProvision, type: Decision, d: Disclosure): boolean {
  const unknown = type === 'deny';
  const checks: Array<boolean | undefined> = [
    p.period ? inPeriod(p.period, d.now) : true,
    p.actor?.length ? p.actor.some((a) => namesPayer(a.reference, d.payer)) : true,
    p.action?.length ? isDisclosure(p.action, type) : true,
    p.purpose?.length ? p.purpose.some(isPaymentPurpose) : true,
    p.class?.length ? classMatch(p.class, d.facts) : true,
    p.code?.length ? codeMatch(p.code, d.facts.codes) : true,
    p.securityLabel?.length
      ? new CodeList(asPolicy(p.securityLabel)).findAny(d.facts.labels)
      : true,
    p.data?.length ? dataMatch(p.data, d.facts) : true,
    p.dataPeriod ? undefined : true,
    p.modifierExtension?.length ? undefined : true,
  ];
  return checks.every((c) => (c === undefined ? unknown : c));
}

/** Whether now is within the period; `undefined` when a date cannot be read. */
function inPeriod(period: { start?: string; end?: string }, now: Date): boolean | undefined {
  const start = period.start === undefined ? -Infinity : Date.parse(period.start);
  const end = period.end === undefined ? Infinity : endOf(period.end);
  if (Number.isNaN(start) || Number.isNaN(end)) return undefined;
  return now.getTime() >= start && now.getTime() < end;
}

/** The first instant after a FHIR date or dateTime (`2025` ends at 2026-01-01). */
function endOf(value: string): number {
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$/.exec(value);
  if (!m) return Date.parse(value);
  const [y, mo, day] = [Number(m[1]), m[2] ? Number(m[2]) - 1 : undefined, m[3]];
  if (mo === undefined) return Date.UTC(y + 1, 0, 1);
  if (day === undefined) return Date.UTC(y, mo + 1, 1);
  return Date.UTC(y, mo, Number(day) + 1);
}

/** An actor reference naming the payer: `Organization/id` (also absolute), or its identifier. */
function namesPayer(
  ref: { reference?: string; identifier?: { system?: string; value?: string } } | undefined,
  payer: PayerIdentity,
): boolean {
  if (payer.organization && sameReference(ref?.reference, payer.organization)) return true;
  const id = ref?.identifier;
  if (!id?.value || !payer.identifier) return false;
  const bar = payer.identifier.indexOf('|');
  if (bar < 0) return id.value === payer.identifier;
  return (
    id.system === payer.identifier.slice(0, bar) && id.value === payer.identifier.slice(bar + 1)
  );
}

/** Disclosure actions: a deny also covers `use`, a permit needs `disclose` or `access`. */
function isDisclosure(actions: Array<{ coding?: Array<{ code?: string }> }>, type: Decision) {
  const wanted = type === 'deny' ? ['disclose', 'access', 'use'] : ['disclose', 'access'];
  return actions.some((a) => (a.coding ?? []).some((c) => wanted.includes(c.code ?? '')));
}

function isPaymentPurpose(c: { system?: string; code?: string }): boolean {
  if (c.system && !PURPOSE_SYSTEMS.has(canonicalSystem(c.system))) return false;
  return PAYMENT_PURPOSES.has((c.code ?? '').toUpperCase());
}

/** `class`: resource types (also contained ones) or profiles; another system is not understood. */
function classMatch(classes: Array<{ system?: string; code?: string }>, f: ResourceFacts) {
  let unknown = false;
  for (const c of classes) {
    if (!c.code) continue;
    if (f.profiles.includes(c.code)) return true;
    if (!c.system || canonicalSystem(c.system) === RESOURCE_TYPES) {
      if (f.types.includes(c.code)) return true;
    } else unknown = true;
  }
  return unknown ? undefined : false;
}

function codeMatch(
  concepts: Array<{ coding?: Array<{ system?: string; code?: string }> }>,
  codes: FoundCoding[],
): boolean {
  const codings = concepts.flatMap((c) => c.coding ?? []);
  return new CodeList(asPolicy(codings)).findAny(codes);
}

/** `data` with meaning `instance` names the resource; other meanings are not understood. */
function dataMatch(
  data: Array<{ meaning?: string; reference?: { reference?: string } }>,
  f: ResourceFacts,
): boolean | undefined {
  let unknown = false;
  for (const item of data) {
    if (item.meaning !== 'instance') unknown = true;
    else if (f.reference && sameReference(item.reference?.reference, f.reference)) return true;
  }
  return unknown ? undefined : false;
}

/** `Condition/1`, or an absolute URL ending in `/Condition/1`, without a version. */
function sameReference(ref: string | undefined, target: string): boolean {
  const plain = ref?.replace(/\/_history\/[^/]+$/, '');
  return plain === target || plain?.endsWith(`/${target}`) === true;
}

function asPolicy(codings: Array<{ system?: string; code?: string }>) {
  return codings
    .filter((c): c is { system?: string; code: string } => typeof c.code === 'string')
    .map((c) => ({ system: c.system ?? '', code: c.code }));
}
