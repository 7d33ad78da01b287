/**
 * From a rule's outcome to a {@link Determination}: unmet needs (conf-12), the expiry date and
 * payer contacts. Shared by `decide` and by the loader's invariant check, so a file that loads
 * can only produce determinations that pass crd-ci-q1..q9.
 */
import type { ContactDetail, Determination, Reason } from '../crd/types.js';
import type { ConditionalTarget, Need, Outcome } from './schema.js';

/** The targets a need makes conditional when the rule author did not say. */
export function defaultConditional(then: Outcome): ConditionalTarget[] {
  return then.paNeeded !== undefined && then.covered === 'covered' ? ['paNeeded'] : ['covered'];
}

/**
 * conf-12: missing data is not an error. Each unmet need turns its targets to `conditional`
 * and adds its info-needed code (and its reason text, if any).
 */
export function withUnmetNeeds(then: Outcome, unmet: readonly Need[]): Outcome {
  if (unmet.length === 0) return then;
  const out: Outcome = { ...then };
  const info = new Set(then.infoNeeded ?? []);
  const reasons: Reason[] = [...(then.reasons ?? [])];
  for (const need of unmet) {
    for (const target of need.conditional) {
      if (target === 'covered') out.covered = 'conditional';
      if (target === 'paNeeded') out.paNeeded = 'conditional';
      if (target === 'docNeeded') out.docNeeded = ['conditional'];
    }
    info.add(need.infoNeeded);
    if (need.reason !== undefined && !reasons.some((r) => r.text === need.reason)) {
      reasons.push({ text: need.reason });
    }
  }
  out.infoNeeded = [...info];
  if (reasons.length > 0) out.reasons = reasons;
  return out;
}

/**
 * The determination for an outcome decided on `today` (YYYY-MM-DD). Contacts: the outcome's,
 * else `fallbackContacts` (plan or payer level).
 */
export function toDetermination(
  o: Outcome,
  today: string,
  fallbackContacts?: ContactDetail[],
): Determination {
  const d: Determination = { covered: o.covered };
  if (o.paNeeded !== undefined) d.paNeeded = o.paNeeded;
  if (o.docNeeded?.length) d.docNeeded = [...o.docNeeded];
  if (o.docPurpose?.length) d.docPurpose = [...o.docPurpose];
  if (o.infoNeeded?.length) d.infoNeeded = [...o.infoNeeded];
  if (o.billingCodes?.length) d.billingCodes = o.billingCodes.map((c) => ({ ...c }));
  if (o.reasons?.length) d.reasons = o.reasons.map((r) => ({ ...r }));
  if (o.details?.length) d.details = o.details;
  if (o.questionnaires?.length) d.questionnaires = [...o.questionnaires];
  const contacts = o.contacts ?? fallbackContacts;
  if (contacts?.length) d.contacts = contacts;
  if (o.expiresInDays !== undefined) d.expiryDate = addDays(today, o.expiresInDays);
  return d;
}

/** `2024-02-27` + 3 → `2024-03-01` (UTC calendar arithmetic). */
export function addDays(date: string, days: number): string {
  const t = Date.parse(`${date}T00:00:00Z`);
  if (Number.isNaN(t)) throw new Error('invalid date');
  return new Date(t + days * 86_400_000).toISOString().slice(0, 10);
}
