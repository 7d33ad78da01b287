import { dirname, join, resolve } from 'node:path';
/**
 * `crdkit audit verify | export | purge | review`: the audit trail from the command line
 * (found-38, sec-8).
 */
import { open as open_ } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import {
  openConfiguredAuditStore,
  writeBundle,
  writeNdjson,
  type AuditStore,
} from '../audit/index.js';
import { demoConfig } from '../config/demo.js';
import { checkConfig, ConfigError, readJsonConfig, resolveConfig } from '../config/load.js';
import { checkEhrConfig, resolveEhrConfig } from '../ehr/config.js';
import { ehrDemoConfig } from '../ehr/demo.js';
import type { Config } from '../config/schema.js';
import { formatReview, NO_ACCESS, REVIEW_DEFAULTS, reviewAccesses } from '../ehr/review.js';

export interface AuditCommandOptions {
  config?: string;
  /** Use the EHR's audit trail (`crdkit ehr`'s configuration; the demo EHR without --config). */
  ehr?: boolean;
}

/** The audit part of either configuration file: the CRD server's, or the EHR's (no `rules`). */
async function auditSettings(
  options: AuditCommandOptions,
): Promise<Pick<Config, 'audit' | 'dataDir'>> {
  if (options.config) {
    const raw = readJsonConfig(options.config);
    const baseDir = dirname(resolve(options.config));
    const isServer = typeof raw === 'object' && raw !== null && 'rules' in raw;
    return isServer
      ? resolveConfig(checkConfig(raw), baseDir)
      : resolveEhrConfig(checkEhrConfig(raw), baseDir);
  }
  return options.ehr ? (await ehrDemoConfig()).config : (await demoConfig()).config;
}

/** Which trail: the SQLite file, or the PostgreSQL host and database (never the password). */
function describeStore(config: Pick<Config, 'audit' | 'dataDir'>): string {
  if (config.audit.store === 'sqlite') return join(config.dataDir, 'audit.db');
  const url = new URL(config.audit.store);
  return `postgres ${url.host}${url.pathname}`;
}

async function open(
  options: AuditCommandOptions,
): Promise<{ store: AuditStore; config: Pick<Config, 'audit' | 'dataDir'> }> {
  const config = await auditSettings(options);
  const store = await openConfiguredAuditStore(config, `${config.audit.instance}/cli`);
  return { store, config };
}

/** Checks the chain; resolves with the exit code (0 only when intact). */
export async function auditVerify(options: AuditCommandOptions): Promise<number> {
  const { store, config } = await open(options);
  try {
    const result = await store.verify();
    if (result.ok) {
      process.stderr.write(
        `crdkit: audit trail intact: ${result.records} records (${describeStore(config)})\n`,
      );
      return 0;
    }
    const { id, seq, problem } = result.firstBad;
    process.stderr.write(`crdkit: audit trail broken: record ${id} (#${seq}) was ${problem}\n`);
    return 1;
  } finally {
    await store.close();
  }
}

export interface ExportOptions extends AuditCommandOptions {
  since?: string;
  until?: string;
  patient?: string;
  format?: 'ndjson' | 'bundle';
  out?: string;
}

function date(value: string | undefined, flag: string): Date | undefined {
  if (value === undefined) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error(`${flag}: not a date or date-time: ${value}`);
  return d;
}

/** Opens the output file (mode 0600, also when it exists) before anything is read. */
async function openOut(path: string): Promise<Writable> {
  const handle = await open_(path, 'w', 0o600).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot write ${path}: ${err.code ?? err.message}`);
  });
  await handle.chmod(0o600);
  return handle.createWriteStream();
}

/** Writes AuditEvents as NDJSON (default) or a FHIR Bundle; the read itself is audited. */
export async function auditExport(options: ExportOptions): Promise<number> {
  const since = date(options.since, '--since');
  const until = date(options.until, '--until');
  const out = options.out ? await openOut(options.out) : process.stdout;
  const { store } = await open(options);
  let count = 0;
  try {
    const filter = {
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(options.patient ? { patient: options.patient } : {}),
    };
    const events = store.export(filter);
    count =
      options.format === 'bundle' ? await writeBundle(events, out) : await writeNdjson(events, out);
  } finally {
    await store.close();
    if (out !== process.stdout) await new Promise<void>((r) => out.end(() => r()));
  }
  process.stderr.write(`crdkit: exported ${count} audit events\n`);
  return 0;
}

/** Removes encrypted payloads past the retention period; the records and chain stay. */
export async function auditPurge(options: AuditCommandOptions): Promise<number> {
  const { store, config } = await open(options);
  try {
    const { payloadsRemoved } = await store.purge();
    process.stderr.write(
      `crdkit: removed ${payloadsRemoved} payloads past their retention ` +
        `(set when each was written; now audit.retentionDays = ${config.audit.retentionDays})\n`,
    );
    return 0;
  } finally {
    await store.close();
  }
}

export interface ReviewCommandOptions extends AuditCommandOptions {
  since?: string;
  until?: string;
  maxPerToken?: string;
  maxPerClientPerHour?: string;
  medianFactor?: string;
  json?: boolean;
}

export { REVIEW_DEFAULTS };

/** Exit codes of `audit review`: findings are not an error, and an error is not a finding. */
export const REVIEW_EXIT = { clean: 0, findings: 1, error: 2 } as const;

function count(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new Error(`${flag}: not a whole number of at least ${min}: ${value}`);
  }
  return n;
}

async function review(options: ReviewCommandOptions): Promise<number> {
  const since = date(options.since, '--since');
  const until = date(options.until, '--until');
  if (since && until && since >= until) throw new Error('--since must be before --until');
  const thresholds = {
    maxPerToken: count(options.maxPerToken, '--max-per-token', 1),
    maxPerClientPerHour: count(options.maxPerClientPerHour, '--max-per-client-per-hour', 1),
    medianFactor: count(options.medianFactor, '--median-factor', 0),
  };
  // The review reads the EHR's trail: the demo EHR's without --config.
  const { store } = await open({ ...options, ehr: true });
  try {
    // Tokens used in the window may have been issued before it: read that far back as context.
    const trailSince = since && new Date(since.getTime() - REVIEW_DEFAULTS.maxTokenLifetimeMs);
    const events = store.export({
      ...(trailSince ? { since: trailSince } : {}),
      ...(until ? { until } : {}),
    });
    const report = await reviewAccesses(events, {
      ...(since ? { since, trailSince } : {}),
      ...(until ? { until } : {}),
      ...Object.fromEntries(Object.entries(thresholds).filter(([, v]) => v !== undefined)),
    });
    if (options.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      if (report.accesses === 0) process.stderr.write(`crdkit: ${NO_ACCESS}\n`);
    } else {
      process.stdout.write(formatReview(report));
    }
    return report.findings.length ? REVIEW_EXIT.findings : REVIEW_EXIT.clean;
  } finally {
    await store.close();
  }
}

/**
 * Reviews the payers' accesses to the EHR's FHIR API (sec-8) and prints the findings; resolves
 * with 0 when there are none, 1 when there are, 2 when the review could not run (bad option,
 * configuration or audit store), after saying why on standard error.
 */
export async function auditReview(options: ReviewCommandOptions): Promise<number> {
  try {
    return await review(options);
  } catch (err) {
    const prefix = err instanceof ConfigError ? 'configuration error: ' : '';
    process.stderr.write(`crdkit: ${prefix}${(err as Error).message}\n`);
    return REVIEW_EXIT.error;
  }
}
