/**
 * The EHR's OAuth 2 / SMART App Launch 2.2 authorization server (oidc-provider 9): EHR launch of
 * confidential apps (sec-4), backend services, the `fhirAuthorization` tokens of CDS Hooks calls
 * (found-20 to found-22), introspection and revocation, and the resolver the FHIR API uses to
 * turn a bearer token into an {@link AccessGrant}. State lives in SQLite, PostgreSQL or Redis.
 *
 * URL layout, from the base URL `B`: issuer `B/oauth` (oidc-provider's routes under `/oauth`),
 * the sign-in step at `B/oauth/interaction/<uid>`, SMART discovery at
 * `B/fhir/.well-known/smart-configuration`, and the FHIR API (not served here) at `B/fhir`.
 *
 * @example
 * const authz = await createAuthorizationServer({
 *   baseUrl: 'https://ehr.example:8443', instance: 'ehr-1', cookieKeys: [secret],
 *   store: { kind: 'sqlite', path: '/var/lib/crdkit/authz.db' }, clients, users, audit,
 * });
 * https.createServer(tls, (req, res) => {
 *   if (authz.ownsPath(new URL(req.url!, 'https://x').pathname)) return authz.handle(req, res);
 *   // … the FHIR API, which calls authz.resolver.resolve(bearer)
 * });
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { AccessGrant } from '../types.js';
import { checkClients } from './clients.js';
import { TokenEvents, patientRef } from './events.js';
import { observeEndpoints } from './endpoints.js';
import { sendJson, sendOAuthError } from './http.js';
import { handleInteraction } from './interaction.js';
import { signingKeys } from './keys.js';
import { Launches } from './launch.js';
import { createProvider, TTL } from './provider.js';
import { serverUrls, smartConfiguration } from './smart-configuration.js';
import { adapterFactory, openStateBackend } from './state/index.js';
import { issueToken, mintHookToken, resolveToken, revokeToken, type TokenDeps } from './tokens.js';
import type { AuthorizationServer, AuthorizationServerOptions, EhrClient } from './types.js';
import { ConfigError } from '../../config/load.js';

export type {
  AuthorizationServer,
  AuthorizationServerOptions,
  AuthorizationStoreOptions,
  EhrClient,
  EhrUser,
  FhirAuthorization,
  FhirContextItem,
  HookTokenInput,
  LaunchContext,
  TokenExtra,
} from './types.js';
export { HOOK_TOKEN_MAX_LIFETIME } from './tokens.js';
export { TTL } from './provider.js';
export { normalizeScope, parseResourceScope, permittedScopes } from './scopes.js';

const SMART_CONFIGURATION_PATH = '/fhir/.well-known/smart-configuration';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const INTERACTION_PATH = /^\/oauth\/interaction\/([A-Za-z0-9_-]{1,64})$/;

/** The authorization server plus what extensions (token exchange) need. */
export interface EhrAuthorizationServer extends AuthorizationServer {
  /**
   * Issues an access token to `clientId` for `grant` (an RFC 8693 delegate token) so that the
   * resolver returns it. Not audited: the token exchange records `exchanged` itself (and calls
   * {@link AuthorizationServer.revoke} with the token when that record fails).
   */
  issueToken(
    grant: Omit<AccessGrant, 'tokenId' | 'issuedAt'>,
    clientId: string,
    grantType?: string,
  ): Promise<{ access_token: string; expires_in: number; tokenId: string }>;
}

function checkOptions(opts: AuthorizationServerOptions): string {
  if (!URL.canParse(opts.baseUrl)) throw new ConfigError('authz.baseUrl', 'must be a URL');
  const base = new URL(opts.baseUrl);
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(base.hostname);
  const scheme = base.protocol === 'https:' || (base.protocol === 'http:' && loopback);
  if (!scheme || base.search || base.hash || base.pathname !== '/') {
    throw new ConfigError('authz.baseUrl', 'must be an https origin without a path');
  }
  const keys = opts.cookieKeys;
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    keys.some((k) => typeof k !== 'string' || k.length < 32)
  ) {
    throw new ConfigError('authz.cookieKeys', 'must hold secrets of at least 32 characters');
  }
  if (!opts.instance) throw new ConfigError('authz.instance', 'is required');
  checkClients(opts.clients);
  return base.origin;
}

/**
 * Builds every client as oidc-provider will, so that a bad registration fails at start-up and
 * not at the client's first request. Clients of the token exchange grant are built on first use
 * (the grant is registered on the provider after it is created).
 */
async function checkClientMetadata(provider: Provider, clients: readonly EhrClient[]) {
  for (const [i, client] of clients.entries()) {
    if (client.grantTypes.includes(TOKEN_EXCHANGE)) continue;
    try {
      await provider.Client.find(client.clientId);
    } catch (err) {
      const reason = (err as { error_description?: string }).error_description ?? 'invalid';
      throw new ConfigError(`authz.clients[${i}]`, `rejected by oidc-provider: ${reason}`);
    }
  }
}

/** Creates the authorization server (opens its state store; `close()` releases it). */
export async function createAuthorizationServer(
  opts: AuthorizationServerOptions,
): Promise<EhrAuthorizationServer> {
  const urls = serverUrls(checkOptions(opts));
  const now = opts.now ?? (() => new Date());
  const clients = new Map(opts.clients.map((c) => [c.clientId, c]));
  const users = new Map((opts.users ?? []).map((u) => [u.id, u]));
  const keys = await signingKeys(opts.signingKeys);
  const events = new TokenEvents(opts.audit, opts.instance, now, opts.logger);
  if (keys.generated) {
    events.logger.warn(
      {},
      'authz: id token signing key generated; configure signingKeys to share it',
    );
  }
  const backend = await openStateBackend(opts.store);
  const adapter = adapterFactory(backend);
  const launches = new Launches(
    adapter('SmartLaunch'),
    adapter('SmartLaunchContext'),
    clients,
    users,
    now,
  );
  let provider: Provider;
  try {
    provider = createProvider({
      urls,
      clients,
      users,
      adapter,
      cookieKeys: opts.cookieKeys,
      keys,
      launches,
    });
    await checkClientMetadata(provider, opts.clients);
  } catch (err) {
    await backend.close().catch(() => undefined);
    throw err;
  }
  observeEndpoints(provider, clients, events, opts.externalIds);
  (provider as unknown as NodeJS.EventEmitter).on('error', (err: Error) => {
    events.logger.error({ err: { name: err.name } }, 'authorization server request failed');
  });
  const callback = provider.callback();
  const tokenDeps: TokenDeps = { provider, clients, events, fhirUrl: urls.fhir, now };
  const interactionDeps = {
    provider,
    clients,
    users,
    launches,
    events,
    fhirUrl: urls.fhir,
    grantTtl: TTL.Grant,
  };
  const discovery = smartConfiguration(urls, opts.clients);

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    if (path === SMART_CONFIGURATION_PATH) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      return sendJson(res, 200, discovery, {
        'cache-control': 'public, max-age=3600',
        'access-control-allow-origin': '*',
      });
    }
    const interaction = INTERACTION_PATH.exec(path);
    if (interaction) {
      handleInteraction(req, res, interaction[1]!, interactionDeps).catch((err: Error) => {
        events.logger.error({ err: { name: err.name } }, 'authz: sign-in step failed');
        if (!res.headersSent) sendOAuthError(res, 500, 'server_error', 'the sign-in step failed');
        else res.destroy();
      });
      return;
    }
    if (path === '/oauth' || path.startsWith('/oauth/')) {
      // oidc-provider's routes are relative to the issuer path; its URLs come from the issuer.
      (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
      const rest = url.slice('/oauth'.length);
      req.url = rest.startsWith('/') ? rest : `/${rest}`;
      void callback(req, res);
      return;
    }
    sendOAuthError(res, 404, 'invalid_request', 'not found');
  }

  return {
    handle,
    ownsPath: (pathname) =>
      pathname === SMART_CONFIGURATION_PATH ||
      pathname === '/oauth' ||
      pathname.startsWith('/oauth/'),
    smartConfiguration: () => structuredClone(discovery),
    resolver: { resolve: (token) => resolveToken(token, tokenDeps) },
    mintHookToken: (input) => mintHookToken(input, tokenDeps),
    issueToken: (grant, clientId, grantType) => issueToken(grant, clientId, tokenDeps, grantType),
    revoke: (token) => revokeToken(token, tokenDeps),
    async createLaunch(context) {
      const { value, launch } = await launches.create(context);
      const client = clients.get(launch.clientId)!;
      try {
        await events.record({
          event: 'launch',
          client: { id: client.clientId, ...(client.name ? { name: client.name } : {}) },
          patient: patientRef(launch.patient),
          expiresAt: new Date(launch.exp * 1000),
        });
      } catch (err) {
        await launches.redeem(value, launch.clientId); // spent: no launch without its record
        throw err;
      }
      return value;
    },
    provider,
    close: () => backend.close(),
  };
}
