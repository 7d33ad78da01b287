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
