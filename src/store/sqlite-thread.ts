/**
 * The SQLite thread: one worker per process that holds the SQLite connections of the hot path
 * (the audit trail and the `jti` replay store) and runs their statements, so a server's event
 * loop only hands work over. Committing to SQLite, serialising and hashing audit records cost
 * about 0.1 ms per hook call; on the event loop that was the largest single item of a call
 * (docs/benchmarks.md).
 *
 * - Every call made in one turn of the event loop goes to the worker as one message, and the
 *   worker answers a turn's results as one message; appends and spends that arrive together
 *   are group-committed there, one transaction per database.
 * - Each caller's promise settles only once the worker has committed its work, or failed to.
 * - If the worker dies, calls in flight are rejected (`ERR_SQLITE_THREAD`), so their answers are
 *   errors, never unrecorded successes; the next call starts a new worker and opens the same
 *   databases again.
 * - The worker keeps the process alive only while calls are in flight, and stops when the last
 *   database is closed.
 */
import { Worker } from 'node:worker_threads';
import { codedError } from './driver-code.js';
import type { DatabaseSpec, ThreadReply, ThreadRequest } from './sqlite-worker.js';

export type { DatabaseSpec } from './sqlite-worker.js';

/** The compiled `.js` worker, or under tsx (tests, `tsx`) the TypeScript source. */
function startWorker(): Worker {
  const source = import.meta.url.endsWith('.ts');
  const entry = new URL(source ? './sqlite-worker.ts' : './sqlite-worker.js', import.meta.url);
  if (!source) return new Worker(entry);
  // A worker does not inherit tsx's loader: it registers it before importing the entry.
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { eval: true });
}

type Pending = { resolve: (value: unknown) => void; reject: (err: Error) => void };
/** A request before it has an id. */
type Call = ThreadRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** The process's SQLite thread (see the file comment). */
export class SqliteThread {
  static #shared: SqliteThread | undefined;

  /** The process's thread, started on first use. */
  static shared(): SqliteThread {
    SqliteThread.#shared ??= new SqliteThread();
    return SqliteThread.#shared;
  }

  #worker: Worker | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  /** Calls of this turn, sent together on the next `setImmediate`. */
  #queue: ThreadRequest[] = [];
  #flushScheduled = false;
  /** Databases open on this thread, by handle: opened again in a new worker. */
  readonly #open = new Map<number, DatabaseSpec>();
  /** Databases a new worker has not opened yet: each batch tries them first until it can. */
  readonly #reopen = new Set<number>();
  /** Of those, the ones whose open is on its way (sent once, not with every batch). */
  readonly #reopening = new Set<number>();
  #nextHandle = 1;

  private constructor() {}

  /** Opens `spec` in the worker; resolves to its handle, or rejects as SQLite would. */
  async open(spec: DatabaseSpec): Promise<number> {
    const handle = this.#nextHandle++;
    await this.call({ op: 'open', handle, spec });
    this.#open.set(handle, spec);
    return handle;
  }

  /** Closes database `handle` (its pending work is committed first); the last one ends the worker. */
  async close(handle: number): Promise<void> {
    if (!this.#open.delete(handle)) return;
    this.#reopen.delete(handle);
    try {
      await this.call({ op: 'close', handle });
    } finally {
      if (this.#open.size === 0 && this.#pending.size === 0) {
        const worker = this.#worker;
        this.#worker = undefined;
        await worker?.terminate();
      }
    }
  }

  /** Sends `call` with the others of this turn; resolves with the worker's answer. */
  call<T>(call: Call): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#queue.push({ ...call, id } as ThreadRequest);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#queue.splice(0);
    if (batch.length === 0) return;
    let worker = this.#worker;
    if (!worker) {
      worker = this.#start();
      for (const handle of this.#open.keys()) this.#reopen.add(handle);
    }
    // Open again, ahead of this batch, what a new worker does not hold yet. Until that works
    // (the file locked, the disk full, the file gone), calls on it fail closed and the next
    // batch tries again.
    const reopen: ThreadRequest[] = [];
    for (const handle of this.#reopen) {
      if (this.#reopening.has(handle)) continue;
      const spec = this.#open.get(handle)!;
      const id = this.#nextId++;
      this.#reopening.add(handle);
      this.#pending.set(id, {
        resolve: () => {
          this.#reopen.delete(handle);
          this.#reopening.delete(handle);
        },
        reject: () => this.#reopening.delete(handle),
      });
      reopen.push({ id, op: 'open', handle, spec, again: true });
    }
    batch.unshift(...reopen);
    worker.ref();
    try {
      worker.postMessage(batch);
    } catch (err) {
      // Something that cannot be cloned: this batch fails, closed; the thread goes on.
      const code = (err as { name?: string }).name === 'DataCloneError' ? 'ERR_CLONE' : 'ERR_POST';
      for (const { id } of batch) {
        const pending = this.#pending.get(id);
        this.#pending.delete(id);
        pending?.reject(codedError(code));
      }
      if (this.#pending.size === 0) worker.unref();
    }
  }

  #start(): Worker {
    const worker = startWorker();
    this.#worker = worker;
    worker.on('message', (replies: ThreadReply[]) => {
      for (const reply of replies) {
        const pending = this.#pending.get(reply.id);
        if (!pending) continue;
        this.#pending.delete(reply.id);
        if (reply.ok) pending.resolve(reply.value);
        else pending.reject(codedError(reply.error.code, reply.error.message));
      }
      if (this.#pending.size === 0) worker.unref();
    });
    const died = () => {
      if (this.#worker !== worker) return;
      this.#worker = undefined; // the next call starts a new one
      this.#reopening.clear();
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of pending)
        p.reject(codedError('ERR_SQLITE_THREAD', 'the SQLite thread stopped'));
    };
    worker.on('error', died);
    worker.on('exit', died);
    return worker;
  }

  /** Stops the worker as a crash would (tests show that calls in flight fail closed). */
  async terminateForTest(): Promise<void> {
    await this.#worker?.terminate();
  }
}
