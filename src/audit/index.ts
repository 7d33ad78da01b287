/**
 * The audit trail of crdkit (found-37, found-38, sec-5, sec-6): BALP-shaped FHIR AuditEvents in
 * a hash chain (SQLite or PostgreSQL), payloads kept only encrypted and only until retention
 * ends, and the memory-only DTR context cache. See docs/audit.md.
 */
export {
  auditEventFromFhirAccess,
  auditEventFromHook,
  auditEventFromSecurity,
  auditEventFromToken,
  CRDKIT_AUDIT_SYSTEMS,
} from './balp.js';
export { canonicalJson, GENESIS_HASH } from './chain.js';
export { DtrContextCache, type DtrContextCacheOptions } from './dtr-cache.js';
export { AUDIT_ERRORS, AuditError, AuditUnavailableError, type AuditErrorCode } from './errors.js';
export { writeBundle, writeNdjson } from './export.js';
export { openAuditStore } from './store.js';
export { openConfiguredAuditStore } from './configured.js';
export type {
  AuditPayloads,
  AuditStore,
  ExportFilter,
  FhirAccessAuditInput,
  HookAuditInput,
  HookOutcome,
  OpenAuditStoreOptions,
  SecurityAuditInput,
  SecurityKind,
  TokenAuditInput,
  TokenEventKind,
  VerifyResult,
} from './types.js';
