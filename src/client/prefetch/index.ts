/**
 * The CRD client's prefetch engine: a CDS service's prefetch templates (from discovery) become
 * prefetch data read from the EHR's own FHIR API.
 *
 * @example
 * import { runPrefetch } from './client/prefetch/index.js';
 * const result = await runPrefetch(
 *   { templates: service.prefetch, context, primaryCoverage, deadlineMs: 2000 },
 *   reader,
 * );
 * // result.prefetch → the request's `prefetch`; result.failed and result.queries → the log
 */
export { runPrefetch } from './run.js';
export { shouldPost, MAX_GET_LENGTH } from './post.js';
export {
  resolveTemplate,
  parseTemplate,
  fillTemplate,
  type ParsedTemplate,
  type ResolvedTemplate,
  type TemplateVars,
} from './template.js';
export { compileToken, evaluateToken, USER_TOKENS } from './token.js';
export { expandGroups } from './scan.js';
export { PrefetchFailure, type FailureReason } from './failure.js';
export type { FhirReader, PrefetchInput, PrefetchResult, PrefetchFailureEntry } from './types.js';
