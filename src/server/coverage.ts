/**
 * Which Coverage and payer a call is about, and the answers CRD fixes when there is none:
 * hook-13 (400 when the primary Coverage is not one this endpoint handles, including no Coverage
 * and several Coverages), resp-44 (patient not found) and resp-45 (coverage not active).
 */
import type { Coverage, Resource } from '@medplum/fhirtypes';
import { CdsError } from '../cds/outcome.js';
import type { Determination } from '../crd/types.js';
import { localReference, type Gathered } from '../fhir/gather.js';
import { matchPayer, type Payer, type RulesFile } from '../rules/index.js';

export interface ResolvedCoverage {
  payer: Payer;
  coverage: Coverage;
  /** When set, every order gets this determination instead of the rules' (resp-44, resp-45). */
  override?: Determination;
}

const notHandled = (code: string, message: string) =>
  new CdsError(400, code, message, 'not-found', 'prefetch.coverage');

/** True when the Coverage is active on `today` (status and period). */
function isActive(coverage: Coverage, today: string): boolean {
  if (coverage.status !== 'active') return false;
  const { start, end } = coverage.period ?? {};
  return !(start && start.slice(0, 10) > today) && !(end && end.slice(0, 10) < today);
}

/**
 * Matches the Coverage to a payer. The payor Organization is read from fhirServer only when the
 * Coverage alone does not identify the payer (found-28: query what is needed, when needed).
 */
async function findPayer(rules: RulesFile, coverage: Coverage, gathered: Gathered) {
  const organizations = () =>
    [...gathered.resources.values()].filter(
      (r): r is Resource => r.resourceType === 'Organization',
    );
  const first = matchPayer(rules, coverage, organizations());
  const payorRef = localReference(coverage.payor?.[0]?.reference);
  if (
    !('error' in first) ||
    !payorRef?.startsWith('Organization/') ||
    gathered.resources.has(payorRef)
  ) {
    return first;
  }
  const read = await gathered.read(payorRef);
  return read.status === 'found' ? matchPayer(rules, coverage, organizations()) : first;
}

/** Resolves the primary Coverage and its payer, or throws the hook-13 400. */
export async function resolveCoverage(
  rules: RulesFile,
  gathered: Gathered,
  today: string,
): Promise<ResolvedCoverage> {
  const lookup = gathered.coverages;
  if (lookup.status !== 'found') {
    const why =
      lookup.status === 'failed'
        ? 'the Coverage could not be read from the EHR FHIR server'
        : 'no Coverage for the patient was provided or could be queried';
    throw notHandled(
      'ERR_COVERAGE_NOT_ACCESSIBLE',
      `${why}; this endpoint cannot identify the payer`,
    );
  }
  // dev-29: the client sends only the primary coverage; several means the payer is ambiguous.
  const distinct = new Map(lookup.value.map((c) => [c.id ?? JSON.stringify(c.identifier), c]));
  if (distinct.size > 1) {
    throw notHandled(
      'ERR_COVERAGE_AMBIGUOUS',
      `${distinct.size} Coverages were provided; send only the primary coverage (dev-29)`,
    );
  }
  const coverage = [...distinct.values()][0]!;
  const match = await findPayer(rules, coverage, gathered);
  if ('error' in match) {
    const messages: Record<string, string> = {
      'no-payor': 'the Coverage names no payer ("Coverage.payor")',
      'no-identifier': 'the Coverage payer has no identifier this endpoint can read',
      'unknown-payer': 'the Coverage payer is not handled by this endpoint',
    };
    throw notHandled('ERR_PAYER_NOT_HANDLED', messages[match.error] ?? 'payer not handled');
  }
  const { payer } = match;
  const notCovered = (code: 'no-member-found' | 'no-active-coverage', text: string) => ({
    payer,
    coverage,
    override: { covered: 'not-covered' as const, reasons: [{ code, text }] },
  });
  if (gathered.patient.status === 'absent') {
    return notCovered('no-member-found', 'The patient could not be found in the EHR record');
  }
  if (!isActive(coverage, today)) {
    return notCovered('no-active-coverage', 'The coverage is not active on the order date');
  }
  return { payer, coverage };
}
