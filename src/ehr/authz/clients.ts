/**
 * The registered OAuth clients: checks at start-up (errors name the configuration key) and the
 * oidc-provider client metadata of each. The three SMART client kinds map to one token endpoint
 * authentication method each: `client_secret_basic` (confidential symmetric), `private_key_jwt`
 * with ES384 or RS384 (confidential asymmetric), `none` with PKCE (public).
 */
import type { JsonWebKey } from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';
import { ConfigError } from '../../config/load.js';
import { isKnownScope, splitScopes, type ScopePolicy } from './scopes.js';
import type { EhrClient } from './types.js';

/** The shortest accepted client secret. */
const MIN_SECRET_LENGTH = 32;
/** Private JWK members that must never be registered. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const KINDS = ['confidential-symmetric', 'confidential-asymmetric', 'public'];
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const GRANTS = ['authorization_code', 'client_credentials', 'refresh_token', TOKEN_EXCHANGE];

/** The token endpoint authentication method of each client kind. */
export const AUTH_METHOD = {
  'confidential-symmetric': 'client_secret_basic',
  'confidential-asymmetric': 'private_key_jwt',
  public: 'none',
} as const;

/** A redirect URI: https, or http on a loopback address (development). */
function validRedirectUri(uri: string): boolean {
  if (!URL.canParse(uri)) return false;
  const u = new URL(uri);
  if (u.hash) return false;
  if (u.protocol === 'https:') return true;
  return u.protocol === 'http:' && ['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname);
}

/** The public JWK as registered (EC P-384 or RSA ≥ 2048 bits, `kid` required), or a reason. */
function checkPublicJwk(jwk: JsonWebKey & { kid?: string; alg?: string }): string | undefined {
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) return 'must hold public keys only';
  if (!jwk.kid) return 'each key needs a "kid"';
  if (jwk.kty === 'EC') {
    if (jwk.crv !== 'P-384') return 'EC keys must be P-384 (ES384)';
    if (jwk.alg !== undefined && jwk.alg !== 'ES384') return 'EC keys must be for ES384';
    return undefined;
  }
  if (jwk.kty === 'RSA') {
    if (typeof jwk.n !== 'string' || Buffer.from(jwk.n, 'base64url').length * 8 < 2048) {
      return 'RSA keys must have at least 2048 bits';
    }
    if (jwk.alg !== undefined && jwk.alg !== 'RS384') return 'RSA keys must be for RS384';
    return undefined;
  }
  return 'keys must be EC P-384 or RSA';
}

/** Checks one client; throws a {@link ConfigError} naming `authz.clients[i].<field>`. */
function checkClient(client: EhrClient, key: string): void {
  const fail = (field: string, message: string): never => {
    throw new ConfigError(`${key}.${field}`, message);
  };
  if (typeof client.clientId !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(client.clientId)) {
    fail('clientId', 'must be 1 to 255 printable characters');
  }
  if (!KINDS.includes(client.kind)) fail('kind', `must be one of ${KINDS.join(', ')}`);
  const grants = new Set(client.grantTypes);
  if (!Array.isArray(client.grantTypes) || grants.size === 0) {
    fail('grantTypes', 'must list at least one grant type');
  }
  for (const g of grants) if (!GRANTS.includes(g)) fail('grantTypes', `unknown grant type "${g}"`);
  if (client.kind === 'confidential-symmetric') {
    if (typeof client.clientSecret !== 'string' || client.clientSecret.length < MIN_SECRET_LENGTH) {
      fail('clientSecret', `must be at least ${MIN_SECRET_LENGTH} characters`);
    }
  } else if (client.clientSecret !== undefined) {
    fail('clientSecret', 'is only for confidential-symmetric clients');
  }
  if (client.kind === 'confidential-asymmetric') {
    const keys = client.jwks?.keys;
    if (!Array.isArray(keys) || keys.length === 0) fail('jwks', 'must hold at least one key');
    for (const jwk of keys!) {
      const reason = checkPublicJwk(jwk as JsonWebKey & { kid?: string });
      if (reason) fail('jwks', reason);
    }
  } else if (client.jwks !== undefined) {
    fail('jwks', 'is only for confidential-asymmetric clients');
  }
  // SMART Backend Services: client credentials with an asymmetric client assertion only.
  if (grants.has('client_credentials') && client.kind !== 'confidential-asymmetric') {
    fail('grantTypes', 'client_credentials needs a confidential-asymmetric client');
  }
  if (grants.has(TOKEN_EXCHANGE) && client.kind === 'public') {
    fail('grantTypes', 'token exchange needs a confidential client');
  }
  if (grants.has('refresh_token') && !grants.has('authorization_code')) {
    fail('grantTypes', 'refresh_token needs authorization_code');
  }
  const uris = client.redirectUris ?? [];
  if (grants.has('authorization_code') && uris.length === 0) {
    fail('redirectUris', 'authorization_code needs at least one redirect URI');
  }
  for (const uri of uris) {
    if (!validRedirectUri(uri)) fail('redirectUris', 'must be https URLs without a fragment');
  }
  if (client.launchable) {
    if (client.kind === 'public') fail('launchable', 'only confidential clients may be launched');
    if (!grants.has('authorization_code')) fail('launchable', 'needs authorization_code');
  }
  if (client.payer !== undefined && !/^[\x21-\x7e]{1,255}$/.test(client.payer)) {
    fail('payer', 'must be 1 to 255 printable characters');
  }
  const scopes = splitScopes(client.scope);
  if (scopes.length === 0) fail('scope', 'must list at least one scope');
  for (const s of scopes) if (!isKnownScope(s)) fail('scope', `unknown scope "${s}"`);
}

/** Checks every client (unique ids included); throws a {@link ConfigError} on the first fault. */
export function checkClients(clients: readonly EhrClient[]): void {
  if (!Array.isArray(clients)) throw new ConfigError('authz.clients', 'must be a list');
  const seen = new Set<string>();
  clients.forEach((client, i) => {
    const key = `authz.clients[${i}]`;
    checkClient(client, key);
    if (seen.has(client.clientId)) throw new ConfigError(`${key}.clientId`, 'is not unique');
    seen.add(client.clientId);
  });
}

/** The oidc-provider metadata of a checked client. */
export function clientMetadata(client: EhrClient): ClientMetadata {
  const grants = [...new Set(client.grantTypes)];
  const code = grants.includes('authorization_code');
  return {
    client_id: client.clientId,
    ...(client.name ? { client_name: client.name } : {}),
    application_type: 'web',
    token_endpoint_auth_method: AUTH_METHOD[client.kind],
    ...(client.clientSecret ? { client_secret: client.clientSecret } : {}),
    ...(client.jwks ? { jwks: { keys: client.jwks.keys as never[] } } : {}),
    grant_types: grants,
    response_types: code ? ['code'] : [],
    redirect_uris: code ? [...(client.redirectUris ?? [])] : [],
  };
}

/** What `client` may be granted (see `permittedScopes`). */
export function scopePolicy(client: EhrClient): ScopePolicy {
  return {
    registered: splitScopes(client.scope),
    refresh: client.grantTypes.includes('refresh_token'),
    launchable: client.launchable === true && client.kind !== 'public',
  };
}
