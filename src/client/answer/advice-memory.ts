/**
 * found-39: the same advice returned by repeated hook calls (order-select, then order-sign, then
 * a re-sign after an edit) is shown once. Cards are recognised by what the user reads (source
 * label, summary, detail, links), not by `uuid`, which a service may change on every call.
 * Only SHA-256 digests are held: no patient key and no card text stays in memory.
 */
import { createHash } from 'node:crypto';
import type { Card } from './types.js';

export interface AdviceMemoryOptions {
  /** How long advice counts as already shown (default 24 h). */
  ttlMs?: number;
  /** The clock in epoch milliseconds (tests freeze it). */
  now?: () => number;
  /** Most remembered (patient, card) pairs; the oldest are forgotten first (default 100 000). */
  maxEntries?: number;
}

const DAY_MS = 86_400_000;

/** Remembers which advice each patient (or patient and order) has already been shown. */
export class AdviceMemory {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #maxEntries: number;
  /** digest(patientKey, fingerprint) -> expiry (epoch ms), in insertion order. */
  readonly #shown = new Map<string, number>();

  constructor(opts: AdviceMemoryOptions = {}) {
    this.#ttlMs = opts.ttlMs ?? DAY_MS;
    this.#now = opts.now ?? Date.now;
    this.#maxEntries = opts.maxEntries ?? 100_000;
    if (!(this.#ttlMs > 0) || !(this.#maxEntries > 0)) {
      throw new RangeError('AdviceMemory: "ttlMs" and "maxEntries" must be positive');
    }
  }

  /**
   * Returns the cards of `cards` not shown to `patientKey` within the time limit (repeats within
   * `cards` itself count too) and remembers them as shown. `patientKey` is the caller's choice:
   * the patient id, or patient and order for per-order advice.
   */
  seen(patientKey: string, cards: Card[]): Card[] {
    const now = this.#now();
    this.#purge(now);
    const fresh: Card[] = [];
    for (const card of cards) {
      const key = digest([patientKey, fingerprint(card)]);
      const expiry = this.#shown.get(key);
      if (expiry !== undefined && expiry > now) continue;
      // Re-inserted so the map stays ordered by expiry for the purge.
      this.#shown.delete(key);
      this.#shown.set(key, now + this.#ttlMs);
      fresh.push(card);
    }
    while (this.#shown.size > this.#maxEntries) {
      // Forgetting early only means a repeat may be shown again: the safe side.
      this.#shown.delete(this.#shown.keys().next().value!);
    }
    return fresh;
  }

  /** Forgets everything remembered for `patientKey`'s cards (for example on a new encounter). */
  forget(patientKey: string, cards: Card[]): void {
    for (const card of cards) this.#shown.delete(digest([patientKey, fingerprint(card)]));
  }

  /** The number of (patient, advice) pairs held, expired ones included until purged. */
  /** The remembered digests and expiry times (digests only: no patient or card text). */
  entries(): Array<[string, number]> {
    this.#purge(this.#now());
    return [...this.#shown];
  }

  /** Restores what {@link entries} returned (for a client that runs as short processes). */
  restore(entries: Array<[string, number]>): void {
    const now = this.#now();
    for (const [key, expiry] of entries) {
      if (typeof key === 'string' && /^[A-Za-z0-9_-]{43}$/.test(key) && expiry > now) {
        this.#shown.set(key, expiry);
      }
    }
  }

  get size(): number {
    return this.#shown.size;
  }

  #purge(now: number): void {
    for (const [key, expiry] of this.#shown) {
      if (expiry > now) break;
      this.#shown.delete(key);
    }
  }
}

/** What the user reads on a card: source label, summary, detail and links (not uuid). */
export function fingerprint(card: Card): string {
  const links = (card.links ?? []).map((l) => [l.label, l.url, l.type, l.appContext ?? null]);
  return digest([card.source.label, card.summary, card.detail ?? null, links]);
}

function digest(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}
