/**
 * Which payer of the rules file a Coverage belongs to (hook-13: the server answers only for
 * payers it handles), and which plan.
 */
import type { Coverage, Identifier, Reference, Resource } from '@medplum/fhirtypes';
import { resolve } from '../crd/order-codes.js';
import type { Payer, RulesFile } from './schema.js';

/** Why no payer matched: the server turns these into its 400 (hook-13). */
export type PayerMatchError = 'no-payor' | 'no-identifier' | 'unknown-payer';

/**
 * Finds the payer of `coverage`. For each `Coverage.payor`, in order of strength:
 * 1. the reference's own `identifier` against `match.identifiers`;
 * 2. the payor Organization (contained `#id`, or by type and id among `organizations`) and its
 *    identifiers;
 * 3. the last path segment of `payor.reference` (an Organization) against
 *    `match.organizationIds`, for EHRs that send no identifier (as the IG examples do).
 * Errors: `no-payor` (no Coverage.payor), `no-identifier` (nothing to match on),
 * `unknown-payer` (identifiers or ids present, none of them ours).
 */
export function matchPayer(
  rules: RulesFile,
  coverage: Coverage,
  organizations: Resource[],
): { payer: Payer } | { error: PayerMatchError } {
  const payors = coverage.payor ?? [];
  if (payors.length === 0) return { error: 'no-payor' };
  const byIdentifier = (ids: Identifier[]): Payer | undefined =>
    rules.payers.find((p) =>
      p.match.identifiers.some((m) =>
        ids.some((i) => i.system === m.system && i.value === m.value),
      ),
    );
  let seenAnything = false;

  for (const payor of payors) {
    if (payor.identifier?.value !== undefined) {
      seenAnything = true;
      const p = byIdentifier([payor.identifier]);
      if (p !== undefined) return { payer: p };
    }
  }
  for (const payor of payors) {
    const org = payorOrganization(payor, coverage, organizations);
    const ids = (org as { identifier?: Identifier[] } | undefined)?.identifier ?? [];
    if (ids.length > 0) seenAnything = true;
    const p = byIdentifier(ids);
    if (p !== undefined) return { payer: p };
  }
  for (const payor of payors) {
    const id = organizationId(payor);
    if (id === undefined) continue;
    seenAnything = true;
    const p = rules.payers.find((x) => x.match.organizationIds.includes(id));
    if (p !== undefined) return { payer: p };
  }
  return { error: seenAnything ? 'unknown-payer' : 'no-identifier' };
}

function payorOrganization(
  payor: Reference,
  coverage: Coverage,
  organizations: Resource[],
): Resource | undefined {
  const found = resolve(payor, coverage, organizations);
  return found?.resourceType === 'Organization' ? found : undefined;
}

/** `…/Organization/acme-payer` → `acme-payer`; undefined for other types or contained refs. */
function organizationId(payor: Reference): string | undefined {
  const ref = payor.reference;
  if (ref === undefined || ref.startsWith('#')) return undefined;
  const parts = ref.replace(/\/_history\/[^/]*$/, '').split('/');
  const id = parts[parts.length - 1];
  const type = parts[parts.length - 2];
  if (type !== undefined && type !== 'Organization') return undefined;
  return id === '' ? undefined : id;
}

/** The plan of a Coverage: `Coverage.class` whose type is `plan` (coverage-class), its value. */
export function planOf(coverage: Coverage): string | undefined {
  const cls = coverage.class?.find((c) =>
    c.type.coding?.some(
      (t) =>
        t.code === 'plan' &&
        (t.system === undefined ||
          t.system === 'http://terminology.hl7.org/CodeSystem/coverage-class'),
    ),
  );
  return cls?.value;
}
