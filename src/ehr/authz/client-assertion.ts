/**
 * SMART App Launch 2.2 rules for a `private_key_jwt` client assertion, on top of what
 * oidc-provider checks itself (ES384/RS384 only through `enabledJWA`, signature by a registered
 * key, `iss` = client id, `exp` and `jti` present, `jti` used once):
 *
 * - `sub` is the client id too (oidc-provider finds the client by `sub`, so it always is);
 * - `aud` is exactly the token endpoint URL built from the configured base URL, never from the
 *   request's Host header (oidc-provider would also accept the issuer and any endpoint URL);
 * - `exp` is at most five minutes ahead;
 * - no `jku`: keys are registered, never fetched from a URL the assertion names.
 */
import { errors, type Client, type KoaContextWithOIDC } from 'oidc-provider';

/** The longest an assertion may live from now, in seconds (SMART: "no more than 5 minutes"). */
export const MAX_ASSERTION_LIFETIME = 300;

type JsonRecord = Record<string, unknown>;

/** The `assertJwtClientAuthClaimsAndHeader` hook enforcing the rules above. */
export function assertSmartClientAssertion(
  tokenEndpoint: string,
  clockTolerance: number,
): (ctx: KoaContextWithOIDC, claims: JsonRecord, header: JsonRecord, client: Client) => void {
  return (_ctx, claims, header, client) => {
    if (claims.sub !== client.clientId) {
      throw new errors.InvalidClientAuth('sub (JWT subject) must be the client_id');
    }
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (aud.length !== 1 || aud[0] !== tokenEndpoint) {
      throw new errors.InvalidClientAuth('aud (JWT audience) must be the token endpoint URL');
    }
    const now = Math.floor(Date.now() / 1000);
    if (
      typeof claims.exp !== 'number' ||
      claims.exp > now + MAX_ASSERTION_LIFETIME + clockTolerance
    ) {
      throw new errors.InvalidClientAuth('exp (JWT expiration) must be at most 5 minutes ahead');
    }
    if (header.jku !== undefined) {
      throw new errors.InvalidClientAuth('jku is not supported: client keys are registered');
    }
  };
}
