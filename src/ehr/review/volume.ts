/**
 * Unusual volume (sec-8): too many accesses with one token, too many by one client within an
 * hour, a hook call far busier than its client's usual.
 */
import { accessFinding } from './access-checks.js';
import type { TokenIndex } from './tokens.js';
import type { AccessRecord, Finding } from './types.js';

const HOUR_MS = 3_600_000;
/** The median is only a yardstick once a client has this many hook calls. */
const MIN_HOOKS_FOR_MEDIAN = 5;
/** A hook call below this many accesses is never called an outlier. */
const MIN_OUTLIER = 10;

export interface VolumeLimits {
  maxPerToken: number;
  maxPerClientPerHour: number;
  medianFactor: number;
}

function groupBy(accesses: AccessRecord[], key: (a: AccessRecord) => string | undefined) {
  const groups = new Map<string, AccessRecord[]>();
  for (const access of accesses) {
    const k = key(access);
    if (k === undefined) continue;
    const group = groups.get(k);
    if (group) group.push(access);
    else groups.set(k, [access]);
  }
  return groups;
}

function withoutAccessFields(finding: Finding, references: string[] = []): Finding {
  const {
    accessId: _a,
    action: _b,
    resourceType: _c,
    status: _d,
    errorCode: _e,
    ...rest
  } = finding;
  return { ...rest, references };
}

function perToken(accesses: AccessRecord[], tokens: TokenIndex, max: number): Finding[] {
  const out: Finding[] = [];
  for (const [, used] of groupBy(accesses, (a) => a.tokenId)) {
    if (used.length <= max) continue;
    const patients = [...new Set(used.flatMap((a) => a.patients))];
    const text = `${used.length} accesses with one token (more than ${max})`;
    out.push(withoutAccessFields(accessFinding(used[max]!, tokens, 'volume', [], text), patients));
  }
  return out;
}

/** The busiest 60 minutes of one client's accesses (sorted by time): its start and count. */
function busiestHour(sorted: AccessRecord[]): { start: AccessRecord; count: number } {
  let best = { start: sorted[0]!, count: 0 };
  for (let first = 0, last = 0; last < sorted.length; last++) {
    while (sorted[last]!.at - sorted[first]!.at >= HOUR_MS) first++;
    if (last - first + 1 > best.count) best = { start: sorted[first]!, count: last - first + 1 };
  }
  return best;
}

function perClientHour(byClient: Map<string, AccessRecord[]>, tokens: TokenIndex, max: number) {
  const out: Finding[] = [];
  for (const [, accesses] of byClient) {
    const { start, count } = busiestHour([...accesses].sort((a, b) => a.at - b.at));
    if (count <= max) continue;
    const text = `${count} accesses within the hour from ${new Date(start.at).toISOString()} (more than ${max})`;
    const finding = withoutAccessFields(accessFinding(start, tokens, 'volume', [], text));
    const { hookInstance: _h, tokenId: _t, ...clientOnly } = finding;
    out.push(clientOnly);
  }
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function perHookOutliers(
  byClient: Map<string, AccessRecord[]>,
  tokens: TokenIndex,
  factor: number,
  flagged: Set<string>,
): Finding[] {
  const out: Finding[] = [];
  for (const [, accesses] of byClient) {
    const hookOf = (a: AccessRecord) =>
      a.hookInstance ?? (a.tokenId ? tokens.hookInstance(a.tokenId) : undefined);
    const byHook = groupBy(accesses, hookOf);
    if (byHook.size < MIN_HOOKS_FOR_MEDIAN) continue;
    const typical = median([...byHook.values()].map((g) => g.length));
    for (const [hookInstance, group] of byHook) {
      const n = group.length;
      if (n < MIN_OUTLIER || n <= factor * typical || flagged.has(hookInstance)) continue;
      const text = `${n} accesses in one hook call; this client's median is ${typical} (over ${factor} times)`;
      out.push(withoutAccessFields(accessFinding(group[0]!, tokens, 'volume', [], text)));
    }
  }
  return out;
}

/** The volume findings over the accesses of the window. */
export function checkVolume(
  accesses: AccessRecord[],
  tokens: TokenIndex,
  limits: VolumeLimits,
): Finding[] {
  const tokenFindings = perToken(accesses, tokens, limits.maxPerToken);
  const byClient = groupBy(accesses, (a) => a.client);
  const flagged = new Set(tokenFindings.map((f) => f.hookInstance).filter((h) => h !== undefined));
  return [
    ...tokenFindings,
    ...perClientHour(byClient, tokens, limits.maxPerClientPerHour),
    ...(limits.medianFactor > 0
      ? perHookOutliers(byClient, tokens, limits.medianFactor, flagged)
      : []),
  ];
}
