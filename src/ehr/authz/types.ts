/**
 * The public shapes of the EHR's OAuth 2 / SMART authorization server: the registered clients,
 * the options of {@link createAuthorizationServer}, the server object, and the fields the server
 * keeps in an access token's `extra` (read back as an {@link AccessGrant}).
 */
import type { JsonWebKey } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { AuditStore } from '../../audit/types.js';
import type { FhirAuthorization as WireFhirAuthorization } from '../../cds/request.js';
import type { TokenResolver } from '../types.js';

/** One registered OAuth client. */
export interface EhrClient {
  clientId: string;
  name?: string;
  /**
   * `confidential-symmetric`: `client_secret_basic` only. `confidential-asymmetric`:
   * `private_key_jwt` signed ES384 or RS384 only. `public`: no authentication, PKCE only.
   */
  kind: 'confidential-symmetric' | 'confidential-asymmetric' | 'public';
  /** The secret of a symmetric client (at least 32 characters). */
  clientSecret?: string;
  /** The public keys of an asymmetric client (EC P-384 or RSA of 2048 bits or more). */
  jwks?: { keys: JsonWebKey[] };
  redirectUris?: string[];
  /**
   * `client_credentials` needs an asymmetric client (SMART Backend Services). The RFC 8693
   * token exchange grant needs a confidential client, and `registerTokenExchange` called on
   * the provider before the first request.
   */
  grantTypes: Array<
    | 'authorization_code'
    | 'client_credentials'
    | 'refresh_token'
    | 'urn:ietf:params:oauth:grant-type:token-exchange'
  >;
  /** The most this client may ever get (space-separated SMART scopes). */
  scope: string;
  /** The payer organisation id: set for CRD servers (payers), the key of the id mapping. */
  payer?: string;
  /** May be launched from a card's SMART link (confidential clients only, sec-4). */
  launchable?: boolean;
}

/** Where the authorization server keeps its state (tokens, codes, sessions, launches). */
export type AuthorizationStoreOptions =
  | { kind: 'sqlite'; path: string }
  /** Tables go to the first schema of the connection's `search_path`. */
  | { kind: 'postgres'; url: string }
  /** `prefix` (default `crdkit:oauth:`) starts every key. */
  | { kind: 'redis'; url: string; prefix?: string };

/** A demo EHR user who can sign in at the interaction step. */
export interface EhrUser {
  id: string;
  name: string;
  /** The user's FHIR resource (`Practitioner/123`), the SMART `fhirUser` claim. */
  fhirUser: string;
}

/** Options of {@link createAuthorizationServer}. */
export interface AuthorizationServerOptions {
  /** The EHR's base URL `B` (`https://ehr.example:8443`): FHIR at `B/fhir`, issuer `B/oauth`. */
  baseUrl: string;
  clients: EhrClient[];
  store: AuthorizationStoreOptions;
  /** Secrets that sign the cookies (the caller persists them; the first one signs). */
  cookieKeys: string[];
  /** Private JWKs that sign id tokens; one ES384 key is generated when absent. */
  signingKeys?: { keys: JsonWebKey[] };
  /** Token events (issued, revoked, refused, launch) go here, fail-closed for issuance. */
  audit?: AuditStore;
  /** This instance's id in audit records. */
  instance: string;
  logger?: Logger;
  /** The demo EHR users of the sign-in step. */
  users?: EhrUser[];
  /**
   * sec-7: the id a payer sees for an internal one. A launched app registered with a `payer`
   * gets its launch context (`patient`, `encounter`, `fhirContext`) in these ids, the ones the
   * FHIR API answers it in.
   */
  externalIds?: (payer: string, type: string, id: string) => string;
  /**
   * The clock of audit records and of the server's own expiry checks (launch values, the
   * resolver). oidc-provider reads the system clock, so this must agree with it.
   */
  now?: () => Date;
}

/** A SMART `fhirContext` entry (SMART App Launch 2.2). */
export interface FhirContextItem {
  reference?: string;
  canonical?: string;
  identifier?: { system?: string; value?: string };
  type?: string;
  role?: string;
}

/** The context of an EHR launch, given to {@link AuthorizationServer.createLaunch}. */
export interface LaunchContext {
  /** The patient in context (EHR internal id, without `Patient/`). */
  patient: string;
  encounter?: string;
  /** A card link's `appContext`, passed to the app in the token response as is. */
  appContext?: string;
  /** Further context resources for the token response's `fhirContext`. */
  fhirContext?: FhirContextItem[];
  /** The client the launch is for: it alone may redeem the `launch` value. */
  clientId: string;
  /** The EHR user who launched: when set, only this user may sign in for the launch. */
  user?: string;
}

/** Input of {@link AuthorizationServer.mintHookToken}. */
export interface HookTokenInput {
  /** The CRD server's registered client (it must have `payer`). */
  clientId: string;
  /**
   * The patient in context: the EHR internal id, as kept in the token and returned by the
   * resolver. The CRD client maps it to the payer's opaque id (sec-7) before sending.
   */
  patient: string;
  encounter?: string;
  /** The CDS service id the call goes to. */
  service: string;
  /** The resource types the service's prefetch templates name. */
  declaredTypes: string[];
  hookInstance: string;
  /** At most 30, default 30 (found-22). */
  lifetimeSeconds?: number;
}

/**
 * The CDS Hooks `fhirAuthorization` object the EHR issues for one hook call: the wire shape
 * (`src/cds/request.ts`, where `patient` is optional), always with the patient. `subject` is
 * the CRD server's OAuth client id.
 */
export type FhirAuthorization = Omit<WireFhirAuthorization, 'patient'> & { patient: string };

/** The EHR's authorization server. */
export interface AuthorizationServer {
  /** Node request handler for everything under `/oauth` and `/fhir/.well-known/smart-configuration`. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** True for the paths {@link handle} answers. */
  ownsPath(pathname: string): boolean;
  /** The SMART discovery document (`/fhir/.well-known/smart-configuration`). */
  smartConfiguration(): Record<string, unknown>;
  /**
   * Token → {@link AccessGrant}; undefined when unknown, expired or revoked, or when its client
   * is no longer registered. Rejects when the state store cannot be read (answer 503).
   */
  resolver: TokenResolver;
  /**
   * Mints the `fhirAuthorization` of one hook call (found-20, found-21, found-22). `patient` in
   * the answer is the internal id given; the caller sends the payer's opaque id instead (sec-7).
   */
  mintHookToken(input: HookTokenInput): Promise<FhirAuthorization>;
  /** Revokes an access token at once (resolver and introspection). Unknown tokens are ignored. */
  revoke(accessToken: string): Promise<void>;
  /** Records an EHR launch and returns its single-use, short-lived `launch` value (sec-4). */
  createLaunch(context: LaunchContext): Promise<string>;
  /** The oidc-provider instance (for extensions such as RFC 8693 token exchange). */
  provider: Provider;
  close(): Promise<void>;
}

/**
 * What the server keeps in an access token's `extra` (oidc-provider `AccessToken.extra`). An
 * extension that issues tokens itself (token exchange) sets these before `save()`; they are
 * kept, and `tid` is added when missing. Ids are EHR internal ids.
 */
export interface TokenExtra {
  /** The token's audit id (random, never the token). */
  tid?: string;
  patient?: string;
  encounter?: string;
  hookInstance?: string;
  service?: string;
  declaredTypes?: string[];
  payer?: string;
  /** RFC 8693 actor chain, the current actor outermost. */
  act?: { sub: string; act?: TokenExtra['act'] };
  fhirContext?: FhirContextItem[];
  appContext?: string;
  fhirUser?: string;
}
