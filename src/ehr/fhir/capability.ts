/**
 * What the FHIR API for payers serves, in one table: the types, their interactions, search
 * parameters and `_include`s. The routes read it to refuse anything else (404, 405, 400), and the
 * CapabilityStatement (`GET metadata`) is built from it, so the two cannot disagree.
 */
import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { searchParameter } from '../store/search-params.js';

import { ORDER_TYPES } from '../../crd/hooks.js';

/** The order types of CRD (select, sign and dispatch) plus Appointment: coverage-info targets. */
export const UPDATE_TYPES = ['Appointment', ...ORDER_TYPES] as const;

/** Types a payer may create: form-completion Tasks (CRD) and ClaimResponses (the CRD test kit). */
export const CREATE_TYPES = ['Task', 'ClaimResponse'] as const;

/** Types that can be read, and searched by `_id` (the standard prefetch queries use `_id`). */
export const READ_TYPES = [
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'Device',
  'Medication',
  'Encounter',
  'Coverage',
  // The patient's privacy Consents, read by the EHR's own CRD client (its sharing policy); a
  // payer's hook token never names this type, so payers cannot read them.
  'Consent',
  ...UPDATE_TYPES,
  ...CREATE_TYPES,
] as const;

/** A search parameter of the API: the store's parameter it runs on (an alias may differ). */
export interface ApiSearchParam {
  /** The store's indexed parameter (`service-provider` for Encounter's `organization`). */
  indexed: string;
  documentation: string;
}

/** Search parameters beyond `_id`, by type. */
export const API_SEARCH_PARAMS: Record<string, Record<string, ApiSearchParam>> = {
  Consent: {
    patient: { indexed: 'patient', documentation: 'Consent.patient' },
    status: { indexed: 'status', documentation: 'Consent.status' },
  },
  Coverage: {
    patient: { indexed: 'patient', documentation: 'Coverage.beneficiary' },
    beneficiary: { indexed: 'beneficiary', documentation: 'Coverage.beneficiary' },
    status: { indexed: 'status', documentation: 'Coverage.status' },
  },
  PractitionerRole: {
    organization: { indexed: 'organization', documentation: 'PractitionerRole.organization' },
    practitioner: { indexed: 'practitioner', documentation: 'PractitionerRole.practitioner' },
    location: { indexed: 'location', documentation: 'PractitionerRole.location' },
    specialty: { indexed: 'specialty', documentation: 'PractitionerRole.specialty' },
  },
  Encounter: {
    patient: { indexed: 'patient', documentation: 'Encounter.subject (a Patient)' },
    location: { indexed: 'location', documentation: 'Encounter.location.location' },
    'service-provider': {
      indexed: 'service-provider',
      documentation: 'Encounter.serviceProvider',
    },
    organization: {
      indexed: 'service-provider',
      documentation: 'Encounter.serviceProvider (the name the CRD test kit uses)',
    },
    participant: { indexed: 'participant', documentation: 'Encounter.participant.individual' },
  },
};

type Json = Record<string, any>;
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

/** An `_include`: the references it follows and the types it may bring. */
export interface IncludeDefinition {
  targets: readonly string[];
  references(resource: Json): unknown[];
}

/** Supported `_include` values (`Type:param`), by the type searched. */
export const INCLUDES: Record<string, Record<string, IncludeDefinition>> = {
  PractitionerRole: {
    'PractitionerRole:organization': {
      targets: ['Organization'],
      references: (r) => [r.organization],
    },
    'PractitionerRole:practitioner': {
      targets: ['Practitioner'],
      references: (r) => [r.practitioner],
    },
    'PractitionerRole:location': { targets: ['Location'], references: (r) => list(r.location) },
  },
  Encounter: {
    'Encounter:location': {
      targets: ['Location'],
      references: (r) => list(r.location).map((l) => (l as Json)?.location),
    },
    'Encounter:service-provider': {
      targets: ['Organization'],
      references: (r) => [r.serviceProvider],
    },
    'Encounter:participant': {
      targets: ['Practitioner', 'PractitionerRole'],
      references: (r) => list(r.participant).map((p) => (p as Json)?.individual),
    },
  },
  Coverage: {
    'Coverage:payor': { targets: ['Organization'], references: (r) => list(r.payor) },
  },
};

/** The interactions of one type. */
export function interactionsOf(type: string): Array<'read' | 'search-type' | 'update' | 'create'> {
  const out: Array<'read' | 'search-type' | 'update' | 'create'> = [];
  if ((READ_TYPES as readonly string[]).includes(type)) out.push('read', 'search-type');
  if ((UPDATE_TYPES as readonly string[]).includes(type)) out.push('update');
  if ((CREATE_TYPES as readonly string[]).includes(type)) out.push('create');
  return out;
}

/** The OAuth endpoints announced in the SMART security extension. */
export interface OAuthEndpoints {
  authorize: string;
  token: string;
  revoke?: string;
  introspect?: string;
  register?: string;
}

/**
 * `B/oauth/…` where B is the base URL without its trailing `/fhir`: the paths of the EHR's
 * authorization server (`src/ehr/authz`, oidc-provider's `auth`, `token`, `token/revocation`,
 * `token/introspection`). Pass `oauth` to `registerFhirApi` when they differ.
 */
export function defaultOAuthEndpoints(baseUrl: string): OAuthEndpoints {
  const root = baseUrl.replace(/\/+$/, '').replace(/\/fhir$/, '');
  return {
    authorize: `${root}/oauth/auth`,
    token: `${root}/oauth/token`,
    revoke: `${root}/oauth/token/revocation`,
    introspect: `${root}/oauth/token/introspection`,
  };
}

function restResource(type: string): CapabilityStatementRestResource {
  const resourceType = type as CapabilityStatementRestResource['type'];
  const interactions = interactionsOf(type);
  const params = Object.entries(API_SEARCH_PARAMS[type] ?? {}).map(([name, p]) => ({
    name,
    type: searchParameter(type, p.indexed)!.kind,
    documentation: p.documentation,
  }));
  return {
    type: resourceType,
    interaction: interactions.map((code) => ({ code })),
    versioning: 'versioned-update',
    readHistory: false,
    updateCreate: false,
    conditionalCreate: false,
    conditionalRead: 'not-supported',
    conditionalUpdate: false,
    conditionalDelete: 'not-supported',
    searchInclude: Object.keys(INCLUDES[type] ?? {}),
    searchParam: [
      { name: '_id', type: 'token', documentation: 'the (opaque) resource id' },
      ...params,
    ],
  };
}

/**
 * The CapabilityStatement of the API: exactly the types, interactions, search parameters and
 * includes it serves, and the SMART on FHIR security service with its OAuth endpoints.
 */
export function capabilityStatement(
  baseUrl: string,
  oauth: OAuthEndpoints,
  date: string,
): CapabilityStatement {
  const uris = Object.entries(oauth)
    .filter(([, v]) => typeof v === 'string')
    .map(([url, valueUri]) => ({ url, valueUri: valueUri as string }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date,
    publisher: 'crdkit',
    kind: 'instance',
    software: { name: 'crdkit EHR FHIR API for payers' },
    implementation: { description: 'crdkit EHR FHIR API for payers (CRD)', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        documentation:
          'Searches return every match in one Bundle (no paging); unknown parameters are refused.',
        security: {
          cors: false,
          service: [
            {
              coding: [
                {
                  system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
                  code: 'SMART-on-FHIR',
                },
              ],
            },
          ],
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: uris,
            },
          ],
        },
        resource: [...new Set<string>(READ_TYPES)].sort().map(restResource),
        searchParam: [
          { name: '_include', type: 'special', documentation: 'see searchInclude' },
          { name: '_format', type: 'special', documentation: 'json only' },
        ],
      },
    ],
  };
}
