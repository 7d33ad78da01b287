/** Opens the audit store a configuration names (server, CLI and benchmark share this). */
import type { Config } from '../config/schema.js';
import { openAuditStore } from './store.js';
import type { AuditStore } from './types.js';

/** The configured audit store; `instance` defaults to `audit.instance`. */
export function openConfiguredAuditStore(
  config: Pick<Config, 'audit' | 'dataDir'>,
  instance: string = config.audit.instance,
): Promise<AuditStore> {
  return openAuditStore({
    url: config.audit.store,
    dataDir: config.dataDir,
    instance,
    ...(config.audit.encryption ? { encryption: config.audit.encryption } : {}),
    retentionDays: config.audit.retentionDays,
  });
}
