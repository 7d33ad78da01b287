/**
 * The oidc-provider 9 instance of the EHR's authorization server and its configuration:
 *
 * - grants: authorization code with PKCE S256 for every client (`plain` is refused by
 *   oidc-provider), client credentials (SMART Backend Services), refresh tokens only when
 *   `offline_access` or `online_access` was granted to a client registered for them;
 * - client authentication: `client_secret_basic`, `private_key_jwt` (ES384, RS384), `none`;
 * - one resource, the FHIR API `B/fhir`: every access token is opaque, for that audience, and
 *   carries only SMART scopes its client was registered for (see `permittedScopes`);
 * - SMART `aud` and `launch` authorization parameters; the launch context reaches the tokens
 *   through `extraTokenClaims`;
 * - every URL the server builds or compares (issuer, endpoints, the `aud` of client assertions,
 *   redirects to the sign-in step) comes from the configured base URL, never from the request's
 *   Host header;
 * - DPoP, PAR, dynamic registration, userinfo, logout and the development sign-in pages are off.
 */
import { createHash } from 'node:crypto';
import Provider, {
  errors,
  type Account,
  type AdapterFactory,
  type Client,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import { assertSmartClientAssertion } from './client-assertion.js';
import { clientMetadata, scopePolicy } from './clients.js';
import type { Launches } from './launch.js';
import { newTokenId } from './tokens.js';
import { permittedScopes, splitScopes, type ScopeFlow } from './scopes.js';
import type { ServerUrls } from './smart-configuration.js';
import type { SigningKeys } from './keys.js';
import type { StateAdapter } from './state/backend.js';
import type { EhrClient, EhrUser, TokenExtra } from './types.js';

/** Lifetimes in seconds. Access tokens: five minutes (SMART Backend Services: ≤ 300). */
export const TTL = {
  AccessToken: 300,
  ClientCredentials: 300,
  AuthorizationCode: 60,
  IdToken: 300,
  RefreshToken: 24 * 3600,
  Grant: 24 * 3600,
  Session: 8 * 3600,
  Interaction: 600,
} as const;

/** Tolerated clock difference with clients, in seconds (client assertions, token expiry). */
export const CLOCK_TOLERANCE = 5;

/** What the provider is built from. */
export interface ProviderDeps {
  urls: ServerUrls;
  clients: ReadonlyMap<string, EhrClient>;
  users: ReadonlyMap<string, EhrUser>;
  adapter: AdapterFactory;
  cookieKeys: string[];
  keys: SigningKeys;
  launches: Launches;
}

type Ctx = KoaContextWithOIDC;

/** The scopes asked for in the current request (or redeemed from its code / refresh token). */
function requestedScopes(ctx: Ctx): string[] {
  const { route, params, entities } = ctx.oidc;
  const asked = params?.scope as string | undefined;
  if (route === 'token') {
    if (params?.grant_type === 'authorization_code') {
      return splitScopes(entities.AuthorizationCode?.scope);
    }
    if (params?.grant_type === 'refresh_token') {
      return splitScopes(asked ?? entities.RefreshToken?.scope);
    }
  }
  return splitScopes(asked);
}

function flowOf(ctx: Ctx): ScopeFlow {
  return ctx.oidc.params?.grant_type === 'client_credentials'
    ? 'client_credentials'
    : 'authorization_code';
}

/** `features.resourceIndicators.getResourceServerInfo`: the FHIR API, and only it. */
function resourceServerInfo(deps: ProviderDeps) {
  return (ctx: Ctx, indicator: string, client: Client) => {
    if (indicator !== deps.urls.fhir) {
      throw new errors.InvalidTarget('resource must be the FHIR base URL of this EHR');
    }
    const ehrClient = deps.clients.get(client.clientId);
    const scope = ehrClient
      ? permittedScopes(requestedScopes(ctx), scopePolicy(ehrClient), flowOf(ctx)).join(' ')
      : '';
    if (!scope) {
      throw new errors.InvalidScope(
        'no requested scope is allowed for this client',
        requestedScopes(ctx).join(' '),
      );
    }
    return {
      scope,
      audience: deps.urls.fhir,
      accessTokenTTL:
        flowOf(ctx) === 'client_credentials' ? TTL.ClientCredentials : TTL.AccessToken,
      accessTokenFormat: 'opaque' as const,
    };
  };
}

/** SMART authorization parameters: `aud` (the FHIR base URL) and `launch` (EHR launch). */
function smartParams(deps: ProviderDeps) {
  return {
    async aud(_ctx: Ctx, value: string | undefined) {
      if (value === undefined) throw new errors.InvalidRequest("missing required parameter 'aud'");
      if (value.replace(/\/+$/, '') !== deps.urls.fhir) {
        throw new errors.InvalidRequest("'aud' must be the FHIR base URL of this EHR");
      }
    },
    async launch(ctx: Ctx, value: string | undefined, client: Client) {
      const launchScope = requestedScopes(ctx).includes('launch');
      if (value === undefined) {
        if (launchScope) {
          throw new errors.InvalidRequest("'launch' is required with the launch scope");
        }
        return;
      }
      const ehrClient = deps.clients.get(client.clientId);
      // sec-4: only registered confidential clients marked launchable are launched by the EHR.
      if (!ehrClient?.launchable || ehrClient.kind === 'public') {
        throw new errors.UnauthorizedClient('this client may not be launched by the EHR');
      }
      if (!launchScope) {
        throw new errors.InvalidScope("the launch scope is required with 'launch'", 'launch');
      }
      if (!(await deps.launches.find(value, client.clientId))) {
        throw new errors.InvalidRequest("'launch' is unknown, expired or already used");
      }
    },
  };
}

/** `extraTokenClaims`: keeps what the issuer set, adds the audit id and the launch context. */
function extraTokenClaims(deps: ProviderDeps) {
  return async (
    _ctx: Ctx | undefined,
    token: { extra?: unknown; grantId?: string; kind: string },
  ) => {
    const extra: TokenExtra = { ...((token.extra as TokenExtra | undefined) ?? {}) };
    extra.tid ??= newTokenId();
    if (token.kind === 'AccessToken' && token.grantId && !extra.patient) {
      const launch = await deps.launches.forGrant(token.grantId);
      if (launch) Object.assign(extra, launch);
    }
    return extra as Record<string, unknown>;
  };
}

/** The demo EHR users as oidc-provider accounts (`fhirUser` claim for SMART). */
function findAccount(deps: ProviderDeps) {
  return (_ctx: Ctx, sub: string): Account | undefined => {
    const user = deps.users.get(sub);
    if (!user) return undefined;
    return {
      accountId: user.id,
      claims: () => ({ sub: user.id, fhirUser: user.fhirUser, name: user.name }),
    };
  };
}

function configuration(deps: ProviderDeps): Configuration {
  const ttl = (seconds: number) => () => seconds;
  return {
    adapter: deps.adapter,
    clients: [...deps.clients.values()].map(clientMetadata),
    clientDefaults: { id_token_signed_response_alg: deps.keys.algs[0]! } as never,
    clientAuthMethods: ['client_secret_basic', 'private_key_jwt', 'none'],
    enabledJWA: {
      clientAuthSigningAlgValues: ['ES384', 'RS384'],
      idTokenSigningAlgValues: deps.keys.algs as never,
    },
    assertJwtClientAuthClaimsAndHeader: assertSmartClientAssertion(
      deps.urls.token,
      CLOCK_TOLERANCE,
    ),
    clockTolerance: CLOCK_TOLERANCE,
    jwks: { keys: deps.keys.keys as never },
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
    scopes: ['openid', 'fhirUser'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    extraParams: smartParams(deps),
    extraTokenClaims: extraTokenClaims(deps) as never,
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') &&
      (code.scopes.has('offline_access') || code.scopes.has('online_access')),
    // SMART `online_access`: tokens end with the user's session; otherwise they live their TTL
    // (and two launches of one app in one session keep their own tokens).
    expiresWithSession: async (_ctx, code) =>
      code.scopes.has('online_access') && !code.scopes.has('offline_access'),
    // A grant is never reused: each authorization (and each EHR launch) gets its own.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    findAccount: findAccount(deps),
    interactions: {
      url: (_ctx, interaction) => `${deps.urls.issuer}/interaction/${interaction.uid}`,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = { error: out.error, error_description: out.error_description };
    },
    clientBasedCORS: (_ctx, origin, client) =>
      client.clientAuthMethod === 'none' &&
      client.redirectUris!.some((uri) => URL.parse(uri)?.origin === origin),
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TTL.AccessToken,
      ClientCredentials: (_ctx, token) =>
        token.resourceServer?.accessTokenTTL ?? TTL.ClientCredentials,
      AuthorizationCode: ttl(TTL.AuthorizationCode),
      IdToken: ttl(TTL.IdToken),
      RefreshToken: ttl(TTL.RefreshToken),
      Grant: ttl(TTL.Grant),
      Session: ttl(TTL.Session),
      Interaction: ttl(TTL.Interaction),
      DeviceCode: ttl(60),
      BackchannelAuthenticationRequest: ttl(60),
    },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      userinfo: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // A client learns about its own tokens only.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => deps.urls.fhir,
        useGrantedResource: async () => true,
        getResourceServerInfo: resourceServerInfo(deps) as never,
      },
    },
  };
}

/** Builds the provider and pins it to the configured base URL (see the module comment). */
export function createProvider(deps: ProviderDeps): Provider {
  const provider = new Provider(deps.urls.issuer, configuration(deps));
  provider.proxy = false;
  // oidc-provider keeps `offline_access` only with prompt=consent (an OpenID Connect rule); here
  // every authorization ends in the approval step anyway (grants are never reused), so an
  // authorization request without `prompt` is given prompt=consent.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.prompt === undefined) {
      const scope = ctx.query.scope;
      if (typeof scope === 'string' && scope.split(' ').includes('offline_access')) {
        ctx.query = { ...ctx.query, prompt: 'consent' };
      }
    }
    await next();
  });
  // Every URL oidc-provider builds, from the issuer instead of the request's Host header.
  const context = provider.OIDCContext.prototype as { urlFor(name: string, opt?: object): string };
  context.urlFor = (name: string, opt?: object) => provider.urlFor(name, opt as never);
  // One use of a client assertion `jti` across instances: an atomic insert on the shared store.
  provider.ReplayDetection.unique = async (iss: string, jti: string, exp: number) => {
    const id = createHash('sha256')
      .update(JSON.stringify([iss, jti]))
      .digest('base64url');
    const ttl = Math.max(1, exp + CLOCK_TOLERANCE - Math.floor(Date.now() / 1000));
    const adapter = provider.ReplayDetection.adapter as unknown as StateAdapter;
    return adapter.insertIfAbsent(id, { iss, exp, kind: 'ReplayDetection' }, ttl);
  };
  return provider;
}
