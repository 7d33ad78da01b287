/**
 * RFC 8693 token exchange at the EHR's authorization server (sec-9): a payer's CRD server never
 * forwards the EHR's access token to another system; it exchanges it here for a delegate token
 * for one named downstream service, run by the payer itself or by a business associate of the
 * payer. The delegate token is narrower than (or equal to) the subject token, lives no longer,
 * names its actor chain (`act`, nested) and is audited like every other token event.
 *
 * Registered as an oidc-provider 9 custom grant: oidc-provider authenticates the client (any
 * method the client is registered with) and checks that the client may use this grant type; this
 * module checks the rest.
 *
 * Chains. A delegate token can be exchanged again only by the downstream service holding it
 * (its current actor), and only when that service is itself a registered OAuth client of this
 * server ({@link DelegateAudience.clientId}); the new audience must again be allowed for the
 * subject's payer and not already in the chain, and the chain is at most
 * {@link TokenExchangeOptions.maxChainLength} actors long (default 2). The client a delegate
 * token was issued to cannot exchange it (it holds the original token and can exchange that).
 *
 * Audit. Every request with this grant type that oidc-provider let through client
 * authentication is one `appendToken` record: `exchanged` or `refused` (with the OAuth error
 * code). Refusals raised by oidc-provider before the handler (duplicate parameters, grant type
 * not allowed for the client, bad scope characters) are recorded from its `grant.error` event;
 * `invalid_client` is left to the authorization server's own audit of client authentication.
 * When the record of a granted exchange cannot be written, no token is returned (503
 * `temporarily_unavailable`) and the issued one is revoked through `revoke` when given.
 */
import { errors, type KoaContextWithOIDC, type Provider } from 'oidc-provider';
import type { AuditStore, TokenAuditInput } from '../../audit/types.js';
import type { AccessGrant } from '../types.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** The only token type accepted as `subject_token_type` and issued (`issued_token_type`). */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** A downstream service a delegate token may be issued for (the `audience` of an exchange). */
export interface DelegateAudience {
  /** The downstream service's identifier (URL), as sent in `audience`. */
  audience: string;
  /** The `act.sub` to record (default: `audience`). */
  actor?: string;
  /** The organisation that runs it. */
  organization: string;
  relationship: 'same-organization' | 'business-associate';
  /** For `business-associate`: the organisations (payer ids) it has a BAA with. */
  associates?: string[];
  /**
   * The OAuth client id this service has at this authorization server, if it is registered.
   * Only then may it exchange a delegate token it holds once more (the chain continues).
   */
  clientId?: string;
}

export interface TokenExchangeOptions {
  /** The FHIR API's base URL: the default and only accepted `resource` of the new token. */
  fhirBaseUrl: string;
  /** The grant of an active access token; undefined when unknown, expired or revoked. */
  resolveSubject: (token: string) => Promise<AccessGrant | undefined>;
  /** Issues and stores the delegate token so that `TokenResolver.resolve` returns `grant`. */
  issue: (
    grant: Omit<AccessGrant, 'tokenId' | 'issuedAt'>,
    clientId: string,
  ) => Promise<{ access_token: string; expires_in: number; tokenId: string }>;
  /** Revokes an issued token whose audit record could not be written (recommended). */
  revoke?: (tokenId: string) => Promise<void>;
  audiences: DelegateAudience[];
  audit?: AuditStore;
  /** This instance's id, for the audit records. */
  instance: string;
  now?: () => Date;
  /** Upper bound of a delegate token's lifetime in seconds (default 300). */
  maxLifetimeSeconds?: number;
  /** Longest `act` chain a delegate token may carry (default 2: one re-exchange). */
  maxChainLength?: number;
}

/** The parameters of the grant (all single-valued: oidc-provider refuses duplicates). */
interface ExchangeParams {
  subject_token?: string;
  subject_token_type?: string;
  actor_token?: string;
  actor_token_type?: string;
  requested_token_type?: string;
  audience?: string;
  resource?: string;
}

const PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'requested_token_type',
  'audience',
  'resource',
  'scope',
] as const;

type OAuthCode =
  'invalid_request' | 'invalid_grant' | 'invalid_target' | 'invalid_scope' | 'unauthorized_client';

/** An OAuth refusal: `{ error, error_description }` with a fixed text (never a token). */
function refusal(code: OAuthCode, description: string): errors.OIDCProviderError {
  return new errors.CustomOIDCProviderError(code, description);
}

/** Providers the grant is registered on (a second registration would audit twice). */
const registered = new WeakSet<Provider>();

/** Errors this module has already recorded, so the `grant.error` listener skips them. */
const audited = new WeakSet<object>();

const SMART_V2 = /^(patient|user|system)\/([A-Za-z]+|\*)\.([a-z*]+)(\?\S*)?$/;
const V1_PERMS: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };

interface SmartScope {
  context: string;
  type: string;
  perms: string;
  query: string;
}

/** A SMART resource scope in v2 form (v1 `read`/`write`/`*` normalised), else undefined. */
function parseSmart(scope: string): SmartScope | undefined {
  const m = SMART_V2.exec(scope);
  if (!m) return undefined;
  const raw = m[3]!;
  const perms = V1_PERMS[raw] ?? raw;
  if (!/^c?r?u?d?s?$/.test(perms) || perms === '') return undefined;
  return { context: m[1]!, type: m[2]!, perms, query: m[4] ?? '' };
}

function smartText(s: SmartScope): string {
  return `${s.context}/${s.type}.${s.perms}${s.query}`;
}

/** Whether `requested` allows nothing that `granted` does not. */
function covers(granted: string, requested: string): boolean {
  if (granted === requested) return true;
  const g = parseSmart(granted);
  const r = parseSmart(requested);
  if (!g || !r) return false;
  return (
    g.context === r.context &&
    (g.type === '*' || g.type === r.type) &&
    [...r.perms].every((p) => g.perms.includes(p)) &&
    (g.query === '' || g.query === r.query)
  );
}

/** The scopes of the new token: `requested` when every one is covered by `subject`. */
function narrowScopes(subject: string[], requested: string | undefined): string[] {
  if (requested === undefined) return [...subject];
  const wanted = requested.split(' ').filter(Boolean);
  if (wanted.length === 0) throw refusal('invalid_scope', 'scope is empty');
  const out: string[] = [];
  for (const scope of wanted) {
    if (!subject.some((g) => covers(g, scope))) {
      throw refusal('invalid_scope', 'requested scope exceeds the subject token');
    }
    const smart = parseSmart(scope);
    const text = smart ? smartText(smart) : scope;
    if (!out.includes(text)) out.push(text);
  }
  return out;
}

const stripSlash = (url: string): string => url.replace(/\/+$/, '');

/** The audience as recorded in the audit trail: a printable URL of sane length, else nothing. */
function auditableAudience(value: unknown): string | undefined {
  return typeof value === 'string' && /^[\x21-\x7e]{1,2048}$/.test(value) && URL.canParse(value)
    ? value
    : undefined;
}

function checkOptions(options: TokenExchangeOptions): void {
  if (!URL.canParse(options.fhirBaseUrl) || !options.fhirBaseUrl.startsWith('https://')) {
    throw new TypeError('registerTokenExchange: "fhirBaseUrl" must be an https URL');
  }
  if (!options.instance) throw new TypeError('registerTokenExchange: "instance" is required');
  const seen = new Set<string>();
  for (const a of options.audiences) {
    if (!a.audience || !URL.canParse(a.audience) || seen.has(a.audience)) {
      throw new TypeError(
        'registerTokenExchange: each "audiences[].audience" must be a unique URL',
      );
    }
    seen.add(a.audience);
    if (!a.organization) {
      throw new TypeError('registerTokenExchange: "audiences[].organization" is required');
    }
    if (a.relationship !== 'same-organization' && a.relationship !== 'business-associate') {
      throw new TypeError('registerTokenExchange: "audiences[].relationship" is invalid');
    }
  }
  for (const [name, value] of [
    ['maxLifetimeSeconds', options.maxLifetimeSeconds],
    ['maxChainLength', options.maxChainLength],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new TypeError(`registerTokenExchange: "${name}" must be a positive integer`);
    }
  }
}

/** Registers the RFC 8693 grant on `provider`. Clients need it in their `grant_types`. */
export function registerTokenExchange(provider: Provider, options: TokenExchangeOptions): void {
  checkOptions(options);
  if (registered.has(provider)) {
    throw new TypeError('registerTokenExchange: the grant is already registered on this provider');
  }
  registered.add(provider);
  const now = options.now ?? (() => new Date());
  const fhirBase = stripSlash(options.fhirBaseUrl);
  const maxLifetimeMs = (options.maxLifetimeSeconds ?? 300) * 1000;
  const maxChain = options.maxChainLength ?? 2;
  const byAudience = new Map(options.audiences.map((a) => [a.audience, a]));
  const actorOf = (a: DelegateAudience): string => a.actor ?? a.audience;

  const record = async (input: Omit<TokenAuditInput, 'at' | 'instance'>): Promise<void> => {
    if (options.audit) {
      await options.audit.appendToken({ at: now(), instance: options.instance, ...input });
    }
  };

  provider.registerGrantType<ExchangeParams>(
    TOKEN_EXCHANGE_GRANT,
    async (ctx) => {
      const params = ctx.oidc.params;
      const client = ctx.oidc.client;
      const who = {
        id: client.clientId,
        ...(client.clientName ? { name: client.clientName } : {}),
      };
      // What is known so far, for the record of a refusal.
      const known: Omit<TokenAuditInput, 'at' | 'instance' | 'event' | 'client'> = {
        grantType: TOKEN_EXCHANGE_GRANT,
        ...(auditableAudience(params.audience) ? { audience: params.audience! } : {}),
        // The scopes asked for (recorded when refused); replaced by those granted.
        ...(params.scope ? { scopes: params.scope.split(' ').filter(Boolean) } : {}),
      };
      try {
        const subjectToken = check(params);
        const subject = await options.resolveSubject(subjectToken);
        if (!subject) throw refusal('invalid_grant', 'subject_token is not active');
        Object.assign(known, {
          subjectTokenId: subject.tokenId,
          scopes: known.scopes ?? subject.scopes,
          ...(subject.patient ? { patient: `Patient/${subject.patient}` } : {}),
          ...(subject.hookInstance ? { hookInstance: subject.hookInstance } : {}),
          ...(subject.service ? { service: subject.service } : {}),
          ...(subject.actors?.length ? { actors: subject.actors } : {}),
        });
        const at = now();
        if (subject.expiresAt.getTime() - at.getTime() < 1000) {
          throw refusal('invalid_grant', 'subject_token is not active');
        }
        if (stripSlash(subject.audience) !== fhirBase) {
          throw refusal('invalid_grant', 'subject_token is not for this FHIR server');
        }
        const chain = subject.actors ?? [];
        if (chain.length === 0) {
          if (subject.clientId !== client.clientId) {
            throw refusal('invalid_grant', 'subject_token was issued to another client');
          }
        } else {
          // A delegate token: only its current actor, registered as a client, may exchange it.
          const holder = options.audiences.find(
            (a) => actorOf(a) === chain[0] && a.clientId === client.clientId,
          );
          if (!holder) {
            throw refusal('invalid_grant', 'subject_token was issued to another client');
          }
        }
        if (!subject.payer) {
          throw refusal('unauthorized_client', 'only tokens issued to payers may be exchanged');
        }
        const target = byAudience.get(params.audience!);
        if (!target) throw refusal('invalid_target', 'audience is not a registered service');
        const allowed =
          target.organization === subject.payer ||
          (target.relationship === 'business-associate' &&
            (target.associates ?? []).includes(subject.payer));
        if (!allowed) {
          throw refusal(
            'invalid_target',
            'audience is not run by the payer or a business associate of the payer',
          );
        }
        const actor = actorOf(target);
        if (chain.includes(actor)) {
          throw refusal('invalid_target', 'audience is already in the actor chain');
        }
        const actors = [actor, ...chain];
        known.actors = actors;
        if (actors.length > maxChain) {
          throw refusal('invalid_grant', 'the actor chain may not grow any longer');
        }
        const scopes = narrowScopes(subject.scopes, params.scope);
        known.scopes = scopes;
        const expiresAt = new Date(
          Math.min(subject.expiresAt.getTime(), at.getTime() + maxLifetimeMs),
        );
        const grant: Omit<AccessGrant, 'tokenId' | 'issuedAt'> = {
          clientId: client.clientId,
          ...(client.clientName ? { clientName: client.clientName } : {}),
          scopes,
          ...(subject.patient !== undefined ? { patient: subject.patient } : {}),
          ...(subject.encounter !== undefined ? { encounter: subject.encounter } : {}),
          ...(subject.hookInstance !== undefined ? { hookInstance: subject.hookInstance } : {}),
          ...(subject.service !== undefined ? { service: subject.service } : {}),
          ...(subject.declaredTypes ? { declaredTypes: [...subject.declaredTypes] } : {}),
          audience: options.fhirBaseUrl,
          actors,
          payer: subject.payer,
          expiresAt,
        };
        const issued = await options.issue(grant, client.clientId);
        try {
          await record({
            ...known,
            event: 'exchanged',
            client: who,
            tokenId: issued.tokenId,
            expiresAt,
          });
        } catch {
          if (options.revoke) await options.revoke(issued.tokenId).catch(() => undefined);
          const err = new errors.OIDCProviderError(503, 'temporarily_unavailable');
          err.error_description = 'the audit trail could not be written; no token was issued';
          err.expose = true;
          audited.add(err);
          throw err;
        }
        const remaining = Math.floor((expiresAt.getTime() - at.getTime()) / 1000);
        ctx.set('pragma', 'no-cache');
        ctx.body = {
          access_token: issued.access_token,
          issued_token_type: ACCESS_TOKEN_TYPE,
          token_type: 'Bearer',
          expires_in: Math.max(1, Math.min(issued.expires_in, remaining)),
          scope: scopes.join(' '),
        };
      } catch (err) {
        if (err instanceof Error && !audited.has(err)) {
          audited.add(err);
          const code = (err as Partial<errors.OIDCProviderError>).expose
            ? (err as errors.OIDCProviderError).error
            : 'server_error';
          // A refusal stands even when its record cannot be written: nothing was issued.
          await record({ ...known, event: 'refused', client: who, errorCode: code }).catch(
            () => undefined,
          );
        }
        throw err;
      }
    },
    PARAMETERS,
  );

  // Refusals raised by oidc-provider before the handler ran, for an authenticated client.
  provider.on('grant.error', (ctx: KoaContextWithOIDC, err: errors.OIDCProviderError) => {
    if (audited.has(err) || err.error === 'invalid_client') return;
    const oidc = ctx.oidc as KoaContextWithOIDC['oidc'] | undefined;
    const params = oidc?.params as Record<string, unknown> | undefined;
    const client = oidc?.client;
    if (!client || params?.grant_type !== TOKEN_EXCHANGE_GRANT) return;
    const audience = auditableAudience(params.audience);
    void record({
      event: 'refused',
      client: { id: client.clientId, ...(client.clientName ? { name: client.clientName } : {}) },
      grantType: TOKEN_EXCHANGE_GRANT,
      ...(audience ? { audience } : {}),
      errorCode: err.expose ? err.error : 'server_error',
    }).catch(() => undefined);
  });

  /** Checks the request's parameters; returns the subject token. */
  function check(params: ExchangeParams & { scope?: string | undefined }): string {
    if (
      params.requested_token_type !== undefined &&
      params.requested_token_type !== ACCESS_TOKEN_TYPE
    ) {
      throw refusal('invalid_request', 'requested_token_type is not supported');
    }
    if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
      throw refusal('invalid_request', 'actor_token is not supported');
    }
    if (!params.subject_token) throw refusal('invalid_request', 'subject_token is required');
    if (!params.subject_token_type) {
      throw refusal('invalid_request', 'subject_token_type is required');
    }
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw refusal('invalid_request', 'subject_token_type is not supported');
    }
    if (!params.audience) throw refusal('invalid_request', 'audience is required');
    if (params.resource !== undefined && stripSlash(params.resource) !== fhirBase) {
      throw refusal('invalid_target', 'resource must be the FHIR server of the subject token');
    }
    return params.subject_token;
  }
}
