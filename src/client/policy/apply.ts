/**
 * Applying the sharing policy to one hook call, on copies: the input is never changed.
 *
 * What the payer sees of a withholding (CRD: the client is the final arbiter; CDS Hooks: `null`
 * means "no data", an absent key "not fetched"):
 * - A withheld prefetch resource: its key is omitted, never set to `null`. The payer reads it as
 *   "not fetched" and may query the FHIR API, where the same policy applies. `null` would tell it
 *   the data does not exist, which could turn into a wrong answer for the patient.
 * - A withheld Bundle entry: the entry is removed and `total` lowered. A prefetch Bundle whose
 *   every entry was withheld is omitted like a single resource, so it never reads as "none".
 *   Nothing marks the removal: a marker would itself disclose that sensitive data exists.
 * - A stripped element: the resource carries the REDACTED security label.
 * - A withheld order (draftOrders or appointments entry, dispatched order, any resource in the
 *   context): it cannot be left out silently from a hook about it, and it cannot be sent. It is
 *   removed with its `selections` / `dispatchedOrders` references and the fulfillment Tasks about
 *   it, and is listed in `withheldOrders`: no CRD call is made for it. When no order the hook is
 *   about is left (for order-select, no selection), the outcome is `withheld-order` and no call
 *   is made at all.
 * - Contained resources are judged with their container: a sensitive contained resource
 *   withholds the container (removing it alone would leave a dangling `#` reference).
 * - A resource withheld in one place of the call is withheld wherever else it appears (by
 *   `Type/id`), even if that copy alone would pass.
 */
import { stripElements } from './elements.js';
import { isResource, readFacts } from './facts.js';
import {
  compilePolicy,
  judgeFacts,
  judgeLabels,
  type Audience,
  type CompiledPolicy,
  type Reasons,
} from './judge.js';
import { checkSharingPolicy } from './load.js';
import type { SharingInput, SharingPolicy, SharingResult, Withheld } from './types.js';

type Json = Record<string, unknown>;
type Resource = Json & { resourceType: string };

/** The hook input could not be judged (a value is neither a resource nor plain data). */
export class SharingInputError extends Error {
  override name = 'SharingInputError';
  readonly code = 'ERR_SHARING_INPUT';

  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`${key}: ${message}`);
  }
}

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `https://ehr/fhir/Condition/1` → `Condition/1`. */
function tail(ref: string): string {
  return ref
    .replace(/\/_history\/[^/]+$/, '')
    .split('/')
    .slice(-2)
    .join('/');
}

/** Whether a value holds a FHIR resource anywhere inside. */
function holdsResource(value: unknown): boolean {
  if (isResource(value)) return true;
  if (Array.isArray(value)) return value.some(holdsResource);
  return isObject(value) && Object.values(value).some(holdsResource);
}

/** One application of the policy: what was withheld, and the orders seen in the context. */
class SharingRun {
  readonly withheld: Withheld[] = [];
  private readonly seen = new Set<string>();
  private readonly refs = new Map<string, Reasons>();
  /** References of the resources found in the context while it is walked. */
  orders: string[] | undefined;

  constructor(
    private readonly policy: CompiledPolicy,
    private readonly audience: Audience,
  ) {}

  /** Whether a reference (`Type/id`, a fullUrl, a location) names a withheld resource. */
  isWithheld(ref: string): boolean {
    return this.refs.has(ref) || this.refs.has(tail(ref));
  }

  /** The reasons a withheld reference was withheld. */
  reasonsOf(ref: string): Reasons {
    return this.refs.get(ref) ?? this.refs.get(tail(ref)) ?? [];
  }

  /** Records a withheld resource under its reference (and fullUrl), with its reasons. */
  withhold(reference: string, reasons: Reasons, fullUrl?: string): void {
    for (const key of [reference, fullUrl].filter((k): k is string => k !== undefined)) {
      const all = [...(this.refs.get(key) ?? []), ...reasons];
      this.refs.set(key, all);
      this.refs.set(tail(key), all);
    }
    this.log(reference, reasons);
  }

  /** Adds withholdings to the result, each once. */
  log(reference: string, reasons: Reasons): void {
    for (const { reason, detail } of reasons) {
      const key = JSON.stringify([reference, reason, detail]);
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.withheld.push({ reference, reason, detail });
    }
  }

  /** The resource to send (elements stripped, in place), or `undefined` when withheld. */
  resource(resource: Resource, where: string, fullUrl?: string): Resource | undefined {
    if (resource.resourceType === 'Bundle') return this.bundle(resource, where, fullUrl);
    const facts = readFacts(resource);
    const reference = facts.reference ?? fullUrl ?? where;
    this.orders?.push(reference);
    const reasons = judgeFacts(this.policy, facts, this.audience);
    if (reasons.length > 0) {
      this.withhold(reference, reasons, fullUrl);
      return undefined;
    }
    for (const detail of stripElements(resource, this.policy.elements)) {
      this.log(reference, [{ reason: 'element', detail }]);
    }
    return resource;
  }

  /** A Bundle: withheld whole by its own labels, otherwise entry by entry. */
  private bundle(bundle: Resource, where: string, fullUrl?: string): Resource | undefined {
    const facts = readFacts(bundle);
    const own = judgeLabels(this.policy, facts);
    const entries: unknown[] = Array.isArray(bundle.entry) ? bundle.entry : [];
    if (own.length > 0) {
      this.withhold(facts.reference ?? fullUrl ?? where, own, fullUrl);
      entries.forEach((e, i) => this.withholdAll(e, `${where}.entry[${i}]`, own));
      return undefined;
    }
    let removed = 0;
    const kept = entries.filter((e, i) => {
      if (!isObject(e) || !isResource(e.resource)) return true;
      const url = typeof e.fullUrl === 'string' ? e.fullUrl : undefined;
      const keep = this.resource(e.resource, `${where}.entry[${i}]`, url) !== undefined;
      if (!keep) removed += 1;
      return keep;
    });
    if (Array.isArray(bundle.entry)) bundle.entry = kept;
    if (removed > 0 && typeof bundle.total === 'number') {
      bundle.total = Math.max(0, bundle.total - removed);
    }
    return bundle;
  }

  /** Records an entry of a Bundle withheld whole, with the Bundle's reasons. */
  private withholdAll(entry: unknown, where: string, reasons: Reasons): void {
    if (!isObject(entry) || !isResource(entry.resource)) return;
    const url = typeof entry.fullUrl === 'string' ? entry.fullUrl : undefined;
    if (entry.resource.resourceType === 'Bundle') {
      const inner = Array.isArray(entry.resource.entry) ? entry.resource.entry : [];
      inner.forEach((e: unknown, i: number) =>
        this.withholdAll(e, `${where}.entry[${i}]`, reasons),
      );
      return;
    }
    const reference = readFacts(entry.resource).reference ?? url ?? where;
    this.orders?.push(reference);
    this.withhold(reference, reasons, url);
  }

  /** A context or prefetch value: resources judged, plain data kept, anything else refused. */
  value(value: unknown, where: string): { keep: boolean; value: unknown } {
    if (isResource(value)) {
      const kept = this.resource(value, where);
      return { keep: kept !== undefined, value: kept };
    }
    if (Array.isArray(value)) {
      const kept = value.flatMap((v, i) => {
        const r = this.value(v, `${where}[${i}]`);
        return r.keep ? [r.value] : [];
      });
      return { keep: true, value: kept };
    }
    if (holdsResource(value)) throw new SharingInputError(where, 'holds a resource out of place');
    return { keep: true, value };
  }
}

const isString = (v: unknown): v is string => typeof v === 'string';

/** Context elements that are references to orders, not resources. */
const ORDER_REFERENCES = ['dispatchedOrders', 'selections'];
/** Context elements that support an order rather than being one (order-dispatch). */
const SUPPORTING = 'fulfillmentTasks';

/**
 * Applies the sharing policy to one hook call: security labels, the enabled categories of
 * sensitive codes, the patient's consents (when `honourConsent`) and the stripped elements. The
 * result says what was withheld by reference and reason only; `input` is not changed. Throws a
 * `ConfigError` for an invalid policy and a {@link SharingInputError} for input it cannot judge.
 *
 * @example
 * const result = applySharingPolicy(loadSharingPolicy(), {
 *   context, prefetch, consents, payer: { organization: 'Organization/payer1' },
 * });
 * if (result.outcome === 'withheld-order') return noCall(result.withheldOrders, result.withheld);
 * send({ ...request, context: result.context, prefetch: result.prefetch });
 */
export function applySharingPolicy(policy: SharingPolicy, input: SharingInput): SharingResult {
  const run = new SharingRun(compilePolicy(checkSharingPolicy(policy)), {
    consents: input.consents ?? [],
    payer: input.payer ?? {},
    now: input.now ?? new Date(),
  });
  const prefetch = structuredClone(input.prefetch ?? {});
  const context = structuredClone(input.context ?? {});
  filterPrefetch(run, prefetch);
  const orders = filterContext(run, context);
  sweep(run, prefetch);
  sweep(run, context);
  omitEmptied(prefetch, input.prefetch ?? {});
  const withheldOrders = [...new Set(orders.filter((o) => run.isWithheld(o)))];
  const selections = input.context?.selections;
  const subjects = Array.isArray(selections) ? selections.filter(isString) : orders;
  const { withheld } = run;
  if (subjects.length > 0 && subjects.every((s) => run.isWithheld(s))) {
    return { outcome: 'withheld-order', withheld, withheldOrders };
  }
  return { outcome: 'send', context, prefetch, withheld, withheldOrders };
}

function filterPrefetch(run: SharingRun, prefetch: Json): void {
  for (const key of Object.keys(prefetch)) {
    const value = prefetch[key];
    if (value === null) continue;
    if (!isResource(value)) {
      throw new SharingInputError(`prefetch.${key}`, 'must be a FHIR resource or null');
    }
    if (run.resource(value, `prefetch.${key}`) === undefined) delete prefetch[key];
  }
}

const entryCount = (v: unknown) => (isObject(v) && Array.isArray(v.entry) ? v.entry.length : 0);

/** A prefetch Bundle left with no entry would read as "none exist": it is omitted instead. */
function omitEmptied(prefetch: Json, original: Json): void {
  for (const key of Object.keys(prefetch)) {
    const emptied = entryCount(original[key]) > 0 && entryCount(prefetch[key]) === 0;
    if (emptied && isResource(prefetch[key])) delete prefetch[key];
  }
}

/** Whether a value is a copy of a withheld resource (same `Type/id`). */
function copyOfWithheld(run: SharingRun, v: unknown): boolean {
  if (!isResource(v) || v.resourceType === 'Bundle' || typeof v.id !== 'string') return false;
  return run.isWithheld(`${v.resourceType}/${v.id}`);
}

/** Removes, in place, the other copies of withheld resources: values, list items, entries. */
function sweep(run: SharingRun, container: Json): void {
  for (const [key, value] of Object.entries(container)) {
    if (copyOfWithheld(run, value)) delete container[key];
    else if (Array.isArray(value)) container[key] = value.filter((v) => !copyOfWithheld(run, v));
    else if (isResource(value) && value.resourceType === 'Bundle') sweepBundle(run, value);
  }
}

function sweepBundle(run: SharingRun, bundle: Json): void {
  if (!Array.isArray(bundle.entry)) return;
  const entries: unknown[] = bundle.entry;
  const kept = entries.filter((e) => !(isObject(e) && copyOfWithheld(run, e.resource)));
  for (const e of kept) {
    if (isObject(e) && isResource(e.resource) && e.resource.resourceType === 'Bundle') {
      sweepBundle(run, e.resource);
    }
  }
  bundle.entry = kept;
  const removed = entries.length - kept.length;
  if (removed > 0 && typeof bundle.total === 'number') {
    bundle.total = Math.max(0, bundle.total - removed);
  }
}

/** Filters the context in place; returns the references of the orders it held. */
function filterContext(run: SharingRun, context: Json): string[] {
  run.orders = [];
  for (const key of Object.keys(context)) {
    if (key === SUPPORTING || ORDER_REFERENCES.includes(key)) continue;
    const result = run.value(context[key], `context.${key}`);
    if (result.keep) context[key] = result.value;
    else delete context[key];
  }
  const orders = run.orders;
  run.orders = undefined;
  for (const key of ORDER_REFERENCES) {
    if (!Object.hasOwn(context, key)) continue;
    const value = run.value(context[key], `context.${key}`).value;
    if (key === 'dispatchedOrders' && Array.isArray(value)) orders.push(...value.filter(isString));
    context[key] = Array.isArray(value)
      ? value.filter((r) => !(isString(r) && run.isWithheld(r)))
      : value;
  }
  if (Object.hasOwn(context, SUPPORTING)) filterTasks(run, context);
  return orders;
}

/** Fulfillment Tasks: judged on their own, and withheld with the order they are about. */
function filterTasks(run: SharingRun, context: Json): void {
  const tasks = context[SUPPORTING];
  if (!Array.isArray(tasks)) {
    const result = run.value(tasks, `context.${SUPPORTING}`);
    if (result.keep) context[SUPPORTING] = result.value;
    else delete context[SUPPORTING];
    return;
  }
  context[SUPPORTING] = tasks.flatMap((task, i) => {
    const where = `context.${SUPPORTING}[${i}]`;
    const result = run.value(task, where);
    if (!result.keep || !isResource(result.value)) return result.keep ? [result.value] : [];
    const about = [
      result.value.focus,
      ...(Array.isArray(result.value.basedOn) ? result.value.basedOn : []),
    ]
      .map((r) => (isObject(r) && isString(r.reference) ? r.reference : undefined))
      .find((r) => r !== undefined && run.isWithheld(r));
    if (about === undefined) return [result.value];
    run.withhold(readFacts(result.value).reference ?? where, run.reasonsOf(about));
    return [];
  });
}
