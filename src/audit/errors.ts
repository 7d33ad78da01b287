/**
 * Failures of the audit trail, each with a stable code and a fixed message that names the field
 * in quotes. Messages never carry a token, a payload or a database URL.
 */
import { CdsError, type IssueType } from '../cds/outcome.js';

/** The stable error codes of the audit part: HTTP status, issue type and fixed message. */
export const AUDIT_ERRORS = {
  ERR_AUDIT_UNAVAILABLE: {
    status: 503,
    issueType: 'transient',
    message: 'the audit trail could not be written; the request was not answered',
  },
  ERR_AUDIT_INPUT: {
    status: 500,
    issueType: 'exception',
    message: 'the audit record is invalid',
  },
  ERR_AUDIT_KEY_UNKNOWN: {
    status: 500,
    issueType: 'exception',
    message: 'the payload was encrypted with a "keyId" that is not configured',
  },
  ERR_AUDIT_DECRYPT: {
    status: 500,
    issueType: 'exception',
    message: 'the payload does not decrypt with the configured key (wrong key or altered data)',
  },
} as const satisfies Record<string, { status: number; issueType: IssueType; message: string }>;

/** One of the stable audit error codes. */
export type AuditErrorCode = keyof typeof AUDIT_ERRORS;

/** A failure of the audit part, with the status and issue type of its code. */
export class AuditError extends CdsError {
  override name = 'AuditError';
  declare readonly code: AuditErrorCode;

  /** `detail` is a fixed text (a field name, never data) appended to the message. */
  constructor(code: AuditErrorCode, detail?: string) {
    const spec = AUDIT_ERRORS[code];
    super(spec.status, code, detail ? `${spec.message}: ${detail}` : spec.message, spec.issueType);
  }
}

/**
 * The audit store could not be written: the server answers 503 (fail closed). `reason` is the
 * driver's error code (`SQLITE_BUSY`, `ECONNREFUSED`, `57P01`) for the operator's log, never its
 * message, which may quote values.
 *
 * @example
 * ```ts
 * try { await audit.appendHook(input); } catch (err) { reply.code(503).send(err.toOutcome()); }
 * ```
 */
export class AuditUnavailableError extends AuditError {
  override name = 'AuditUnavailableError';
  declare readonly code: 'ERR_AUDIT_UNAVAILABLE';

  constructor(readonly reason: string = 'unknown') {
    super('ERR_AUDIT_UNAVAILABLE');
  }
}

/** The driver error code of `err` (never its message), for {@link AuditUnavailableError}. */
export { driverCode } from '../store/driver-code.js';
