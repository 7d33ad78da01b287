/**
 * `decide`: the coverage decision for one order. The first applicable rule wins (plan rules,
 * then payer rules, in file order); otherwise the plan's or payer's default.
 */
import type { Resource } from '@medplum/fhirtypes';
import { orderCodes, type RelatedResources } from '../crd/order-codes.js';
import type { Coding, Decision, DecisionInput } from '../crd/types.js';
import { anyMatch } from './code-systems.js';
import { FhirPathBudgetError, isTrue } from './fhirpath.js';
import { toDetermination, withUnmetNeeds } from './outcome.js';
import { planOf } from './payer.js';
import type { Payer, Rule, RulesFile } from './schema.js';

/** Optional hooks for the caller (logging). */
export interface DecideOptions {
  /**
   * Called when a rule expression fails at run time. Gets the rule id and a stable code
   * (`RULES_FHIRPATH_BUDGET` or `RULES_FHIRPATH_EVAL`), never the message: FHIRPath errors
   * can quote patient data.
   */
  onError?: (e: { ruleId: string; code: string }) => void;
}

/**
 * Decides coverage for `input.order` (one Decision per order in scope).
 * - A rule applies when its `resourceTypes`, `hooks` and `plans` include the order's, one of
 *   its `codes` matches a code of the order (clinical codes and billing options, billopt-3),
 *   and its `when` is true. The first applicable rule decides; later ones are not evaluated.
 * - `needs` that are not true make the outcome conditional with info-needed (conf-12).
 * - No rule: the plan's `default`, else the payer's.
 * - A FHIRPath failure at run time gives `indeterminate` with reason `technical` (resp-43).
 */
export function decide(rules: RulesFile, input: DecisionInput, opts: DecideOptions = {}): Decision {
  const payer = rules.payers.find((p) => p.id === input.payerId);
  if (payer === undefined) return technical('(unknown-payer)');
  const planId = planOf(input.coverage);
  const plan = payer.plans.find((p) => p.id === planId);
  const codes = orderCodes(input.order, related(input.data));
  const root = { ...input.data, order: input.order, coverage: input.coverage };
  const env: Record<string, unknown> = {
    order: input.order,
    coverage: input.coverage,
    patient: input.data.patient ?? [],
    hook: input.hook,
    today: input.today,
    payer: payer.id,
  };
  let current = '(none)';
  try {
    for (const rule of [...(plan?.rules ?? []), ...payer.rules]) {
      current = rule.id;
      const when = (): boolean => rule.when === undefined || isTrue(rule.when.evaluate(root, env));
      if (!applies(rule, input, planId, codes, when)) continue;
      const unmet = rule.needs.filter((n) => !isTrue(n.expr.evaluate(root, env)));
      const outcome = withUnmetNeeds(rule.then, unmet);
      return {
        ruleId: rule.id,
        determination: toDetermination(outcome, input.today, payer.contacts),
        cards: rule.cards,
      };
    }
  } catch (e) {
    const code = e instanceof FhirPathBudgetError ? e.code : 'RULES_FHIRPATH_EVAL';
    opts.onError?.({ ruleId: current, code });
    return technical(current);
  }
  return fallback(payer, plan, input.today);
}

function applies(
  rule: Rule,
  input: DecisionInput,
  planId: string | undefined,
  codes: Coding[],
  when: () => boolean,
): boolean {
  if (rule.resourceTypes && !rule.resourceTypes.includes(input.order.resourceType as never)) {
    return false;
  }
  if (rule.hooks && !rule.hooks.includes(input.hook)) return false;
  if (rule.plans && (planId === undefined || !rule.plans.includes(planId))) return false;
  if (rule.codes.length > 0 && !anyMatch(rule.codes, codes)) return false;
  return when();
}

function fallback(payer: Payer, plan: Payer['plans'][number] | undefined, today: string): Decision {
  const planDefault = plan?.default;
  return {
    ruleId: planDefault ? `default:${payer.id}:${plan?.id ?? ''}` : `default:${payer.id}`,
    determination: toDetermination(planDefault ?? payer.default, today, payer.contacts),
    cards: [],
  };
}

/** resp-43: indeterminate, reason `technical`, text without PHI (the rule id only). */
function technical(ruleId: string): Decision {
  return {
    ruleId,
    determination: {
      covered: 'indeterminate',
      reasons: [
        {
          code: 'technical',
          text: `The payer's coverage rules could not be evaluated for this order (rule ${ruleId})`,
        },
      ],
    },
    cards: [],
  };
}

/**
 * Medications, Devices and ServiceRequests the order may reference, from `data.resources`
 * (gathered by the server) and every Bundle or resource in `data.prefetch` and `data.context`.
 */
export function related(data: Record<string, unknown>): RelatedResources {
  const all: Resource[] = [];
  const add = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(add);
    if (v === null || typeof v !== 'object') return;
    const r = v as { resourceType?: unknown; entry?: Array<{ resource?: unknown }> };
    if (r.resourceType === 'Bundle') r.entry?.forEach((e) => add(e.resource));
    else if (typeof r.resourceType === 'string') all.push(v as Resource);
  };
  add(data.resources);
  for (const key of ['prefetch', 'context']) {
    const o = data[key];
    if (o !== null && typeof o === 'object') Object.values(o).forEach(add);
  }
  const of = (t: string): Resource[] => all.filter((r) => r.resourceType === t);
  return {
    medications: of('Medication'),
    devices: of('Device'),
    serviceRequests: of('ServiceRequest'),
  };
}
