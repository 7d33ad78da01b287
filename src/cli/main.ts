#!/usr/bin/env node
/** The `crdkit` command. */
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError } from '../config/load.js';
import {
  auditExport,
  auditPurge,
  auditReview,
  auditVerify,
  REVIEW_DEFAULTS,
  REVIEW_EXIT,
  type ExportOptions,
  type ReviewCommandOptions,
} from './audit.js';
import { call } from './call.js';
import type { HookOptions } from './client.js';
import { serve } from './serve.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be 0 to 65535');
  return n;
}

function fail(err: unknown): never {
  const e = err as Error & { code?: string };
  const prefix = err instanceof ConfigError ? 'configuration error: ' : '';
  process.stderr.write(`crdkit: ${prefix}${e.message}\n`);
  process.exit(err instanceof ConfigError || e.code === 'RULES_INVALID' ? 78 : 1);
}

const program = new Command()
  .name('crdkit')
  .description('Da Vinci Coverage Requirements Discovery (CRD) over CDS Hooks')
  .version('0.1.0')
  .showHelpAfterError();

program
  .command('serve')
  .description('start the payer CRD server over HTTPS (a working demo when no --config is given)')
  .option('-c, --config <file>', 'JSON configuration file (see README "Configuration")')
  .option('-p, --port <n>', 'listen on this port (overrides listen.port)', port)
  .action(async (opts: { config?: string; port?: number }) => {
    await serve(opts).catch(fail);
  });

const ehrCommand = program
  .command('ehr')
  .description(
    'start the EHR side over HTTPS: authorization server and FHIR API for payers (a demo EHR when no --config is given)',
  )
  .option('-c, --config <file>', 'JSON EHR configuration file (see docs/ehr.md)')
  .option('-p, --port <n>', 'listen on this port (overrides listen.port)', port)
  .action(async (opts: { config?: string; port?: number }) => {
    const { ehr } = await import('./ehr.js'); // oidc-provider loads only for the EHR commands
    await ehr(opts).catch(fail);
  });

ehrCommand
  .command('load')
  .description("load a FHIR Bundle (for example Synthea output) into the EHR's resource store")
  .argument('<bundleFile>', 'a transaction, batch or collection Bundle (JSON)')
  .option('-c, --config <file>', 'JSON EHR configuration file (default: the demo EHR)')
  .action(async (bundleFile: string, opts: { config?: string }, cmd: Command) => {
    // `crdkit ehr load FILE --config X` and `crdkit ehr --config X load FILE` mean the same.
    const config = opts.config ?? (cmd.optsWithGlobals() as { config?: string }).config;
    const { ehrLoad } = await import('./ehr.js');
    await ehrLoad(bundleFile, config ? { config } : {}).catch(fail);
  });

const clientCommand = program
  .command('client')
  .description("the EHR's CRD client: call the patient's payers (uses the EHR configuration)");

clientCommand
  .command('discover')
  .description("fetch and show each configured payer's CDS services")
  .option('-c, --config <file>', 'JSON EHR configuration file (default: the demo EHR)')
  .option('--json', 'print JSON')
  .action(async (opts: { config?: string; json?: boolean }) => {
    const { clientDiscover } = await import('./client.js');
    await clientDiscover(opts).catch(fail);
  });

clientCommand
  .command('rotate-keys')
  .description('start signing with a new key; the old one stays published until its tokens expire')
  .option('-c, --config <file>', 'JSON EHR configuration file (default: the demo EHR)')
  .action(async (opts: { config?: string }) => {
    const { clientRotateKeys } = await import('./client.js');
    await clientRotateKeys(opts).catch(fail);
  });

const collect = (value: string, previous: string[] = []) => [...previous, value];
for (const hook of [
  'order-sign',
  'order-select',
  'order-dispatch',
  'appointment-book',
  'encounter-start',
  'encounter-discharge',
] as const) {
  clientCommand
    .command(hook)
    .description(`send ${hook} to every payer with active coverage and apply the answers`)
    .requiredOption('--patient <id>', "the patient's id in the EHR (required)")
    .option('--user <ref>', 'the user, e.g. Practitioner/123')
    .option('--encounter <id>', 'the encounter in context')
    .option('--order <ref>', 'an order or appointment, e.g. DeviceRequest/1 (repeatable)', collect)
    .option('--performer <ref>', 'order-dispatch: the performer')
    .option('--no-prefetch', 'send no prefetch (the payer then reads from the EHR)')
    .option('-c, --config <file>', 'JSON EHR configuration file (default: the demo EHR)')
    .option('--json', 'print the whole report as JSON')
    .action(async (opts: HookOptions) => {
      try {
        const { clientHook } = await import('./client.js');
        process.exitCode = await clientHook(hook, opts);
      } catch (err) {
        fail(err);
      }
    });
}

program
  .command('call')
  .description('send one hook request to a CRD service with a signed CDS Hooks JWT')
  .argument(
    '<serviceUrl>',
    'the service URL, e.g. https://localhost:8443/cds-services/order-sign-crd',
  )
  .argument('<requestFile>', 'a JSON hook request (its hookInstance is replaced by a fresh one)')
  .requiredOption('-k, --key <file>', "the client's private JWK (ES384 or RS384)")
  .requiredOption('-i, --iss <issuer>', "the client's issuer, as registered with the server")
  .option(
    '--ca <file>',
    "PEM certificate to trust for the server (e.g. the demo's server-cert.pem)",
  )
  .option('--jku <url>', 'send this JWK Set URL in the JWT header')
  .action(
    async (
      serviceUrl: string,
      requestFile: string,
      opts: { key: string; iss: string; ca?: string; jku?: string },
    ) => {
      try {
        const result = await call(serviceUrl, requestFile, opts);
        process.stderr.write(`HTTP ${result.status}\n`);
        let out = result.body;
        try {
          out = JSON.stringify(JSON.parse(result.body), null, 2);
        } catch {
          // not JSON: print as received
        }
        process.stdout.write(`${out}\n`);
        process.exitCode = result.status >= 200 && result.status < 300 ? 0 : 1;
      } catch (err) {
        fail(err);
      }
    },
  );

const audit = program
  .command('audit')
  .description(
    "the audit trail: verify its hash chain, export AuditEvents, purge old payloads, review payers' accesses",
  );
const configOption = [
  '-c, --config <file>',
  'JSON configuration file (default: the demo)',
] as const;

audit
  .command('verify')
  .description('check the hash chain; names the first record changed, removed or reordered')
  .option(...configOption)
  .option('--ehr', "the EHR's audit trail (crdkit ehr's configuration; the demo EHR by default)")
  .action(async (opts: { config?: string; ehr?: boolean }) => {
    process.exitCode = await auditVerify(opts).catch(fail);
  });

audit
  .command('export')
  .description('write AuditEvents as NDJSON (default) or a FHIR Bundle; the read is audited')
  .option(...configOption)
  .option('--ehr', "the EHR's audit trail (crdkit ehr's configuration; the demo EHR by default)")
  .option('--since <date>', 'only events recorded at or after this date or date-time')
  .option('--until <date>', 'only events recorded before this date or date-time')
  .option('--patient <reference>', 'only events about this patient, e.g. Patient/123')
  .option('--format <format>', 'ndjson or bundle', 'ndjson')
  .option('-o, --out <file>', 'write to this file (mode 0600) instead of standard output')
  .action(async (opts: ExportOptions) => {
    if (opts.format !== 'ndjson' && opts.format !== 'bundle') {
      fail(new Error('--format must be ndjson or bundle'));
    }
    process.exitCode = await auditExport(opts).catch(fail);
  });

audit
  .command('purge')
  .description('remove encrypted payloads past audit.retentionDays (records and chain stay)')
  .option(...configOption)
  .option('--ehr', "the EHR's audit trail (crdkit ehr's configuration; the demo EHR by default)")
  .action(async (opts: { config?: string; ehr?: boolean }) => {
    process.exitCode = await auditPurge(opts).catch(fail);
  });

audit
  .command('review')
  .description("report payer accesses to the EHR's FHIR API that look unreasonable (sec-8)")
  .option(...configOption)
  .option('--since <date>', 'review accesses recorded at or after this date or date-time')
  .option('--until <date>', 'review accesses recorded before this date or date-time')
  .option(
    '--max-per-token <n>',
    'more accesses than this with one token is a finding',
    String(REVIEW_DEFAULTS.maxPerToken),
  )
  .option(
    '--max-per-client-per-hour <n>',
    'more accesses than this by one client within an hour is a finding',
    String(REVIEW_DEFAULTS.maxPerClientPerHour),
  )
  .option(
    '--median-factor <n>',
    "a hook call with over n times its client's median accesses is a finding (0: off)",
    String(REVIEW_DEFAULTS.medianFactor),
  )
  .option('--json', 'print the report as JSON instead of tables')
  .addHelpText(
    'after',
    '\nExit codes: 0 no findings, 1 findings reported, 2 the review could not run ' +
      '(usage, configuration or audit store error).\nThe review reads the trail and is itself ' +
      'recorded as an audit-read.',
  )
  // A usage error must not look like "findings" (1).
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : REVIEW_EXIT.error))
  .action(async (opts: ReviewCommandOptions) => {
    process.exitCode = await auditReview(opts);
  });

await program.parseAsync(process.argv);
