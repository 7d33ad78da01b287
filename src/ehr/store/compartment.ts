/**
 * The patient a resource belongs to: the key of `patient/` scopes. Each type has one element
 * that decides it (a Coverage's beneficiary, an order's subject); a resource is in at most one
 * patient's compartment here, which is stricter than FHIR's compartment definition (a Coverage
 * whose subscriber is another patient is not that patient's).
 */
import type { Resource } from '@medplum/fhirtypes';
import { parseLocalReference } from '../ids/references.js';

type Json = Record<string, any>;

/** The element naming the patient, by type. Types absent here have no patient compartment. */
const PATIENT_ELEMENT: Record<string, (r: Json) => unknown[]> = {
  Coverage: (r) => [r.beneficiary],
  Encounter: (r) => [r.subject],
  DeviceRequest: (r) => [r.subject],
  MedicationRequest: (r) => [r.subject],
  ServiceRequest: (r) => [r.subject],
  CommunicationRequest: (r) => [r.subject],
  NutritionOrder: (r) => [r.patient],
  VisionPrescription: (r) => [r.patient],
  Appointment: (r) =>
    Array.isArray(r.participant) ? r.participant.map((p: Json) => p?.actor) : [],
  Task: (r) => [r.for],
  ClaimResponse: (r) => [r.patient],
  Consent: (r) => [r.patient],
  Device: (r) => [r.patient],
};

/**
 * Types whose resources always belong to a patient: one without a patient reference is visible
 * to no `patient/` token. (A Device without `patient` is equipment, visible like a Location.)
 */
export const PATIENT_COMPARTMENT_TYPES: ReadonlySet<string> = new Set(
  ['Patient', ...Object.keys(PATIENT_ELEMENT)].filter((t) => t !== 'Device'),
);

function patientId(ref: unknown): string | undefined {
  const text = (ref as { reference?: unknown } | undefined)?.reference;
  if (typeof text !== 'string') return undefined;
  const local = parseLocalReference(text);
  return local?.type === 'Patient' ? local.id : undefined;
}

/** The internal id of the patient `resource` belongs to (without `Patient/`), if any. */
export function patientOf(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  const element = PATIENT_ELEMENT[resource.resourceType];
  if (!element) return undefined;
  for (const ref of element(resource as Json)) {
    const id = patientId(ref);
    if (id) return id;
  }
  return undefined;
}

/** Every patient a resource refers to anywhere (`Patient/…` references), for the audit trail. */
export function patientsIn(resource: Resource): string[] {
  const found = new Set<string>();
  const own = patientOf(resource);
  if (own) found.add(own);
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (typeof value !== 'object' || value === null) return;
    for (const [key, v] of Object.entries(value)) {
      if (key === 'reference' && typeof v === 'string') {
        const local = parseLocalReference(v);
        if (local?.type === 'Patient') found.add(local.id);
      } else visit(v);
    }
  };
  visit(resource);
  return [...found];
}
