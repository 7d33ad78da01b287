/** `crdkit serve`: load configuration and rules, open storage, start the HTTPS server. */
import { join, relative } from 'node:path';
import { demoConfig, DEMO_ISSUER, PACKAGE_ROOT } from '../config/demo.js';
import { ConfigError, loadConfig } from '../config/load.js';
import { checkServerTls } from '../tls/check.js';
import { watchServerTls } from '../tls/reload.js';
import type { Config } from '../config/schema.js';
import { createLogger } from '../log.js';
import { loadRules } from '../rules/index.js';
import { buildServer } from '../server/app.js';
import { openReplayStore } from '../store/replay.js';
import { openConfiguredAuditStore } from '../audit/index.js';

export interface ServeOptions {
  config?: string;
  port?: number;
}

const say = (line = '') => process.stderr.write(`${line}\n`);

/** Listens, or throws an error that says what to do (a port in use: `--port`). */
export async function listenOrExplain(
  app: { listen(o: { host: string; port: number }): Promise<unknown> },
  listen: { host: string; port: number },
): Promise<void> {
  try {
    await app.listen({ host: listen.host, port: listen.port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${listen.host}:${listen.port}`;
    throw new Error(
      code === 'EADDRINUSE'
        ? `port in use: ${where} (try --port)`
        : `cannot listen on ${where}: ${code ?? (err as Error).message}`,
    );
  }
}

/** Starts the server and resolves once it listens; stops cleanly on SIGINT and SIGTERM. */
export async function serve(options: ServeOptions): Promise<void> {
  let config: Config;
  let demo: Awaited<ReturnType<typeof demoConfig>> | undefined;
  if (options.config) {
    config = loadConfig(options.config);
    if (options.port !== undefined) config.listen.port = options.port;
  } else {
    if (options.port === 0) {
      throw new ConfigError('listen.port', 'the demo needs a fixed port: its base URL names it');
    }
    say('crdkit: no --config given; preparing the demo configuration…');
    demo = await demoConfig(undefined, options.port);
    config = demo.config;
    if (demo.created) say(`crdkit: generated demo credentials in ${demo.files.folder}`);
  }
  checkServerTls(config);
  const logger = createLogger(config.log.level);
  const rules = loadRules(config.rules);
  const replay = await openReplayStore(config, { logger });
  const audit = await openConfiguredAuditStore(config);
  const app = await buildServer({ config, logger, rules, replay, audit });
  await listenOrExplain(app, config.listen);
  const clients = config.clients.map((c) => (c.name ? `${c.name} (${c.iss})` : c.iss)).join(', ');
  const address = app.server.address();
  const listening =
    typeof address === 'object' && address ? `${address.address}:${address.port}` : '';
  say(`crdkit: CRD server listening on ${listening}`);
  say(`crdkit: base URL ${config.baseUrl} (callers sign JWTs for URLs under it: aud is checked)`);
  say(`crdkit: discovery at ${config.baseUrl}/cds-services`);
  say(`crdkit: trusted clients: ${clients}`);
  say(`crdkit: payers: ${rules.payers.map((p) => p.name).join(', ')} (rules: ${config.rules})`);
  if (demo) {
    const rel = (p: string) => relative(process.cwd(), p) || '.';
    logger.warn('running with DEMO credentials and a self-signed certificate: not for real data');
    say('');
    say('  WARNING: demo credentials and a self-signed development certificate.');
    say('  Do not use this configuration with real patient data.');
    say('');
    say('  Try it:');
    say(`    npx crdkit call ${config.baseUrl}/cds-services/order-sign-crd \\`);
    say(`      ${rel(join(PACKAGE_ROOT, 'examples', 'order-sign-oxygen.json'))} \\`);
    say(`      --key ${rel(demo.files.clientPrivateKey)} --iss ${DEMO_ISSUER} \\`);
    say(`      --ca ${rel(demo.files.cert)}`);
    say('');
  }
  // New certificate and key on SIGHUP or when the files change; open connections are kept.
  const stopTlsWatch = watchServerTls(app.server, config.tls, logger);
  const stop = async (signal: string) => {
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    stopTlsWatch();
    await app.close();
    await replay.close?.();
    await audit.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}
