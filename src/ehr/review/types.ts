/**
 * The shapes of the access review (sec-8): what it reads back from the audit trail, its options,
 * and the report it returns.
 */

/** What makes an access look unreasonable. */
export type FindingKind =
  'other-patient' | 'undeclared-type' | 'after-hook' | 'refused' | 'volume' | 'unknown-token';

export const FINDING_KINDS: readonly FindingKind[] = [
  'other-patient',
  'undeclared-type',
  'after-hook',
  'refused',
  'volume',
  'unknown-token',
];

/** One request to the FHIR API for payers, read back from its AuditEvent. */
export interface AccessRecord {
  /** The AuditEvent id. */
  id: string;
  /** Position in the trail (the order the events were read), to break ties of equal times. */
  index: number;
  at: number;
  client: string;
  clientName?: string;
  actors: string[];
  action: string;
  resourceType?: string;
  resources: string[];
  patients: string[];
  contextPatient?: string;
  hookInstance?: string;
  service?: string;
  declaredTypes: string[];
  tokenId?: string;
  status?: number;
  errorCode?: string;
}

/** One token event of the authorization server, read back from its AuditEvent. */
export interface TokenRecord {
  id: string;
  index: number;
  at: number;
  event: string;
  client: string;
  clientName?: string;
  actors: string[];
  patient?: string;
  hookInstance?: string;
  service?: string;
  tokenId?: string;
  subjectTokenId?: string;
  expiresAt?: number;
  errorCode?: string;
}

/** Thresholds and window of {@link reviewAccesses}. */
export interface ReviewOptions {
  /** Review the accesses recorded at or after this time (earlier events are only context). */
  since?: Date;
  /** Review the accesses recorded before this time. */
  until?: Date;
  /**
   * From when `events` is complete (default `since`). A token issued before it cannot be seen,
   * so `unknown-token` is only reported for accesses `maxTokenLifetimeMs` or more after it.
   */
  trailSince?: Date;
  /** The longest a token lives (default one hour); see `trailSince`. */
  maxTokenLifetimeMs?: number;
  /** More accesses than this with one token is a `volume` finding (default 20). */
  maxPerToken?: number;
  /** More accesses than this by one client within any 60 minutes is a `volume` finding (default 500). */
  maxPerClientPerHour?: number;
  /**
   * A hook call whose access count is more than this many times its client's median (and at
   * least 10) is a `volume` finding, once the client has 5 hook calls; 0 turns it off (default 5).
   */
  medianFactor?: number;
}

/** One access, token or client that looks unreasonable. */
export interface Finding {
  kind: FindingKind;
  /** ISO time of the access (for a client's volume: the start of the busiest hour). */
  at: string;
  /** The OAuth client, and the RFC 8693 actor chain when a delegate token was used. */
  client: string;
  clientName?: string;
  actors: string[];
  hookInstance?: string;
  /** The token's `jti` (an opaque id, never the token). */
  tokenId?: string;
  /** The AuditEvent id of the access. */
  accessId?: string;
  action?: string;
  resourceType?: string;
  status?: number;
  errorCode?: string;
  /** Internal references at stake: the patients or resources concerned. */
  references: string[];
  /** What was seen, in a sentence. */
  detail: string;
}

/** What one client did in the window. */
export interface ClientSummary {
  client: string;
  clientName?: string;
  /** Tokens issued for a hook call (`issued` records naming a hookInstance). */
  hookTokens: number;
  /** Delegate tokens obtained by RFC 8693 exchange. */
  delegateTokens: number;
  accesses: number;
  /** Accesses answered 4xx or 5xx (the `refused` finding is about 401, 403 and 429 only). */
  refused: number;
  /** Distinct patients whose data was returned (2xx answers). */
  patients: number;
  findings: number;
}

/** The answer of {@link reviewAccesses}. */
export interface ReviewReport {
  window: { since?: string; until?: string };
  thresholds: { maxPerToken: number; maxPerClientPerHour: number; medianFactor: number };
  /** FHIR accesses reviewed (in the window). */
  accesses: number;
  /** Token events read (the window and the context before it). */
  tokenEvents: number;
  clients: ClientSummary[];
  /** Oldest first. */
  findings: Finding[];
  counts: Record<FindingKind, number>;
}
