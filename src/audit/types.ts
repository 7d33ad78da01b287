/**
 * The audit trail's inputs and its store interface. A hook call and a security event each become
 * one FHIR R4 AuditEvent (BALP-shaped), one link of a hash chain, and, only when an encryption
 * key is configured, an encrypted copy of the request and response kept until retention ends.
 */
import type { AuditEvent } from '@medplum/fhirtypes';

/** The outcome of a hook call, mapped to `AuditEvent.outcome` `0`, `4` and `8`. */
export type HookOutcome = 'success' | 'minor-failure' | 'serious-failure';

/** One hook call, recorded after the response is built and before it is sent. */
export interface HookAuditInput {
  /** When the call was received. */
  at: Date;
  /** The instance that answered (`hostname:pid` or configured). */
  instance: string;
  /** The CDS client: JWT `iss`, configured name, SHA-256 of its TLS client certificate (hex). */
  client: { iss: string; name?: string; certificateSha256?: string };
  /** The CDS service id and its hook (`order-sign`). */
  service: string;
  hook: string;
  hookInstance?: string;
  /** The patient by reference only (`Patient/123`). */
  patient?: string;
  /** The orders in scope by reference (`ServiceRequest/1357`). */
  orders: string[];
  /** The `coverage-assertion-id`s of the coverage-information returned. */
  coverageAssertionIds: string[];
  /** The HTTP status sent. */
  status: number;
  outcome: HookOutcome;
  /** The crdkit error code when the call was refused. */
  errorCode?: string;
  /**
   * Set by the EHR's CRD client for the calls it makes (found-37 binds both sides): the CDS
   * service URL called. Absent on the server's records of calls it received.
   */
  destination?: string;
  /** What the client's sharing policy withheld from this call, by reference and reason only. */
  withheld?: Array<{ reference: string; reason: string }>;
  /** Raw bytes: their SHA-256 is always recorded; they are kept only encrypted, with a key. */
  requestBody?: Buffer;
  responseBody?: Buffer;
}

/** The kinds of security event recorded. */
export type SecurityKind =
  'auth-refused' | 'tls-failure' | 'rate-limited' | 'replay' | 'audit-read';

/** A security event: never a token, only the error code and a fixed text. */
export interface SecurityAuditInput {
  at: Date;
  instance: string;
  kind: SecurityKind;
  /** The client, when known (the `iss` of a refused token is recorded only if it is trusted). */
  client?: { iss?: string };
  /** The remote address. */
  source?: string;
  /** The crdkit error code; optional for `audit-read`. */
  errorCode?: string;
  /** A fixed text, never a token (anything that looks like a JWT is replaced). */
  detail?: string;
  /** For `audit-read`: the patient whose records were read, by reference. */
  patient?: string;
  /** For `audit-read`: who read (operator or user name); default the OS user. */
  reader?: string;
}

/**
 * One request to the EHR's FHIR API for payers (sec-8): who (the token's OAuth client and, for a
 * delegate token, the actor chain), what (the action, the resource type and the internal
 * references of what was returned or written) and in which context (the patient and hook call
 * the token was minted for). Never a token, a query value or resource content.
 */
export interface FhirAccessAuditInput {
  at: Date;
  instance: string;
  /** The OAuth client the token was issued to. */
  client: { id: string; name?: string };
  /** RFC 8693 `act` chain of a delegate token, the current actor first (`act.sub` values). */
  actors?: string[];
  action: 'read' | 'search' | 'create' | 'update' | 'capabilities';
  /** The resource type of the request (`Coverage`), absent for `capabilities`. */
  resourceType?: string;
  /** Internal references (`Coverage/17`) of the resources returned, written or refused. */
  resources: string[];
  /** The patient the token is bound to (`Patient/123`, internal id). */
  contextPatient?: string;
  /** The patients whose data the answer held (internal references). */
  patients: string[];
  /** The hook call the token was minted for, when it was minted for one. */
  hookInstance?: string;
  /** The CDS service that call went to, and the resource types its prefetch declared. */
  service?: string;
  declaredTypes?: string[];
  /** The token's `jti` (an opaque id, never the token itself), to group one token's accesses. */
  tokenId?: string;
  /** Search parameter names only, never their values (`patient,status`). */
  parameters?: string[];
  status: number;
  outcome: HookOutcome;
  errorCode?: string;
}

/** What happened to an OAuth token at the EHR's authorization server. */
export type TokenEventKind = 'issued' | 'exchanged' | 'revoked' | 'refused' | 'launch';

/**
 * One token event (sec-9): a token minted for a hook call, a delegate token issued by RFC 8693
 * exchange (with its actor chain and audience), a revocation, a refused request, a SMART launch.
 * Never the token itself: its `jti` only.
 */
export interface TokenAuditInput {
  at: Date;
  instance: string;
  event: TokenEventKind;
  /** The OAuth client that asked. */
  client: { id: string; name?: string };
  grantType?: string;
  scopes?: string[];
  patient?: string;
  hookInstance?: string;
  service?: string;
  /** The downstream audience of a delegate token. */
  audience?: string;
  /** The `act` chain of the new token, the current actor first. */
  actors?: string[];
  tokenId?: string;
  /** The `jti` of the subject token of an exchange. */
  subjectTokenId?: string;
  expiresAt?: Date;
  errorCode?: string;
}

/** The answer of {@link AuditStore.verify}. */
export type VerifyResult =
  | { ok: true; records: number }
  | {
      ok: false;
      firstBad: { id: string; seq: number; problem: 'changed' | 'removed' | 'reordered' };
    };

/** The filter of {@link AuditStore.export}: `since` inclusive, `until` exclusive. */
export interface ExportFilter {
  since?: Date;
  until?: Date;
  patient?: string;
  /** Recorded in the `audit-read` record as the reader; default the OS user. */
  reader?: string;
}

/** The decrypted payloads of one record. */
export interface AuditPayloads {
  keyId: string;
  request?: Buffer;
  response?: Buffer;
}

/** The audit trail: append-only, hash-chained, fail-closed. */
export interface AuditStore {
  /** Records a hook call; throws `AuditUnavailableError` (503) when the store cannot be written. */
  appendHook(input: HookAuditInput): Promise<{ id: string }>;
  /** Records a security event; throws `AuditUnavailableError` like {@link appendHook}. */
  appendSecurity(input: SecurityAuditInput): Promise<{ id: string }>;
  /** Records one request to the FHIR API for payers (sec-8); fail-closed like the others. */
  appendFhirAccess(input: FhirAccessAuditInput): Promise<{ id: string }>;
  /** Records a token event of the authorization server (sec-9); fail-closed like the others. */
  appendToken(input: TokenAuditInput): Promise<{ id: string }>;
  /** Recomputes the chain and names the first record changed, removed or reordered. */
  verify(): Promise<VerifyResult>;
  /** The AuditEvents in the window, oldest first; an `audit-read` record is appended first. */
  export(filter: ExportFilter): AsyncIterable<AuditEvent>;
  /**
   * The decrypted request and response of record `id` (undefined when none is kept); an
   * `audit-read` record is appended first.
   */
  readPayloads(id: string, reader?: string): Promise<AuditPayloads | undefined>;
  /** Removes the encrypted payloads past retention; records and chain stay intact. */
  purge(now?: Date): Promise<{ payloadsRemoved: number }>;
  close(): Promise<void>;
}

/** Options of `openAuditStore`. */
export interface OpenAuditStoreOptions {
  /** `sqlite` (the file `audit.db` in `dataDir`) or a `postgres://` / `postgresql://` URL. */
  url: string;
  dataDir: string;
  /** This instance's id, written as the AuditEvent observer. */
  instance: string;
  /** AES-256-GCM keys by key id (base64 of 32 bytes); `current` encrypts new payloads. */
  encryption?: { keys: Record<string, string>; current: string };
  /** How long payloads are kept, in days (default 30). Records are kept. */
  retentionDays?: number;
  now?: () => Date;
}
