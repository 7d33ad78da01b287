/**
 * Opens the `jti` replay store the configuration names (`replay`): SQLite in the data folder
 * (default; shared by the processes of one host), memory (one process) or Redis (shared by
 * every instance pointing at it).
 */
import { join } from 'node:path';
import { MemoryReplayStore, ThreadedSqliteReplayStore, type ReplayStore } from '../auth/replay.js';
import { RedisReplayStore } from '../auth/replay-redis.js';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { connectRedis, type RedisConnectionLogger } from './redis.js';

/** Options of {@link openReplayStore}. */
export interface OpenReplayStoreOptions {
  /** Told when a Redis connection is lost and restored. */
  logger?: RedisConnectionLogger;
}

/**
 * The replay store of `config.replay`. With a Redis URL, resolves once connected, or throws a
 * `ConfigError` naming `replay` when the server cannot be reached.
 */
export async function openReplayStore(
  config: Config,
  opts: OpenReplayStoreOptions = {},
): Promise<ReplayStore> {
  const spec = config.replay;
  if (spec === 'sqlite') {
    // A path: the SQLite thread opens it with openSqlite (0700 folder, 0600 file).
    return ThreadedSqliteReplayStore.open(join(config.dataDir, 'crdkit.db'));
  }
  if (spec === 'memory') return new MemoryReplayStore();
  if (/^rediss?:\/\//.test(spec)) {
    const client = await connectRedis(spec, {
      configKey: 'replay',
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    return new RedisReplayStore(client);
  }
  throw new ConfigError('replay', 'must be "sqlite", "memory" or a redis:// or rediss:// URL');
}
