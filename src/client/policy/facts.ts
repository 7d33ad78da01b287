/**
 * What the policy reads in one resource: its security labels and the codings of its main coded
 * elements. The facts live only while one resource is judged; they are never logged.
 */
import type { FoundCoding } from './codes.js';

/**
 * The main coded elements, per resource type. Every resource type is also read by shape: each
 * top-level CodeableConcept or Coding (single or repeated), each top-level extension's
 * `valueCodeableConcept` / `valueCoding`, and extensions on those CodeableConcepts (CRD's
 * `ext-billing-options`). So the top-level entries below document what is read; the nested ones
 * add to it. Contained resources are read as part of their container. Free text
 * (`CodeableConcept.text`, `note`, narrative) is not read.
 */
export const CODED_ELEMENTS: Readonly<Record<string, readonly string[]>> = {
  AllergyIntolerance: ['code', 'category', 'reaction.substance', 'reaction.manifestation'],
  Appointment: ['serviceCategory', 'serviceType', 'specialty', 'appointmentType', 'reasonCode'],
  CarePlan: ['category', 'activity.detail.code', 'activity.detail.reasonCode'],
  Claim: ['diagnosis.diagnosisCodeableConcept', 'procedure.procedureCodeableConcept'],
  CommunicationRequest: ['category', 'reasonCode'],
  Condition: ['code', 'category', 'stage.summary', 'evidence.code'],
  DeviceRequest: [
    'codeCodeableConcept',
    'reasonCode',
    'parameter.code',
    'parameter.valueCodeableConcept',
  ],
  DiagnosticReport: ['code', 'category', 'conclusionCode'],
  Encounter: ['class', 'type', 'serviceType', 'reasonCode'],
  FamilyMemberHistory: ['condition.code'],
  Medication: ['code', 'ingredient.itemCodeableConcept'],
  MedicationDispense: ['medicationCodeableConcept'],
  MedicationRequest: ['medicationCodeableConcept', 'category', 'reasonCode'],
  MedicationStatement: ['medicationCodeableConcept', 'category', 'reasonCode'],
  NutritionOrder: [
    'oralDiet.type',
    'supplement.type',
    'enteralFormula.baseFormulaType',
    'enteralFormula.additiveType',
  ],
  Observation: [
    'code',
    'category',
    'valueCodeableConcept',
    'component.code',
    'component.valueCodeableConcept',
  ],
  Procedure: ['code', 'category', 'reasonCode'],
  ServiceRequest: ['code', 'category', 'reasonCode', 'orderDetail'],
  Task: ['code', 'reasonCode', 'input.valueCodeableConcept'],
  VisionPrescription: ['lensSpecification.product'],
};

/** The facts of one resource (and its contained resources). */
export interface ResourceFacts {
  /** The resource type, then the types of contained resources. */
  types: string[];
  /** `Type/id`, when the resource has an id. */
  reference?: string;
  labels: FoundCoding[];
  codes: FoundCoding[];
  profiles: string[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

/** Whether a value is a FHIR resource (an object with a `resourceType`). */
export function isResource(v: unknown): v is Json & { resourceType: string } {
  return isObject(v) && typeof v.resourceType === 'string';
}

/** A Coding's system and code, when it has a code. */
function asCoding(v: unknown): FoundCoding | undefined {
  if (!isObject(v) || typeof v.code !== 'string') return undefined;
  return typeof v.system === 'string' ? { system: v.system, code: v.code } : { code: v.code };
}

/** The codings of a CodeableConcept or Coding value, with codings in its extensions. */
function codingsOf(value: unknown, out: FoundCoding[]): void {
  for (const item of list(value)) {
    if (!isObject(item)) continue;
    const single = asCoding(item);
    if (single) out.push(single);
    for (const c of list(item.coding)) {
      const coding = asCoding(c);
      if (coding) out.push(coding);
    }
    extensionCodings(item.extension, out);
  }
}

/** `valueCodeableConcept` / `valueCoding` of extensions, nested extensions included. */
function extensionCodings(extensions: unknown, out: FoundCoding[]): void {
  for (const ext of list(extensions)) {
    if (!isObject(ext)) continue;
    codingsOf(ext.valueCodeableConcept, out);
    codingsOf(ext.valueCoding, out);
    extensionCodings(ext.extension, out);
  }
}

/** Whether a top-level value looks like a CodeableConcept or Coding (or a list of them). */
function looksCoded(value: unknown): boolean {
  return list(value).some((v) => isObject(v) && (Array.isArray(v.coding) || asCoding(v)));
}

/** The values at a dotted path, through repeating elements. */
function valuesAt(resource: Json, path: string): unknown[] {
  let current: unknown[] = [resource];
  for (const step of path.split('.')) {
    current = current.flatMap((v) => (isObject(v) ? list(v[step]) : []));
  }
  return current;
}

const SKIP = new Set(['meta', 'text', 'contained', 'extension', 'modifierExtension']);

/** Reads the facts of a resource and its contained resources. */
export function readFacts(resource: Json & { resourceType: string }): ResourceFacts {
  const facts: ResourceFacts = { types: [], labels: [], codes: [], profiles: [] };
  if (typeof resource.id === 'string') facts.reference = `${resource.resourceType}/${resource.id}`;
  collect(resource, facts);
  return facts;
}

function collect(resource: Json & { resourceType: string }, facts: ResourceFacts): void {
  facts.types.push(resource.resourceType);
  const meta = isObject(resource.meta) ? resource.meta : {};
  codingsOf(meta.security, facts.labels);
  facts.profiles.push(...list(meta.profile).filter((p): p is string => typeof p === 'string'));
  for (const [key, value] of Object.entries(resource)) {
    if (!SKIP.has(key) && looksCoded(value)) codingsOf(value, facts.codes);
  }
  extensionCodings(resource.extension, facts.codes);
  extensionCodings(resource.modifierExtension, facts.codes);
  for (const path of CODED_ELEMENTS[resource.resourceType] ?? []) {
    if (path.includes('.')) codingsOf(valuesAt(resource, path), facts.codes);
  }
  for (const inner of list(resource.contained)) if (isResource(inner)) collect(inner, facts);
}
