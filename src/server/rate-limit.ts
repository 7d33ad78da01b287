/**
 * The rate limit per trusted issuer (`limits.requestsPerMinute`): a token bucket per verified
 * JWT `iss`, kept in this process's memory. Several crdkit processes behind one address each
 * allow the full rate (the limit is per process, README "Configuration").
 *
 * It runs right after authentication, before the body is read: a request that failed
 * authentication never reaches it (401), so only trusted issuers have buckets and a caller
 * cannot spend another issuer's allowance. Over the limit is a 429 with `Retry-After` (seconds)
 * and an OperationOutcome (`throttled`, `ERR_RATE_LIMITED`).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CdsError } from '../cds/outcome.js';

const MINUTE_MS = 60_000;

/** Inputs of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Requests per minute per key; also the burst (the bucket's capacity). */
  perMinute: number;
  /** The clock in ms (epoch or monotonic; only differences are used). Tests freeze it. */
  now?: () => number;
  /** Most keys held at once; the least recently used is dropped beyond it (default 10 000). */
  maxKeys?: number;
}

/** The answer of {@link RateLimiter.take}. */
export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until the next request is allowed (0 when allowed). */
  retryAfterSeconds: number;
}

/** Integer arithmetic, so no rounding drift: one token is {@link MINUTE_MS} units. */
interface Bucket {
  /** Units in the bucket: `perMinute` × 60 000 when full; a request takes 60 000. */
  units: number;
  /** When `units` was computed (ms of the clock). */
  at: number;
}

/**
 * A token bucket per key: `perMinute` tokens at most, refilled continuously at `perMinute` per
 * minute; each request takes one. A bucket untouched for a minute is full again, which is the
 * same as having none, so such buckets are dropped (memory stays bounded by the keys active in
 * the last minute, and by `maxKeys` in any case).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMinute: number;
  private readonly capacity: number;
  private readonly now: () => number;
  private readonly maxKeys: number;
  private lastSweep: number;

  constructor(opts: RateLimiterOptions) {
    if (!Number.isInteger(opts.perMinute) || opts.perMinute < 1) {
      throw new RangeError('RateLimiter: "perMinute" must be a positive integer');
    }
    this.perMinute = opts.perMinute;
    this.capacity = opts.perMinute * MINUTE_MS;
    this.now = opts.now ?? Date.now;
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.lastSweep = this.now();
  }

  /** Takes one token from `key`'s bucket, or says how long to wait for one. */
  take(key: string): RateDecision {
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(key);
    // Whole ms, never negative (a clock that steps back refills nothing), at most a minute.
    const elapsed = bucket ? Math.min(MINUTE_MS, Math.max(0, Math.floor(now - bucket.at))) : 0;
    const units = bucket
      ? Math.min(this.capacity, bucket.units + elapsed * this.perMinute)
      : this.capacity;
    // Re-inserted on every use: the Map's order is least recently used first.
    this.buckets.delete(key);
    if (units >= MINUTE_MS) {
      this.buckets.set(key, { units: units - MINUTE_MS, at: now });
      this.evict();
      return { allowed: true, retryAfterSeconds: 0 };
    }
    this.buckets.set(key, { units, at: now });
    const waitMs = Math.ceil((MINUTE_MS - units) / this.perMinute);
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** How many keys are held (for tests of the memory bound). */
  get size(): number {
    return this.buckets.size;
  }

  /** At most once a minute: drops the buckets that have been full again for a while. */
  private sweep(now: number): void {
    if (now - this.lastSweep < MINUTE_MS && now >= this.lastSweep) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at >= MINUTE_MS) this.buckets.delete(key);
    }
  }

  private evict(): void {
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
  }
}

/**
 * A `preParsing` hook: it runs after every route's `onRequest` (where `authenticate` sets
 * `req.client`) and before the body is read. Requests without a verified client (discovery when
 * `auth.discoveryRequiresAuth` is false, preflights, 405s) are not counted.
 */
export function rateLimitHook(limiter: RateLimiter) {
  return (
    req: FastifyRequest,
    reply: FastifyReply,
    _payload: unknown,
    done: (err?: Error) => void,
  ) => {
    if (!req.client) return done();
    const decision = limiter.take(req.client.iss);
    if (decision.allowed) return done();
    reply.header('retry-after', String(decision.retryAfterSeconds));
    done(
      new CdsError(
        429,
        'ERR_RATE_LIMITED',
        `too many requests from this client; retry after ${decision.retryAfterSeconds} s`,
        'throttled',
      ),
    );
  };
}
