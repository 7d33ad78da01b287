/**
 * What the audit store needs from a database: an atomic append against the chain head, pages
 * of records in `seq` order, and the payload columns. SQLite and PostgreSQL implement it.
 */
import type { ChainHead, StoredPayload, StoredRecord } from './chain.js';
import type { AppendEntry } from './entry.js';

/** A page of records: `seq` in (`afterSeq`, `maxSeq`], optional time window and patient. */
export interface PageQuery {
  afterSeq: number;
  maxSeq: number;
  limit: number;
  /** Inclusive lower bound of `recordedAt`, in ms. */
  since?: number;
  /** Exclusive upper bound of `recordedAt`, in ms. */
  until?: number;
  patient?: string;
}

/** A database holding one audit chain. */
export interface AuditBackend {
  /**
   * Reads the chain head under a write lock, links `entry` to it (`linkEntry`), stores the
   * record and its payload, and moves the head, all in one transaction; rejects on any failure.
   */
  append(entry: AppendEntry): Promise<void>;
  head(): Promise<ChainHead>;
  page(query: PageQuery): Promise<StoredRecord[]>;
  /** The record whose hash is `hash`, if any. */
  byHash(hash: string): Promise<StoredRecord | undefined>;
  /** The payload columns of record `id` (undefined when none is kept). */
  payload(id: string): Promise<StoredPayload | undefined>;
  /** Clears payload columns whose expiry is at or before `nowMs`; returns how many records. */
  purge(nowMs: number): Promise<number>;
  close(): Promise<void>;
}
