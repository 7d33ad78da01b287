/** The CRD client's handling of the payer's answer: validate, apply coverage information, dedupe. */
export {
  AnswerError,
  carriesCoverageInformation,
  isSafeHttpsUrl,
  referenceKey,
  validateResponse,
  type AnswerRequest,
  type ValidatedResponse,
} from './validate.js';
export {
  applyCoverageInformation,
  type AppliedCoverageInformation,
  type ApplyOptions,
} from './coverage.js';
export { AdviceMemory, fingerprint, type AdviceMemoryOptions } from './advice-memory.js';
export { copyJson, NotJsonError } from './safe-json.js';
export type * from './types.js';
