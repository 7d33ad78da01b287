/**
 * The `gather` step: the data one hook call needs, from prefetch first (found-24), then from
 * `fhirServer` through the origin-bound client, in parallel, under one deadline (found-5).
 * Data that was looked for and is absent is recorded, not an error (conf-12, found-32).
 */
import type { Coverage, Patient, Resource } from '@medplum/fhirtypes';
import { bundleResources, parseReference, type HookRequest } from '../cds/request.js';
import { resourceShapeProblem } from '../cds/shapes.js';
import { ORDER_TYPES, type HookDefinition } from '../crd/hooks.js';
import { FhirError, type FhirClient } from './client.js';
import { concurrency } from './concurrency.js';

/** What is known about one piece of data. */
export type Lookup<T> =
  | { status: 'found'; value: T }
  | { status: 'absent' }
  | { status: 'unavailable' }
  | { status: 'failed'; code: string };

export interface Gathered {
  patient: Lookup<Patient>;
  coverages: Lookup<Coverage[]>;
  /** The orders (or Appointments) in scope for this hook (hook-30, hook-34). */
  orders: Resource[];
  /** Every resource known for this call, by `Type/id`, for FHIRPath and order codes. */
  resources: Map<string, Resource>;
  /** References looked for and not found (`Type/id`). */
  missing: string[];
  /** Technical failures by error code, e.g. `ERR_FHIR_TIMEOUT` (resp-43). */
  failures: string[];
  /** Reads one more `Type/id` under the same client and deadline (known ones are not re-read). */
  read(ref: string): Promise<Lookup<Resource>>;
}

const isResource = (v: unknown): v is Resource =>
  typeof v === 'object' && v !== null && typeof (v as Resource).resourceType === 'string';

const keyOf = (r: Resource) => `${r.resourceType}/${r.id ?? ''}`;

/** Adds a resource or every resource of a Bundle to the index. */
function indexValue(index: Map<string, Resource>, value: unknown): void {
  if (!isResource(value) || value.resourceType === 'OperationOutcome') return;
  if (value.resourceType === 'Bundle') {
    for (const r of bundleResources(value)) indexValue(index, r);
  } else if (value.id) index.set(keyOf(value), value);
}

/**
 * A reference as `Type/id`. Absolute references (the IG examples use them) keep only their
 * `Type/id` tail: they are looked up in what was received or read from `fhirServer`, never
 * fetched from the host they name.
 */
export function localReference(ref: string | undefined): string | undefined {
  if (!ref) return undefined;
  if (parseReference(ref)) return ref;
  const m = /\/([A-Z][A-Za-z]+\/(?!\.+(?:\/|$))[A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/.exec(
    ref,
  );
  return m && URL.canParse(ref) ? m[1] : undefined;
}

/** `true` when a prefetch key was sent as `null`: the client looked and found nothing. */
const prefetchedNull = (req: HookRequest, key: string) =>
  Object.prototype.hasOwnProperty.call(req.prefetch, key) && req.prefetch[key] === null;

function ordersInScope(
  def: HookDefinition,
  req: HookRequest,
  index: Map<string, Resource>,
): {
  orders: Resource[];
  toRead: string[];
} {
  const types = ORDER_TYPES as readonly string[];
  switch (def.hook) {
    case 'order-sign':
      return {
        orders: bundleResources(req.context.draftOrders).filter((r) =>
          types.includes(r.resourceType),
        ),
        toRead: [],
      };
    case 'order-select': {
      const selected = new Set(req.context.selections as string[]);
      return {
        orders: bundleResources(req.context.draftOrders).filter((r) => selected.has(keyOf(r))),
        toRead: [],
      };
    }
    case 'order-dispatch': {
      const refs = req.context.dispatchedOrders as string[];
      return {
        orders: refs.flatMap((r) => index.get(r) ?? []),
        toRead: refs.filter((r) => !index.has(r)),
      };
    }
    case 'appointment-book':
      return { orders: bundleResources(req.context.appointments), toRead: [] };
    default:
      return { orders: [], toRead: [] };
  }
}

/** Resource types read to learn what is ordered (rules match on their codes). */
const RELATED_TYPES = new Set([
  'Medication',
  'Device',
  'ServiceRequest',
  'DeviceRequest',
  'MedicationRequest',
]);

/** References the rules need to know what is ordered: Medication, Device, based-on requests. */
function relatedReferences(orders: Resource[]): string[] {
  const refs: Array<string | undefined> = [];
  for (const o of orders as Array<Record<string, any>>) {
    refs.push(o.medicationReference?.reference, o.codeReference?.reference);
    for (const b of o.basedOn ?? []) refs.push(b.reference);
  }
  const local = refs
    .map((r) => localReference(r))
    .filter((r): r is string => !!r && RELATED_TYPES.has(r.split('/')[0]!));
  return [...new Set(local)];
}

/** The signal of calls that query nothing: never aborted. */
const NEVER = new AbortController().signal;

/** At most this many FHIR reads of one call run at once (the EHR is not flooded). */
const MAX_PARALLEL_READS = 8;

/** Gathers what one call needs. `client` is undefined when `fhirServer` may not be contacted. */
export async function gather(
  def: HookDefinition,
  req: HookRequest,
  client: FhirClient | undefined,
  deadlineMs: number,
): Promise<Gathered> {
  const resources = new Map<string, Resource>();
  for (const value of Object.values(req.prefetch)) indexValue(resources, value);
  for (const value of Object.values(req.context)) {
    if (Array.isArray(value)) value.forEach((v) => indexValue(resources, v));
    else indexValue(resources, value);
  }
  // Only calls that may query the EHR need a deadline (and its timer).
  const signal = client ? AbortSignal.timeout(deadlineMs) : NEVER;
  const missing: string[] = [];
  const failures: string[] = [];

  const limit = concurrency(MAX_PARALLEL_READS);
  const read = async (ref: string): Promise<Lookup<Resource>> => {
    const known = resources.get(ref);
    if (known) return { status: 'found', value: known };
    if (!client) return { status: 'unavailable' };
    const parsed = parseReference(ref);
    if (!parsed) return { status: 'absent' };
    try {
      const found = await limit(() => client.read(parsed.type, parsed.id, signal));
      if (!found || found.resourceType !== parsed.type) {
        missing.push(ref);
        return { status: 'absent' };
      }
      if (resourceShapeProblem(found, ref)) throw new FhirError('ERR_FHIR_BODY', 'malformed');
      resources.set(ref, found);
      return { status: 'found', value: found };
    } catch (err) {
      const code = err instanceof FhirError ? err.code : 'ERR_FHIR_NETWORK';
      failures.push(code);
      return { status: 'failed', code };
    }
  };

  const patientId = req.context.patientId as string;
  const patientRef = `Patient/${patientId}`;
  const patientTask: Promise<Lookup<Patient>> = prefetchedNull(req, 'patient')
    ? Promise.resolve({ status: 'absent' })
    : (read(patientRef) as Promise<Lookup<Patient>>);

  const coverageTask = (async (): Promise<Lookup<Coverage[]>> => {
    const known = [...resources.values()].filter(
      (r): r is Coverage => r.resourceType === 'Coverage' && beneficiaryIs(r, patientId),
    );
    if (known.length > 0) return { status: 'found', value: known };
    if (prefetchedNull(req, 'coverage')) return { status: 'absent' };
    if (!client) return { status: 'unavailable' };
    try {
      const found = (
        await client.search('Coverage', { patient: patientId, status: 'active' }, signal)
      ).filter((r): r is Coverage => r.resourceType === 'Coverage');
      if (found.some((c) => resourceShapeProblem(c, 'Coverage'))) {
        throw new FhirError('ERR_FHIR_BODY', 'malformed Coverage');
      }
      found.forEach((c) => indexValue(resources, c));
      return found.length > 0 ? { status: 'found', value: found } : { status: 'absent' };
    } catch (err) {
      const code = err instanceof FhirError ? err.code : 'ERR_FHIR_NETWORK';
      failures.push(code);
      return { status: 'failed', code };
    }
  })();

  const scope = ordersInScope(def, req, resources);
  const readOrders = Promise.all(scope.toRead.map(read));
  const [patient, coverages, extraOrders] = await Promise.all([
    patientTask,
    coverageTask,
    readOrders,
  ]);
  const orders = [
    ...scope.orders,
    ...extraOrders.flatMap((l) => (l.status === 'found' ? [l.value] : [])),
  ];
  await Promise.all(relatedReferences(orders).map(read));
  return { patient, coverages, orders, resources, missing, failures, read };
}

/** Whether a Coverage's beneficiary is the context patient (relative or absolute reference). */
function beneficiaryIs(coverage: Coverage, patientId: string): boolean {
  const ref = coverage.beneficiary?.reference;
  if (!ref) return true;
  return ref === `Patient/${patientId}` || ref.endsWith(`/Patient/${patientId}`);
}
