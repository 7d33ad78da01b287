/**
 * The project's own test requests: small builders for CRD hook requests, their orders and the
 * patient's Coverage. No data here is copied from the public fixtures.
 */
import { randomUUID } from 'node:crypto';

export const HCPCS = 'https://bluebutton.cms.gov/resources/codesystem/hcpcs';
export const CPT = 'http://www.ama-assn.org/go/cpt';
export const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';

type Json = Record<string, any>;

export const patient = (id = 'pat-1'): Json => ({
  resourceType: 'Patient',
  id,
  name: [{ family: 'Tester', given: ['Pat'] }],
  birthDate: '1948-02-01',
});

export function coverage(over: Json = {}): Json {
  return {
    resourceType: 'Coverage',
    id: 'cov-1',
    status: 'active',
    beneficiary: { reference: 'Patient/pat-1' },
    period: { start: '2020-01-01' },
    payor: [{ reference: 'Organization/acme-payer', display: 'Acme Health Plan' }],
    ...over,
  };
}

export const serviceRequest = (id: string, system: string, code: string): Json => ({
  resourceType: 'ServiceRequest',
  id,
  status: 'draft',
  intent: 'original-order',
  code: { coding: [{ system, code }] },
  subject: { reference: 'Patient/pat-1' },
});

export const deviceRequest = (id: string, code: string): Json => ({
  resourceType: 'DeviceRequest',
  id,
  status: 'draft',
  intent: 'original-order',
  codeCodeableConcept: { coding: [{ system: HCPCS, code }] },
  subject: { reference: 'Patient/pat-1' },
});

export const medicationRequest = (id: string, rxnorm: string): Json => ({
  resourceType: 'MedicationRequest',
  id,
  status: 'draft',
  intent: 'order',
  medicationCodeableConcept: { coding: [{ system: RXNORM, code: rxnorm }] },
  subject: { reference: 'Patient/pat-1' },
});

export const bundle = (resources: Json[], type = 'collection'): Json => ({
  resourceType: 'Bundle',
  type,
  entry: resources.map((resource) => ({ resource })),
});

export interface RequestOptions {
  hook?: string;
  orders?: Json[];
  prefetch?: Json | undefined;
  fhirServer?: string;
  accessToken?: string;
  extension?: Json;
  context?: Json;
}

/** An order-sign (or order-select) request with patient and coverage prefetched by default. */
export function orderRequest(opts: RequestOptions = {}): Json {
  const orders = opts.orders ?? [deviceRequest('dr-1', 'E0431')];
  const hook = opts.hook ?? 'order-sign';
  return {
    hook,
    hookInstance: randomUUID(),
    fhirServer: opts.fhirServer ?? 'https://ehr.test/fhir',
    fhirAuthorization: {
      access_token: opts.accessToken ?? 'ehr-access-token-0001',
      token_type: 'Bearer',
      expires_in: 30,
      scope: 'patient/Patient.read patient/Coverage.read',
      subject: 'payer',
      patient: 'pat-1',
    },
    context: {
      userId: 'Practitioner/prac-1',
      patientId: 'pat-1',
      draftOrders: bundle(orders),
      ...(hook === 'order-select'
        ? { selections: orders.map((o) => `${o.resourceType}/${o.id}`) }
        : {}),
      ...opts.context,
    },
    ...('prefetch' in opts
      ? opts.prefetch
        ? { prefetch: opts.prefetch }
        : {}
      : { prefetch: { patient: patient(), coverage: bundle([coverage()], 'searchset') } }),
    ...(opts.extension ? { extension: opts.extension } : {}),
  };
}

/** The smallest valid order-sign request crdkit answers with coverage information. */
export const minimalOrderSign = (): Json => orderRequest();
