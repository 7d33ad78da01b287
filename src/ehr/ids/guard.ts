/**
 * sec-7: "the resource identifiers exposed over the CRD interface are distinct from and have no
 * determinable relationship with any business identifiers". This guard is the last check before a
 * resource leaves: its id must not equal or contain one of its own `identifier[].value`s (an MRN,
 * an SSN, a member number), compared without case and punctuation.
 */
import type { Resource } from '@medplum/fhirtypes';

/**
 * Identifier values at least this long (letters and digits only) are also looked for inside the
 * id. Shorter ones are compared for equality only: a random id contains a short value like
 * `"12"` by chance, and that chance is no relationship.
 */
export const MIN_CONTAINED_LENGTH = 6;

const normalise = (value: string) => value.toLowerCase().replace(/[^a-z0-9]/g, '');

/** The identifier values of a resource (`identifier` is a list on most types, single on some). */
export function identifierValues(resource: Resource): string[] {
  const raw = (resource as { identifier?: unknown }).identifier;
  const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
  return list
    .map((i) => (i as { value?: unknown })?.value)
    .filter((v): v is string => typeof v === 'string' && v.length > 0);
}

/**
 * Whether `id` equals or contains one of `values` (case and punctuation ignored; the digits of a
 * value such as an SSN `999-01-0001` are also looked for). Used on the internal id before mapping
 * and on the id a payer sees.
 */
export function idRelatedTo(id: string, values: string[]): boolean {
  const plain = normalise(id);
  if (!plain) return false;
  for (const value of values) {
    const candidate = normalise(value);
    if (!candidate) continue;
    if (plain === candidate) return true;
    if (candidate.length >= MIN_CONTAINED_LENGTH && plain.includes(candidate)) return true;
    const digits = value.replace(/\D/g, '');
    if (digits.length >= MIN_CONTAINED_LENGTH && plain.includes(digits)) return true;
  }
  return false;
}

/** Whether any of `ids` (a resource's internal id, its opaque id) is related to its identifiers. */
export function exposesIdentifier(resource: Resource, ids: Array<string | undefined>): boolean {
  const values = identifierValues(resource);
  if (values.length === 0) return false;
  return ids.some((id) => id !== undefined && idRelatedTo(id, values));
}
