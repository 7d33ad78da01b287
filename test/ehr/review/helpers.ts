/**
 * Trails for the access review tests, written through the audit store API: a hook call is a
 * token issued for one patient, accesses with that token, and its revocation when the call ends.
 */
import { randomUUID } from 'node:crypto';
import type { AuditStore, FhirAccessAuditInput } from '../../../src/audit/index.js';
import { T0 } from '../../audit/helpers.js';

export const CLIENT = { id: 'payer-crd', name: 'Example Payer' };
export const SERVICE = 'order-sign-crd';
export const DECLARED = ['Patient', 'Coverage', 'ServiceRequest'];
const INSTANCE = 'ehr-test:1';

/** T0 plus `seconds`. */
export const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

/** One hook call's token, as the tests need it. */
export interface HookCall {
  hookInstance: string;
  tokenId: string;
  patient: string;
  /** When the token was issued, in seconds after T0. */
  start: number;
}

/** Records a token issued at `start` (seconds after T0) for a hook call; lives `lifetime` s. */
export async function issue(
  store: AuditStore,
  start: number,
  { patient = 'Patient/p1', lifetime = 30, client = CLIENT } = {},
): Promise<HookCall> {
  const call = { hookInstance: randomUUID(), tokenId: `jti-${randomUUID()}`, patient, start };
  await store.appendToken({
    at: at(start),
    instance: INSTANCE,
    event: 'issued',
    client,
    grantType: 'client_credentials',
    scopes: ['patient/Patient.r', 'patient/Coverage.rs', 'patient/ServiceRequest.r'],
    patient,
    hookInstance: call.hookInstance,
    service: SERVICE,
    tokenId: call.tokenId,
    expiresAt: at(start + lifetime),
  });
  return call;
}

/** A successful read of `reference` with the call's token, `seconds` after T0. */
export function access(
  call: HookCall,
  seconds: number,
  reference: string,
  extra: Partial<FhirAccessAuditInput> = {},
): FhirAccessAuditInput {
  const resourceType = reference.split('/')[0]!;
  return {
    at: at(seconds),
    instance: INSTANCE,
    client: CLIENT,
    action: 'read',
    resourceType,
    resources: [reference],
    contextPatient: call.patient,
    patients: [resourceType === 'Patient' ? reference : call.patient],
    hookInstance: call.hookInstance,
    service: SERVICE,
    declaredTypes: DECLARED,
    tokenId: call.tokenId,
    status: 200,
    outcome: 'success',
    ...extra,
  };
}

/** Records the revocation of the call's token (the hook call ended). */
export async function revoke(store: AuditStore, call: HookCall, seconds: number): Promise<void> {
  await store.appendToken({
    at: at(seconds),
    instance: INSTANCE,
    event: 'revoked',
    client: CLIENT,
    hookInstance: call.hookInstance,
    tokenId: call.tokenId,
  });
}

/**
 * A clean hook call from `start`: token issued, three reads of the declared types for the token's
 * patient within the next seconds, revoked after 5 s (30 s before its expiry).
 */
export async function cleanHookCall(store: AuditStore, start: number): Promise<HookCall> {
  const call = await issue(store, start);
  await store.appendFhirAccess(access(call, start + 1, call.patient));
  await store.appendFhirAccess(
    access(call, start + 2, 'Coverage/c1', { action: 'search', parameters: ['patient'] }),
  );
  await store.appendFhirAccess(access(call, start + 3, 'ServiceRequest/sr1'));
  await revoke(store, call, start + 5);
  return call;
}
