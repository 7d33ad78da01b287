/**
 * FHIR search as the API runs it: the query (or `_search` form) checked against the
 * CapabilityStatement table, its ids translated from what the client sees to internal ones,
 * the matches and `_include`s read from the store and put in a `searchset` Bundle.
 * A parameter this API does not know is a 400, never silently ignored.
 */
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { FHIR_ID, splitReference } from '../ids/references.js';
import type { SearchCriterion } from '../store/resource-store.js';
import { searchParameter } from '../store/search-params.js';
import { API_SEARCH_PARAMS, INCLUDES, type IncludeDefinition } from './capability.js';
import { FhirApiError } from './errors.js';
import type { IdView } from './id-view.js';

/** Most matches one answer holds; a search matching more is refused (there is no paging). */
export const MAX_MATCHES = 1000;

export interface ParsedSearch {
  criteria: SearchCriterion[];
  includes: Array<{ value: string; targets: string[]; definition: IncludeDefinition }>;
  /** Parameter names, for the audit record. */
  names: string[];
  /** Internal ids of the patients that patient parameters (`patient`, `beneficiary`) name. */
  patients: string[];
}

/** The `_format` values served (JSON only). */
export const JSON_FORMATS = ['json', 'application/json', 'application/fhir+json'];
const SAFE_NAME = /^[A-Za-z_][A-Za-z0-9_:.-]{0,63}$/;

/** Most values one parameter may list (`_id=a,b,…`). */
export const MAX_VALUES = 100;

/** 400 for a parameter this API does not know; its name is not repeated (it could be data). */
function badParam(): never {
  throw new FhirApiError('ERR_SEARCH_PARAM');
}

/** 400 naming the (known) parameter whose value is wrong, never the value. */
function badValue(name: string): never {
  throw new FhirApiError('ERR_SEARCH_VALUE', undefined, SAFE_NAME.test(name) ? name : undefined);
}

function splitValues(name: string, raw: string): string[] {
  const values = raw.split(',');
  if (values.length > MAX_VALUES || values.some((v) => v.length === 0 || v.length > 256)) {
    badValue(name);
  }
  return values;
}

/** `Type/id`, `base/Type/id` or a bare `id`, as the internal `Type/id`s it can name. */
function referenceValues(
  name: string,
  raw: string,
  targets: readonly string[],
  view: IdView,
  baseUrl: string,
): string[] {
  const out: string[] = [];
  for (const value of splitValues(name, raw)) {
    const typed = splitReference(value, baseUrl);
    if (typed && !typed.history) {
      if (!targets.includes(typed.type)) badValue(name);
      const id = view.internal(typed.type, typed.id);
      if (id) out.push(`${typed.type}/${id}`);
      continue;
    }
    if (!FHIR_ID.test(value)) badValue(name);
    for (const type of targets) {
      const id = view.internal(type, value);
      if (id) out.push(`${type}/${id}`);
    }
  }
  return out;
}

function parseInclude(type: string, value: string): ParsedSearch['includes'][number] {
  const [source, param, target, ...rest] = value.split(':');
  const definition = INCLUDES[type]?.[`${source}:${param}`];
  if (!definition || rest.length > 0) badValue('_include');
  if (target !== undefined && !definition.targets.includes(target)) badValue('_include');
  return {
    value,
    targets: target !== undefined ? [target] : [...definition.targets],
    definition,
  };
}

/**
 * Checks and translates a search on `type`. Ids the client never saw match nothing (an unknown
 * `_id` is an empty result, as FHIR has it). Throws `FhirApiError` 400 for unknown parameters,
 * modifiers, chains and malformed values, 406 for a `_format` other than JSON.
 */
/** The most search parameters one request may carry. */
export const MAX_PARAMETERS = 50;

export function parseSearch(
  type: string,
  params: Array<[string, string]>,
  view: IdView,
  baseUrl: string,
): ParsedSearch {
  const parsed: ParsedSearch = { criteria: [], includes: [], names: [], patients: [] };
  // More parameters than any real query has: refused before it reaches the store.
  if (params.length > MAX_PARAMETERS) throw new FhirApiError('ERR_SEARCH_TOO_BROAD');
  for (const [name, raw] of params) {
    parsed.names.push(name);
    if (name === '_format') {
      if (!JSON_FORMATS.includes(raw)) throw new FhirApiError('ERR_FORMAT');
      continue;
    }
    if (name === '_include') {
      parsed.includes.push(parseInclude(type, raw));
      continue;
    }
    if (name === '_id') {
      const values = splitValues(name, raw);
      if (values.some((v) => !FHIR_ID.test(v))) badValue(name);
      const ids = values.map((v) => view.internal(type, v)).filter((v): v is string => !!v);
      parsed.criteria.push({ name: '_id', values: ids });
      continue;
    }
    const api = API_SEARCH_PARAMS[type]?.[name];
    if (!api) badParam();
    const definition = searchParameter(type, api.indexed)!;
    if (definition.kind === 'token') {
      parsed.criteria.push({ name: api.indexed, values: splitValues(name, raw) });
      continue;
    }
    const values = referenceValues(name, raw, definition.targets!, view, baseUrl);
    if (definition.targets!.length === 1 && definition.targets![0] === 'Patient') {
      // An unknown patient id still names a patient: keep a marker no grant can equal.
      parsed.patients.push(...(values.length ? values.map((v) => v.slice(8)) : ['']));
    }
    parsed.criteria.push({ name: api.indexed, values });
  }
  return parsed;
}

/** The internal `Type/id`s a resource's include references name, of the wanted types. */
export function includeReferences(
  resource: Resource,
  include: ParsedSearch['includes'][number],
): Array<{ type: string; id: string }> {
  const out: Array<{ type: string; id: string }> = [];
  for (const ref of include.definition.references(resource as unknown as Record<string, unknown>)) {
    const text = (ref as { reference?: unknown } | undefined)?.reference;
    if (typeof text !== 'string') continue;
    const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(text);
    if (m && include.targets.includes(m[1]!)) out.push({ type: m[1]!, id: m[2]! });
  }
  return out;
}

/** A `searchset` Bundle of internal resources (the caller maps ids for the client after). */
export function searchset(
  baseUrl: string,
  selfUrl: string,
  matches: Resource[],
  included: Resource[],
): Bundle {
  const entry = (resource: Resource, mode: 'match' | 'include'): BundleEntry => ({
    fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}`,
    resource,
    search: { mode },
  });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: matches.length,
    link: [{ relation: 'self', url: selfUrl }],
    entry: [...matches.map((r) => entry(r, 'match')), ...included.map((r) => entry(r, 'include'))],
  };
}
