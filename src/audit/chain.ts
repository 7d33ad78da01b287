/**
 * The hash chain: each stored record carries `prevHash` (the hash of the record before it) and
 * `hash = SHA-256(prevHash "\n" canonicalJson(document))`. The document is everything recorded
 * except the encrypted payload columns, so purging payloads leaves every hash valid.
 */
import { createHash, randomFillSync } from 'node:crypto';

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
  // Native JSON.stringify, plain when every object's keys are already in order (records are
  // built that way), else with keys sorted by a replacer; both are several times faster than a
  // hand-written canonical writer, and the plain one about three times faster again (this runs
  // for every record appended and verified).
  const text = inOrder(value) ? JSON.stringify(value) : JSON.stringify(value, sortKeys);
  if (text === undefined) throw new TypeError('canonicalJson: value is not JSON');
  return text;
}

/**
 * Whether `JSON.stringify(v)` already writes every object's keys in sorted order. Objects with
 * `toJSON` (Dates, Buffers) answer no: the replacer path sees what they turn into.
 */
function inOrder(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return true;
  if (Array.isArray(v)) return v.every(inOrder);
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
  let previous: string | undefined;
  for (const key of Object.keys(v)) {
    if (previous !== undefined && !(previous < key)) return false;
    if (!inOrder((v as Record<string, unknown>)[key])) return false;
    previous = key;
  }
  return true;
}

function sortKeys(_key: string, v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  // No prototype, so an own "__proto__" key stays an ordinary member.
  const sorted: Record<string, unknown> = Object.create(null);
  for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
  return sorted;
}

const uuidBytes = Buffer.alloc(16);

/**
 * A record id: a version 7 UUID (RFC 9562), 48 bits of Unix milliseconds then 74 random bits.
 * Ids that grow with time keep the `id` index of the audit table append-only instead of
 * touching a random page of it on every record.
 */
export function recordId(nowMs: number = Date.now()): string {
  const b = randomFillSync(uuidBytes);
  b.writeUIntBE(nowMs, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Lower-case hex SHA-256 of `data`. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The hash a record must carry, recomputed from its columns (`seq` may be overridden). */
export function recordHash(record: Omit<StoredRecord, 'hash'>, seq = record.seq): string {
  // Keys in sorted order, so canonicalJson takes its fast path.
  const rest = canonicalJson({
    expiresAt: record.expiresAt,
    id: record.id,
    instance: record.instance,
    kind: record.kind,
    patient: record.patient,
    prevId: record.prevId,
    recordedAt: record.recordedAt,
    seq,
    v: 1,
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
