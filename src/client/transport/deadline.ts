/**
 * Hook deadlines (found-2) and what happens past them: the user is never blocked (found-6); the
 * late call is either abandoned or finished in the background with its result handed on (found-3,
 * found-7).
 */
import { createHash } from 'node:crypto';

const SECOND = 1000;
const DAY_MS = 86_400_000;

/**
 * found-2: 5 s for every hook, except 10 s for `appointment-book`, and for `order-sign` and
 * `order-dispatch` when there was no hook call for the same patient (and ordering organisation)
 * in the last 24 h, so the payer had no chance to cache anything.
 */
export function hookDeadlineMs(hook: string, opts: { patientHadHookInLast24h: boolean }): number {
  if (hook === 'appointment-book') return 10 * SECOND;
  if ((hook === 'order-sign' || hook === 'order-dispatch') && !opts.patientHadHookInLast24h) {
    return 10 * SECOND;
  }
  return 5 * SECOND;
}

/** Who a hook call was about: the patient and, when known, the ordering organisation. */
export interface HookSubject {
  patient: string;
  organization?: string;
}

/** Options of {@link RecentHooks}. */
export interface RecentHooksOptions {
  /** The clock in epoch milliseconds (tests freeze it). */
  now?: () => number;
  /** The window of found-2 (default 24 h). */
  windowMs?: number;
  /** Most subjects remembered (default 100 000); the oldest are forgotten first. */
  maxEntries?: number;
}

/**
 * The time of the last hook call per patient (+ ordering organisation), for
 * {@link hookDeadlineMs}. Only SHA-256 digests of the subjects are held.
 */
export class RecentHooks {
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #maxEntries: number;
  /** digest -> last call (epoch ms), oldest first. */
  readonly #last = new Map<string, number>();

  constructor(opts: RecentHooksOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#windowMs = opts.windowMs ?? DAY_MS;
    this.#maxEntries = opts.maxEntries ?? 100_000;
  }

  /** Notes a hook call for `subject` now (call it when the request is sent). */
  record(subject: HookSubject): void {
    const key = digest(subject);
    this.#last.delete(key);
    this.#last.set(key, this.#now());
    this.#purge();
    // Forgetting early only means a 10 s deadline instead of 5 s: the safe side.
    while (this.#last.size > this.#maxEntries) this.#last.delete(this.#last.keys().next().value!);
  }

  /** Whether a hook call for `subject` was recorded within the window. */
  hadHookWithinWindow(subject: HookSubject): boolean {
    const last = this.#last.get(digest(subject));
    return last !== undefined && this.#now() - last < this.#windowMs;
  }

  /** The deadline of a `hook` call for `subject`, read before {@link record} notes this call. */
  deadlineMs(hook: string, subject: HookSubject): number {
    return hookDeadlineMs(hook, { patientHadHookInLast24h: this.hadHookWithinWindow(subject) });
  }

  #purge(): void {
    const now = this.#now();
    for (const [key, at] of this.#last) {
      if (now - at < this.#windowMs) break;
      this.#last.delete(key);
    }
  }
}

function digest(subject: HookSubject): string {
  return createHash('sha256')
    .update(JSON.stringify([subject.patient, subject.organization ?? null]))
    .digest('base64url');
}

/** Options of {@link withDeadline}. */
export interface DeadlineOptions {
  /**
   * found-6: the user's bypass. Aborting it ends the wait at once, exactly as the deadline
   * would (the work is then aborted or finished in the background).
   */
  signal?: AbortSignal;
  /** In background mode, the work is aborted after this much more time (default 60 000 ms). */
  lateLimitMs?: number;
  /** In background mode, receives a failure of the late work (never thrown anywhere). */
  onLateError?: (err: unknown) => void;
}

/** The abort reason the work sees when it is given up. */
export class DeadlineError extends Error {
  override name = 'DeadlineError';
  readonly code = 'ERR_DEADLINE';
}

export type DeadlineResult<T> = { status: 'done'; value: T } | { status: 'late' };

/**
 * Runs `work` with a deadline of `ms`. In time: `{ status: 'done', value }` (a failure is thrown
 * as is). At the deadline, or when `opts.signal` is aborted, the caller gets `{ status: 'late' }`
 * at once and is never blocked (found-3, found-6). Then:
 * - without `onLate` (abandon mode): the work's signal is aborted and its outcome ignored;
 * - with `onLate` (background mode, found-7): the work goes on and its result goes to `onLate`,
 *   unless it takes longer than `opts.lateLimitMs` more, when it is aborted after all.
 */
export function withDeadline<T>(
  work: (signal: AbortSignal) => Promise<T>,
  ms: number,
  onLate?: (result: T) => void,
  opts: DeadlineOptions = {},
): Promise<DeadlineResult<T>> {
  const controller = new AbortController();
  const running = Promise.resolve().then(() => work(controller.signal));
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', giveUp);
    };
    const giveUp = (): void => {
      if (settled) return;
      finish();
      resolve({ status: 'late' });
      if (onLate) continueInBackground(running, controller, onLate, opts);
      else {
        controller.abort(new DeadlineError('the hook call passed its deadline'));
        running.catch(() => undefined);
      }
    };
    const timer = setTimeout(giveUp, ms);
    if (opts.signal?.aborted) giveUp();
    else opts.signal?.addEventListener('abort', giveUp, { once: true });
    running.then(
      (value) => {
        if (settled) return;
        finish();
        resolve({ status: 'done', value });
      },
      (err: unknown) => {
        if (settled) return;
        finish();
        reject(err);
      },
    );
  });
}

function continueInBackground<T>(
  running: Promise<T>,
  controller: AbortController,
  onLate: (result: T) => void,
  opts: DeadlineOptions,
): void {
  const limit = setTimeout(
    () => controller.abort(new DeadlineError('the late hook call passed its limit')),
    opts.lateLimitMs ?? 60_000,
  );
  running.then(
    (value) => {
      clearTimeout(limit);
      // Given up after the late limit: found-8 allows ignoring it.
      if (controller.signal.aborted) return;
      try {
        onLate(value);
      } catch (err) {
        opts.onLateError?.(err);
      }
    },
    (err: unknown) => {
      clearTimeout(limit);
      opts.onLateError?.(err);
    },
  );
}
