/**
 * The SQLite audit backend on a worker thread of its own. Serialising each AuditEvent, hashing
 * the chain and committing to SQLite cost about 0.1 ms per record; done on the server's event
 * loop, that was the largest single item of a hook call (docs/benchmarks.md). Here the event
 * loop only hands the records over: the appends of one turn go as one message, and each
 * caller's promise settles once the worker has committed its record (or failed to).
 *
 * The worker is started when the store opens (a database that cannot be opened fails
 * `openAuditStore`, as before) and again on the next call if it ever dies; calls in flight when
 * it dies are rejected, so their answers are 503s, never unrecorded 200s (found-37). It keeps
 * the process alive only while calls are in flight.
 */
import { Worker } from 'node:worker_threads';
import type { AuditBackend, PageQuery } from './backend.js';
import type { AppendEntry, ChainHead, StoredPayload, StoredRecord } from './chain.js';

/** What the event loop asks of the worker. */
export type WorkerRequest = { id: number } & (
  | { op: 'append'; entries: AppendEntry[] }
  | { op: 'head' }
  | { op: 'page'; query: PageQuery }
  | { op: 'byHash'; hash: string }
  | { op: 'payload'; recordId: string }
  | { op: 'purge'; nowMs: number }
  | { op: 'close' }
);

/** The worker's answer to request `id` (id 0: the database is open, or why not). */
export type WorkerReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { code: string; message?: string } };

/** Distributes the payload of a `WorkerRequest` over its union members. */
type Op<T> = T extends { op: infer O } ? (O extends string ? Omit<T, 'id'> : never) : never;

/** An error carrying the driver's code, as `driverCode` reads it. */
function codedError(code: string, message = `audit database: ${code}`): Error {
  return Object.assign(new Error(message), { code });
}

/** How the worker is started: the compiled `.js` file, or the TypeScript source under tsx. */
function startWorker(dataDir: string): Worker {
  const source = import.meta.url.endsWith('.ts');
  const entry = new URL(source ? './sqlite-worker.ts' : './sqlite-worker.js', import.meta.url);
  if (!source) return new Worker(entry, { workerData: { dataDir } });
  // Running from sources (tests, `tsx`): a worker does not inherit the loader, so it registers
  // tsx's before importing the entry.
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { eval: true, workerData: { dataDir } });
}

/** The SQLite audit backend, run by a worker thread. */
export class ThreadedSqliteAuditBackend implements AuditBackend {
  readonly #dataDir: string;
  #worker: Promise<Worker> | undefined;
  #nextId = 1;
  readonly #calls = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  /** Appends of this turn, sent together on the next `setImmediate`. */
  #queued: Array<{ entry: AppendEntry; resolve: () => void; reject: (e: Error) => void }> = [];
  #flushScheduled = false;
  /** Append batches sent and not yet answered (close waits for them). */
  readonly #sending = new Set<Promise<void>>();
  #closed = false;

  private constructor(dataDir: string) {
    this.#dataDir = dataDir;
  }

  /** Starts the worker and opens `audit.db` in `dataDir` (or `:memory:`); rejects as SQLite does. */
  static async open(dataDir: string): Promise<ThreadedSqliteAuditBackend> {
    const backend = new ThreadedSqliteAuditBackend(dataDir);
    await backend.#ensureWorker();
    return backend;
  }

  #ensureWorker(): Promise<Worker> {
    this.#worker ??= new Promise<Worker>((resolve, reject) => {
      const worker = startWorker(this.#dataDir);
      let ready = false;
      worker.on('message', (reply: WorkerReply) => {
        if (reply.id === 0) {
          if (reply.ok) {
            ready = true;
            this.#idle(worker);
            resolve(worker);
          } else {
            reject(codedError(reply.error.code, reply.error.message));
          }
          return;
        }
        const call = this.#calls.get(reply.id);
        if (!call) return;
        this.#calls.delete(reply.id);
        if (reply.ok) call.resolve(reply.value);
        else call.reject(codedError(reply.error.code));
        this.#idle(worker);
      });
      const died = (err?: Error) => {
        this.#worker = undefined; // the next call starts a new one
        if (!ready) reject(err ?? codedError('ERR_AUDIT_WORKER', 'the audit worker stopped'));
        const calls = [...this.#calls.values()];
        this.#calls.clear();
        for (const call of calls) call.reject(codedError('ERR_AUDIT_WORKER'));
      };
      worker.on('error', (err) => died(err));
      worker.on('exit', () => died());
    });
    return this.#worker;
  }

  /** The worker holds the process open only while it has calls to answer. */
  #idle(worker: Worker): void {
    if (this.#calls.size === 0) worker.unref();
  }

  async #call<T>(request: Op<WorkerRequest>): Promise<T> {
    const worker = await this.#ensureWorker();
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.ref();
      worker.postMessage({ ...request, id });
    });
  }

  append(entry: AppendEntry): Promise<void> {
    if (this.#closed) return Promise.reject(codedError('ERR_AUDIT_CLOSED'));
    return new Promise((resolve, reject) => {
      this.#queued.push({ entry, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#queued.splice(0);
    if (batch.length === 0) return;
    const sent = this.#send(batch).finally(() => this.#sending.delete(sent));
    this.#sending.add(sent);
  }

  async #send(
    batch: Array<{ entry: AppendEntry; resolve: () => void; reject: (e: Error) => void }>,
  ): Promise<void> {
    let outcomes: Array<string | null>;
    try {
      outcomes = await this.#call<Array<string | null>>({
        op: 'append',
        entries: batch.map((b) => b.entry),
      });
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
      return;
    }
    batch.forEach((b, i) => {
      const code = outcomes[i];
      if (code === null) b.resolve();
      else b.reject(codedError(code ?? 'ERR_AUDIT_WORKER'));
    });
  }

  /** A read or purge: refused once the store is closed. */
  #open<T>(request: Op<WorkerRequest>): Promise<T> {
    if (this.#closed) return Promise.reject(codedError('ERR_AUDIT_CLOSED'));
    return this.#call(request);
  }

  head(): Promise<ChainHead> {
    return this.#open({ op: 'head' });
  }

  page(query: PageQuery): Promise<StoredRecord[]> {
    return this.#open({ op: 'page', query });
  }

  byHash(hash: string): Promise<StoredRecord | undefined> {
    return this.#open({ op: 'byHash', hash });
  }

  async payload(recordId: string): Promise<StoredPayload | undefined> {
    const stored = await this.#open<StoredPayload | undefined>({ op: 'payload', recordId });
    // Buffers arrive as Uint8Arrays.
    if (!stored) return undefined;
    const buf = (b: Uint8Array | null) =>
      b ? Buffer.from(b.buffer, b.byteOffset, b.length) : null;
    return { keyId: stored.keyId, request: buf(stored.request), response: buf(stored.response) };
  }

  purge(nowMs: number): Promise<number> {
    return this.#open({ op: 'purge', nowMs });
  }

  /**
   * Stops the worker as a crash would (tests use it to show that calls in flight fail closed and
   * that the next call starts a new worker).
   */
  async terminateWorkerForTest(): Promise<void> {
    const worker = await this.#worker;
    await worker?.terminate();
  }

  /** Commits the appends already accepted, closes the database and ends the worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
    await Promise.all(this.#sending);
    const worker = this.#worker ? await this.#worker.catch(() => undefined) : undefined;
    if (!worker) return;
    try {
      await this.#call({ op: 'close' });
    } finally {
      await worker.terminate();
    }
  }
}
