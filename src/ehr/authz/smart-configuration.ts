/**
 * SMART App Launch 2.2 discovery: the document served at `B/fhir/.well-known/smart-configuration`
 * (SMART "Conformance"). It lists only what the server really does: EHR launch of confidential
 * and public clients, symmetric and asymmetric client authentication (ES384, RS384), PKCE S256,
 * SMART v2 scopes, OpenID Connect with `fhirUser`. Not `authorize-post`: oidc-provider allows
 * POST to the authorization endpoint only with SameSite=None cookies, and the sign-in cookies stay
 * SameSite=Lax (cross-site posts carry none of them).
 */
import { NON_RESOURCE_SCOPES, splitScopes } from './scopes.js';
import type { EhrClient } from './types.js';

/** The endpoints of the server, all built from the configured base URL. */
export interface ServerUrls {
  issuer: string;
  fhir: string;
  authorization: string;
  token: string;
  jwks: string;
  introspection: string;
  revocation: string;
}

/** The URLs of the server whose base URL is `baseUrl` (no trailing slash). */
export function serverUrls(baseUrl: string): ServerUrls {
  const issuer = `${baseUrl}/oauth`;
  return {
    issuer,
    fhir: `${baseUrl}/fhir`,
    authorization: `${issuer}/auth`,
    token: `${issuer}/token`,
    jwks: `${issuer}/jwks`,
    introspection: `${issuer}/token/introspection`,
    revocation: `${issuer}/token/revocation`,
  };
}

export const CAPABILITIES = [
  'launch-ehr',
  'client-public',
  'client-confidential-symmetric',
  'client-confidential-asymmetric',
  'context-ehr-patient',
  'context-ehr-encounter',
  'sso-openid-connect',
  'permission-v2',
  'permission-v1',
  'permission-patient',
  'permission-user',
  'permission-offline',
  'permission-online',
];

/** The discovery document. `scopes_supported` is what the registered clients can get. */
export function smartConfiguration(
  urls: ServerUrls,
  clients: readonly EhrClient[],
): Record<string, unknown> {
  const scopes = new Set<string>(NON_RESOURCE_SCOPES);
  for (const client of clients) for (const s of splitScopes(client.scope)) scopes.add(s);
  return {
    issuer: urls.issuer,
    jwks_uri: urls.jwks,
    authorization_endpoint: urls.authorization,
    token_endpoint: urls.token,
    introspection_endpoint: urls.introspection,
    revocation_endpoint: urls.revocation,
    grant_types_supported: ['authorization_code', 'client_credentials', 'refresh_token'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt', 'none'],
    token_endpoint_auth_signing_alg_values_supported: ['ES384', 'RS384'],
    scopes_supported: [...scopes].sort(),
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: CAPABILITIES,
  };
}
