/**
 * What the server adds around oidc-provider's endpoints (one Koa middleware and a few event
 * listeners):
 *
 * - token endpoint: the SMART launch context (`patient`, `encounter`, `fhirContext`,
 *   `appContext`) joins the token response; each issuance is audited, and when its record
 *   cannot be written the new tokens are withdrawn and the answer is 503
 *   `temporarily_unavailable` (fail-closed);
 * - introspection: only RFC 7662 members are returned (internal ids and context stay inside),
 *   and a token past its `exp` is inactive at once, without clock tolerance;
 * - revocation: each revoked token is audited;
 * - every refused request (any endpoint) is audited with its OAuth error code and logged with
 *   oidc-provider's fixed explanation.
 *
 * RFC 8693 token exchange requests are audited by their own module (`token-exchange.ts`); only
 * their failed client authentication is recorded here.
 */
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import { patientRef, UNKNOWN_CLIENT, type TokenEvents } from './events.js';
import { splitScopes } from './scopes.js';
import type { EhrClient, TokenExtra } from './types.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const GRANT_TYPES = ['authorization_code', 'client_credentials', 'refresh_token', TOKEN_EXCHANGE];
/** RFC 7662 section 2.2 members. */
const INTROSPECTION_MEMBERS = [
  'active',
  'scope',
  'client_id',
  'username',
  'token_type',
  'exp',
  'iat',
  'nbf',
  'sub',
  'aud',
  'iss',
  'jti',
];
const ERROR_EVENTS = [
  'grant.error',
  'authorization.error',
  'introspection.error',
  'revocation.error',
] as const;
const DESTROYED_EVENTS = [
  'access_token.destroyed',
  'client_credentials.destroyed',
  'refresh_token.destroyed',
] as const;

type Ctx = KoaContextWithOIDC;
type OAuthError = Error & { error?: string; error_description?: string; error_detail?: string };
type Token = { clientId?: string; extra?: unknown; kind: string; destroy(): Promise<void> };

/** Wires the middleware and listeners on `provider`. */
export function observeEndpoints(
  provider: Provider,
  clients: ReadonlyMap<string, EhrClient>,
  events: TokenEvents,
  externalIds?: (payer: string, type: string, id: string) => string,
): void {
  const refusals = new WeakMap<object, OAuthError>();
  const destroyed = new WeakMap<object, Token[]>();
  for (const name of ERROR_EVENTS) {
    provider.on(name as 'grant.error', (ctx: Ctx, err: OAuthError) => refusals.set(ctx, err));
  }
  for (const name of DESTROYED_EVENTS) {
    provider.on(name as 'access_token.destroyed', (token: unknown) => {
      const ctx = Provider.ctx;
      if (ctx) destroyed.set(ctx, [...(destroyed.get(ctx) ?? []), token as Token]);
    });
  }
  provider.on('server_error', (_ctx: Ctx, err: Error) => {
    events.logger.error({ err: { name: err.name } }, 'authorization server error');
  });

  const clientOf = (ctx: Ctx) => {
    const id = ctx.oidc.client?.clientId;
    const client = id ? clients.get(id) : undefined;
    return client
      ? { id: client.clientId, ...(client.name ? { name: client.name } : {}) }
      : { id: UNKNOWN_CLIENT };
  };

  async function afterToken(ctx: Ctx): Promise<void> {
    const body = ctx.body as Record<string, unknown> | undefined;
    const grantType = ctx.oidc.params?.grant_type as string | undefined;
    if (ctx.status !== 200 || !body?.access_token || grantType === TOKEN_EXCHANGE) return;
    const { AccessToken, ClientCredentials, RefreshToken } = ctx.oidc.entities;
    const at = AccessToken ?? ClientCredentials;
    const extra = (at?.extra ?? {}) as TokenExtra;
    for (const key of ['patient', 'encounter', 'fhirContext', 'appContext'] as const) {
      if (extra[key] !== undefined) body[key] = extra[key];
    }
    // sec-7: a payer's app sees the payer's ids, as the FHIR API will answer it.
    const payer = clients.get(String(ctx.oidc.client?.clientId))?.payer;
    if (payer && externalIds) {
      const map = (type: string, id: unknown) =>
        typeof id === 'string' ? externalIds(payer, type, id) : id;
      if (extra.patient) body.patient = map('Patient', extra.patient);
      if (extra.encounter) body.encounter = map('Encounter', extra.encounter);
      if (extra.fhirContext) {
        body.fhirContext = extra.fhirContext.map((item) => {
          const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})$/.exec(item.reference ?? '');
          return m ? { ...item, reference: `${m[1]}/${map(m[1]!, m[2]!) as string}` } : item;
        });
      }
    }
    try {
      await events.record({
        event: 'issued',
        client: clientOf(ctx),
        grantType,
        scopes: splitScopes(at?.scope),
        patient: patientRef(extra.patient),
        tokenId: extra.tid,
        ...(typeof body.expires_in === 'number'
          ? { expiresAt: new Date(Date.now() + body.expires_in * 1000) }
          : {}),
      });
    } catch {
      // Fail closed: no token leaves without its audit record.
      await Promise.all([at?.destroy(), body.refresh_token ? RefreshToken?.destroy() : undefined]);
      ctx.status = 503;
      ctx.body = {
        error: 'temporarily_unavailable',
        error_description: 'the audit trail is unavailable; retry later',
      };
    }
  }

  function afterIntrospection(ctx: Ctx): void {
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.status !== 200 || !body || body.active !== true) return;
    if (typeof body.exp !== 'number' || body.exp * 1000 <= Date.now()) {
      ctx.body = { active: false };
      return;
    }
    ctx.body = Object.fromEntries(
      Object.entries(body).filter(([k, v]) => INTROSPECTION_MEMBERS.includes(k) && v !== undefined),
    );
  }

  async function afterRevocation(ctx: Ctx): Promise<void> {
    for (const token of destroyed.get(ctx) ?? []) {
      const extra = (token.extra ?? {}) as TokenExtra;
      try {
        await events.record({
          event: 'revoked',
          client: clientOf(ctx),
          grantType: token.kind === 'RefreshToken' ? 'refresh_token' : undefined,
          patient: patientRef(extra.patient),
          hookInstance: extra.hookInstance,
          service: extra.service,
          tokenId: extra.tid,
        });
      } catch {
        events.logger.error({ route: 'revocation' }, 'the audit record of a revocation failed');
      }
    }
  }

  async function afterRefusal(ctx: Ctx, err: OAuthError): Promise<void> {
    const grantType = ctx.oidc.params?.grant_type as string | undefined;
    // Token exchange audits its own refusals, except failed client authentication.
    if (grantType === TOKEN_EXCHANGE && err.error !== 'invalid_client') return;
    await events.refused(
      {
        client: clientOf(ctx),
        ...(grantType && GRANT_TYPES.includes(grantType) ? { grantType } : {}),
        errorCode: err.error ?? 'invalid_request',
      },
      err.error_detail ?? err.error_description,
    );
  }

  provider.use(async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as Ctx;
    const route = (koaCtx as Partial<Ctx>).oidc?.route;
    if (!route) return;
    const refusal = refusals.get(ctx);
    if (refusal) await afterRefusal(ctx, refusal);
    else if (route === 'token') await afterToken(ctx);
    else if (route === 'introspection') afterIntrospection(ctx);
    else if (route === 'revocation') await afterRevocation(ctx);
  });
}
