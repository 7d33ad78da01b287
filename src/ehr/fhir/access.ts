/**
 * Who is asking and what they may see: the bearer token resolved to its grant, the grant's
 * scopes and patient applied to each resource, and the one audit record (sec-8) every request
 * leaves, allowed or refused.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { FastifyRequest } from 'fastify';
import type { AuditStore, FhirAccessAuditInput } from '../../audit/index.js';
import { PATIENT_COMPARTMENT_TYPES, patientOf, patientsIn } from '../store/compartment.js';
import type { AccessGrant, TokenResolver } from '../types.js';
import { FhirApiError } from './errors.js';
import type { IdView } from './id-view.js';
import { allowed, type Permission } from './scopes.js';

/** What one request has done so far, for its audit record and its log line. */
export interface Access {
  at: Date;
  grant?: AccessGrant;
  view?: IdView;
  /** An `Authorization` header was sent (a refusal without a grant is a security event). */
  tokenSent: boolean;
  action?: FhirAccessAuditInput['action'];
  interaction?: string;
  resourceType?: string;
  /** Internal references of what was returned, written or refused. */
  resources: string[];
  /** Internal patient ids touched or asked for. */
  patients: Set<string>;
  /** Search parameter names (never values). */
  parameters: string[];
}

/** A new, empty access record for a request received at `at`. */
export function newAccess(at: Date): Access {
  return { at, tokenSent: false, resources: [], patients: new Set(), parameters: [] };
}

const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;
const MAX_TOKEN_LENGTH = 8192;
const trimSlash = (url: string) => url.replace(/\/+$/, '');

/**
 * Resolves the request's bearer token and checks the grant: unexpired, and issued for this FHIR
 * base URL. A delegate token (RFC 8693, `actors` set) for a downstream audience is refused here
 * like any other token for another audience (sec-9).
 */
export async function authenticate(
  req: FastifyRequest,
  access: Access,
  resolver: TokenResolver,
  baseUrl: string,
  now: Date,
): Promise<AccessGrant> {
  const names = req.raw.rawHeaders.filter((_, i) => i % 2 === 0);
  const count = names.filter((h) => /^authorization$/i.test(h)).length;
  if (count === 0) throw new FhirApiError('ERR_TOKEN_MISSING');
  access.tokenSent = true;
  if (count > 1) throw new FhirApiError('ERR_TOKEN_INVALID', 'several "Authorization" headers');
  const header = req.headers.authorization ?? '';
  const m = BEARER.exec(header);
  if (!m || m[1]!.length > MAX_TOKEN_LENGTH) throw new FhirApiError('ERR_TOKEN_INVALID');
  let grant: AccessGrant | undefined;
  try {
    grant = await resolver.resolve(m[1]!);
  } catch {
    throw new FhirApiError('ERR_TOKEN_CHECK');
  }
  if (!grant) throw new FhirApiError('ERR_TOKEN_INVALID');
  access.grant = grant;
  if (!(grant.expiresAt instanceof Date) || grant.expiresAt.getTime() <= now.getTime()) {
    throw new FhirApiError('ERR_TOKEN_INVALID');
  }
  if (trimSlash(grant.audience ?? '') !== trimSlash(baseUrl)) {
    throw new FhirApiError('ERR_TOKEN_AUDIENCE');
  }
  return grant;
}

/**
 * How far the grant reaches for `permission` on `type`: every patient, or only the grant's
 * patient. Refused with 403 when no scope allows it, or when only `patient/` scopes do and the
 * grant names no patient.
 */
export function reach(
  grant: AccessGrant,
  type: string,
  permission: Permission,
): { patient?: string } {
  const how = allowed(grant.scopes, type, permission);
  if (!how) throw new FhirApiError('ERR_SCOPE');
  if (how === 'all') return {};
  if (!grant.patient) throw new FhirApiError('ERR_PATIENT', 'the token names no patient');
  return { patient: grant.patient };
}

/**
 * Whether a resource is within reach: with a patient restriction, it must be that patient's or,
 * for types outside the patient compartment (Practitioner, Organization, Location, Medication,
 * a Device not assigned to anyone), nobody's.
 */
export function visible(resource: Resource, limit: { patient?: string }): boolean {
  if (limit.patient === undefined) return true;
  const owner = patientOf(resource);
  if (owner !== undefined) return owner === limit.patient;
  return !PATIENT_COMPARTMENT_TYPES.has(resource.resourceType);
}

/** Notes a resource as returned, written or refused (internal reference and its patients). */
export function touch(access: Access, resource: Resource): void {
  access.resources.push(`${resource.resourceType}/${resource.id}`);
  for (const p of patientsIn(resource)) access.patients.add(p);
}

const outcomeOf = (status: number): FhirAccessAuditInput['outcome'] =>
  status < 400 ? 'success' : status < 500 ? 'minor-failure' : 'serious-failure';

/**
 * Writes the request's audit record before its answer is sent: a FHIR access record when the
 * token resolved to a grant, a security event (`auth-refused`) when a token was sent and did
 * not (or none was sent where one is required). An anonymous `metadata` request leaves none. Throws `AuditUnavailableError` when the trail
 * cannot be written: the caller answers 503 (fail closed).
 */
export async function recordAccess(
  audit: AuditStore,
  instance: string,
  req: FastifyRequest,
  access: Access,
  status: number,
  errorCode?: string,
): Promise<void> {
  const grant = access.grant;
  if (!grant) {
    // Only a refused token is a security event; an anonymous `metadata` read is public.
    if (!access.tokenSent && status !== 401) return;
    await audit.appendSecurity({
      at: access.at,
      instance,
      kind: 'auth-refused',
      ...(req.ip ? { source: req.ip } : {}),
      errorCode: errorCode ?? `HTTP_${status}`,
      detail: 'EHR FHIR API',
    });
    return;
  }
  await audit.appendFhirAccess({
    at: access.at,
    instance,
    client: { id: grant.clientId, ...(grant.clientName ? { name: grant.clientName } : {}) },
    ...(grant.actors?.length ? { actors: grant.actors } : {}),
    action: access.action ?? 'read',
    ...(access.resourceType ? { resourceType: access.resourceType } : {}),
    resources: [...new Set(access.resources)],
    ...(grant.patient ? { contextPatient: `Patient/${grant.patient}` } : {}),
    patients: [...access.patients].map((p) => `Patient/${p}`),
    ...(grant.hookInstance ? { hookInstance: grant.hookInstance } : {}),
    ...(grant.service ? { service: grant.service } : {}),
    ...(grant.declaredTypes ? { declaredTypes: grant.declaredTypes } : {}),
    tokenId: grant.tokenId,
    parameters: [...new Set(access.parameters)],
    status,
    outcome: outcomeOf(status),
    ...(errorCode ? { errorCode } : {}),
  });
}
