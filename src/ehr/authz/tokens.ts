/**
 * Access tokens issued outside the OAuth endpoints and the view of any access token as an
 * {@link AccessGrant}:
 *
 * - the `fhirAuthorization` token of one CDS Hooks call (found-20, found-21, found-22): issued to
 *   the CRD server's registered client, bound to the patient in context, read-only
 *   (`patient/<Type>.rs`) for the resource types the service declared and nothing else, living
 *   30 seconds or less;
 * - a token for a given grant (used by the RFC 8693 token exchange);
 * - the resolver: token → `AccessGrant`, failing closed (unknown, expired, revoked, client no
 *   longer registered, grant gone: undefined).
 *
 * Tokens are oidc-provider opaque access tokens: the token is its own storage id, so the audit
 * id is a separate random `tid` kept in the token's `extra` (see {@link TokenExtra}).
 */
import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { AccessGrant } from '../types.js';
import { patientRef, type TokenEvents } from './events.js';
import {
  hookScopes,
  normalizeScope,
  permittedScopes,
  RESOURCE_TYPE,
  splitScopes,
} from './scopes.js';
import { scopePolicy } from './clients.js';
import type { EhrClient, FhirAuthorization, HookTokenInput, TokenExtra } from './types.js';

/** The longest and default lifetime of a hook token (found-22: "SHOULD be ≤ 30 s"). */
export const HOOK_TOKEN_MAX_LIFETIME = 30;
/** The `gty` recorded on hook tokens. */
export const HOOK_GRANT_TYPE = 'fhirAuthorization';

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const PRINTABLE = /^[\x21-\x7e]{1,256}$/;
/** An opaque token of this server: base64url, 256 bits (43 characters) by default. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{20,256}$/;

type StoredToken =
  InstanceType<Provider['AccessToken']> | InstanceType<Provider['ClientCredentials']>;

/** A new audit id for a token. */
export const newTokenId = (): string => randomBytes(16).toString('hex');

/** Everything the token issuers need. */
export interface TokenDeps {
  provider: Provider;
  clients: ReadonlyMap<string, EhrClient>;
  events: TokenEvents;
  fhirUrl: string;
  now: () => Date;
}

function checkHookInput(input: HookTokenInput, deps: TokenDeps): EhrClient {
  const client = deps.clients.get(input.clientId);
  if (!client) throw new TypeError('mintHookToken: "clientId" is not a registered client');
  if (!client.payer) {
    throw new TypeError('mintHookToken: the client is not a CRD server (no "payer")');
  }
  if (!FHIR_ID.test(input.patient ?? '')) {
    throw new TypeError('mintHookToken: "patient" must be a FHIR id');
  }
  if (input.encounter !== undefined && !FHIR_ID.test(input.encounter)) {
    throw new TypeError('mintHookToken: "encounter" must be a FHIR id');
  }
  if (!PRINTABLE.test(input.service ?? '')) {
    throw new TypeError('mintHookToken: "service" is required');
  }
  if (!PRINTABLE.test(input.hookInstance ?? '')) {
    throw new TypeError('mintHookToken: "hookInstance" is required');
  }
  if (
    !Array.isArray(input.declaredTypes) ||
    !input.declaredTypes.every((t) => RESOURCE_TYPE.test(t))
  ) {
    throw new TypeError('mintHookToken: "declaredTypes" must be FHIR resource type names');
  }
  const lifetime = input.lifetimeSeconds ?? HOOK_TOKEN_MAX_LIFETIME;
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > HOOK_TOKEN_MAX_LIFETIME) {
    throw new RangeError('mintHookToken: "lifetimeSeconds" must be an integer in 1..30');
  }
  return client;
}

/** Saves `at`, records its issuance, and withdraws it when the record cannot be written. */
async function saveAudited(
  at: StoredToken,
  deps: TokenDeps,
  client: EhrClient,
  grantType: string,
  expiresIn: number,
): Promise<string> {
  const value = await at.save();
  const extra = (at.extra ?? {}) as TokenExtra;
  try {
    await deps.events.record({
      event: 'issued',
      client: { id: client.clientId, ...(client.name ? { name: client.name } : {}) },
      grantType,
      scopes: splitScopes(at.scope),
      patient: patientRef(extra.patient),
      hookInstance: extra.hookInstance,
      service: extra.service,
      tokenId: extra.tid,
      expiresAt: new Date(Date.now() + expiresIn * 1000),
    });
  } catch (err) {
    await at.destroy();
    throw err;
  }
  return value;
}

/** Mints the `fhirAuthorization` of one hook call. */
export async function mintHookToken(
  input: HookTokenInput,
  deps: TokenDeps,
): Promise<FhirAuthorization> {
  const client = checkHookInput(input, deps);
  const lifetime = input.lifetimeSeconds ?? HOOK_TOKEN_MAX_LIFETIME;
  // found-21: only the declared types, read-only, and only what the client is registered for.
  const requested = hookScopes(input.declaredTypes);
  const scopes = permittedScopes(requested, scopePolicy(client), 'authorization_code');
  if (scopes.length === 0) {
    throw new TypeError("mintHookToken: no declared type is within the client's registered scope");
  }
  const oidcClient = await deps.provider.Client.find(client.clientId);
  if (!oidcClient) throw new TypeError('mintHookToken: "clientId" is not a registered client');
  const extra: TokenExtra = {
    tid: newTokenId(),
    patient: input.patient,
    ...(input.encounter ? { encounter: input.encounter } : {}),
    hookInstance: input.hookInstance,
    service: input.service,
    declaredTypes: [...new Set(input.declaredTypes)],
    payer: client.payer!,
  };
  const at = new deps.provider.AccessToken({
    client: oidcClient,
    gty: HOOK_GRANT_TYPE,
    scope: scopes.join(' '),
    expiresIn: lifetime,
    extra,
  } as unknown as ConstructorParameters<Provider['AccessToken']>[0]);
  at.setAudience(deps.fhirUrl);
  const accessToken = await saveAudited(at, deps, client, HOOK_GRANT_TYPE, lifetime);
  return {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: lifetime,
    scope: scopes.join(' '),
    subject: client.clientId,
    patient: input.patient,
  };
}

/** The `act` claim of an actor chain (current actor first, outermost). */
function actClaim(actors: readonly string[]): TokenExtra['act'] {
  return actors.reduceRight<TokenExtra['act']>(
    (inner, sub) => ({ sub, ...(inner ? { act: inner } : {}) }),
    undefined,
  );
}

/** The actor chain of an `act` claim, current actor first. */
function actorsOf(act: TokenExtra['act']): string[] | undefined {
  const out: string[] = [];
  for (let a = act; a && typeof a.sub === 'string' && out.length < 16; a = a.act) out.push(a.sub);
  return out.length ? out : undefined;
}

/**
 * Issues an access token to `clientId` for `grant` (a token exchange's delegate token), so that
 * the resolver returns that grant. Its lifetime is `grant.expiresAt` from now. Not audited here:
 * the caller records the event (`exchanged`) and revokes the token when it cannot.
 */
export async function issueToken(
  grant: Omit<AccessGrant, 'tokenId' | 'issuedAt'>,
  clientId: string,
  deps: TokenDeps,
  grantType = 'urn:ietf:params:oauth:grant-type:token-exchange',
): Promise<{ access_token: string; expires_in: number; tokenId: string }> {
  const client = deps.clients.get(clientId);
  const oidcClient = client && (await deps.provider.Client.find(clientId));
  if (!client || !oidcClient) {
    throw new TypeError('issueToken: "clientId" is not a registered client');
  }
  // Never later than `expiresAt`: the token's `exp` is that second, rounded down.
  const exp = Math.floor(grant.expiresAt.getTime() / 1000);
  const expiresIn = exp - Math.floor(deps.now().getTime() / 1000);
  if (expiresIn < 1) throw new RangeError('issueToken: "expiresAt" must be in the future');
  if (!grant.audience || !grant.scopes.length) {
    throw new TypeError('issueToken: "audience" and "scopes" are required');
  }
  const act = grant.actors?.length ? actClaim(grant.actors) : undefined;
  const extra: TokenExtra = {
    tid: newTokenId(),
    ...(grant.patient ? { patient: grant.patient } : {}),
    ...(grant.encounter ? { encounter: grant.encounter } : {}),
    ...(grant.hookInstance ? { hookInstance: grant.hookInstance } : {}),
    ...(grant.service ? { service: grant.service } : {}),
    ...(grant.declaredTypes ? { declaredTypes: [...grant.declaredTypes] } : {}),
    ...(grant.payer ? { payer: grant.payer } : {}),
    ...(act ? { act } : {}),
  };
  const at = new deps.provider.AccessToken({
    client: oidcClient,
    gty: grantType,
    scope: grant.scopes.join(' '),
    exp,
    extra,
  } as unknown as ConstructorParameters<Provider['AccessToken']>[0]);
  at.setAudience(grant.audience);
  const accessToken = await at.save();
  return { access_token: accessToken, expires_in: expiresIn, tokenId: extra.tid! };
}

/** Finds a live access token (either kind) by its value. */
export async function findAccessToken(
  provider: Provider,
  token: string,
): Promise<StoredToken | undefined> {
  if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return undefined;
  return (await provider.AccessToken.find(token)) ?? (await provider.ClientCredentials.find(token));
}

/** The grant of `token`, or undefined when it is unknown, expired or revoked (fail closed). */
export async function resolveToken(
  token: string,
  deps: Pick<TokenDeps, 'provider' | 'clients' | 'now'>,
): Promise<AccessGrant | undefined> {
  const at = await findAccessToken(deps.provider, token);
  if (!at || !at.exp || at.exp * 1000 <= deps.now().getTime()) return undefined;
  const client = at.clientId ? deps.clients.get(at.clientId) : undefined;
  if (!client) return undefined;
  const grantId = (at as { grantId?: string }).grantId;
  if (grantId) {
    const grant = await deps.provider.Grant.find(grantId);
    if (!grant || grant.clientId !== at.clientId) return undefined;
  }
  const extra = (at.extra ?? {}) as TokenExtra;
  const audience = Array.isArray(at.aud) ? at.aud[0] : at.aud;
  if (!extra.tid || !audience) return undefined;
  const actors = actorsOf(extra.act);
  const payer = extra.payer ?? client.payer;
  return {
    tokenId: extra.tid,
    clientId: client.clientId,
    ...(client.name ? { clientName: client.name } : {}),
    scopes: splitScopes(at.scope).map(normalizeScope),
    ...(extra.patient ? { patient: extra.patient } : {}),
    ...(extra.encounter ? { encounter: extra.encounter } : {}),
    ...(extra.hookInstance ? { hookInstance: extra.hookInstance } : {}),
    ...(extra.service ? { service: extra.service } : {}),
    ...(extra.declaredTypes ? { declaredTypes: [...extra.declaredTypes] } : {}),
    audience,
    ...(actors ? { actors } : {}),
    ...(payer ? { payer } : {}),
    issuedAt: new Date(at.iat * 1000),
    expiresAt: new Date(at.exp * 1000),
  };
}

/** Revokes `token` at once; records the revocation. Unknown tokens are ignored. */
export async function revokeToken(token: string, deps: TokenDeps): Promise<void> {
  const at = await findAccessToken(deps.provider, token);
  if (!at) return;
  await at.destroy();
  const extra = (at.extra ?? {}) as TokenExtra;
  const client = at.clientId ? deps.clients.get(at.clientId) : undefined;
  await deps.events.record({
    event: 'revoked',
    client: { id: at.clientId ?? 'unknown', ...(client?.name ? { name: client.name } : {}) },
    patient: patientRef(extra.patient),
    hookInstance: extra.hookInstance,
    service: extra.service,
    tokenId: extra.tid,
  });
}
