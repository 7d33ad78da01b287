/**
 * The worker of the SQLite thread (`sqlite-thread.ts`): it holds the databases the event loop
 * opens here and runs each message's calls in arrival order. Appends and spends of one message
 * are group-committed by the stores themselves (one transaction per database per turn).
 *
 * It receives finished data only (audit payloads already encrypted, `jti`s already hashed by
 * the caller's store), holds no keys and writes nothing but the databases: no log lines.
 * It is the one place under `src/store` that imports the stores it hosts (audit, replay).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import type { PageQuery } from '../audit/backend.js';
import type { AppendEntry } from '../audit/entry.js';
import { codedError, driverCode } from './driver-code.js';
import { SqliteAuditBackend } from '../audit/sqlite-backend.js';
import { SqliteReplayStore } from '../auth/replay.js';

/** A database the thread can hold. */
export type DatabaseSpec =
  { kind: 'audit'; dataDir: string } | { kind: 'replay'; path: string; purgeEvery?: number };

/** One call, as the event loop sends it. */
export type ThreadRequest = { id: number } & (
  | { op: 'open'; handle: number; spec: DatabaseSpec; again?: boolean }
  | { op: 'close'; handle: number }
  | { op: 'audit.append'; handle: number; entry: AppendEntry }
  | { op: 'audit.head'; handle: number }
  | { op: 'audit.page'; handle: number; query: PageQuery }
  | { op: 'audit.byHash'; handle: number; hash: string }
  | { op: 'audit.payload'; handle: number; recordId: string }
  | { op: 'audit.purge'; handle: number; nowMs: number }
  | { op: 'replay.spend'; handle: number; key: Uint8Array; exp: number }
);

/** The answer to call `id`. */
export type ThreadReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { code: string; message?: string } };

const port = parentPort;
if (!port) throw new Error('sqlite-worker.ts runs as the SQLite thread of crdkit');

const databases = new Map<number, SqliteAuditBackend | SqliteReplayStore>();

function audit(handle: number): SqliteAuditBackend {
  const db = databases.get(handle);
  if (!(db instanceof SqliteAuditBackend)) throw codedError('ERR_HANDLE');
  return db;
}

function replay(handle: number): SqliteReplayStore {
  const db = databases.get(handle);
  if (!(db instanceof SqliteReplayStore)) throw codedError('ERR_HANDLE');
  return db;
}

/**
 * Opens `spec` as `handle`. `again` (a new worker opening what the last one held) refuses a
 * database that is gone: creating an empty one would forget every spent `jti` and start a new
 * audit chain as if nothing had been recorded before.
 */
function open(handle: number, spec: DatabaseSpec, again: boolean): null {
  const file = spec.kind === 'audit' ? spec.dataDir : spec.path;
  const path = spec.kind === 'audit' && file !== ':memory:' ? join(file, 'audit.db') : file;
  if (again && (path === ':memory:' || !existsSync(path))) {
    throw codedError('ERR_DB_GONE');
  }
  databases.get(handle)?.close();
  databases.set(
    handle,
    spec.kind === 'audit'
      ? new SqliteAuditBackend(spec.dataDir)
      : new SqliteReplayStore(spec.path, spec.purgeEvery ? { purgeEvery: spec.purgeEvery } : {}),
  );
  return null;
}

async function run(req: ThreadRequest): Promise<unknown> {
  switch (req.op) {
    case 'open':
      return open(req.handle, req.spec, req.again === true);
    case 'close': {
      const db = databases.get(req.handle);
      databases.delete(req.handle);
      await db?.close();
      return null;
    }
    case 'audit.append':
      await audit(req.handle).append(req.entry);
      return null;
    case 'audit.head':
      return audit(req.handle).head();
    case 'audit.page':
      return audit(req.handle).page(req.query);
    case 'audit.byHash':
      return audit(req.handle).byHash(req.hash);
    case 'audit.payload':
      return audit(req.handle).payload(req.recordId);
    case 'audit.purge':
      return audit(req.handle).purge(req.nowMs);
    case 'replay.spend':
      return replay(req.handle).spendKey(
        Buffer.from(req.key.buffer, req.key.byteOffset, req.key.byteLength),
        req.exp,
      );
  }
}

port.on('message', (batch: ThreadRequest[]) => {
  // Every call of the message is started, then each database commits what it was given in one
  // transaction, and the answers go back together as one message.
  const replies = batch.map((req) =>
    run(req).then(
      (value): ThreadReply => ({ id: req.id, ok: true, value }),
      (err: unknown): ThreadReply => {
        // The driver's code always; the message only for `open`, where it names the path the
        // operator configured (never a record).
        const message = req.op === 'open' && err instanceof Error ? err.message : undefined;
        return {
          id: req.id,
          ok: false,
          error: { code: driverCode(err), ...(message ? { message } : {}) },
        };
      },
    ),
  );
  for (const db of databases.values()) db.flushNow();
  void Promise.all(replies).then((answers) => port.postMessage(answers));
});
