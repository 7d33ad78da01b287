/**
 * The CRD client's sharing policy: the client is the final arbiter of what leaves the EHR for a
 * payer (CRD security.md; HRex sec-5, sec-6). Load the policy once at start-up, apply it to every
 * hook call after prefetch and before id mapping and signing, and give `withheld` to the audit
 * trail: references, reasons and code or category names only, never resource content.
 *
 * @example
 * const policy = loadSharingPolicy(); // policy/sensitive-codes.yaml, or a file of your own
 * const result = applySharingPolicy(policy, { context, prefetch, consents, payer });
 */
export { applySharingPolicy, SharingInputError } from './apply.js';
export { CODED_ELEMENTS } from './facts.js';
export { REDACTED } from './elements.js';
export { compilePolicy, judgeResource, type Audience, type CompiledPolicy } from './judge.js';
export {
  checkSharingPolicy,
  DEFAULT_POLICY_FILE,
  loadSharingPolicy,
  parseSharingPolicy,
} from './load.js';
export type {
  PayerIdentity,
  PolicyCoding,
  SharingInput,
  SharingPolicy,
  SharingResult,
  Withheld,
  WithheldReason,
} from './types.js';
