/**
 * Judging one resource against the policy: its security labels, its codes against the enabled
 * categories, and the patient's consents. Exported so that every exit the payer has into the EHR
 * (prefetch, context, the FHIR API for payers) applies the same rules.
 */
import type { Consent } from '@medplum/fhirtypes';
import { CodeList, labelName } from './codes.js';
import { consentDenials } from './consent.js';
import { readFacts, type ResourceFacts } from './facts.js';
import type { PayerIdentity, SharingPolicy, Withheld } from './types.js';

/** A policy compiled for matching. */
export interface CompiledPolicy {
  labels: CodeList;
  categories: Array<{ name: string; codes: CodeList }>;
  honourConsent: boolean;
  elements: NonNullable<SharingPolicy['elements']>;
}

/**
 * Compiles the code lists of a checked policy (disabled categories are left out).
 *
 * @example const compiled = compilePolicy(loadSharingPolicy());
 */
export function compilePolicy(policy: SharingPolicy): CompiledPolicy {
  return {
    labels: new CodeList(policy.withholdSecurityLabels),
    categories: Object.entries(policy.categories)
      .filter(([, c]) => c.enabled)
      .map(([name, c]) => ({ name, codes: new CodeList(c.codes) })),
    honourConsent: policy.honourConsent,
    elements: [...(policy.elements ?? [])],
  };
}

/** Who the data would go to, when, and under which consents. */
export interface Audience {
  consents: readonly Consent[];
  payer: PayerIdentity;
  now: Date;
}

/** Why a resource must be withheld, without a reference: empty when it may be sent. */
export type Reasons = Array<Omit<Withheld, 'reference'>>;

/**
 * The reasons to withhold a resource (labels, then categories, then consents); the same rules
 * `applySharingPolicy` applies, for a FHIR API answering the payer.
 *
 * @example
 * const reasons = judgeResource(compiled, condition, { consents, payer, now: new Date() });
 * if (reasons.length > 0) return notFound();
 */
export function judgeResource(
  policy: CompiledPolicy,
  resource: Record<string, unknown> & { resourceType: string },
  audience: Audience,
): Reasons {
  return judgeFacts(policy, readFacts(resource), audience);
}

/** {@link judgeResource} on facts already read. */
export function judgeFacts(
  policy: CompiledPolicy,
  facts: ResourceFacts,
  audience: Audience,
): Reasons {
  const reasons = judgeLabels(policy, facts);
  const all = [...facts.codes, ...facts.labels];
  for (const category of policy.categories) {
    if (category.codes.findAny(all)) reasons.push({ reason: 'category', detail: category.name });
  }
  if (policy.honourConsent) {
    const { consents, payer, now } = audience;
    for (const consent of consentDenials(consents, facts, payer, now)) {
      reasons.push({ reason: 'consent', detail: consent });
    }
  }
  return reasons;
}

/** Only the resource's own labels (for a Bundle: its entries are judged one by one). */
export function judgeLabels(policy: CompiledPolicy, facts: ResourceFacts): Reasons {
  return facts.labels.flatMap((label) => {
    const entry = policy.labels.find(label);
    return entry ? [{ reason: 'security-label' as const, detail: labelName(entry) }] : [];
  });
}
