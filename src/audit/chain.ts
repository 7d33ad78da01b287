/**
 * The hash chain: each stored record carries `prevHash` (the hash of the record before it) and
 * `hash = SHA-256(prevHash "\n" canonicalJson(document))`. The document is everything recorded
 * except the encrypted payload columns, so purging payloads leaves every hash valid.
 */
import { createHash } from 'node:crypto';

/** What a record is about: a hook call, a security event, a FHIR access, a token event. */
export type RecordKind = 'hook' | 'security' | 'fhir-access' | 'token';

/** The `prevHash` of the first record of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** The one chain every instance appends to (see docs/audit.md, "Several instances"). */
export const CHAIN = 'main';

/** One stored record, as both stores keep it (payload columns apart). */
export interface StoredRecord {
  seq: number;
  id: string;
  instance: string;
  kind: RecordKind;
  /** Milliseconds since the epoch (the AuditEvent's `recorded`). */
  recordedAt: number;
  patient: string | null;
  /** The id of the record before this one (null for the first): names a removed record. */
  prevId: string | null;
  prevHash: string;
  hash: string;
  /** When the encrypted payload expires (null without payload). */
  expiresAt: number | null;
  /** The AuditEvent as canonical JSON text. */
  event: string;
}

/** The encrypted payload columns of a record (outside the hash). */
export interface StoredPayload {
  keyId: string;
  request: Buffer | null;
  response: Buffer | null;
}

/** The last link of the chain, kept in its own row so a cut tail is seen. */
export interface ChainHead {
  seq: number;
  hash: string;
  id: string | null;
}

/** JSON with object keys sorted at every level and no whitespace (undefined members dropped). */
export function canonicalJson(value: unknown): string {
  // Native JSON.stringify with keys sorted by a replacer: the same text as a hand-written
  // canonical writer, several times faster (this runs for every record appended and verified).
  const text = JSON.stringify(value, sortKeys);
  if (text === undefined) throw new TypeError('canonicalJson: value is not JSON');
  return text;
}

function sortKeys(_key: string, v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
  return sorted;
}

/** Lower-case hex SHA-256 of `data`. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The hash a record must carry, recomputed from its columns (`seq` may be overridden). */
export function recordHash(record: Omit<StoredRecord, 'hash'>, seq = record.seq): string {
  const rest = canonicalJson({
    v: 1,
    seq,
    id: record.id,
    instance: record.instance,
    kind: record.kind,
    recordedAt: record.recordedAt,
    patient: record.patient,
    prevId: record.prevId,
    expiresAt: record.expiresAt,
  });
  // `event` is stored as canonical JSON text, and sorts first: spliced in as stored, so any
  // change to its bytes changes the hash (and it is not parsed and re-serialised per record).
  return sha256Hex(`${record.prevHash}\n{"event":${record.event},${rest.slice(1)}`);
}

/** The record that follows `head`, with its `seq`, links and hash filled in. */
export function link(
  head: ChainHead,
  fields: Omit<StoredRecord, 'seq' | 'prevId' | 'prevHash' | 'hash'>,
): StoredRecord {
  const unhashed = { ...fields, seq: head.seq + 1, prevId: head.id, prevHash: head.hash };
  return { ...unhashed, hash: recordHash(unhashed) };
}

/**
 * The values of one `audit_records` row in column order: `seq, id, instance, kind, recorded_at,
 * patient, prev_id, prev_hash, hash, expires_at, event, payload_key_id, request_ct,
 * response_ct` (both stores insert exactly these).
 */
export function recordColumns(r: StoredRecord, p?: StoredPayload): unknown[] {
  return [
    r.seq,
    r.id,
    r.instance,
    r.kind,
    r.recordedAt,
    r.patient,
    r.prevId,
    r.prevHash,
    r.hash,
    r.expiresAt,
    r.event,
    p?.keyId ?? null,
    p?.request ?? null,
    p?.response ?? null,
  ];
}
