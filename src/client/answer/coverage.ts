/**
 * Applying Coverage Information system actions to the EHR's own orders (resp-48, resp-37,
 * resp-46). Only the `ext-coverage-information` extensions are taken from the payer's copy;
 * everything else of the EHR's order stays as it was. Nothing else is ever applied automatically.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Extension, Resource } from '@medplum/fhirtypes';
import { checkCoverageInformation } from '../../crd/coverage-info-check.js';
import { COVERAGE_INFORMATION_URL } from '../../crd/coverage-codes.js';
import { copyJson } from './safe-json.js';
import type { Problem, SystemAction } from './types.js';
import { carriesCoverageInformation, referenceKey } from './validate.js';

/** Optional context of {@link applyCoverageInformation}. */
export interface ApplyOptions {
  /**
   * The orders as they were sent to the payer, when the sharing policy changed them. The payer's
   * copy is compared with these (resp-37); the extensions still go onto `orders`. Default: `orders`.
   */
  sent?: Resource[];
  /**
   * The Coverage the call was made for (`Coverage/COV1`). When given, every extension must name
   * it, so one payer cannot overwrite the coverage information of another coverage.
   */
  coverage?: string;
}

export interface AppliedCoverageInformation {
  /** Fresh copies of the orders that received coverage information (inputs are not modified). */
  updated: Resource[];
  /** Every extension applied, with its order (`ServiceRequest/1357`): keep them for DTR and PAS. */
  coverageInformation: Array<{ order: string; extension: Extension }>;
  /** Coverage-information updates refused, with the reason; none of their content was applied. */
  rejected: Problem[];
  /**
   * System actions that are not coverage-information updates: never applied here; the caller may
   * offer them for review (resp-68: a holding area) or ignore them.
   */
  others: Array<{ where: string; action: SystemAction }>;
}

/** Order statuses for which nothing is applied (resp-50). */
const CLOSED = new Set(['revoked', 'entered-in-error', 'cancelled', 'completed']);

type WithExtensions = Resource & { extension?: Extension[]; status?: string };

/**
 * Applies each valid coverage-information `update` in `systemActions` to the matching order
 * (same resourceType and id): earlier coverage information for the same coverage is replaced,
 * that of other coverages and every other element are kept.
 */
export function applyCoverageInformation(
  orders: Resource[],
  systemActions: SystemAction[],
  opts: ApplyOptions = {},
): AppliedCoverageInformation {
  const byKey = new Map(orders.map((o) => [`${o.resourceType}/${o.id}`, o as WithExtensions]));
  const sentByKey = new Map((opts.sent ?? []).map((o) => [`${o.resourceType}/${o.id}`, o]));
  const expectedCoverage = opts.coverage === undefined ? undefined : coverageKey(opts.coverage);
  const current = new Map<string, WithExtensions>();
  const result: AppliedCoverageInformation = {
    updated: [],
    coverageInformation: [],
    rejected: [],
    others: [],
  };

  systemActions.forEach((action, i) => {
    const where = `systemActions[${i}]`;
    if (action.type !== 'update' || !carriesCoverageInformation(action.resource)) {
      result.others.push({ where, action });
      return;
    }
    const reject = (reason: string): void => void result.rejected.push({ where, reason });
    let payerCopy: WithExtensions;
    try {
      payerCopy = copyJson<WithExtensions>(action.resource);
    } catch {
      return reject('the updated resource is not usable JSON');
    }
    const key = `${payerCopy.resourceType}/${payerCopy.id}`;
    const order = current.get(key) ?? byKey.get(key);
    if (!order) return reject('the update is for a resource that is not an order of this request');
    if (order.status !== undefined && CLOSED.has(order.status)) {
      return reject('the order is no longer active (resp-50)');
    }
    const reference = copyJson<WithExtensions>(sentByKey.get(key) ?? byKey.get(key));
    // resp-46: the EHR sends earlier assertions with the order; those echoed unchanged are not new.
    const known = [...coverageExtensions(reference), ...coverageExtensions(order)];
    const incoming = coverageExtensions(payerCopy).filter(
      (e) => !known.some((k) => isDeepStrictEqual(copyJson(k), e)),
    );
    for (const ext of incoming) {
      const violations = checkCoverageInformation(ext);
      if (violations.length > 0) {
        return reject(`the coverage information is invalid: ${violations.join(', ')}`);
      }
    }
    const coverages = new Set(incoming.map(extensionCoverage));
    if (expectedCoverage !== undefined && [...coverages].some((c) => c !== expectedCoverage)) {
      return reject('the coverage information names another coverage than the one asked about');
    }
    // Both sides as plain JSON, so an `undefined` member of the EHR's object is no difference.
    if (!isDeepStrictEqual(withoutCoverageInfo(reference), withoutCoverageInfo(payerCopy))) {
      return reject('the update changes more than the coverage information (resp-37)');
    }
    if (incoming.length === 0) return;

    // Replaces earlier coverage information for the same coverage; keeps everything else.
    const kept = (order.extension ?? []).filter(
      (e) => !(e.url === COVERAGE_INFORMATION_URL && coverages.has(extensionCoverage(e))),
    );
    const next: WithExtensions = structuredClone(order);
    next.extension = [...kept.map((e) => structuredClone(e)), ...incoming];
    current.set(key, next);
    for (const extension of incoming) {
      result.coverageInformation.push({ order: key, extension: structuredClone(extension) });
    }
  });
  result.updated = [...current.values()];
  return result;
}

function coverageExtensions(r: WithExtensions): Extension[] {
  return (r.extension ?? []).filter((e) => e.url === COVERAGE_INFORMATION_URL);
}

/** `Coverage/id` of an extension's `coverage` part (relative or absolute reference). */
function extensionCoverage(e: Extension): string {
  const ref = e.extension?.find((p) => p.url === 'coverage')?.valueReference;
  if (typeof ref?.reference === 'string') return coverageKey(ref.reference);
  // An identifier-only reference: compared by its exact content.
  return `identifier:${JSON.stringify(ref?.identifier ?? null)}`;
}

function coverageKey(reference: string): string {
  return referenceKey(reference) ?? reference;
}

/** The resource with its top-level coverage-information extensions removed. */
function withoutCoverageInfo(r: Resource): Record<string, unknown> {
  const { extension, ...rest } = r as WithExtensions;
  const others = (extension ?? []).filter((e) => e.url !== COVERAGE_INFORMATION_URL);
  return others.length > 0 ? { ...rest, extension: others } : rest;
}
