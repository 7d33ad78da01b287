/**
 * Benchmark child: the real crdkit server, assembled as `crdkit serve` does it (src/cli/serve.ts):
 * configuration file → logger → rules → replay store (SQLite) → audit trail (SQLite) → Fastify
 * server over HTTPS.
 *
 * Started by bench/order-sign.ts, compiled to JavaScript: node crdkit-server.js <config.json>
 */
import { openConfiguredAuditStore } from '../src/audit/index.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { loadRules } from '../src/rules/index.js';
import { buildServer } from '../src/server/app.js';
import { openReplayStore } from '../src/store/replay.js';
import { runChild } from './child.js';

runChild(async () => {
  const configPath = process.argv[2];
  if (!configPath) throw new Error('usage: crdkit-server.ts <config.json>');
  const config = loadConfig(configPath);
  // pino writes to this process's stdout, which the parent points at a log file.
  const logger = createLogger(config.log.level);
  const rules = loadRules(config.rules);
  const replay = await openReplayStore(config, { logger });
  const audit = await openConfiguredAuditStore(config);
  const app = await buildServer({ config, logger, rules, replay, audit });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  return {
    port: config.listen.port,
    close: async () => {
      await app.close();
      await replay.close?.();
      await audit.close();
    },
  };
});
