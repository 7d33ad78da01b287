/**
 * The audit database's own thread: a worker that holds the SQLite connection and runs the
 * operations `sqlite-thread.ts` sends it, in the order they arrive. Appends that arrive in the
 * same turn share one transaction (the backend's group commit). It receives finished records
 * (payloads already encrypted), never keys, and writes nothing but the database: no log lines.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { driverCode } from './errors.js';
import { SqliteAuditBackend } from './sqlite-backend.js';
import type { WorkerReply, WorkerRequest } from './sqlite-thread.js';

const port = parentPort;
if (!port) throw new Error('sqlite-worker.ts runs as a worker thread of the audit store');

/** A failure as the other side rebuilds it: the driver's code and the error's name only. */
const failure = (err: unknown) => ({ code: driverCode(err) });

let backend: SqliteAuditBackend;
try {
  backend = new SqliteAuditBackend((workerData as { dataDir: string }).dataDir);
  port.postMessage({ id: 0, ok: true, value: null } satisfies WorkerReply);
} catch (err) {
  // Start-up failures (folder not writable, a file that is not a database) keep their message:
  // it names the path, which the operator configured, never a record.
  const message = err instanceof Error ? err.message : String(err);
  port.postMessage({ id: 0, ok: false, error: { ...failure(err), message } } satisfies WorkerReply);
  port.close();
}

async function run(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'append': {
      // One outcome per entry: `null` when stored, else the driver code.
      const settled = await Promise.allSettled(req.entries.map((e) => backend.append(e)));
      return settled.map((s) => (s.status === 'fulfilled' ? null : driverCode(s.reason)));
    }
    case 'head':
      return backend.head();
    case 'page':
      return backend.page(req.query);
    case 'byHash':
      return backend.byHash(req.hash);
    case 'payload':
      return backend.payload(req.recordId);
    case 'purge':
      return backend.purge(req.nowMs);
    case 'close':
      await backend.close();
      return null;
  }
}

port.on('message', (req: WorkerRequest) => {
  run(req).then(
    (value) => port.postMessage({ id: req.id, ok: true, value } satisfies WorkerReply),
    (err: unknown) =>
      port.postMessage({ id: req.id, ok: false, error: failure(err) } satisfies WorkerReply),
  );
});
