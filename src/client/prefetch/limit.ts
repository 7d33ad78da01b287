/** Concurrency and deadline helpers for the prefetch's FHIR requests. */
import { PrefetchFailure } from './failure.js';
import { concurrency } from '../../fhir/concurrency.js';

export { concurrency };

export const timeout = () => new PrefetchFailure('timeout', 'the prefetch deadline passed');

/**
 * `promise`, or a `timeout` failure as soon as `signal` aborts: a reader that ignores the
 * signal is abandoned, not waited for.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(timeout());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(timeout());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
