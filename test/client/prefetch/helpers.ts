/**
 * An in-memory FhirReader and a small EHR record set for the prefetch tests: one patient with
 * three coverages, an encounter, the people, places and things the orders point to.
 */
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { FhirReader } from '../../../src/client/prefetch/index.js';

export interface Call {
  op: 'read' | 'search';
  type: string;
  /** `id` for reads, the form-encoded params for searches. */
  arg: string;
}

/** Reference search parameters the fake understands, by the elements they look at. */
const REFERENCE_PARAMS: Record<string, string[]> = {
  patient: ['patient', 'subject', 'beneficiary'],
  subject: ['subject'],
  beneficiary: ['beneficiary'],
};

/** Parameters the fake accepts without filtering on them. */
const IGNORED_PARAMS = new Set(['category', 'date']);

const refId = (value: unknown): string | undefined => {
  const ref = (value as { reference?: string } | undefined)?.reference;
  return ref?.split('/').pop();
};

/** A FhirReader over a map of resources, counting calls and calls in flight. */
export class FakeReader implements FhirReader {
  readonly store = new Map<string, Resource>();
  readonly calls: Call[] = [];
  active = 0;
  maxActive = 0;
  /** Runs before each call answers: hold it (return a promise) or make it fail (throw). */
  hook?: (call: Call, signal: AbortSignal) => Promise<void> | void;
  /** Replaces the answer of a call (e.g. an OperationOutcome). */
  answer?: (call: Call) => Resource | undefined | 'default';

  constructor(resources: Resource[] = []) {
    for (const r of resources) this.store.set(`${r.resourceType}/${r.id}`, r);
  }

  async read(type: string, id: string, signal: AbortSignal): Promise<Resource | undefined> {
    return this.#call({ op: 'read', type, arg: id }, signal, () =>
      this.store.get(`${type}/${id}`),
    ) as Promise<Resource | undefined>;
  }

  async search(type: string, params: URLSearchParams, signal: AbortSignal): Promise<Bundle> {
    return this.#call({ op: 'search', type, arg: params.toString() }, signal, () =>
      this.#search(type, params),
    ) as Promise<Bundle>;
  }

  reads(): string[] {
    return this.calls.filter((c) => c.op === 'read').map((c) => `${c.type}/${c.arg}`);
  }

  searches(): string[] {
    return this.calls
      .filter((c) => c.op === 'search')
      .map((c) => `${c.type}?${decodeURIComponent(c.arg)}`);
  }

  async #call(call: Call, signal: AbortSignal, run: () => Resource | undefined) {
    this.calls.push(call);
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      await this.hook?.(call, signal);
      signal.throwIfAborted();
      const replaced = this.answer?.(call) ?? 'default';
      return replaced === 'default' ? run() : replaced;
    } finally {
      this.active -= 1;
    }
  }

  #search(type: string, params: URLSearchParams): Bundle {
    let found = [...this.store.values()].filter((r) => r.resourceType === type);
    for (const [name, value] of params) {
      const any = value.split(',');
      if (name === '_id') {
        found = found.filter((r) => any.includes(r.id!));
        found.sort((a, b) => any.indexOf(a.id!) - any.indexOf(b.id!));
      } else if (name === 'status') {
        found = found.filter((r) => any.includes((r as { status?: string }).status ?? ''));
      } else if (REFERENCE_PARAMS[name]) {
        const fields = REFERENCE_PARAMS[name]!;
        found = found.filter((r) =>
          fields.some((f) =>
            any.includes(refId((r as unknown as Record<string, unknown>)[f]) ?? ''),
          ),
        );
      } else if (!IGNORED_PARAMS.has(name)) {
        throw new Error(`fake reader: unknown search parameter ${name}`);
      }
    }
    const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: found.length };
    if (found.length > 0) {
      bundle.entry = found.map((resource) => ({ resource, search: { mode: 'match' } }));
    }
    return bundle;
  }
}

/** Resolves once `n` callers have arrived, so a sequential engine never gets past it. */
export function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return () => {
    arrived += 1;
    if (arrived >= n) open();
    return opened;
  };
}

/** Waits until `signal` aborts (a reader that never answers on its own). */
export const untilAborted = (signal: AbortSignal) =>
  new Promise<void>((_, reject) =>
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
  );

/** The ids of a Bundle's entries, or the resource's own `Type/id`. */
export function ids(value: Resource | null | undefined): string[] | string | null | undefined {
  if (!value) return value;
  if (value.resourceType !== 'Bundle') return `${value.resourceType}/${value.id}`;
  return (value.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
}

const ref = (reference: string) => ({ reference });

/** The EHR's records (what its FHIR API holds). */
export const RECORDS: Resource[] = [
  { resourceType: 'Patient', id: 'p1', gender: 'female', birthDate: '1950-02-03' },
  {
    resourceType: 'Coverage',
    id: 'cov1',
    status: 'active',
    beneficiary: ref('Patient/p1'),
    payor: [ref('Organization/payer-a')],
  },
  {
    resourceType: 'Coverage',
    id: 'cov2',
    status: 'active',
    beneficiary: ref('Patient/p1'),
    payor: [ref('Organization/payer-b')],
  },
  {
    resourceType: 'Coverage',
    id: 'cov3',
    status: 'cancelled',
    beneficiary: ref('Patient/p1'),
    payor: [ref('Organization/payer-c')],
  },
  {
    resourceType: 'Encounter',
    id: 'e1',
    status: 'in-progress',
    class: { code: 'AMB' },
    subject: ref('Patient/p1'),
    participant: [
      { individual: ref('PractitionerRole/role-enc') },
      { individual: ref('Practitioner/pr-enc') },
    ],
    serviceProvider: ref('Organization/org-hosp'),
    location: [{ location: ref('Location/loc-ward') }],
  },
  {
    resourceType: 'PractitionerRole',
    id: 'role-enc',
    practitioner: ref('Practitioner/pr-enc'),
    organization: ref('Organization/org-hosp'),
    location: [ref('Location/loc-ward')],
  },
  {
    resourceType: 'PractitionerRole',
    id: 'role-req',
    practitioner: ref('Practitioner/pr-req'),
    organization: ref('Organization/org-clinic'),
    location: [ref('Location/loc-clinic')],
  },
  {
    resourceType: 'PractitionerRole',
    id: 'role-perf',
    practitioner: ref('Practitioner/pr-perf'),
    organization: ref('Organization/org-clinic'),
  },
  { resourceType: 'Practitioner', id: 'pr-enc' },
  { resourceType: 'Practitioner', id: 'pr-req' },
  { resourceType: 'Practitioner', id: 'pr-perf' },
  { resourceType: 'Organization', id: 'org-hosp' },
  { resourceType: 'Organization', id: 'org-clinic' },
  { resourceType: 'Organization', id: 'org-dme' },
  { resourceType: 'Organization', id: 'org-pharm' },
  { resourceType: 'Organization', id: 'org-lab' },
  { resourceType: 'Location', id: 'loc-ward' },
  { resourceType: 'Location', id: 'loc-clinic' },
  { resourceType: 'Location', id: 'loc-lab' },
  {
    resourceType: 'Device',
    id: 'dev-1',
    deviceName: [{ name: 'Oxygen concentrator', type: 'user-friendly-name' }],
  },
  { resourceType: 'Medication', id: 'med-1', code: { text: 'Amoxicillin 500 mg' } },
  // Orders already stored (order-dispatch, appointment-book's basedOn).
  {
    resourceType: 'ServiceRequest',
    id: 'sr-d',
    status: 'active',
    intent: 'order',
    subject: ref('Patient/p1'),
    requester: ref('Practitioner/pr-perf'),
    performer: [ref('Organization/org-lab')],
    locationReference: [ref('Location/loc-lab')],
  },
  {
    resourceType: 'MedicationRequest',
    id: 'mr-d',
    status: 'active',
    intent: 'order',
    subject: ref('Patient/p1'),
    medicationReference: ref('Medication/med-1'),
    requester: ref('PractitionerRole/role-req'),
    dispenseRequest: { performer: ref('Organization/org-pharm') },
  },
  {
    resourceType: 'ServiceRequest',
    id: 'sr-a',
    status: 'active',
    intent: 'order',
    subject: ref('Patient/p1'),
    requester: ref('PractitionerRole/role-req'),
    performer: [ref('Organization/org-lab')],
  },
  {
    resourceType: 'DeviceRequest',
    id: 'dr-a',
    status: 'active',
    intent: 'order',
    subject: ref('Patient/p1'),
    codeReference: ref('Device/dev-1'),
    requester: ref('PractitionerRole/role-req'),
  },
] as Resource[];

export const PRIMARY = RECORDS.find(
  (r) => r.id === 'cov1',
) as import('@medplum/fhirtypes').Coverage;

/** order-sign (and order-select): a DeviceRequest, a MedicationRequest, a ServiceRequest. */
export const ORDER_SIGN_CONTEXT = {
  userId: 'PractitionerRole/role-req',
  patientId: 'p1',
  encounterId: 'e1',
  draftOrders: {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        fullUrl: 'urn:uuid:5b0c0a4c-4d6e-4b8f-9a1e-6f1e2a3b4c5d',
        resource: {
          resourceType: 'DeviceRequest',
          id: 'dr-1',
          status: 'draft',
          intent: 'order',
          subject: ref('Patient/p1'),
          codeReference: ref('Device/dev-1'),
          requester: ref('PractitionerRole/role-req'),
          performer: ref('Organization/org-dme'),
        },
      },
      {
        fullUrl: 'urn:uuid:0d7f3e1c-2b4a-4c6d-8e9f-1a2b3c4d5e6f',
        resource: {
          resourceType: 'MedicationRequest',
          id: 'mr-1',
          status: 'draft',
          intent: 'order',
          subject: ref('Patient/p1'),
          medicationReference: ref('Medication/med-1'),
          requester: ref('Practitioner/pr-req'),
          dispenseRequest: { performer: ref('Organization/org-pharm') },
        },
      },
      {
        fullUrl: 'urn:uuid:9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
        resource: {
          resourceType: 'ServiceRequest',
          id: 'sr-1',
          status: 'draft',
          intent: 'order',
          subject: ref('Patient/p1'),
          code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '94760' }] },
          requester: ref('PractitionerRole/role-req'),
          performer: [ref('PractitionerRole/role-perf')],
          locationReference: [ref('Location/loc-lab')],
        },
      },
    ],
  },
};

/** order-dispatch: stored orders by reference, no user and no encounter. */
export const ORDER_DISPATCH_CONTEXT = {
  patientId: 'p1',
  dispatchedOrders: ['ServiceRequest/sr-d', 'MedicationRequest/mr-d'],
  performer: 'Organization/org-pharm',
};

const ALT_REF = 'http://hl7.org/fhir/StructureDefinition/alternate-reference';

/** appointment-book: one proposed Appointment based on a ServiceRequest and a DeviceRequest. */
export const APPOINTMENT_BOOK_CONTEXT = {
  userId: 'PractitionerRole/role-req',
  patientId: 'p1',
  appointments: {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        fullUrl: 'urn:uuid:3f2e1d0c-9b8a-4765-8432-10fedcba9876',
        resource: {
          resourceType: 'Appointment',
          id: 'appt-1',
          status: 'proposed',
          basedOn: [
            ref('ServiceRequest/sr-a'),
            { extension: [{ url: ALT_REF, valueReference: ref('DeviceRequest/dr-a') }] },
          ],
          participant: [
            { actor: ref('Patient/p1'), status: 'accepted' },
            { actor: ref('PractitionerRole/role-perf'), status: 'accepted' },
            { actor: ref('Location/loc-lab'), status: 'accepted' },
          ],
        },
      },
    ],
  },
};

/** encounter-start (and encounter-discharge). */
export const ENCOUNTER_CONTEXT = {
  userId: 'PractitionerRole/role-enc',
  patientId: 'p1',
  encounterId: 'e1',
};
