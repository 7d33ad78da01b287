/**
 * The SQLite audit backend as the event loop sees it: every call goes to the process's SQLite
 * thread (`src/store/sqlite-thread.ts`), which links, hashes and commits the records there. The
 * appends of one turn travel together and are group-committed; each caller's promise settles
 * once its record is committed, or rejects (a 503 for the caller, found-37).
 */
import { codedError } from '../store/driver-code.js';
import { SqliteThread } from '../store/sqlite-thread.js';
import type { AuditBackend, PageQuery } from './backend.js';
import type { ChainHead, StoredPayload, StoredRecord } from './chain.js';
import type { AppendEntry } from './entry.js';

/** Buffers cross the thread as Uint8Arrays. */
const asBuffer = (b: Uint8Array | null): Buffer | null =>
  b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : null;

/** The SQLite audit backend, run by the SQLite thread. */
export class ThreadedSqliteAuditBackend implements AuditBackend {
  #closed = false;

  private constructor(
    private readonly thread: SqliteThread,
    private readonly handle: number,
  ) {}

  /** Opens `audit.db` in `dataDir` (or `:memory:`) on the SQLite thread; rejects as SQLite does. */
  static async open(dataDir: string): Promise<ThreadedSqliteAuditBackend> {
    const thread = SqliteThread.shared();
    const handle = await thread.open({ kind: 'audit', dataDir });
    return new ThreadedSqliteAuditBackend(thread, handle);
  }

  #call<T>(call: Parameters<SqliteThread['call']>[0]): Promise<T> {
    if (this.#closed) {
      return Promise.reject(codedError('ERR_CLOSED'));
    }
    return this.thread.call<T>(call);
  }

  append(entry: AppendEntry): Promise<void> {
    return this.#call({ op: 'audit.append', handle: this.handle, entry });
  }

  head(): Promise<ChainHead> {
    return this.#call({ op: 'audit.head', handle: this.handle });
  }

  page(query: PageQuery): Promise<StoredRecord[]> {
    return this.#call({ op: 'audit.page', handle: this.handle, query });
  }

  byHash(hash: string): Promise<StoredRecord | undefined> {
    return this.#call({ op: 'audit.byHash', handle: this.handle, hash });
  }

  async payload(recordId: string): Promise<StoredPayload | undefined> {
    const stored = await this.#call<StoredPayload | undefined>({
      op: 'audit.payload',
      handle: this.handle,
      recordId,
    });
    if (!stored) return undefined;
    return {
      keyId: stored.keyId,
      request: asBuffer(stored.request),
      response: asBuffer(stored.response),
    };
  }

  purge(nowMs: number): Promise<number> {
    return this.#call({ op: 'audit.purge', handle: this.handle, nowMs });
  }

  /** Commits the appends already accepted, then closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Sent after every append already made, so the worker commits those first.
    await this.thread.close(this.handle);
  }
}
