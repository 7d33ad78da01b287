/** The prefetch engine's inputs and outputs. */
import type { Bundle, Coverage, Resource } from '@medplum/fhirtypes';
import type { FailureReason } from './failure.js';

/**
 * The CRD client's own access to its EHR's FHIR API. Readers pass `signal` on to the request
 * and use {@link shouldPost} to choose `GET {type}?…` or `POST {type}/_search`.
 */
export interface FhirReader {
  /** `undefined` when the resource does not exist (404 or 410). */
  read(type: string, id: string, signal: AbortSignal): Promise<Resource | undefined>;
  search(type: string, params: URLSearchParams, signal: AbortSignal): Promise<Bundle>;
}

export interface PrefetchInput {
  /** The service's prefetch from discovery, keys and queries as given (found-31). */
  templates: Record<string, string>;
  /** The hook context (`patientId`, `draftOrders`, `dispatchedOrders`, `appointments`, …). */
  context: Record<string, unknown>;
  /** The current user, `Type/id`; defaults to `context.userId`. */
  user?: string;
  /** dev-29: the only Coverage a Coverage key may hold. Without it, Coverage keys are left out. */
  primaryCoverage?: Coverage;
  /** One deadline for every query of this prefetch, in milliseconds. */
  deadlineMs: number;
  /** Cancels the whole prefetch early (e.g. the user bypassed the hook). */
  signal?: AbortSignal;
  /** The EHR's FHIR base URL: absolute references under it count as its own. */
  fhirBase?: string;
  /** FHIR requests in flight at once (default 8). */
  maxParallel?: number;
  /**
   * Applied to each key's result before dependent templates (`%key`) may use it: what it takes
   * away (another patient's data, withheld data) can never flow into another query.
   */
  screen?: (value: Resource | null) => Resource | null;
}

export interface PrefetchFailureEntry {
  key: string;
  reason: FailureReason;
  /** For the log: names template parts, never record content (ids excepted). */
  detail: string;
}

export interface PrefetchResult {
  /** `null`: looked for, no data. Key absent: could not be fetched (see `failed`). */
  prefetch: Record<string, Resource | null>;
  failed: PrefetchFailureEntry[];
  /** The queries sent, in the order they started, with their duration. */
  queries: Array<{ key: string; query: string; ms: number }>;
}
