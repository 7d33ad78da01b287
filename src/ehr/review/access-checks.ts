/**
 * The checks of one access against the token it used (sec-8): another patient, a type the
 * service never declared, use after the hook call ended, a refusal, a token never issued.
 */
import { isAfter, type TokenEnd, type TokenIndex } from './tokens.js';
import type { AccessRecord, Finding, FindingKind } from './types.js';

/** Statuses that mean the FHIR API refused the request (authentication, scope, patient, rate). */
const REFUSED = new Set([401, 403, 429]);

/** What a check may use besides the access itself. */
export interface AccessContext {
  tokens: TokenIndex;
  /** Whether the trail read reaches back far enough to hold this access's token issuance. */
  covered(access: AccessRecord): boolean;
}

/** The finding of `kind` about one access, with the fields every access finding carries. */
export function accessFinding(
  access: AccessRecord,
  tokens: TokenIndex,
  kind: FindingKind,
  references: string[],
  detail: string,
): Finding {
  const hookInstance =
    access.hookInstance ?? (access.tokenId ? tokens.hookInstance(access.tokenId) : undefined);
  return {
    kind,
    at: new Date(access.at).toISOString(),
    client: access.client,
    ...(access.clientName ? { clientName: access.clientName } : {}),
    actors: access.actors,
    ...(hookInstance ? { hookInstance } : {}),
    ...(access.tokenId ? { tokenId: access.tokenId } : {}),
    accessId: access.id,
    action: access.action,
    ...(access.resourceType ? { resourceType: access.resourceType } : {}),
    ...(access.status !== undefined ? { status: access.status } : {}),
    ...(access.errorCode ? { errorCode: access.errorCode } : {}),
    references,
    detail,
  };
}

const isSuccess = (access: AccessRecord) =>
  access.status !== undefined && access.status >= 200 && access.status < 300;

function outcome(access: AccessRecord): string {
  const status = access.status === undefined ? 'status unknown' : String(access.status);
  if (isSuccess(access)) return `answered ${status}`;
  return `refused ${status}${access.errorCode ? ` ${access.errorCode}` : ''}`;
}

/** `Coverage/1` of `Coverage/1`, `https://x/fhir/Coverage/1/_history/2`; undefined for urn:uuid. */
function relative(reference: string): [type: string, id: string] | undefined {
  const path = reference.replace(/\/_history\/[^/]+$/, '').split('/');
  const [type, id] = path.slice(-2);
  return type && id && /^[A-Z][A-Za-z]+$/.test(type) ? [type, id] : undefined;
}

/** The resource type of a reference (`Coverage` of `Coverage/1`), if it names one. */
export function referenceType(reference: string): string | undefined {
  return relative(reference)?.[0];
}

/** The patients an access returned or asked for (its patients and its `Patient/…` resources). */
export function patientsOf(access: AccessRecord): string[] {
  const asked = access.resources
    .map(relative)
    .filter((r) => r?.[0] === 'Patient')
    .map((r) => `Patient/${r![1]}`);
  return [...new Set([...access.patients, ...asked])];
}

function otherPatient(access: AccessRecord, ctx: AccessContext): Finding | undefined {
  const token = access.tokenId ? ctx.tokens.get(access.tokenId) : undefined;
  const bound = access.contextPatient ?? token?.patient;
  if (!bound) return undefined;
  const others = patientsOf(access).filter((p) => p !== bound);
  if (!others.length) return undefined;
  const verb = isSuccess(access) ? 'returned data of' : 'asked for';
  const text = `${verb} ${others.join(', ')}; the token is bound to ${bound} (${outcome(access)})`;
  return accessFinding(access, ctx.tokens, 'other-patient', others, text);
}

function undeclaredType(access: AccessRecord, ctx: AccessContext): Finding | undefined {
  if (!access.declaredTypes.length) return undefined;
  const types = new Set(access.resourceType ? [access.resourceType] : []);
  for (const reference of access.resources) {
    const type = referenceType(reference);
    if (type) types.add(type);
  }
  const undeclared = [...types].filter((t) => !access.declaredTypes.includes(t));
  if (!undeclared.length) return undefined;
  const refs = access.resources.filter((r) => undeclared.includes(referenceType(r) ?? ''));
  const service = access.service ? `service ${access.service}` : 'the service';
  const text =
    `${undeclared.join(', ')} not declared in the prefetch of ${service} ` +
    `(declared: ${access.declaredTypes.join(', ')}; ${outcome(access)})`;
  return accessFinding(access, ctx.tokens, 'undeclared-type', refs, text);
}

const END_TEXT: Record<TokenEnd['reason'], string> = {
  revoked: 'after the token was revoked',
  expired: 'after the token expired',
  'hook-ended': 'after the hook call ended',
  'subject-revoked': 'after the token it was exchanged from was revoked',
};

function afterHook(access: AccessRecord, ctx: AccessContext): Finding | undefined {
  if (!access.tokenId) return undefined;
  const end = ctx.tokens.end(access.tokenId);
  if (!end || !isAfter(access.at, access.index, end)) return undefined;
  const seconds = ((access.at - end.at) / 1000).toFixed(1);
  const text = `${seconds} s ${END_TEXT[end.reason]} at ${new Date(end.at).toISOString()} (${outcome(access)})`;
  return accessFinding(access, ctx.tokens, 'after-hook', access.resources, text);
}

function refused(access: AccessRecord, ctx: AccessContext): Finding | undefined {
  if (access.status === undefined || !REFUSED.has(access.status)) return undefined;
  const what = access.resourceType ? `${access.action} ${access.resourceType}` : access.action;
  const text = `${what} ${outcome(access)}${access.errorCode ? '' : ' (no error code recorded)'}`;
  return accessFinding(access, ctx.tokens, 'refused', access.resources, text);
}

function unknownToken(access: AccessRecord, ctx: AccessContext): Finding | undefined {
  if (!access.tokenId) {
    // A data access answered without any token in its record should not exist.
    if (!isSuccess(access) || access.action === 'capabilities') return undefined;
    const text = `${outcome(access)} with no token recorded`;
    return accessFinding(access, ctx.tokens, 'unknown-token', access.resources, text);
  }
  if (ctx.tokens.get(access.tokenId) || !ctx.covered(access)) return undefined;
  const text = `token ${access.tokenId} was never issued in the trail (${outcome(access)})`;
  return accessFinding(access, ctx.tokens, 'unknown-token', access.resources, text);
}

const CHECKS = [otherPatient, undeclaredType, afterHook, refused, unknownToken];

/** Every finding about one access. */
export function checkAccess(access: AccessRecord, ctx: AccessContext): Finding[] {
  return CHECKS.map((check) => check(access, ctx)).filter((f): f is Finding => !!f);
}
