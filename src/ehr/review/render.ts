/** The review as text for a terminal: a summary per client, then one line per finding. */
import { FINDING_KINDS, type Finding, type ReviewReport } from './types.js';

/** The sentence said when the window holds no FHIR access at all. */
export const NO_ACCESS = 'no FHIR access was recorded in this window: nothing to review';

const MAX_REFERENCES = 5;

/** Printable text only: values come from the trail and must not drive the terminal. */
function clean(value: string): string {
  return value.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

function table(header: string[], rows: string[][]): string[] {
  const cells = [header, ...rows].map((row) => row.map(clean));
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

function who(f: Finding): string {
  return f.actors.length ? `${f.client} via ${f.actors.join(' < ')}` : f.client;
}

function references(f: Finding): string {
  const unmentioned = f.references.filter((r) => !f.detail.includes(r));
  if (!unmentioned.length) return '';
  const shown = unmentioned.slice(0, MAX_REFERENCES).join(', ');
  const more = unmentioned.length - MAX_REFERENCES;
  return ` [${shown}${more > 0 ? `, +${more} more` : ''}]`;
}

function windowText(report: ReviewReport): string {
  const { since, until } = report.window;
  if (!since && !until) return 'the whole trail';
  return `${since ?? 'the start'} to ${until ?? 'now'}`;
}

/**
 * The report as lines for a terminal.
 *
 * @example
 * ```ts
 * process.stdout.write(formatReview(await reviewAccesses(store.export({}))));
 * ```
 */
export function formatReview(report: ReviewReport): string {
  const t = report.thresholds;
  const lines = [
    `Access review of the FHIR API for payers (sec-8): ${windowText(report)}`,
    `${report.accesses} FHIR accesses reviewed, ${report.tokenEvents} token events read.`,
    `Thresholds: ${t.maxPerToken} accesses per token, ${t.maxPerClientPerHour} per client per ` +
      `hour, ${t.medianFactor ? `${t.medianFactor} x a client's median per hook call` : 'no median check'}.`,
  ];
  if (report.accesses === 0) return `${[...lines, '', `${NO_ACCESS}.`].join('\n')}\n`;

  lines.push('', 'Clients');
  const clientRows = report.clients.map((c) => [
    c.client,
    c.clientName ?? '',
    String(c.hookTokens),
    String(c.delegateTokens),
    String(c.accesses),
    String(c.refused),
    String(c.patients),
    String(c.findings),
  ]);
  const clientHeader = ['CLIENT', 'NAME', 'HOOK TOKENS', 'DELEGATE TOKENS', 'ACCESSES'];
  lines.push(...table([...clientHeader, 'REFUSED', 'PATIENTS', 'FINDINGS'], clientRows));

  const counts = FINDING_KINDS.filter((k) => report.counts[k] > 0)
    .map((k) => `${k} ${report.counts[k]}`)
    .join(', ');
  lines.push(
    '',
    report.findings.length ? `Findings: ${report.findings.length} (${counts})` : 'No findings.',
  );
  if (report.findings.length) {
    const rows = report.findings.map((f) => [
      f.at,
      f.kind,
      who(f),
      f.hookInstance ?? '-',
      f.tokenId ?? '-',
      `${f.detail}${references(f)}`,
    ]);
    lines.push(...table(['TIME', 'KIND', 'CLIENT', 'HOOK INSTANCE', 'TOKEN JTI', 'DETAIL'], rows));
  }
  return `${lines.join('\n')}\n`;
}
