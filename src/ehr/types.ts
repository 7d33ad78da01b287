/**
 * The contract between the EHR side's parts: the authorization server issues tokens, the FHIR API
 * for payers accepts them, and neither knows how the other is built. Everything the FHIR API
 * needs to know of a bearer token is an {@link AccessGrant}, obtained from a
 * {@link TokenResolver}.
 */

/**
 * What a valid access token allows, as the authorization server recorded it when it issued the
 * token. Ids are the EHR's internal ids (never the opaque ids a payer sees).
 */
export interface AccessGrant {
  /** The token's `jti`: an opaque id for audit records, never the token itself. */
  tokenId: string;
  /** The OAuth client the token was issued to (for a delegate token: the client that exchanged). */
  clientId: string;
  clientName?: string;
  /**
   * SMART v2 scopes (`patient/Coverage.rs`, `system/Patient.r`, `user/Task.c`); SMART v1 forms
   * (`patient/Coverage.read`) are normalised to v2 by the issuer.
   */
  scopes: string[];
  /** The patient the token is bound to (internal id, without `Patient/`). */
  patient?: string;
  encounter?: string;
  /** For a token minted for one CDS Hooks call: that call and the service it went to. */
  hookInstance?: string;
  service?: string;
  /** The resource types that service declared in its prefetch templates. */
  declaredTypes?: string[];
  /**
   * Where the token may be used: the FHIR base URL for every token the EHR issues directly. For a
   * delegate token, the `resource` asked for in the exchange (by default the FHIR base URL too);
   * the FHIR API accepts a token only when this is its own base URL.
   */
  audience: string;
  /**
   * RFC 8693 `act` chain of a delegate token, the current actor first (each `act.sub`): the
   * downstream service named by the exchange's `audience` parameter, then whoever exchanged
   * before it. Absent for a token the EHR issued directly.
   */
  actors?: string[];
  /**
   * The payer organisation the token's client belongs to: the key of the per-payer opaque id
   * mapping (sec-7). Absent for the EHR's own clients (apps launched by the EHR).
   */
  payer?: string;
  issuedAt: Date;
  expiresAt: Date;
}

/** Looks up a bearer token: undefined when it is unknown, expired or revoked (fail closed). */
export interface TokenResolver {
  resolve(token: string): Promise<AccessGrant | undefined>;
}
