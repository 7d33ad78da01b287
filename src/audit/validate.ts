/**
 * Checks what goes into an audit record. What the caller decides (time, instance, issuer,
 * status, outcome, error code, bodies) must be well formed, or `ERR_AUDIT_INPUT` names the
 * field and nothing is written. What comes from the request (hook, service, hookInstance,
 * patient, orders, coverage-assertion-ids) is kept only when it has the shape of a reference or
 * identifier and dropped otherwise, so a malformed request is still recorded, and no resource
 * content can slip into the trail through those fields.
 */
import { AuditError } from './errors.js';
import type { HookAuditInput, SecurityAuditInput } from './types.js';

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
