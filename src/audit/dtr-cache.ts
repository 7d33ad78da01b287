/**
 * The DTR context cache, the one exception to "keep nothing received" (sec-6): what DTR needs
 * later is held in memory only, keyed by `coverage-assertion-id`, and expires after `ttlMs`.
 * No timer runs: expired entries are dropped when read, on each `set` and when `size` is read.
 */

/** Options of {@link DtrContextCache}. */
export interface DtrContextCacheOptions {
  /** How long an entry lives, in ms. */
  ttlMs: number;
  /** The clock, in ms (default `Date.now`). */
  now?: () => number;
  /** Most entries kept; the oldest is dropped beyond it (default 10 000). */
  maxEntries?: number;
}

/**
 * A memory-only cache with a time limit.
 *
 * @example
 * ```ts
 * const cache = new DtrContextCache({ ttlMs: 15 * 60_000 });
 * cache.set(coverageAssertionId, { questionnaire, orders });
 * cache.get(coverageAssertionId); // undefined once 15 minutes have passed
 * ```
 */
export class DtrContextCache {
  readonly #entries = new Map<string, { value: unknown; expiresAt: number }>();
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #maxEntries: number;

  constructor(opts: DtrContextCacheOptions) {
    if (!(Number.isFinite(opts.ttlMs) && opts.ttlMs > 0)) {
      throw new RangeError('DtrContextCache: "ttlMs" must be a positive number');
    }
    const maxEntries = opts.maxEntries ?? 10_000;
    if (!(Number.isInteger(maxEntries) && maxEntries > 0)) {
      throw new RangeError('DtrContextCache: "maxEntries" must be a positive integer');
    }
    this.#ttlMs = opts.ttlMs;
    this.#now = opts.now ?? Date.now;
    this.#maxEntries = maxEntries;
  }

  /** Keeps `value` for `ttlMs` under `coverageAssertionId` (replacing any earlier value). */
  set(coverageAssertionId: string, value: unknown): void {
    this.#sweep();
    this.#entries.delete(coverageAssertionId);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(coverageAssertionId, { value, expiresAt: this.#now() + this.#ttlMs });
  }

  /** The value under `id`, or undefined when absent or expired. */
  get(id: string): unknown | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(id);
      return undefined;
    }
    return entry.value;
  }

  /** Drops the entry under `id`. */
  delete(id: string): void {
    this.#entries.delete(id);
  }

  /** How many entries are alive. */
  get size(): number {
    this.#sweep();
    return this.#entries.size;
  }

  /** Drops expired entries (insertion order is expiry order, since the TTL is fixed). */
  #sweep(): void {
    const now = this.#now();
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt > now) return;
      this.#entries.delete(id);
    }
  }
}
