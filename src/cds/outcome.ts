/**
 * CDS Hooks and FHIR errors on the wire: every refusal is an HTTP status plus an
 * OperationOutcome (hook-10). Messages name the element in quotes and never echo a token,
 * key or resource content.
 */

/** FHIR `OperationOutcome.issue.code` values used by crdkit. */
export type IssueType =
  | 'invalid'
  | 'structure'
  | 'required'
  | 'value'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'not-found'
  | 'not-supported'
  | 'too-long'
  | 'throttled'
  | 'exception'
  | 'timeout'
  | 'transient'
  | 'business-rule'
  | 'processing';

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: Array<{
    severity: 'fatal' | 'error' | 'warning' | 'information';
    code: IssueType;
    details: { coding: Array<{ system: string; code: string }>; text: string };
    expression?: string[];
  }>;
}

/** The code system that carries crdkit's stable error codes in `issue.details`. */
export const CRDKIT_ERROR_SYSTEM = 'urn:crdkit:error';

/**
 * One failure with a stable `code`, an HTTP `status`, the FHIR issue type and, where it helps,
 * the element at fault (`expression`, a FHIRPath-like path such as `context.patientId`).
 */
export class CdsError extends Error {
  override name = 'CdsError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issueType: IssueType = 'invalid',
    readonly expression?: string,
  ) {
    super(message);
  }

  /** The OperationOutcome body for this error. */
  toOutcome(): OperationOutcome {
    return operationOutcome(this.issueType, this.code, this.message, this.expression);
  }
}

/** Builds a single-issue OperationOutcome. */
export function operationOutcome(
  issueType: IssueType,
  code: string,
  text: string,
  expression?: string,
): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [
      {
        severity: 'error',
        code: issueType,
        details: { coding: [{ system: CRDKIT_ERROR_SYSTEM, code }], text },
        ...(expression ? { expression: [expression] } : {}),
      },
    ],
  };
}
