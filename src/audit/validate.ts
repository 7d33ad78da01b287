/**
 * Checks what goes into an audit record. What the caller decides (time, instance, issuer,
 * status, outcome, error code, bodies) must be well formed, or `ERR_AUDIT_INPUT` names the
 * field and nothing is written. What comes from the request (hook, service, hookInstance,
 * patient, orders, coverage-assertion-ids) is kept only when it has the shape of a reference or
 * identifier and dropped otherwise, so a malformed request is still recorded, and no resource
 * content can slip into the trail through those fields.
 */
import { AuditError } from './errors.js';
import type {
  FhirAccessAuditInput,
  HookAuditInput,
  SecurityAuditInput,
  TokenAuditInput,
} from './types.js';

const FHIR_ID = '[A-Za-z0-9\\-.]{1,64}';
const PATIENT_REF = new RegExp(`^Patient/${FHIR_ID}$`);
const RELATIVE_REF = `[A-Z][A-Za-z]{1,63}/${FHIR_ID}(?:/_history/${FHIR_ID})?`;
const RESOURCE_REF = new RegExp(
  `^(?:${RELATIVE_REF}|https?://[\\x21-\\x7e]{1,150}/${RELATIVE_REF}|urn:uuid:[0-9a-f-]{36})$`,
);
const TOKEN = /^[\x21-\x7e]{1,256}$/;
const KINDS = ['auth-refused', 'tls-failure', 'rate-limited', 'replay', 'audit-read'];
const MAX_LIST = 1000;

function fail(field: string): never {
  throw new AuditError('ERR_AUDIT_INPUT', `"${field}"`);
}

function isText(value: unknown, max = 256): value is string {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= max &&
    !/[\x00-\x1f\x7f]/.test(value)
  );
}

function checkText(value: unknown, field: string, max = 256): void {
  if (!isText(value, max)) fail(field);
}

function checkDate(value: unknown, field: string): void {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) fail(field);
}

/** `AB:CD:…` (Node's `fingerprint256`) or hex, as 64 lower-case hex digits; else undefined. */
function certificateHex(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const hex = value.replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

function keep(values: unknown, pattern: RegExp): string[] {
  if (!Array.isArray(values)) return [];
  const kept = values.filter((v): v is string => typeof v === 'string' && pattern.test(v));
  return [...new Set(kept)].slice(0, MAX_LIST);
}

/**
 * The hook call record to write: caller fields checked (`ERR_AUDIT_INPUT` naming the first
 * invalid one), request-derived fields kept only when well formed.
 */
export function cleanHookInput(input: HookAuditInput): HookAuditInput {
  checkDate(input.at, 'at');
  checkText(input.instance, 'instance');
  checkText(input.client?.iss, 'client.iss', 2048);
  if (!Number.isInteger(input.status) || input.status < 100 || input.status > 599) fail('status');
  if (!['success', 'minor-failure', 'serious-failure'].includes(input.outcome)) fail('outcome');
  if (input.errorCode !== undefined && !TOKEN.test(input.errorCode)) fail('errorCode');
  if (input.requestBody !== undefined && !Buffer.isBuffer(input.requestBody)) fail('requestBody');
  if (input.responseBody !== undefined && !Buffer.isBuffer(input.responseBody)) {
    fail('responseBody');
  }
  const certificateSha256 = certificateHex(input.client.certificateSha256);
  return {
    ...input,
    client: {
      iss: input.client.iss,
      ...(isText(input.client.name) ? { name: input.client.name } : {}),
      ...(certificateSha256 ? { certificateSha256 } : {}),
    },
    service: TOKEN.test(input.service) ? input.service : '',
    hook: TOKEN.test(input.hook) ? input.hook : '',
    hookInstance: TOKEN.test(input.hookInstance ?? '') ? input.hookInstance : undefined,
    patient: PATIENT_REF.test(input.patient ?? '') ? input.patient : undefined,
    orders: keep(input.orders, RESOURCE_REF),
    coverageAssertionIds: keep(input.coverageAssertionIds, TOKEN),
    ...(isText(input.destination, 2048) && /^https:\/\//.test(input.destination!)
      ? { destination: input.destination }
      : {}),
    ...(Array.isArray(input.withheld)
      ? {
          withheld: input.withheld
            .filter((w) => RESOURCE_REF.test(w?.reference ?? '') && TOKEN.test(w?.reason ?? ''))
            .slice(0, MAX_LIST)
            .map((w) => ({ reference: w.reference, reason: w.reason })),
        }
      : {}),
  };
}

/** Throws `ERR_AUDIT_INPUT` naming the first invalid field of a security event record. */
export function checkSecurityInput(input: SecurityAuditInput): void {
  checkDate(input.at, 'at');
  checkText(input.instance, 'instance');
  if (!KINDS.includes(input.kind)) fail('kind');
  if (input.client?.iss !== undefined) checkText(input.client.iss, 'client.iss', 2048);
  if (input.source !== undefined) checkText(input.source, 'source');
  if (input.errorCode !== undefined && !TOKEN.test(input.errorCode)) fail('errorCode');
  if (input.detail !== undefined) checkText(input.detail, 'detail', 1000);
  if (input.patient !== undefined && !PATIENT_REF.test(input.patient)) fail('patient');
  if (input.reader !== undefined) checkText(input.reader, 'reader');
}

const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const ACTIONS = ['read', 'search', 'create', 'update', 'capabilities'];
const TOKEN_EVENTS = ['issued', 'exchanged', 'revoked', 'refused', 'launch'];
const OUTCOMES = ['success', 'minor-failure', 'serious-failure'];

function keepTexts(values: unknown, max = 2048): string[] {
  if (!Array.isArray(values)) return [];
  return [...new Set(values.filter((v): v is string => isText(v, max)))].slice(0, MAX_LIST);
}

function optional<T>(ok: boolean, key: string, value: T): Record<string, T> {
  return ok ? { [key]: value } : {};
}

/** The FHIR access record to write: caller fields checked, the rest kept only when well formed. */
export function cleanFhirAccessInput(input: FhirAccessAuditInput): FhirAccessAuditInput {
  checkDate(input.at, 'at');
  checkText(input.instance, 'instance');
  checkText(input.client?.id, 'client.id', 2048);
  if (!ACTIONS.includes(input.action)) fail('action');
  if (!Number.isInteger(input.status) || input.status < 100 || input.status > 599) fail('status');
  if (!OUTCOMES.includes(input.outcome)) fail('outcome');
  if (input.errorCode !== undefined && !TOKEN.test(input.errorCode)) fail('errorCode');
  return {
    at: input.at,
    instance: input.instance,
    client: {
      id: input.client.id,
      ...optional(isText(input.client.name), 'name', input.client.name!),
    },
    actors: keepTexts(input.actors),
    action: input.action,
    ...optional(RESOURCE_TYPE.test(input.resourceType ?? ''), 'resourceType', input.resourceType!),
    resources: keep(input.resources, RESOURCE_REF),
    ...optional(
      PATIENT_REF.test(input.contextPatient ?? ''),
      'contextPatient',
      input.contextPatient!,
    ),
    patients: keep(input.patients, PATIENT_REF),
    ...optional(TOKEN.test(input.hookInstance ?? ''), 'hookInstance', input.hookInstance!),
    ...optional(TOKEN.test(input.service ?? ''), 'service', input.service!),
    declaredTypes: keep(input.declaredTypes, RESOURCE_TYPE),
    ...optional(TOKEN.test(input.tokenId ?? ''), 'tokenId', input.tokenId!),
    parameters: keep(input.parameters, /^[A-Za-z_][\w:.-]{0,63}$/),
    status: input.status,
    outcome: input.outcome,
    ...(input.errorCode ? { errorCode: input.errorCode } : {}),
  };
}

/** The token event record to write, checked like {@link cleanFhirAccessInput}. */
export function cleanTokenInput(input: TokenAuditInput): TokenAuditInput {
  checkDate(input.at, 'at');
  checkText(input.instance, 'instance');
  checkText(input.client?.id, 'client.id', 2048);
  if (!TOKEN_EVENTS.includes(input.event)) fail('event');
  if (input.errorCode !== undefined && !TOKEN.test(input.errorCode)) fail('errorCode');
  if (input.expiresAt !== undefined) checkDate(input.expiresAt, 'expiresAt');
  if (input.audience !== undefined) checkText(input.audience, 'audience', 2048);
  return {
    at: input.at,
    instance: input.instance,
    event: input.event,
    client: {
      id: input.client.id,
      ...optional(isText(input.client.name), 'name', input.client.name!),
    },
    ...optional(TOKEN.test(input.grantType ?? ''), 'grantType', input.grantType!),
    scopes: keep(input.scopes, TOKEN),
    ...optional(PATIENT_REF.test(input.patient ?? ''), 'patient', input.patient!),
    ...optional(TOKEN.test(input.hookInstance ?? ''), 'hookInstance', input.hookInstance!),
    ...optional(TOKEN.test(input.service ?? ''), 'service', input.service!),
    ...(input.audience ? { audience: input.audience } : {}),
    actors: keepTexts(input.actors),
    ...optional(TOKEN.test(input.tokenId ?? ''), 'tokenId', input.tokenId!),
    ...optional(TOKEN.test(input.subjectTokenId ?? ''), 'subjectTokenId', input.subjectTokenId!),
    ...(input.expiresAt ? { expiresAt: input.expiresAt } : {}),
    ...(input.errorCode ? { errorCode: input.errorCode } : {}),
  };
}
