/**
 * The search parameters the resource store indexes. Each is FHIR R4's parameter of that name,
 * reduced to what crdkit needs: a reference parameter is indexed as `Type/id`, a token as `code`
 * and `system|code`. `identifier` is indexed on every type for the Bundle loader and the demo
 * seed; the FHIR API does not offer it to payers.
 */
import type { Resource } from '@medplum/fhirtypes';
import { parseLocalReference } from '../ids/references.js';

type Json = Record<string, any>;

export interface SearchParamDefinition {
  kind: 'reference' | 'token';
  /** The FHIRPath of the R4 definition, for the CapabilityStatement. */
  expression: string;
  /** For references: the types a value may name. */
  targets?: readonly string[];
  /** The elements holding the values. */
  values(resource: Json): unknown[];
}

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

const ref = (expression: string, targets: string[], values: (r: Json) => unknown[]) =>
  ({ kind: 'reference', expression, targets, values }) as const;
const token = (expression: string, values: (r: Json) => unknown[]) =>
  ({ kind: 'token', expression, values }) as const;

/** Indexed parameters by resource type (every type also has `identifier`). */
export const SEARCH_PARAMETERS: Record<string, Record<string, SearchParamDefinition>> = {
  Consent: {
    patient: ref('Consent.patient', ['Patient'], (r) => [r.patient]),
    status: token('Consent.status', (r) => [r.status]),
  },
  Coverage: {
    patient: ref('Coverage.beneficiary', ['Patient'], (r) => [r.beneficiary]),
    beneficiary: ref('Coverage.beneficiary', ['Patient'], (r) => [r.beneficiary]),
    status: token('Coverage.status', (r) => [r.status]),
    payor: ref('Coverage.payor', ['Organization', 'Patient', 'RelatedPerson'], (r) =>
      list(r.payor),
    ),
  },
  PractitionerRole: {
    organization: ref('PractitionerRole.organization', ['Organization'], (r) => [r.organization]),
    practitioner: ref('PractitionerRole.practitioner', ['Practitioner'], (r) => [r.practitioner]),
    location: ref('PractitionerRole.location', ['Location'], (r) => list(r.location)),
    specialty: token('PractitionerRole.specialty', (r) => list(r.specialty)),
  },
  Encounter: {
    patient: ref('Encounter.subject', ['Patient'], (r) => [r.subject]),
    location: ref('Encounter.location.location', ['Location'], (r) =>
      list(r.location).map((l) => (l as Json)?.location),
    ),
    'service-provider': ref('Encounter.serviceProvider', ['Organization'], (r) => [
      r.serviceProvider,
    ]),
    participant: ref(
      'Encounter.participant.individual',
      ['Practitioner', 'PractitionerRole', 'RelatedPerson'],
      (r) => list(r.participant).map((p) => (p as Json)?.individual),
    ),
  },
};

const IDENTIFIER: SearchParamDefinition = token('identifier', (r) => list(r.identifier));

/** The definition of `name` on `type`, including the store-only `identifier`. */
export function searchParameter(type: string, name: string): SearchParamDefinition | undefined {
  if (name === 'identifier') return IDENTIFIER;
  return SEARCH_PARAMETERS[type]?.[name];
}

/** Token values of one element: a code, a Coding, a CodeableConcept or an Identifier. */
function tokenValues(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value !== 'object' || value === null) return [];
  const v = value as Json;
  if (Array.isArray(v.coding)) return v.coding.flatMap(tokenValues);
  const code = typeof v.code === 'string' ? v.code : typeof v.value === 'string' ? v.value : '';
  if (!code) return [];
  return typeof v.system === 'string' ? [code, `${v.system}|${code}`] : [code];
}

/** The index rows `[param, value]` of one resource. */
export function indexEntries(resource: Resource): Array<[string, string]> {
  const defs = { ...SEARCH_PARAMETERS[resource.resourceType], identifier: IDENTIFIER };
  const rows = new Set<string>();
  for (const [name, def] of Object.entries(defs)) {
    for (const value of def.values(resource as Json)) {
      if (def.kind === 'token') {
        for (const t of tokenValues(value)) rows.add(JSON.stringify([name, t]));
        continue;
      }
      const text = (value as Json | undefined)?.reference;
      const local = typeof text === 'string' ? parseLocalReference(text) : undefined;
      if (local && def.targets!.includes(local.type)) {
        rows.add(JSON.stringify([name, `${local.type}/${local.id}`]));
      }
    }
  }
  return [...rows].map((r) => JSON.parse(r) as [string, string]);
}
