/**
 * Authentication failures of the CDS Hooks JWT check (CDS Hooks "Trusting CDS Clients",
 * CRD sec-1). Every message names the field in quotes and never echoes the token, any part of
 * it, a key or a claim value, so messages are safe to return and to log.
 */
import { CdsError } from '../cds/outcome.js';

/** The stable error codes of the auth layer, each with its fixed message. */
export const AUTH_ERRORS = {
  ERR_AUTH_MISSING: 'an "Authorization" header with a "Bearer" JWT is required',
  ERR_JWT_MALFORMED:
    'the bearer token is not a well-formed JWT (three base64url parts, JSON header and payload)',
  ERR_JWT_TOO_LARGE: 'the bearer token exceeds the size limit',
  ERR_JWT_ALG: 'the "alg" header must be "ES384" or "RS384"',
  ERR_JWT_ALG_KEY_MISMATCH: 'the "alg" header does not match the key registered for "kid"',
  ERR_JWT_TYP: 'the "typ" header must be "JWT"',
  ERR_JWT_KID_MISSING: 'the "kid" header is missing, not a string, or too long',
  ERR_JWT_KID_UNKNOWN: 'the "kid" header names no key of the client\'s key set',
  ERR_JWT_ISS: 'the "iss" claim is missing or is not a trusted client',
  ERR_JWT_AUD: 'the "aud" claim does not match the URL invoked',
  ERR_JWT_EXP: 'the "exp" claim is missing, not a number, or in the past',
  ERR_JWT_IAT: 'the "iat" claim is missing, not a number, or in the future',
  ERR_JWT_NBF: 'the "nbf" claim is not a number or is in the future',
  ERR_JWT_LIFETIME: 'the token lifetime ("exp" minus "iat") is not positive or is too long',
  ERR_JWT_JTI: 'the "jti" claim is missing, not a string, or too long',
  ERR_JWT_TENANT: 'the "tenant" claim is not a non-empty string of at most 256 characters',
  ERR_JWT_REPLAY: 'the "jti" claim was already used by this client',
  ERR_JWT_JKU: 'the "jku" header does not match the JWK Set URL registered for the client',
  ERR_JWT_SIGNATURE: 'the JWT signature does not verify with the key registered for "kid"',
  ERR_JWKS_FETCH: "the client's JWK Set could not be fetched or parsed",
  ERR_JWKS_TLS: "the TLS connection to the client's JWK Set host failed (certificate or handshake)",
  ERR_JWKS_DUPLICATE_KID: 'the client\'s JWK Set has several keys with the same "kid"',
  ERR_JWKS_KEY_INVALID:
    'the key registered for "kid" is unusable (bad key material or RSA under 2048 bits)',
} as const;

/** One of the stable auth error codes. */
export type AuthErrorCode = keyof typeof AUTH_ERRORS;

/** A refused CDS Hooks JWT: HTTP 401, issue type `security`, a stable code. */
export class AuthError extends CdsError {
  override name = 'AuthError';
  declare readonly code: AuthErrorCode;
  /** The fixed text appended to the message, if any (lets a cached failure be re-raised). */
  readonly detail: string | undefined;

  /** `detail` is an optional fixed text (never token content) appended to the message. */
  constructor(code: AuthErrorCode, detail?: string) {
    super(401, code, detail ? `${AUTH_ERRORS[code]}: ${detail}` : AUTH_ERRORS[code], 'security');
    this.detail = detail || undefined;
  }

  /** The RFC 6750 §3 `WWW-Authenticate` value to send with the 401 response. */
  get wwwAuthenticate(): string {
    // RFC 6750 §3.1: no error code when the request carried no credentials at all.
    return this.code === 'ERR_AUTH_MISSING' ? 'Bearer' : 'Bearer error="invalid_token"';
  }
}

/**
 * The replay store is full of unexpired entries: refused with 503 rather than forgetting
 * entries, since forgetting would reopen the replay window.
 */
export class ReplayCapacityError extends CdsError {
  override name = 'ReplayCapacityError';

  constructor() {
    super(503, 'ERR_REPLAY_CAPACITY', 'the JWT replay store is full; retry later', 'throttled');
  }
}

/**
 * The replay store could not record a `jti` (its database failed or its thread stopped): the
 * token is refused with 503 rather than accepted unrecorded.
 */
export class ReplayUnavailableError extends CdsError {
  override name = 'ReplayUnavailableError';

  /** `reason` is the driver's code (`SQLITE_BUSY`, `ERR_SQLITE_THREAD`…) for the operator's log. */
  constructor(readonly reason: string = 'unknown') {
    super(
      503,
      'ERR_REPLAY_UNAVAILABLE',
      'the JWT replay store is unavailable; retry later',
      'transient',
    );
  }
}
