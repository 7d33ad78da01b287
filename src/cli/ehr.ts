/** `crdkit ehr`: the EHR side (authorization server, FHIR API for payers) over HTTPS. */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { ConfigError } from '../config/load.js';
import { listenOrExplain } from './serve.js';
import { loadEhrConfig, type EhrConfig } from '../ehr/config.js';
import { ehrDemoConfig } from '../ehr/demo.js';
import { buildEhr } from '../ehr/server.js';
import { loadBundle, openResourceStore } from '../ehr/store/index.js';
import { createLogger } from '../log.js';
import { watchServerTls } from '../tls/reload.js';
import { join } from 'node:path';

export interface EhrOptions {
  config?: string;
  port?: number;
}

const say = (line = '') => process.stderr.write(`${line}\n`);

async function configFor(options: EhrOptions): Promise<EhrConfig> {
  if (options.config) {
    const config = loadEhrConfig(options.config);
    if (options.port !== undefined) config.listen.port = options.port;
    return config;
  }
  if (options.port === 0) {
    throw new ConfigError('listen.port', 'the demo needs a fixed port: its base URL names it');
  }
  say('crdkit: no --config given; preparing the demo EHR…');
  return (await ehrDemoConfig(undefined, options.port)).config;
}

/** Starts the EHR side and resolves once it listens; stops cleanly on SIGINT and SIGTERM. */
export async function ehr(options: EhrOptions): Promise<void> {
  const config = await configFor(options);
  const logger = createLogger(config.log.level);
  const side = await buildEhr({ config, logger });
  try {
    await listenOrExplain(side.app, config.listen);
  } catch (err) {
    await side.close();
    throw err;
  }
  say(`crdkit: EHR listening on ${config.listen.host}:${config.listen.port}`);
  say(`crdkit: FHIR API for payers at ${config.fhirBaseUrl} (CapabilityStatement: /metadata)`);
  say(`crdkit: authorization server ${config.baseUrl}/oauth`);
  say(`crdkit: SMART configuration ${config.fhirBaseUrl}/.well-known/smart-configuration`);
  say(`crdkit: clients: ${config.clients.map((c) => c.clientId).join(', ')}`);
  if (config.users.length > 0 || config.demo) {
    logger.warn(
      'the sign-in step asks for no password (demo users): do not expose /oauth beyond a test network',
    );
  }
  if (side.demo) {
    const rel = (p: string) => relative(process.cwd(), p) || '.';
    say(`crdkit: demo patients in ${rel(join(config.dataDir, 'ehr.db'))}`);
  }
  if (config.demo) {
    logger.warn('running with DEMO credentials and synthetic patients: not for real data');
    say('');
    say('  WARNING: demo credentials, a self-signed certificate and synthetic patients.');
    say('');
  }
  if (side.demo && config.crdClient) {
    const id = (ref: string) => ref.split('/')[1]!;
    say('  With `crdkit serve` running too (another terminal), call the payer for an order:');
    say(`    npx crdkit client order-sign --patient ${id(side.demo['patient-avery'])} \\`);
    say(`      --user ${side.demo['pract-morgan']} --order ${side.demo['order-oxygen']}`);
    say('');
  }
  const stopTlsWatch = watchServerTls(side.app.server, config.tls, logger);
  const stop = async (signal: string) => {
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    stopTlsWatch();
    await side.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

/** `crdkit ehr load FILE`: loads a FHIR Bundle (for example Synthea output) into the store. */
export async function ehrLoad(file: string, options: { config?: string }): Promise<void> {
  const config = options.config ? loadEhrConfig(options.config) : (await ehrDemoConfig()).config;
  let bundle: unknown;
  try {
    bundle = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError('', `${file}: cannot read a JSON Bundle (${(err as Error).message})`);
  }
  const store = openResourceStore({ path: join(config.dataDir, 'ehr.db') });
  try {
    const { resources, ids } = loadBundle(store, bundle);
    const counts = new Map<string, number>();
    for (const r of resources) counts.set(r.resourceType, (counts.get(r.resourceType) ?? 0) + 1);
    say(`crdkit: loaded ${resources.length} resources from ${file}`);
    for (const [type, n] of [...counts].sort()) say(`  ${type}: ${n}`);
    // The new ids of patients and orders: what `crdkit client` is called with.
    const shown =
      /^(Patient|DeviceRequest|MedicationRequest|ServiceRequest|NutritionOrder|VisionPrescription|CommunicationRequest|Appointment)\//;
    const printed = new Set<string>();
    for (const [was, now] of ids) {
      if (!shown.test(now) || printed.has(now)) continue;
      printed.add(now);
      say(`  ${now} (was ${was})`);
    }
  } finally {
    store.close();
  }
}
