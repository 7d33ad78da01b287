/**
 * Failures of the EHR's resource store and Bundle loader: one table of stable codes, each with
 * its HTTP status and a fixed message. Messages name the element at fault, never a value.
 */
import { CdsError, type IssueType } from '../../cds/outcome.js';

export const STORE_ERRORS = {
  ERR_STORE_NOT_FOUND: { status: 404, issueType: 'not-found', message: 'no such resource' },
  ERR_STORE_VERSION: {
    status: 412,
    // FHIR's issue type would be `conflict`, which src/cds/outcome.ts does not list yet.
    issueType: 'business-rule',
    message: 'the resource has changed since the version named in "If-Match"',
  },
  ERR_STORE_INVALID: { status: 400, issueType: 'structure', message: 'the resource is invalid' },
  ERR_BUNDLE_INVALID: { status: 400, issueType: 'structure', message: 'the Bundle is invalid' },
  ERR_BUNDLE_REFERENCE: {
    status: 400,
    issueType: 'not-found',
    message: 'a reference of the Bundle names no single resource',
  },
} as const satisfies Record<string, { status: number; issueType: IssueType; message: string }>;

export type StoreErrorCode = keyof typeof STORE_ERRORS;

/** A failure of the store; `detail` is a fixed text or a field name, never data. */
export class StoreError extends CdsError {
  override name = 'StoreError';
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, detail?: string, expression?: string) {
    const spec = STORE_ERRORS[code];
    const message = detail ? `${spec.message}: ${detail}` : spec.message;
    super(spec.status, code, message, spec.issueType, expression);
  }
}
