/**
 * Why a prefetch key could not be filled. Every failure leaves its key out of the prefetch
 * (CDS Hooks: "omit the prefetch key if relevant details cannot be provided").
 */

/**
 * - `timeout`: the shared deadline passed first.
 * - `error`: the FHIR API failed (threw, or answered with an OperationOutcome or a wrong type).
 * - `unresolvable`: a value the template needs is unknown (a `%key` it uses was left out, a
 *   read token gave several values or no valid id, no primary Coverage was given).
 * - `cycle`: the key depends on itself through `%key` variables.
 * - `unsupported`: the template uses something CDS Hooks prefetch does not allow.
 */
export type FailureReason = 'timeout' | 'error' | 'unresolvable' | 'cycle' | 'unsupported';

/**
 * One key's failure. Messages quote the template's parts, never values read from records
 * (ids excepted), so they can go to the log.
 */
export class PrefetchFailure extends Error {
  override name = 'PrefetchFailure';

  constructor(
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
  }

  /** A stable code for logs and audit, e.g. `ERR_PREFETCH_UNSUPPORTED`. */
  get code(): string {
    return `ERR_PREFETCH_${this.reason.toUpperCase()}`;
  }
}

export const unsupported = (message: string) => new PrefetchFailure('unsupported', message);
export const unresolvable = (message: string) => new PrefetchFailure('unresolvable', message);
