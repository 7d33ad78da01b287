/**
 * The errors of the EHR's FHIR API for payers: one table of stable codes, each with its HTTP
 * status, FHIR issue type and fixed message. Messages name an element or parameter in quotes and
 * never echo a token, a value sent or resource content.
 */
import { CdsError, type IssueType } from '../../cds/outcome.js';

export const FHIR_API_ERRORS = {
  ERR_TOKEN_MISSING: { status: 401, issueType: 'login', message: 'a bearer token is required' },
  ERR_TOKEN_INVALID: {
    status: 401,
    issueType: 'login',
    message: 'the access token is unknown, expired or revoked',
  },
  ERR_TOKEN_AUDIENCE: {
    status: 401,
    issueType: 'login',
    message: 'the access token was not issued for this FHIR server',
  },
  ERR_TOKEN_CHECK: {
    status: 503,
    issueType: 'transient',
    message: 'the access token could not be checked; try again',
  },
  ERR_SCOPE: {
    status: 403,
    issueType: 'forbidden',
    message: "the token's scopes do not allow this request",
  },
  ERR_PATIENT: {
    status: 403,
    issueType: 'forbidden',
    message: "the token's patient does not allow this request",
  },
  ERR_NOT_FOUND: { status: 404, issueType: 'not-found', message: 'no such resource' },
  ERR_RATE_LIMITED: {
    status: 429,
    issueType: 'throttled',
    message: 'too many requests from this client; retry later',
  },
  ERR_TYPE_UNSUPPORTED: {
    status: 404,
    issueType: 'not-supported',
    message: 'this server does not serve that resource type',
  },
  ERR_ENDPOINT: { status: 404, issueType: 'not-found', message: 'no such endpoint' },
  ERR_INTERACTION: {
    status: 405,
    issueType: 'not-supported',
    message: 'this interaction is not supported on that resource type',
  },
  ERR_SEARCH_PARAM: {
    status: 400,
    issueType: 'not-supported',
    message: 'a search parameter is unknown or not supported (see the CapabilityStatement)',
  },
  ERR_SEARCH_VALUE: { status: 400, issueType: 'value', message: 'a search value is invalid' },
  ERR_SEARCH_TOO_BROAD: {
    status: 400,
    issueType: 'too-long',
    message: 'the search matches more resources than one answer holds (no paging); narrow it',
  },
  ERR_BODY: {
    status: 400,
    issueType: 'structure',
    message: 'the body must be a FHIR resource of the type in the URL',
  },
  ERR_BODY_ID: {
    status: 400,
    issueType: 'value',
    message: 'the resource "id" must be the id in the URL',
  },
  ERR_PATIENT_CHANGED: {
    status: 400,
    issueType: 'business-rule',
    message: 'an update may not move a resource to another patient',
  },
  ERR_JSON: { status: 400, issueType: 'structure', message: 'the request body is not valid JSON' },
  ERR_JSON_DEPTH: {
    status: 400,
    issueType: 'structure',
    message: 'the request body nests too deeply',
  },
  ERR_BODY_TOO_LARGE: {
    status: 413,
    issueType: 'too-long',
    message: 'the request body exceeds the size limit',
  },
  ERR_CONTENT_TYPE: {
    status: 415,
    issueType: 'not-supported',
    message: 'the body must be "application/fhir+json" (or form-encoded for "_search")',
  },
  ERR_FORMAT: {
    status: 406,
    issueType: 'not-supported',
    message: 'only "application/fhir+json" is served',
  },
  ERR_PRECONDITION: {
    status: 412,
    issueType: 'business-rule',
    message: 'the resource has changed since the version named in "If-Match"',
  },
  ERR_SEC7: {
    status: 500,
    issueType: 'security',
    message: 'a resource of the answer may not be shared (sec-7); nothing was sent',
  },
  ERR_INTERNAL: {
    status: 500,
    issueType: 'exception',
    message: 'internal error; the request was not processed',
  },
} as const satisfies Record<string, { status: number; issueType: IssueType; message: string }>;

export type FhirApiErrorCode = keyof typeof FHIR_API_ERRORS;

/** A refusal of the FHIR API, with its status and, for 401 and 403, its `WWW-Authenticate`. */
export class FhirApiError extends CdsError {
  override name = 'FhirApiError';
  declare readonly code: FhirApiErrorCode;
  readonly wwwAuthenticate?: string;
  /** Seconds to wait, for a 429 (`Retry-After`). */
  retryAfterSeconds?: number;

  /** `detail` is a fixed text or a parameter name, never a value received. */
  constructor(code: FhirApiErrorCode, detail?: string, expression?: string) {
    const spec = FHIR_API_ERRORS[code];
    super(
      spec.status,
      code,
      detail ? `${spec.message}: ${detail}` : spec.message,
      spec.issueType,
      expression,
    );
    if (spec.status === 401) this.wwwAuthenticate = 'Bearer error="invalid_token"';
    if (spec.status === 403) this.wwwAuthenticate = 'Bearer error="insufficient_scope"';
  }
}
