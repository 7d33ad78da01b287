/**
 * The CRD client's prefetch (found-24, found-25): the service's templates from discovery
 * (found-31) become queries on the EHR's own FHIR API. Keys run in parallel; a key that uses
 * `%other` waits for `other` (CDS Hooks dependent prefetch), whatever the order in discovery
 * (found-30). All queries share one deadline.
 *
 * `null` or left out (CDS Hooks: "null" for no data, "omit the prefetch key if relevant details
 * cannot be provided"):
 * - `null`: a read found nothing (404), or a token has no value (no DeviceRequest among the
 *   draft orders, no `encounterId`, no user role). Then nothing is asked: no query is ever sent
 *   half-filled (`_id=`), and the service learns the data does not exist.
 * - A search that finds nothing is the empty searchset Bundle the EHR returned (CDS Hooks: "a
 *   bundle with zero entries").
 * - Left out, and listed in `failed`: the deadline passed, the FHIR API failed, a `%key` the
 *   template uses was itself left out, the template is outside the CDS Hooks restrictions, or it
 *   depends on itself. A failed query is never passed on as an OperationOutcome: the EHR's
 *   diagnostics are not the payer's to read, and a missing key lets the service query later.
 */
import type { Resource } from '@medplum/fhirtypes';
import { onlyPrimary, primaryCoverageParams } from './coverage.js';
import { PrefetchFailure, unresolvable, unsupported, type FailureReason } from './failure.js';
import { abortable, concurrency, timeout } from './limit.js';
import { createResolver } from './references.js';
import {
  fillTemplate,
  parseTemplate,
  type ParsedTemplate,
  type ResolvedTemplate,
} from './template.js';
import type { FhirReader, PrefetchInput, PrefetchResult } from './types.js';

const DEFAULT_PARALLEL = 8;
/** Parsed templates by text: discovery documents change rarely, hooks fire often. */
const parsedCache = new Map<string, ParsedTemplate | PrefetchFailure>();
const MAX_CACHED = 512;

type Outcome =
  { ok: true; value: Resource | null } | { ok: false; reason: FailureReason; detail: string };

interface Plan {
  parsed?: ParsedTemplate;
  failure?: PrefetchFailure;
  /** The other keys this one waits for. */
  deps: string[];
}

function parseCached(template: unknown): ParsedTemplate {
  if (typeof template !== 'string') throw unsupported('the template is not a string');
  let parsed = parsedCache.get(template);
  if (!parsed) {
    try {
      parsed = parseTemplate(template);
    } catch (err) {
      if (!(err instanceof PrefetchFailure)) throw err;
      parsed = err;
    }
    if (parsedCache.size >= MAX_CACHED) parsedCache.delete(parsedCache.keys().next().value!);
    parsedCache.set(template, parsed);
  }
  if (parsed instanceof PrefetchFailure) throw parsed;
  return parsed;
}

function plan(template: unknown, keys: Set<string>): Plan {
  try {
    const parsed = parseCached(template);
    return { parsed, deps: parsed.variables.filter((v) => keys.has(v)) };
  } catch (err) {
    if (err instanceof PrefetchFailure) return { failure: err, deps: [] };
    throw err;
  }
}

/** Keys that reach themselves through their dependencies. */
function cyclicKeys(plans: Map<string, Plan>): Set<string> {
  const reaches = (from: string, target: string, seen: Set<string>): boolean =>
    (plans.get(from)?.deps ?? []).some(
      (d) => d === target || (!seen.has(d) && seen.add(d) && reaches(d, target, seen)),
    );
  return new Set([...plans.keys()].filter((k) => reaches(k, k, new Set())));
}

const failureOf = (err: unknown, signal: AbortSignal, detail: string): PrefetchFailure => {
  if (err instanceof PrefetchFailure) return err;
  return signal.aborted ? timeout() : new PrefetchFailure('error', detail);
};

/**
 * Runs a service's prefetch templates against the EHR's FHIR API.
 *
 * @example
 * const { prefetch, failed } = await runPrefetch(
 *   { templates: service.prefetch, context, primaryCoverage, deadlineMs: 2000 },
 *   reader,
 * );
 */
export async function runPrefetch(
  input: PrefetchInput,
  reader: FhirReader,
): Promise<PrefetchResult> {
  if (!Number.isFinite(input.deadlineMs) || input.deadlineMs < 0) {
    throw new RangeError('"deadlineMs" must be a finite number of milliseconds, 0 or more');
  }
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), input.deadlineMs);
  const signal = input.signal ? AbortSignal.any([deadline.signal, input.signal]) : deadline.signal;
  try {
    return await run(input, reader, signal);
  } finally {
    clearTimeout(timer);
  }
}

async function run(
  input: PrefetchInput,
  reader: FhirReader,
  signal: AbortSignal,
): Promise<PrefetchResult> {
  const keys = Object.keys(input.templates);
  const plans = new Map(keys.map((k) => [k, plan(input.templates[k], new Set(keys))]));
  const cyclic = cyclicKeys(plans);
  const user = input.user ?? (typeof input.context.userId === 'string' ? input.context.userId : '');
  const queries: PrefetchResult['queries'] = [];

  const limit = concurrency(input.maxParallel ?? DEFAULT_PARALLEL);
  const guarded = <T>(task: () => Promise<T>) =>
    abortable(
      limit(() => (signal.aborted ? Promise.reject(timeout()) : task())),
      signal,
    );

  const read = async (type: string, id: string): Promise<Resource | undefined> => {
    let found: Resource | undefined;
    try {
      found = await guarded(() => reader.read(type, id, signal));
    } catch (err) {
      throw failureOf(err, signal, `reading ${type}/${id} failed`);
    }
    if (found === undefined || found === null) return undefined;
    if (found.resourceType !== type) {
      const got = String(found.resourceType);
      throw new PrefetchFailure('error', `reading ${type}/${id} returned resourceType "${got}"`);
    }
    return found;
  };
  const resolver = createResolver(input.context, read, input.fhirBase);

  const fetchKey = async (key: string, resolved: Exclude<ResolvedTemplate, { empty: true }>) => {
    let { query } = resolved;
    let params = resolved.kind === 'search' ? resolved.params : undefined;
    const coverageId = input.primaryCoverage?.id;
    if (resolved.type === 'Coverage') {
      // dev-29: only the primary coverage, and only when it matches the template.
      if (!coverageId) throw unresolvable('no primary Coverage was given (dev-29)');
      if (resolved.kind === 'read' && resolved.id !== coverageId) return null;
      if (params) {
        params = primaryCoverageParams(params, coverageId);
        query += `${query.includes('?') ? '&' : '?'}_id=${encodeURIComponent(coverageId)}`;
      }
    }
    const entry = { key, query, ms: 0 };
    queries.push(entry);
    const started = performance.now();
    try {
      if (resolved.kind === 'read') return (await read(resolved.type, resolved.id)) ?? null;
      const bundle = await guarded(() => reader.search(resolved.type, params!, signal)).catch(
        (err: unknown) => {
          throw failureOf(err, signal, `searching ${resolved.type} failed`);
        },
      );
      if (bundle?.resourceType !== 'Bundle') {
        const got = String((bundle as Resource | undefined)?.resourceType);
        const message = `searching ${resolved.type} returned resourceType "${got}", not "Bundle"`;
        throw new PrefetchFailure('error', message);
      }
      return resolved.type === 'Coverage' ? onlyPrimary(bundle, coverageId!) : bundle;
    } finally {
      entry.ms = Math.round(performance.now() - started);
    }
  };

  const outcomes = new Map<string, Promise<Outcome>>();
  const outcomeOf = (key: string): Promise<Outcome> => {
    let outcome = outcomes.get(key);
    if (!outcome) {
      outcome = settle(key);
      outcomes.set(key, outcome);
    }
    return outcome;
  };

  async function settle(key: string): Promise<Outcome> {
    const { parsed, failure, deps } = plans.get(key)!;
    if (!parsed) return { ok: false, reason: failure!.reason, detail: failure!.message };
    if (cyclic.has(key)) {
      return { ok: false, reason: 'cycle', detail: `"${key}" depends on itself through %keys` };
    }
    const done = new Map<string, Outcome>();
    await Promise.all(deps.map(async (d) => done.set(d, await outcomeOf(d))));
    const missing = deps.find((d) => !done.get(d)!.ok);
    if (missing !== undefined) {
      const reason = signal.aborted ? 'timeout' : 'unresolvable';
      return { ok: false, reason, detail: `needs %${missing}, which could not be fetched` };
    }
    // A %name that is no key (crdkit's order-dispatch uses %encounter without an encounter
    // key) and a key without data both mean: no data.
    const variables = Object.fromEntries(
      parsed.variables.map((v) => {
        const o = done.get(v);
        const value = o?.ok && o.value ? (input.screen ? input.screen(o.value) : o.value) : null;
        return [v, value ?? []];
      }),
    );
    try {
      const resolved = await fillTemplate(parsed, {
        context: input.context,
        user,
        variables,
        resolve: (items) => resolver.resolve(items),
      });
      if ('empty' in resolved) return { ok: true, value: null };
      return { ok: true, value: await fetchKey(key, resolved) };
    } catch (err) {
      const f = failureOf(err, signal, 'the FHIR API failed');
      return { ok: false, reason: f.reason, detail: f.message };
    }
  }

  const settled = await Promise.all(keys.map(async (k) => [k, await outcomeOf(k)] as const));
  return {
    prefetch: Object.fromEntries(settled.flatMap(([k, o]) => (o.ok ? [[k, o.value]] : []))),
    failed: settled.flatMap(([key, o]) =>
      o.ok ? [] : [{ key, reason: o.reason, detail: o.detail }],
    ),
    queries,
  };
}
