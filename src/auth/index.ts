/**
 * The CDS Hooks client-authentication layer: JWT verification (service side), signing (EHR
 * side), trusted-client key sets and the `jti` replay stores.
 */
export { AUTH_ERRORS, AuthError, ReplayCapacityError, type AuthErrorCode } from './errors.js';
export {
  KeySets,
  parseKeySet,
  type CdsJwtAlg,
  type KeySetOptions,
  type TrustedClient,
  type VerifyKey,
} from './keys.js';
export { cacheLifetime, fetchJwks, type FetchJwksOptions, type FetchedJwks } from './jwks-fetch.js';
export {
  MemoryReplayStore,
  SqliteReplayStore,
  replayKey,
  type MemoryReplayStoreOptions,
  type ReplayStore,
  type ReplayStoreOptions,
} from './replay.js';
export {
  createVerifier,
  type VerifiedClient,
  type Verifier,
  type VerifierOptions,
} from './verify.js';
export {
  generateClientKeyPair,
  signCdsJwt,
  type ClientKeyPair,
  type SignCdsJwtOptions,
} from './sign.js';
