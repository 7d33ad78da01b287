/** `crdkit audit verify | export | purge`: the audit trail from the command line (found-38). */
import { open as open_ } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import {
  openConfiguredAuditStore,
  writeBundle,
  writeNdjson,
  type AuditStore,
} from '../audit/index.js';
import { demoConfig } from '../config/demo.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

export interface AuditCommandOptions {
  config?: string;
}

async function open(options: AuditCommandOptions): Promise<{ store: AuditStore; config: Config }> {
  const config = options.config ? loadConfig(options.config) : (await demoConfig()).config;
  const store = await openConfiguredAuditStore(config, `${config.audit.instance}/cli`);
  return { store, config };
}

/** Checks the chain; resolves with the exit code (0 only when intact). */
export async function auditVerify(options: AuditCommandOptions): Promise<number> {
  const { store } = await open(options);
  try {
    const result = await store.verify();
    if (result.ok) {
      process.stderr.write(`crdkit: audit trail intact: ${result.records} records\n`);
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
