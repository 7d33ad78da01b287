/**
 * Walks the chain in `seq` order and names the first record that was changed (its hash does
 * not recompute), removed (a `seq` is missing, or the chain head is ahead of the last record)
 * or reordered (it is intact, but at another position than the one it was written at).
 */
import type { AuditBackend } from './backend.js';
import { GENESIS_HASH, recordHash, type StoredRecord } from './chain.js';
import type { VerifyResult } from './types.js';

const PAGE = 1000;
/** The longest run of displaced records `verify` walks back through. */
const MAX_WALK = 10_000;

type Problem = 'changed' | 'removed' | 'reordered';

function bad(id: string, seq: number, problem: Problem): VerifyResult {
  return { ok: false, firstBad: { id, seq, problem } };
}

function hashOf(record: StoredRecord, seq?: number): string | undefined {
  try {
    return recordHash(record, seq);
  } catch {
    return undefined; // the event column is no longer JSON
  }
}

/**
 * The position `record` was written at, found by following `prevHash` back to a record that is
 * intact where it stands (or to the start); undefined when the links lead nowhere.
 */
async function writtenAt(backend: AuditBackend, record: StoredRecord): Promise<number | undefined> {
  let prevHash = record.prevHash;
  for (let steps = 1; steps <= MAX_WALK; steps++) {
    if (prevHash === GENESIS_HASH) return steps;
    const before = await backend.byHash(prevHash);
    if (!before) return undefined;
    if (hashOf(before) === before.hash) return before.seq + steps;
    prevHash = before.prevHash;
  }
  return undefined;
}

/** Whether `record` is intact at the position it was written at, which is not where it is. */
async function writtenElsewhere(backend: AuditBackend, record: StoredRecord): Promise<boolean> {
  const seq = await writtenAt(backend, record);
  return seq !== undefined && seq !== record.seq && hashOf(record, seq) === record.hash;
}

/**
 * Verifies the chain of `backend` up to the head read at the start (records appended meanwhile
 * are left for the next run).
 */
export async function verifyChain(backend: AuditBackend): Promise<VerifyResult> {
  const head = await backend.head();
  let expected = 1;
  let prev = { hash: GENESIS_HASH, id: null as string | null };
  for (let afterSeq = 0; afterSeq < head.seq;) {
    const page = await backend.page({ afterSeq, maxSeq: head.seq, limit: PAGE });
    if (page.length === 0) break;
    for (const record of page) {
      if (record.seq !== expected) {
        // found-37: the successor names its predecessor, the last record of the gap.
        return bad(record.prevId ?? record.id, expected, 'removed');
      }
      if (hashOf(record) !== record.hash) {
        const moved = await writtenElsewhere(backend, record);
        return bad(record.id, record.seq, moved ? 'reordered' : 'changed');
      }
      if (record.prevHash !== prev.hash || record.prevId !== prev.id) {
        const moved = await writtenElsewhere(backend, record);
        return bad(record.id, record.seq, moved ? 'reordered' : 'changed');
      }
      prev = { hash: record.hash, id: record.id };
      expected += 1;
    }
    afterSeq = page[page.length - 1]!.seq;
  }
  const last = expected - 1;
  if (last < head.seq) {
    return bad(head.id ?? '', last + 1, 'removed');
  }
  if (head.hash !== prev.hash || head.id !== prev.id) {
    return bad(prev.id ?? '', last, 'changed');
  }
  return { ok: true, records: last };
}
