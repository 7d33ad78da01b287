/** The CRD client's transport: discovery, signing keys, deadlines and the HTTPS calls. */
export {
  DiscoveryCache,
  DiscoveryError,
  parseDiscovery,
  requestExtensions,
  serviceUrl,
  type Discovery,
  type DiscoveryCacheOptions,
  type DiscoveryErrorCode,
  type DiscoveryService,
  type RequestExtensions,
} from './discovery.js';
export {
  SigningKeys,
  SigningKeysError,
  type SignOptions,
  type SigningKeysErrorCode,
  type SigningKeysOptions,
} from '../../auth/signing-keys.js';
export {
  DeadlineError,
  hookDeadlineMs,
  RecentHooks,
  withDeadline,
  type DeadlineOptions,
  type DeadlineResult,
  type HookSubject,
  type RecentHooksOptions,
} from './deadline.js';
export {
  getJson,
  HookCallError,
  postHook,
  type HookCallErrorCode,
  type HookCallOptions,
  type HookCallResult,
} from './https.js';
