/**
 * FHIR R4 AuditEvents shaped after IHE Basic Audit Log Patterns (BALP): a hook call follows the
 * RESTful Query pattern (the client is the Source Role ID and requestor, the server the
 * Destination Role ID, the instance the observer), entities carry references, identifiers and
 * SHA-256 digests only, never payload bytes or resource content.
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from '@medplum/fhirtypes';
import { sha256Hex } from './chain.js';
import type {
  FhirAccessAuditInput,
  HookAuditInput,
  SecurityAuditInput,
  SecurityKind,
  TokenAuditInput,
} from './types.js';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
/** The code systems crdkit defines for what FHIR has no code for. */
export const CRDKIT_AUDIT_SYSTEMS = {
  hook: 'https://cds-hooks.hl7.org/hooks',
  service: 'urn:crdkit:cds-service',
  hookInstance: 'urn:crdkit:hookInstance',
  coverageAssertionId: 'urn:crdkit:coverage-assertion-id',
  security: 'urn:crdkit:security-event',
  issuer: 'urn:crdkit:iss',
  oauthClient: 'urn:crdkit:oauth-client',
  actor: 'urn:crdkit:actor',
  fhirAccess: 'urn:crdkit:fhir-access',
  tokenEvent: 'urn:crdkit:token-event',
  tokenId: 'urn:crdkit:token-jti',
  declaredType: 'urn:crdkit:declared-type',
} as const;

const REST = 'http://hl7.org/fhir/restful-interaction';
const FHIR_ACTION = {
  read: 'R',
  search: 'E',
  create: 'C',
  update: 'U',
  capabilities: 'R',
} as const;
const FHIR_INTERACTION = {
  read: 'read',
  search: 'search-type',
  create: 'create',
  update: 'update',
  capabilities: 'capabilities',
} as const;

const OUTCOME = { success: '0', 'minor-failure': '4', 'serious-failure': '8' } as const;

/** DICOM event type and subtype of each security kind. */
const SECURITY_TYPES: Record<SecurityKind, [Coding, Coding]> = {
  'auth-refused': [dcm('110114', 'User Authentication'), dcm('110122', 'Login')],
  replay: [dcm('110114', 'User Authentication'), dcm('110122', 'Login')],
  'tls-failure': [dcm('110113', 'Security Alert'), dcm('110126', 'Node Authentication')],
  'rate-limited': [dcm('110113', 'Security Alert'), dcm('110132', 'Use of Restricted Function')],
  'audit-read': [dcm('110101', 'Audit Log Used'), dcm('110101', 'Audit Log Used')],
};

// Objects below are written with their keys in sorted order: the chain stores canonical JSON,
// and `canonicalJson` serialises such objects without re-sorting them (about 3x faster).

function dcm(code: string, display: string): Coding {
  return { code, display, system: DCM };
}

function entityType(code: '1' | '2', display: string): Coding {
  return { code, display, system: ENTITY_TYPE };
}

function role(code: string, display: string): Coding {
  return { code, display, system: OBJECT_ROLE };
}

function patientEntity(reference: string): AuditEventEntity {
  return {
    role: role('1', 'Patient'),
    type: entityType('1', 'Person'),
    what: { reference },
  };
}

function digestEntity(name: 'request' | 'response', sha256: string | undefined, status?: number) {
  const detail = [];
  if (sha256) detail.push({ type: 'sha256', valueString: sha256 });
  if (status !== undefined) detail.push({ type: 'http-status', valueString: String(status) });
  const entity: AuditEventEntity = {
    ...(detail.length ? { detail } : {}),
    name,
    role: name === 'request' ? role('24', 'Query') : role('3', 'Report'),
    type: entityType('2', 'System Object'),
  };
  return entity;
}

function serverAgent(): AuditEventAgent {
  return {
    requestor: false,
    type: { coding: [dcm('110152', 'Destination Role ID')] },
    who: { display: 'crdkit CRD server' },
  };
}

function observer(instance: string): AuditEvent['source'] {
  return {
    observer: { display: instance },
    type: [{ code: '4', display: 'Application Server', system: SOURCE_TYPE }],
  };
}

/** SHA-256 (hex) of a hook call's request and response bodies, as its AuditEvent records them. */
export interface HookDigests {
  request?: string;
  response?: string;
}

/** The digests of `input`'s bodies. */
export function hookDigests(input: HookAuditInput): HookDigests {
  return {
    ...(input.requestBody ? { request: sha256Hex(input.requestBody) } : {}),
    ...(input.responseBody ? { response: sha256Hex(input.responseBody) } : {}),
  };
}

/**
 * The AuditEvent of one hook call. Digests of the raw request and response are recorded as
 * `entity.detail` `sha256`; the bodies themselves never appear.
 *
 * @example
 * ```ts
 * const event = auditEventFromHook(input, randomUUID());
 * event.subtype?.[0]?.code; // 'order-sign'
 * ```
 */
export function auditEventFromHook(
  input: HookAuditInput,
  id: string,
  digests: HookDigests = hookDigests(input),
): AuditEvent {
  // Keys in sorted order (see `dcm`): this event is built for every hook call.
  const client: AuditEventAgent = {
    ...(input.client.certificateSha256
      ? { altId: `x5t#S256:${input.client.certificateSha256}` }
      : {}),
    requestor: true,
    type: { coding: [dcm('110153', 'Source Role ID')] },
    who: {
      ...(input.client.name ? { display: input.client.name } : {}),
      identifier: { system: CRDKIT_AUDIT_SYSTEMS.issuer, value: input.client.iss },
    },
  };
  const entity: AuditEventEntity[] = [];
  if (input.patient) entity.push(patientEntity(input.patient));
  for (const reference of input.orders) {
    entity.push({
      role: role('4', 'Domain Resource'),
      type: entityType('2', 'System Object'),
      what: { reference },
    });
  }
  if (input.hookInstance) {
    entity.push({
      name: 'hookInstance',
      role: role('20', 'Job'),
      type: entityType('2', 'System Object'),
      what: {
        identifier: { system: CRDKIT_AUDIT_SYSTEMS.hookInstance, value: input.hookInstance },
      },
    });
  }
  for (const value of input.coverageAssertionIds) {
    entity.push({
      name: 'coverage-assertion-id',
      role: role('3', 'Report'),
      type: entityType('2', 'System Object'),
      what: { identifier: { system: CRDKIT_AUDIT_SYSTEMS.coverageAssertionId, value } },
    });
  }
  for (const w of input.withheld ?? []) {
    entity.push({
      description: w.reason,
      name: 'withheld',
      role: role('4', 'Domain Resource'),
      type: entityType('2', 'System Object'),
      what: { reference: w.reference },
    });
  }
  entity.push(digestEntity('request', digests.request));
  entity.push(digestEntity('response', digests.response, input.status));
  const server = serverAgent();
  return {
    action: 'E',
    agent: [
      client,
      input.destination ? { ...server, who: { display: input.destination } } : server,
    ],
    entity,
    id,
    outcome: OUTCOME[input.outcome],
    ...(input.errorCode ? { outcomeDesc: input.errorCode } : {}),
    recorded: input.at.toISOString(),
    resourceType: 'AuditEvent',
    source: observer(input.instance)!,
    subtype: [
      ...(input.hook ? [{ code: input.hook, system: CRDKIT_AUDIT_SYSTEMS.hook }] : []),
      ...(input.service ? [{ code: input.service, system: CRDKIT_AUDIT_SYSTEMS.service }] : []),
    ],
    type: dcm('110112', 'Query'),
  };
}

/** `detail` unless it looks like it carries a JWT or a bearer token. */
function safeDetail(detail: string): string {
  if (/eyJ[\w-]{4,}\.|bearer\s+\S/i.test(detail)) return '[redacted]';
  return detail.slice(0, 200);
}

/**
 * The AuditEvent of a security event (refused token, TLS failure, rate limit, replay, a read of
 * the audit trail). The outcome is `4` for refusals and `0` for `audit-read`.
 *
 * @example
 * ```ts
 * auditEventFromSecurity({ at, instance, kind: 'replay', errorCode: 'ERR_JWT_REPLAY' }, id);
 * ```
 */
export function auditEventFromSecurity(input: SecurityAuditInput, id: string): AuditEvent {
  const [type, subtype] = SECURITY_TYPES[input.kind];
  const reading = input.kind === 'audit-read';
  const requestor: AuditEventAgent = {
    type: { coding: [dcm('110153', 'Source Role ID')] },
    who: input.client?.iss
      ? { identifier: { system: CRDKIT_AUDIT_SYSTEMS.issuer, value: input.client.iss } }
      : { display: reading ? (input.reader ?? 'local operator') : 'unidentified client' },
    requestor: true,
    ...(input.source
      ? { network: { address: input.source, type: /^[\d.:a-f]+$/i.test(input.source) ? '2' : '1' } }
      : {}),
  };
  const description = [input.errorCode, input.detail && safeDetail(input.detail)].filter(Boolean);
  return {
    resourceType: 'AuditEvent',
    id,
    type,
    subtype: [subtype, { system: CRDKIT_AUDIT_SYSTEMS.security, code: input.kind }],
    action: reading ? 'R' : 'E',
    recorded: input.at.toISOString(),
    outcome: reading ? '0' : '4',
    ...(description.length ? { outcomeDesc: description.join(': ') } : {}),
    agent: [requestor, serverAgent()],
    source: observer(input.instance)!,
    ...(input.patient ? { entity: [patientEntity(input.patient)] } : {}),
  };
}

function oauthClientAgent(client: { id: string; name?: string }): AuditEventAgent {
  return {
    type: { coding: [dcm('110153', 'Source Role ID')] },
    who: {
      identifier: { system: CRDKIT_AUDIT_SYSTEMS.oauthClient, value: client.id },
      ...(client.name ? { display: client.name } : {}),
    },
    requestor: true,
  };
}

/** The delegate chain as agents: each actor acts on behalf of the one after it (RFC 8693 `act`). */
function actorAgents(actors: string[] | undefined): AuditEventAgent[] {
  return (actors ?? []).map((sub, i) => ({
    type: { coding: [dcm('110153', 'Source Role ID')] },
    who: { identifier: { system: CRDKIT_AUDIT_SYSTEMS.actor, value: sub } },
    name: i === 0 ? 'actor' : `actor-${i}`,
    requestor: false,
  }));
}

function ehrAgent(display: string): AuditEventAgent {
  return {
    type: { coding: [dcm('110152', 'Destination Role ID')] },
    who: { display },
    requestor: false,
  };
}

function idEntity(system: string, value: string, name: string): AuditEventEntity {
  return {
    what: { identifier: { system, value } },
    type: entityType('2', 'System Object'),
    role: role('20', 'Job'),
    name,
  };
}

/**
 * The AuditEvent of one request to the FHIR API for payers (BALP RESTful patterns): the token's
 * client as requestor, the delegate actors after it, the patient in context and the resources
 * touched as entities. `entity.detail` `context-patient` names the token's patient, so a review
 * sees at a glance when another patient's data was read.
 */
export function auditEventFromFhirAccess(input: FhirAccessAuditInput, id: string): AuditEvent {
  const entity: AuditEventEntity[] = [];
  for (const reference of input.patients) entity.push(patientEntity(reference));
  for (const reference of input.resources) {
    entity.push({
      what: { reference },
      type: entityType('2', 'System Object'),
      role: role('4', 'Domain Resource'),
    });
  }
  if (input.hookInstance) {
    entity.push(idEntity(CRDKIT_AUDIT_SYSTEMS.hookInstance, input.hookInstance, 'hookInstance'));
  }
  if (input.tokenId) entity.push(idEntity(CRDKIT_AUDIT_SYSTEMS.tokenId, input.tokenId, 'token'));
  const detail = [
    ...(input.contextPatient
      ? [{ type: 'context-patient', valueString: input.contextPatient }]
      : []),
    ...(input.service ? [{ type: 'service', valueString: input.service }] : []),
    ...(input.declaredTypes?.length
      ? [{ type: 'declared-types', valueString: input.declaredTypes.join(',') }]
      : []),
    ...(input.parameters?.length
      ? [{ type: 'parameters', valueString: input.parameters.join(',') }]
      : []),
    { type: 'http-status', valueString: String(input.status) },
  ];
  entity.push({
    type: entityType('2', 'System Object'),
    role: role('24', 'Query'),
    name: input.resourceType ? `${input.action} ${input.resourceType}` : input.action,
    detail,
  });
  return {
    resourceType: 'AuditEvent',
    id,
    type: { system: REST, code: FHIR_INTERACTION[input.action] },
    subtype: [
      { system: CRDKIT_AUDIT_SYSTEMS.fhirAccess, code: input.action },
      ...(input.resourceType
        ? [{ system: 'urn:crdkit:resource-type', code: input.resourceType }]
        : []),
    ],
    action: FHIR_ACTION[input.action],
    recorded: input.at.toISOString(),
    outcome: OUTCOME[input.outcome],
    ...(input.errorCode ? { outcomeDesc: input.errorCode } : {}),
    agent: [
      oauthClientAgent(input.client),
      ...actorAgents(input.actors),
      ehrAgent('crdkit EHR FHIR API'),
    ],
    source: observer(input.instance)!,
    entity,
  };
}

/**
 * The AuditEvent of a token event at the EHR's authorization server: issue, RFC 8693 exchange
 * (with its audience and actor chain), revocation, refusal, SMART launch. The token appears only
 * by its `jti`.
 */
export function auditEventFromToken(input: TokenAuditInput, id: string): AuditEvent {
  const entity: AuditEventEntity[] = [];
  if (input.patient) entity.push(patientEntity(input.patient));
  if (input.hookInstance) {
    entity.push(idEntity(CRDKIT_AUDIT_SYSTEMS.hookInstance, input.hookInstance, 'hookInstance'));
  }
  if (input.tokenId) entity.push(idEntity(CRDKIT_AUDIT_SYSTEMS.tokenId, input.tokenId, 'token'));
  if (input.subjectTokenId) {
    entity.push(idEntity(CRDKIT_AUDIT_SYSTEMS.tokenId, input.subjectTokenId, 'subject-token'));
  }
  const detail = [
    ...(input.grantType ? [{ type: 'grant-type', valueString: input.grantType }] : []),
    ...(input.scopes?.length ? [{ type: 'scope', valueString: input.scopes.join(' ') }] : []),
    ...(input.audience ? [{ type: 'audience', valueString: input.audience }] : []),
    ...(input.service ? [{ type: 'service', valueString: input.service }] : []),
    ...(input.expiresAt ? [{ type: 'expires', valueString: input.expiresAt.toISOString() }] : []),
  ];
  if (detail.length) {
    entity.push({
      type: entityType('2', 'System Object'),
      role: role('13', 'Security Resource'),
      name: 'grant',
      detail,
    });
  }
  const refused = input.event === 'refused';
  return {
    resourceType: 'AuditEvent',
    id,
    type: dcm('110114', 'User Authentication'),
    subtype: [{ system: CRDKIT_AUDIT_SYSTEMS.tokenEvent, code: input.event }],
    action: 'E',
    recorded: input.at.toISOString(),
    outcome: refused ? '4' : '0',
    ...(input.errorCode ? { outcomeDesc: input.errorCode } : {}),
    agent: [
      oauthClientAgent(input.client),
      ...actorAgents(input.actors),
      ehrAgent('crdkit EHR authorization server'),
    ],
    source: observer(input.instance)!,
    ...(entity.length ? { entity } : {}),
  };
}
