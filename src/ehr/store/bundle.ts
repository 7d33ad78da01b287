/**
 * Loads a FHIR R4 Bundle (transaction, batch or collection; Synthea's output, a test fixture)
 * into the resource store. Every resource gets a fresh random id: the ids in the file are not
 * kept, since generators often reuse them as identifiers (Synthea's Patient has its UUID as an
 * identifier), which sec-7 forbids. References are rewritten to the new ids: `urn:uuid:` full
 * URLs, `Type/id`, absolute full URLs, and conditional references `Type?identifier=system|value`
 * (resolved in the Bundle first, then in the store).
 */
import type { Resource } from '@medplum/fhirtypes';
import { parseLocalReference, rewriteIds } from '../ids/references.js';
import { StoreError } from './errors.js';
import { freshId, type ResourceStore } from './resource-store.js';

type Json = Record<string, any>;

/** What {@link loadBundle} did. */
export interface LoadResult {
  /** The resources written, in Bundle order (skipped conditional creates are not included). */
  resources: Resource[];
  /** Each `fullUrl` and original `Type/id` of the Bundle, mapped to its stored `Type/id`. */
  ids: Map<string, string>;
}

const LOADABLE = ['transaction', 'batch', 'collection'];
const CONDITIONAL = /^([A-Z][A-Za-z]{1,63})\?identifier=([^&]+)$/;

function invalid(detail: string, where: string): never {
  throw new StoreError('ERR_BUNDLE_INVALID', detail, where);
}

interface Planned {
  resource: Json;
  newId: string;
  skip: boolean;
}

/** `system|value` or `value` of a conditional reference's `identifier` search. */
function identifierMatches(resource: Json, wanted: string): boolean {
  const [system, value] = wanted.includes('|') ? wanted.split('|', 2) : [undefined, wanted];
  const list = Array.isArray(resource.identifier) ? resource.identifier : [];
  return list.some(
    (i: Json) =>
      i?.value === value && (system === undefined || system === '' || i?.system === system),
  );
}

/** The single `Type/id` a conditional reference names, in the Bundle or else in the store. */
function resolveConditional(
  ref: string,
  planned: Planned[],
  store: ResourceStore,
  where: string,
): string {
  const m = CONDITIONAL.exec(ref)!;
  const type = m[1]!;
  const wanted = decodeURIComponent(m[2]!);
  const inBundle = planned.filter(
    (p) => p.resource.resourceType === type && identifierMatches(p.resource, wanted),
  );
  const found = inBundle.length
    ? inBundle.map((p) => p.newId)
    : store
        .search(type, [{ name: 'identifier', values: [wanted] }], { limit: 2 })
        .map((r) => r.id!);
  if (found.length !== 1) throw new StoreError('ERR_BUNDLE_REFERENCE', undefined, where);
  return `${type}/${found[0]}`;
}

/** The existing resource an `ifNoneExist: identifier=…` condition matches, if exactly one. */
function existingMatch(store: ResourceStore, type: string, condition: unknown): string | undefined {
  if (typeof condition !== 'string') return undefined;
  const m = /^identifier=([^&]+)$/.exec(condition);
  if (!m) return undefined;
  const found = store.search(type, [{ name: 'identifier', values: [decodeURIComponent(m[1]!)] }], {
    limit: 2,
  });
  return found.length === 1 ? found[0]!.id : undefined;
}

/**
 * Loads `bundle` into `store` in one transaction: all entries or none. Throws a `StoreError`
 * (`ERR_BUNDLE_INVALID`, `ERR_BUNDLE_REFERENCE`) naming the entry, never its content.
 *
 * @example
 * ```ts
 * const { ids } = loadBundle(store, JSON.parse(readFileSync('synthea/Patient.json', 'utf8')));
 * ids.get('urn:uuid:0a4e…'); // 'Patient/5f0c…'
 * ```
 */
export function loadBundle(store: ResourceStore, bundle: unknown): LoadResult {
  const b = bundle as Json;
  if (typeof b !== 'object' || b === null || b.resourceType !== 'Bundle') {
    invalid('"resourceType" must be "Bundle"', 'resourceType');
  }
  if (!LOADABLE.includes(b.type)) invalid(`"type" must be one of ${LOADABLE.join(', ')}`, 'type');
  const entries: Json[] = Array.isArray(b.entry) ? b.entry : [];
  const ids = new Map<string, string>();

  const planned: Planned[] = entries.map((entry, i) => {
    const where = `entry[${i}]`;
    const resource = entry?.resource;
    if (
      typeof resource !== 'object' ||
      resource === null ||
      typeof resource.resourceType !== 'string'
    ) {
      invalid('an entry has no resource', where);
    }
    if (resource.resourceType === 'Bundle') invalid('nested Bundles are not loaded', where);
    const method = entry.request?.method;
    if (b.type !== 'collection' && method !== 'POST' && method !== 'PUT') {
      invalid('"request.method" must be POST or PUT', `${where}.request.method`);
    }
    const type = resource.resourceType as string;
    const existing =
      method === 'POST' ? existingMatch(store, type, entry.request?.ifNoneExist) : undefined;
    const newId = existing ?? freshId(resource as Resource);
    const target = `${type}/${newId}`;
    if (typeof entry.fullUrl === 'string') {
      ids.set(entry.fullUrl, target);
      const tail = /\/([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64})$/.exec(entry.fullUrl);
      if (tail && !entry.fullUrl.startsWith('urn:')) ids.set(tail[1]!, target);
    }
    if (typeof resource.id === 'string') ids.set(`${type}/${resource.id}`, target);
    const url = entry.request?.url;
    if (method === 'PUT' && typeof url === 'string' && parseLocalReference(url))
      ids.set(url, target);
    return { resource, newId, skip: existing !== undefined };
  });

  const written = planned.flatMap((p, i) => {
    if (p.skip) return [];
    const where = `entry[${i}]`;
    const rewritten = rewriteIds(p.resource as Resource, {
      id: () => p.newId,
      reference: (ref) => {
        const mapped = ids.get(ref);
        if (mapped) return mapped;
        if (ref.startsWith('urn:uuid:'))
          throw new StoreError('ERR_BUNDLE_REFERENCE', undefined, where);
        if (CONDITIONAL.test(ref)) return resolveConditional(ref, planned, store, where);
        return ref;
      },
    }) as Json;
    rewritten.id = p.newId;
    if (rewritten.meta) {
      delete rewritten.meta.versionId;
      delete rewritten.meta.lastUpdated;
    }
    return [rewritten as Resource];
  });
  return { resources: store.putAll(written), ids };
}
