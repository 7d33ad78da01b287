/**
 * What an audit backend is asked to append, and how it becomes a stored record inside the
 * append transaction: linked to the chain head, hashed, and for a hook call the AuditEvent
 * built there too, so the SQLite thread, not the server's event loop, does that work.
 */
import { auditEventFromHook, type HookDigests } from './balp.js';
import {
  canonicalJson,
  link,
  type ChainHead,
  type StoredPayload,
  type StoredRecord,
} from './chain.js';
import type { HookAuditInput } from './types.js';

/**
 * A record before it is linked: everything but `seq`, the links and the hash. Plain data, so it
 * can cross to a worker thread.
 */
export interface AppendEntry {
  fields: Omit<StoredRecord, 'seq' | 'prevId' | 'prevHash' | 'hash' | 'event'>;
  /**
   * The AuditEvent as canonical JSON text, or the (already checked) hook call it is built from
   * with `auditEventFromHook` and the record's id: without its bodies, only their digests, so
   * the request (and the access token in it) never leaves the caller's thread.
   */
  event:
    string | { hook: Omit<HookAuditInput, 'requestBody' | 'responseBody'>; digests: HookDigests };
  /** The encrypted bodies (built by the caller, which holds the keys). */
  payload?: StoredPayload;
}

/** The stored record (and payload) of `entry`, appended after `head`. */
export function linkEntry(
  head: ChainHead,
  entry: AppendEntry,
): { record: StoredRecord; payload?: StoredPayload } {
  const event =
    typeof entry.event === 'string'
      ? entry.event
      : canonicalJson(auditEventFromHook(entry.event.hook, entry.fields.id, entry.event.digests));
  const record = link(head, { ...entry.fields, event });
  return entry.payload ? { record, payload: entry.payload } : { record };
}
