/**
 * The `respond` step: coverage-information system actions (hook-16, resp-29) and cards for one
 * call, checked against crd-ci-q1..q9 before they leave (the builder throws otherwise).
 */
import { randomUUID } from 'node:crypto';
import type { Patient, Resource } from '@medplum/fhirtypes';
import type { HookRequest } from '../cds/request.js';
import { buildCards, type Card, type CardInput } from '../crd/cards.js';
import type { CallConfiguration } from '../crd/configuration.js';
import { buildCoverageInformation, coverageInformationAction } from '../crd/coverage-info.js';
import type { HookDefinition } from '../crd/hooks.js';
import type { Decision, Determination, HookName } from '../crd/types.js';
import type { Gathered } from '../fhir/gather.js';
import { decide, type RulesFile } from '../rules/index.js';
import type { ResolvedCoverage } from './coverage.js';

export interface HookResponse {
  cards: Card[];
  systemActions?: Array<{ type: 'update'; description: string; resource: Resource }>;
}

export interface RespondInput {
  def: HookDefinition;
  req: HookRequest;
  gathered: Gathered;
  coverage: ResolvedCoverage;
  configuration: CallConfiguration;
  rules: RulesFile;
  today: string;
}

/** Hooks whose orders get coverage information; encounter hooks carry no order. */
const COVERAGE_INFO_HOOKS: ReadonlySet<HookName> = new Set([
  'order-sign',
  'order-dispatch',
  'appointment-book',
  'order-select',
]);

/** resp-43: a technical failure makes the answer indeterminate, with the reason said. */
function technical(failures: string[]): Determination {
  return {
    covered: 'indeterminate',
    reasons: [
      {
        code: 'technical',
        text: `Coverage could not be determined: the EHR FHIR API failed (${[...new Set(failures)].join(', ')})`,
      },
    ],
  };
}

function decideOrder(input: RespondInput, order: Resource): Decision {
  const { coverage, gathered, req, def, today } = input;
  if (coverage.override)
    return { ruleId: 'crd-coverage-status', determination: coverage.override, cards: [] };
  if (gathered.failures.length > 0) {
    return { ruleId: 'technical-failure', determination: technical(gathered.failures), cards: [] };
  }
  const patient =
    gathered.patient.status === 'found' ? (gathered.patient.value as Patient) : undefined;
  return decide(input.rules, {
    hook: def.hook,
    order,
    coverage: coverage.coverage,
    payerId: coverage.payer.id,
    today,
    data: {
      context: req.context,
      prefetch: req.prefetch,
      order,
      coverage: coverage.coverage,
      ...(patient ? { patient } : {}),
      resources: [...gathered.resources.values()],
    },
  });
}

/** Builds the response body for one call. */
export function respond(input: RespondInput): HookResponse {
  const { def, gathered, coverage, configuration, today } = input;
  const wantsCoverageInfo =
    COVERAGE_INFO_HOOKS.has(def.hook) && configuration.enabled('coverage-info');
  // resp-32/resp-33: one assertion id per coverage in this response, new for every response.
  const assertionId = randomUUID();
  const coverageReference = `Coverage/${coverage.coverage.id ?? 'unknown'}`;
  const systemActions: NonNullable<HookResponse['systemActions']> = [];
  const templates: CardInput[] = [];
  for (const order of gathered.orders) {
    const decision = decideOrder(input, order);
    const ref = `${order.resourceType}/${order.id}`;
    templates.push(...decision.cards.map((c) => ({ ...c, orders: [ref] })));
    if (!wantsCoverageInfo) continue;
    const extension = buildCoverageInformation(decision.determination, {
      coverageReference,
      assertionId,
      date: today,
      hook: def.hook,
    });
    systemActions.push(coverageInformationAction(order, [extension]));
  }
  const cards = buildCards(templates, {
    payerName: coverage.payer.name,
    enabled: configuration.enabled,
    maxCards: configuration.maxCards,
  });
  // Inferno checks `systemActions` is present on the primary hooks, even when empty.
  return def.primary || systemActions.length > 0 ? { cards, systemActions } : { cards };
}
