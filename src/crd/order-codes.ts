/**
 * What an order is for, as codings: the clinical code of every CRD request type (CRD §2) plus
 * every `ext-billing-options` coding found in it (billopt-3: considered when present; never
 * required, billopt-2).
 */
import type { CodeableConcept, Reference, Resource } from '@medplum/fhirtypes';
import type { Coding } from './types.js';

/** `ext-billing-options` (value CodeableConcept: likely billing codes sent by the client). */
export const BILLING_OPTIONS_URL =
  'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options';

/** R5 cross-version extension CRD uses for coded CommunicationRequest payloads. */
export const PAYLOAD_CONTENT_URL =
  'http://hl7.org/fhir/5.0/StructureDefinition/extension-CommunicationRequest.payload.content[x]';

/** Resources an order points to, as prefetched or fetched (matched by id or `#contained`). */
export interface RelatedResources {
  medications?: Resource[];
  devices?: Resource[];
  /** For Appointments: the ServiceRequests they are `basedOn`. */
  serviceRequests?: Resource[];
}

/**
 * Every coding that identifies what `order` asks for, without duplicates (same system and
 * code), clinical codes first. References are followed into `related` and into the order's
 * contained resources: DeviceRequest.codeReference → Device.type, MedicationRequest
 * .medicationReference → Medication.code, Appointment.basedOn → ServiceRequest codes.
 */
export function orderCodes(order: Resource, related: RelatedResources = {}): Coding[] {
  const out: Coding[] = [];
  const seen = new Set<string>();
  const add = (cc: CodeableConcept | undefined): void => {
    for (const c of cc?.coding ?? []) {
      const key = `${c.system ?? ''}|${c.code ?? ''}`;
      if (c.code === undefined || seen.has(key)) continue;
      seen.add(key);
      out.push(stripUndefined({ system: c.system, code: c.code, display: c.display }));
    }
  };
  const visited: unknown[] = [order];
  const follow = (ref: Reference | undefined, pool: Resource[] | undefined): Resource[] => {
    const found = resolve(ref, order, pool);
    if (found !== undefined) visited.push(found);
    return found === undefined ? [] : [found];
  };

  switch (order.resourceType) {
    case 'ServiceRequest':
      add(order.code);
      break;
    case 'DeviceRequest':
      add(order.codeCodeableConcept);
      for (const d of follow(order.codeReference, related.devices)) {
        if (d.resourceType === 'Device') add(d.type);
      }
      break;
    case 'MedicationRequest':
      add(order.medicationCodeableConcept);
      for (const m of follow(order.medicationReference, related.medications)) {
        if (m.resourceType === 'Medication') add(m.code);
      }
      break;
    case 'NutritionOrder':
      for (const t of order.oralDiet?.type ?? []) add(t);
      add(order.enteralFormula?.baseFormulaType);
      add(order.enteralFormula?.additiveType);
      for (const s of order.supplement ?? []) add(s.type);
      break;
    case 'VisionPrescription':
      for (const l of order.lensSpecification ?? []) add(l.product);
      break;
    case 'CommunicationRequest':
      for (const p of order.payload ?? []) {
        // R4 has no contentCodeableConcept; accept it if a client sends it anyway.
        add((p as { contentCodeableConcept?: CodeableConcept }).contentCodeableConcept);
        for (const e of p.extension ?? []) {
          if (e.url === PAYLOAD_CONTENT_URL) add(e.valueCodeableConcept);
        }
      }
      break;
    case 'Appointment':
      for (const t of order.serviceType ?? []) add(t);
      for (const t of order.serviceCategory ?? []) add(t);
      for (const ref of order.basedOn ?? []) {
        for (const sr of follow(ref, related.serviceRequests)) {
          if (sr.resourceType === 'ServiceRequest') add(sr.code);
        }
      }
      break;
    default:
      break;
  }
  for (const root of visited) collectBillingOptions(root, add);
  return out;
}

/** billopt-3: `ext-billing-options` may sit on any element, so walk the whole tree. */
function collectBillingOptions(node: unknown, add: (cc: CodeableConcept) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) collectBillingOptions(n, add);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const o = node as Record<string, unknown>;
  if (o.url === BILLING_OPTIONS_URL && typeof o.valueCodeableConcept === 'object') {
    add(o.valueCodeableConcept as CodeableConcept);
  }
  for (const v of Object.values(o)) if (typeof v === 'object') collectBillingOptions(v, add);
}

/**
 * Finds the target of `ref`: `#id` among the order's contained resources, otherwise the
 * resource in `pool` whose type and id match the reference's last two path segments.
 */
export function resolve(
  ref: Reference | undefined,
  container: Resource,
  pool: Resource[] = [],
): Resource | undefined {
  const r = ref?.reference;
  if (r === undefined) return undefined;
  if (r.startsWith('#')) {
    const contained = (container as { contained?: Resource[] }).contained ?? [];
    return contained.find((c) => c.id === r.slice(1));
  }
  const parts = r.replace(/\/_history\/[^/]*$/, '').split('/');
  const id = parts[parts.length - 1];
  const type = parts[parts.length - 2];
  return pool.find((p) => p.id === id && (type === undefined || p.resourceType === type));
}

function stripUndefined(c: Coding): Coding {
  const out: Coding = {};
  if (c.system !== undefined) out.system = c.system;
  if (c.code !== undefined) out.code = c.code;
  if (c.display !== undefined) out.display = c.display;
  return out;
}
