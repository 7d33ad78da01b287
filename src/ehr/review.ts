/**
 * The access review of the EHR's FHIR API for payers (sec-8: "CRD client organizations SHOULD
 * audit access to check for reasonableness and appropriateness"). It reads AuditEvents only, so it
 * runs the same over a SQLite or PostgreSQL trail or an exported NDJSON file: FHIR access records
 * are joined with the token records of the authorization server (by token `jti` and
 * `hookInstance`) and every access that looks unreasonable becomes a finding.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { checkAccess, patientsOf, type AccessContext } from './review/access-checks.js';
import { accessRecord, tokenRecord } from './review/records.js';
import { TokenIndex } from './review/tokens.js';
import {
  FINDING_KINDS,
  type AccessRecord,
  type ClientSummary,
  type Finding,
  type FindingKind,
  type ReviewOptions,
  type ReviewReport,
  type TokenRecord,
} from './review/types.js';
import { checkVolume } from './review/volume.js';

export { formatReview, NO_ACCESS } from './review/render.js';
export { FINDING_KINDS } from './review/types.js';
export type {
  ClientSummary,
  Finding,
  FindingKind,
  ReviewOptions,
  ReviewReport,
} from './review/types.js';

/** The thresholds used when {@link ReviewOptions} names none. */
export const REVIEW_DEFAULTS = {
  maxPerToken: 20,
  maxPerClientPerHour: 500,
  medianFactor: 5,
  maxTokenLifetimeMs: 3_600_000,
} as const;

const KIND_ORDER = new Map(FINDING_KINDS.map((k, i) => [k, i]));

function inWindow(at: number, options: ReviewOptions): boolean {
  return (
    (!options.since || at >= options.since.getTime()) &&
    (!options.until || at < options.until.getTime())
  );
}

function summarise(
  accesses: AccessRecord[],
  tokens: TokenRecord[],
  findings: Finding[],
): ClientSummary[] {
  const clients = new Map<string, ClientSummary & { seen: Set<string> }>();
  const of = (r: { client: string; clientName?: string }) => {
    let summary = clients.get(r.client);
    if (!summary) {
      summary = {
        client: r.client,
        hookTokens: 0,
        delegateTokens: 0,
        accesses: 0,
        refused: 0,
        patients: 0,
        findings: 0,
        seen: new Set(),
      };
      clients.set(r.client, summary);
    }
    if (r.clientName && !summary.clientName) summary.clientName = r.clientName;
    return summary;
  };
  for (const token of tokens) {
    if (token.event === 'issued' && token.hookInstance) of(token).hookTokens++;
    if (token.event === 'exchanged') of(token).delegateTokens++;
  }
  for (const access of accesses) {
    const summary = of(access);
    summary.accesses++;
    if (access.status !== undefined && access.status >= 400) summary.refused++;
    if (access.status !== undefined && access.status >= 200 && access.status < 300) {
      for (const patient of patientsOf(access)) summary.seen.add(patient);
    }
  }
  for (const finding of findings) of(finding).findings++;
  return [...clients.values()]
    .sort((a, b) => (a.client < b.client ? -1 : a.client > b.client ? 1 : 0))
    .map(({ seen, ...summary }) => ({ ...summary, patients: seen.size }));
}

function byTime(a: Finding, b: Finding): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1;
  return KIND_ORDER.get(a.kind)! - KIND_ORDER.get(b.kind)!;
}

/**
 * Reviews the FHIR accesses of `events` recorded within `options.since` … `options.until`; events
 * before `since` (a token issued earlier) are used as context.
 *
 * @example
 * ```ts
 * const report = await reviewAccesses(store.export({}), { maxPerToken: 20 });
 * for (const f of report.findings) console.log(f.kind, f.client, f.detail);
 * ```
 */
export async function reviewAccesses(
  events: AsyncIterable<AuditEvent>,
  options: ReviewOptions = {},
): Promise<ReviewReport> {
  const thresholds = {
    maxPerToken: options.maxPerToken ?? REVIEW_DEFAULTS.maxPerToken,
    maxPerClientPerHour: options.maxPerClientPerHour ?? REVIEW_DEFAULTS.maxPerClientPerHour,
    medianFactor: options.medianFactor ?? REVIEW_DEFAULTS.medianFactor,
  };
  const index = new TokenIndex();
  const accesses: AccessRecord[] = [];
  const tokenRecords: TokenRecord[] = [];
  let n = 0;
  let tokenEvents = 0;
  for await (const event of events) {
    const access = accessRecord(event, n);
    const token = access ? undefined : tokenRecord(event, n);
    n++;
    if (access && inWindow(access.at, options)) accesses.push(access);
    if (!token) continue;
    index.add(token);
    tokenEvents++;
    // Earlier token records are context (a token issued before the window), not summarised.
    if (inWindow(token.at, options)) tokenRecords.push(token);
  }

  const trailSince = (options.trailSince ?? options.since)?.getTime();
  const lifetime = options.maxTokenLifetimeMs ?? REVIEW_DEFAULTS.maxTokenLifetimeMs;
  const ctx: AccessContext = {
    tokens: index,
    covered: (access) => trailSince === undefined || access.at - trailSince >= lifetime,
  };
  const findings = [
    ...accesses.flatMap((access) => checkAccess(access, ctx)),
    ...checkVolume(accesses, index, thresholds),
  ].sort(byTime);

  const counts = Object.fromEntries(FINDING_KINDS.map((k) => [k, 0])) as Record<
    FindingKind,
    number
  >;
  for (const finding of findings) counts[finding.kind]++;
  return {
    window: {
      ...(options.since ? { since: options.since.toISOString() } : {}),
      ...(options.until ? { until: options.until.toISOString() } : {}),
    },
    thresholds,
    accesses: accesses.length,
    tokenEvents,
    clients: summarise(accesses, tokenRecords, findings),
    findings,
    counts,
  };
}
