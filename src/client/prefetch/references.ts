/**
 * `resolve()` for prefetch tokens: a Reference (or a reference string such as order-dispatch's
 * `ServiceRequest/123`) becomes the resource it points to. The hook's context is looked at
 * first (draft orders, appointments and their `fullUrl`s), then the EHR's own FHIR API is read.
 * Nothing is fetched from any other server.
 */
import type { Bundle, Resource } from '@medplum/fhirtypes';

/** Reads `Type/id` from the EHR's FHIR API; `undefined` when it does not exist. */
export type ReadFn = (type: string, id: string) => Promise<Resource | undefined>;

export interface Resolver {
  /**
   * The resources the items point to, in order, each once. Items that are not references, or
   * point to nothing this EHR holds, are left out; read failures are thrown.
   */
  resolve(items: unknown[]): Promise<Resource[]>;
}

const RELATIVE =
  /^([A-Z][A-Za-z]+)\/((?!\.+(?:\/|$))[A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

const isResource = (v: unknown): v is Resource =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { resourceType?: unknown }).resourceType === 'string';

/**
 * The resources carried in a hook context, by `Type/id` and by `fullUrl`: top-level resources,
 * arrays of them (`fulfillmentTasks`) and the entries of Bundles (`draftOrders`, `appointments`).
 */
export function contextIndex(context: Record<string, unknown>): Map<string, Resource> {
  const index = new Map<string, Resource>();
  const add = (r: Resource, fullUrl?: string) => {
    if (r.id) index.set(`${r.resourceType}/${r.id}`, r);
    if (fullUrl) index.set(fullUrl, r);
  };
  const visit = (value: unknown) => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (!isResource(value)) return;
    if (value.resourceType !== 'Bundle') return add(value);
    for (const entry of (value as Bundle).entry ?? []) {
      if (isResource(entry?.resource)) add(entry.resource, entry.fullUrl);
    }
  };
  Object.values(context).forEach(visit);
  return index;
}

function referenceOf(item: unknown): string | undefined {
  if (typeof item === 'string') return item;
  const ref = (item as { reference?: unknown } | null)?.reference;
  return typeof ref === 'string' ? ref : undefined;
}

/**
 * A resolver for one prefetch run. `read` is only called for relative references (or absolute
 * ones under `fhirBase`) not found in the context, once per `Type/id`.
 */
export function createResolver(
  context: Record<string, unknown>,
  read: ReadFn | undefined,
  fhirBase?: string,
): Resolver {
  const index = contextIndex(context);
  const reads = new Map<string, Promise<Resource | undefined>>();
  const base = fhirBase ? fhirBase.replace(/\/*$/, '/') : undefined;

  const lookup = (reference: string): Promise<Resource | undefined> => {
    const known = index.get(reference);
    if (known) return Promise.resolve(known);
    const local = base && reference.startsWith(base) ? reference.slice(base.length) : reference;
    const m = RELATIVE.exec(local);
    // Contained (`#id`), logical, `urn:` and other servers' references: not in this EHR's API.
    if (!m) return Promise.resolve(undefined);
    const key = `${m[1]}/${m[2]}`;
    const inContext = index.get(key);
    if (inContext) return Promise.resolve(inContext);
    if (!read) return Promise.resolve(undefined);
    let pending = reads.get(key);
    if (!pending) {
      pending = read(m[1]!, m[2]!);
      reads.set(key, pending);
    }
    return pending;
  };

  return {
    async resolve(items) {
      const refs = [...new Set(items.map(referenceOf).filter((r): r is string => !!r))];
      const found = await Promise.all(refs.map(lookup));
      const seen = new Set<Resource>();
      return found.filter((r): r is Resource => !!r && !seen.has(r) && !!seen.add(r));
    },
  };
}
