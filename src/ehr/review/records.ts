/**
 * Reads the EHR's AuditEvents back (the shapes `auditEventFromFhirAccess` and
 * `auditEventFromToken` write): a FHIR access or a token event, anything else undefined.
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity } from '@medplum/fhirtypes';
import { CRDKIT_AUDIT_SYSTEMS as SYS } from '../../audit/index.js';
import type { AccessRecord, TokenRecord } from './types.js';

const RESOURCE_TYPE_SYSTEM = 'urn:crdkit:resource-type';
const PATIENT_ROLE = '1';
const DOMAIN_RESOURCE_ROLE = '4';

function subtype(event: AuditEvent, system: string): string | undefined {
  return event.subtype?.find((c) => c.system === system)?.code;
}

function client(event: AuditEvent): { client: string; clientName?: string } | undefined {
  const who = event.agent?.find((a) => a.who?.identifier?.system === SYS.oauthClient)?.who;
  const id = who?.identifier?.value;
  if (!id) return undefined;
  return { client: id, ...(who.display ? { clientName: who.display } : {}) };
}

/** The actor chain, current actor first (agents `actor`, `actor-1`, … in that order). */
function actors(agents: AuditEventAgent[] | undefined): string[] {
  return (agents ?? [])
    .filter((a) => a.who?.identifier?.system === SYS.actor && a.who.identifier.value)
    .map((a) => a.who!.identifier!.value!);
}

function identifier(entities: AuditEventEntity[], system: string, name: string) {
  return entities.find((e) => e.name === name && e.what?.identifier?.system === system)?.what
    ?.identifier?.value;
}

function references(entities: AuditEventEntity[], roleCode: string): string[] {
  return entities
    .filter((e) => e.role?.code === roleCode && e.what?.reference)
    .map((e) => e.what!.reference!);
}

function details(entities: AuditEventEntity[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of entities) {
    for (const d of e.detail ?? []) if (d.type && d.valueString) out.set(d.type, d.valueString);
  }
  return out;
}

function time(value: string | undefined): number | undefined {
  const t = value ? Date.parse(value) : NaN;
  return Number.isNaN(t) ? undefined : t;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined || value === '' ? {} : { [key]: value }) as { [P in K]?: V };
}

/** A FHIR access record, or undefined when `event` is not one. */
export function accessRecord(event: AuditEvent, index: number): AccessRecord | undefined {
  const action = subtype(event, SYS.fhirAccess);
  const who = client(event);
  const at = time(event.recorded);
  if (!action || !who || at === undefined) return undefined;
  const entities = event.entity ?? [];
  const detail = details(entities);
  const status = Number(detail.get('http-status'));
  return {
    id: event.id ?? '',
    index,
    at,
    ...who,
    actors: actors(event.agent),
    action,
    ...optional('resourceType', subtype(event, RESOURCE_TYPE_SYSTEM)),
    resources: references(entities, DOMAIN_RESOURCE_ROLE),
    patients: references(entities, PATIENT_ROLE),
    ...optional('contextPatient', detail.get('context-patient')),
    ...optional('hookInstance', identifier(entities, SYS.hookInstance, 'hookInstance')),
    ...optional('service', detail.get('service')),
    declaredTypes: detail.get('declared-types')?.split(',').filter(Boolean) ?? [],
    ...optional('tokenId', identifier(entities, SYS.tokenId, 'token')),
    ...optional('status', Number.isInteger(status) ? status : undefined),
    ...optional('errorCode', event.outcomeDesc),
  };
}

/** A token event record, or undefined when `event` is not one. */
export function tokenRecord(event: AuditEvent, index: number): TokenRecord | undefined {
  const kind = subtype(event, SYS.tokenEvent);
  const who = client(event);
  const at = time(event.recorded);
  if (!kind || !who || at === undefined) return undefined;
  const entities = event.entity ?? [];
  const detail = details(entities);
  return {
    id: event.id ?? '',
    index,
    at,
    event: kind,
    ...who,
    actors: actors(event.agent),
    ...optional('patient', references(entities, PATIENT_ROLE)[0]),
    ...optional('hookInstance', identifier(entities, SYS.hookInstance, 'hookInstance')),
    ...optional('service', detail.get('service')),
    ...optional('tokenId', identifier(entities, SYS.tokenId, 'token')),
    ...optional('subjectTokenId', identifier(entities, SYS.tokenId, 'subject-token')),
    ...optional('expiresAt', time(detail.get('expires'))),
    ...optional('errorCode', event.outcomeDesc),
  };
}
