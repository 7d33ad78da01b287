/**
 * Where a FHIR resource names other resources: its own `id`, every `Reference.reference`, and in
 * a Bundle each `entry.fullUrl` and `entry.resource`. One walker finds them all, so the opaque id
 * mapping (sec-7) and the Bundle loader rewrite exactly the same places.
 */
import type { Resource } from '@medplum/fhirtypes';

type Json = Record<string, unknown>;

/** A FHIR id: 1 to 64 of `[A-Za-z0-9\-.]`. */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

const RELATIVE =
  /^([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})(\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/** A literal reference `Type/id` (optionally `/_history/v`), split; undefined otherwise. */
export interface LocalReference {
  type: string;
  id: string;
  /** `/_history/3`, kept as it was. */
  history?: string;
}

/** Parses `Type/id[/_history/v]`; anything else (`#x`, `urn:uuid:…`, URLs, queries) is undefined. */
export function parseLocalReference(ref: string): LocalReference | undefined {
  const m = RELATIVE.exec(ref);
  if (!m || m[2] === '.' || m[2] === '..') return undefined;
  return { type: m[1]!, id: m[2]!, ...(m[3] ? { history: m[3] } : {}) };
}

/**
 * A reference relative to `baseUrl` when it is `Type/id` or `baseUrl/Type/id`, with the base it
 * had (`''` for a relative one), so a rewrite keeps its form.
 */
export function splitReference(
  ref: string,
  baseUrl: string,
): (LocalReference & { base: string }) | undefined {
  const local = parseLocalReference(ref);
  if (local) return { ...local, base: '' };
  const prefix = `${baseUrl}/`;
  if (!ref.startsWith(prefix)) return undefined;
  const tail = parseLocalReference(ref.slice(prefix.length));
  return tail ? { ...tail, base: prefix } : undefined;
}

/** What the walker asks of its caller. */
export interface IdVisitor {
  /** The new id of a resource (never called for contained resources or Bundles). */
  id(type: string, id: string): string;
  /** The new text of a `Reference.reference` or an `entry.fullUrl`. */
  reference(ref: string): string;
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null;

/**
 * A deep copy of `resource` with its id, its references and, for a Bundle, its entries' full URLs
 * and resources rewritten by `visit`. Contained resources keep their local ids (`#x`); the ids
 * of Bundles themselves are never mapped (a Bundle is an envelope, not a stored record).
 */
export function rewriteIds<T extends Resource>(resource: T, visit: IdVisitor): T {
  return walkResource(resource as unknown as Json, visit, false) as unknown as T;
}

function walkResource(resource: Json, visit: IdVisitor, contained: boolean): Json {
  const type = resource.resourceType as string;
  const out: Json = {};
  for (const [key, value] of Object.entries(resource)) {
    if (key === 'id' && typeof value === 'string' && !contained && type !== 'Bundle') {
      out.id = visit.id(type, value);
    } else if (key === 'contained' && Array.isArray(value)) {
      out.contained = value.map((r) => (isObject(r) ? walkResource(r, visit, true) : r));
    } else if (key === 'entry' && type === 'Bundle' && Array.isArray(value)) {
      out.entry = value.map((e) => (isObject(e) ? walkEntry(e, visit) : e));
    } else {
      out[key] = walkValue(value, visit);
    }
  }
  return out;
}

function walkEntry(entry: Json, visit: IdVisitor): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(entry)) {
    if (key === 'fullUrl' && typeof value === 'string') out.fullUrl = visit.reference(value);
    else if (key === 'resource' && isObject(value))
      out.resource = walkResource(value, visit, false);
    else out[key] = walkValue(value, visit);
  }
  return out;
}

function walkValue(value: unknown, visit: IdVisitor): unknown {
  if (Array.isArray(value)) return value.map((v) => walkValue(v, visit));
  if (!isObject(value)) return value;
  // A resource nested outside `contained` (an extension's valueResource is not R4; Parameters
  // are): it is a resource of its own and keeps its id rules.
  if (typeof value.resourceType === 'string') return walkResource(value, visit, false);
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] =
      key === 'reference' && typeof v === 'string' ? visit.reference(v) : walkValue(v, visit);
  }
  return out;
}
