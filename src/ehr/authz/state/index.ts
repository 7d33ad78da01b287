/**
 * Opens the configured state backend of the authorization server: SQLite by default,
 * PostgreSQL or Redis when several instances share state.
 */
import type { AuthorizationStoreOptions } from '../types.js';
import type { StateBackend } from './backend.js';
import { PgStateBackend } from './postgres.js';
import { RedisStateBackend } from './redis.js';
import { SqliteStateBackend } from './sqlite.js';

export { adapterFactory, StateAdapter, stateKey, type StateBackend } from './backend.js';

/** Opens the backend `store` names; `now` (epoch ms) is the expiry clock (default system). */
export async function openStateBackend(
  store: AuthorizationStoreOptions,
  now: () => number = Date.now,
): Promise<StateBackend> {
  switch (store.kind) {
    case 'sqlite':
      return new SqliteStateBackend(store.path, now);
    case 'postgres':
      return PgStateBackend.open(store.url, now);
    case 'redis':
      return RedisStateBackend.open(store.url, store.prefix, now);
    default:
      throw new TypeError('authz.store: "kind" must be sqlite, postgres or redis');
  }
}
