/**
 * `crdkit client`: the EHR's CRD client from the command line. It runs as part of the EHR
 * installation named by the EHR configuration: it reads the EHR's FHIR API with its own backend
 * token, mints each call's `fhirAuthorization` through the EHR's authorization server state, and
 * writes to the EHR's audit trail.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { CrdClient, type CallReport, type CrdHook, type HookCall } from '../client/crd-client.js';
import { loadSharingPolicy } from '../client/policy/index.js';
import { SigningKeys } from '../client/transport/index.js';
import { ConfigError } from '../config/load.js';
import { loadEhrConfig, type EhrConfig } from '../ehr/config.js';
import { ehrDemoConfig } from '../ehr/demo.js';
import { openOpaqueIds } from '../ehr/ids.js';
import { openAuthorization, openEhrAudit } from '../ehr/server.js';
import { FhirClient } from '../fhir/client.js';
import { clientCredentialsToken, DelegateError } from '../fhir/delegate.js';
import { createLogger } from '../log.js';

export interface ClientOptions {
  config?: string;
  json?: boolean;
}

export interface HookOptions extends ClientOptions {
  patient: string;
  user?: string;
  encounter?: string;
  order?: string[];
  performer?: string;
  prefetch?: boolean;
}

async function configFor(options: ClientOptions): Promise<EhrConfig> {
  const config = options.config ? loadEhrConfig(options.config) : (await ehrDemoConfig()).config;
  if (!config.crdClient) {
    throw new ConfigError('crdClient', 'required by crdkit client (see docs/ehr.md)');
  }
  return config;
}

/** Builds the client and whatever it holds open; `close` releases it all. */
async function open(config: EhrConfig) {
  const settings = config.crdClient!;
  const logger = createLogger(config.log.level === 'info' ? 'warn' : config.log.level);
  const audit = await openEhrAudit(config);
  const closers: Array<() => unknown> = [() => audit.close()];
  try {
    const authz = await openAuthorization(config, audit, logger);
    closers.push(() => authz.close());
    const ids = openOpaqueIds({
      path: join(config.dataDir, 'ids.db'),
      baseUrl: config.fhirBaseUrl,
      secret: Buffer.from(config.secrets.idKey, 'base64'),
    });
    closers.push(() => ids.close());
    const registered = config.clients.find((c) => c.clientId === settings.clientId);
    if (!registered) {
      throw new ConfigError('crdClient.clientId', `no client "${settings.clientId}" in clients`);
    }
    const ca = readFileSync(config.tls.cert);
    let token;
    try {
      token = await clientCredentialsToken({
        tokenEndpoint: `${config.baseUrl}/oauth/token`,
        client: {
          clientId: settings.clientId,
          privateJwk: JSON.parse(readFileSync(settings.privateKey, 'utf8')) as JWK,
        },
        scope: registered.scope,
        ca,
      });
    } catch (err) {
      const why = err instanceof DelegateError ? err.message : (err as Error).message;
      throw new Error(
        `cannot get a token from the EHR at ${config.baseUrl} (${why}): is crdkit ehr running?`,
      );
    }
    const fhir = new FhirClient(new URL(config.fhirBaseUrl), token.accessToken, {
      timeoutMs: 10_000,
      maxResponseBytes: 8 << 20,
      ca,
    });
    const client = new CrdClient({
      iss: settings.iss,
      jku: `${config.baseUrl}/.well-known/jwks.json`,
      keys: await SigningKeys.create({ store: config.signingKeyStore }),
      fhirBase: config.fhirBaseUrl,
      fhir,
      tokens: {
        mint: (input) => authz.mintHookToken(input),
        revoke: (t) => authz.revoke(t),
      },
      ids,
      policy: loadSharingPolicy(settings.policy),
      payers: settings.payers.map((p) => ({
        ...p,
        ...(p.ca ? { ca: readFileSync(p.ca, 'utf8') } : {}),
        ...(p.tls
          ? {
              tls: { cert: readFileSync(p.tls.cert, 'utf8'), key: readFileSync(p.tls.key, 'utf8') },
            }
          : {}),
      })),
      audit,
      instance: config.audit.instance,
      logger,
      lateCalls: settings.lateCalls ?? 'abandon',
    });
    return {
      client,
      async close() {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close();
    throw err;
  }
}

/** `crdkit client discover`: each payer's services. */
export async function clientDiscover(options: ClientOptions): Promise<void> {
  const config = await configFor(options);
  const { client, close } = await open(config);
  try {
    const found = await client.discover();
    if (options.json) {
      process.stdout.write(`${JSON.stringify(found, null, 2)}\n`);
      return;
    }
    for (const { payer, services } of found) {
      process.stdout.write(`${payer}: ${services.length} services\n`);
      for (const s of services) {
        process.stdout.write(
          `  ${clean(s.id).padEnd(28)} ${clean(s.hook).padEnd(20)} prefetch: ${clean(Object.keys(s.prefetch).join(', '))}\n`,
        );
      }
    }
  } finally {
    await close();
  }
}

/** `crdkit client <hook>`: one hook call to every payer with active coverage. */
export async function clientHook(hook: CrdHook, options: HookOptions): Promise<number> {
  const config = await configFor(options);
  const { client, close } = await open(config);
  try {
    const call: HookCall = {
      hook,
      patient: options.patient.replace(/^Patient\//, ''),
      ...(options.user ? { user: options.user } : {}),
      ...(options.encounter ? { encounter: options.encounter.replace(/^Encounter\//, '') } : {}),
      ...(options.order?.length ? { orders: options.order } : {}),
      ...(options.performer ? { performer: options.performer } : {}),
      ...(options.prefetch === false ? { noPrefetch: true } : {}),
    };
    // found-39 across runs: the advice shown is kept as digests in the data folder.
    const shownFile = join(config.dataDir, 'advice-shown.json');
    try {
      client.restoreAdviceShown(
        JSON.parse(readFileSync(shownFile, 'utf8')) as Array<[string, number]>,
      );
    } catch {
      // first run, or an unreadable file: nothing shown yet
    }
    const report = await client.call(call);
    writeFileSync(shownFile, JSON.stringify(client.adviceShown), { mode: 0o600 });
    if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(formatReport(report));
    return report.results.some((r) => r.status === 'error') ? 1 : 0;
  } finally {
    await close();
  }
}

const CI_FIELDS = ['covered', 'pa-needed', 'doc-needed', 'doc-purpose', 'info-needed'];

/** Payer text for a terminal: no control characters (escape sequences, fake new lines). */
function clean(text: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String(text ?? '')
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ')
    .slice(0, 300);
}

/** The report for a terminal: per payer, its coverage information and cards. */
export function formatReport(report: CallReport): string {
  const lines: string[] = [];
  if (report.results.length === 0) lines.push(report.note ?? 'no payer was called');
  for (const r of report.results) {
    const role = r.primary ? 'primary' : 'secondary';
    lines.push(
      `${r.name} (${role} coverage ${r.coverage}): ${r.status}${r.error ? ` - ${clean(r.error)}` : ''}`,
    );
    for (const ci of r.coverageInformation) {
      const parts = (ci.extension.extension ?? [])
        .filter((e) => CI_FIELDS.includes(e.url ?? ''))
        .map((e) => `${e.url}=${clean(e.valueCode)}`);
      lines.push(`  coverage information on ${ci.order}: ${parts.join(', ')}`);
    }
    for (const ref of r.applied) lines.push(`  stored on ${ref} in the EHR`);
    for (const card of r.cards) {
      lines.push(
        `  [${clean(card.indicator)}] ${clean(card.summary)} (${clean(card.source?.label)})`,
      );
    }
    if (r.repeated) lines.push(`  ${r.repeated} card(s) already shown today, not repeated`);
    for (const w of r.withheld) lines.push(`  withheld ${w.reference}: ${w.reason} (${w.detail})`);
    for (const d of r.dropped)
      lines.push(`  dropped from the answer: ${clean(d.where)}: ${clean(d.reason)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `crdkit client rotate-keys`: a new signing key; the old one stays published until its tokens expire. */
export async function clientRotateKeys(options: ClientOptions): Promise<void> {
  const config = await configFor(options);
  const keys = await SigningKeys.create({ store: config.signingKeyStore });
  const before = keys.kid;
  await keys.rotate();
  process.stderr.write(
    `crdkit: new CDS Hooks signing key ${keys.kid} (previous ${before} stays published at ` +
      `${config.baseUrl}/.well-known/jwks.json until its tokens have expired)\n`,
  );
}
