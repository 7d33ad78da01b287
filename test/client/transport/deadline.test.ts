/**
 * Deadlines (found-2) and late answers: the caller is never blocked past the deadline (found-3,
 * found-6); late work is aborted or finished in the background with its result handed on
 * (found-7). Asserts order and flags, not wall-clock thresholds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DeadlineError,
  hookDeadlineMs,
  RecentHooks,
  withDeadline,
} from '../../../src/client/transport/index.js';

/** A promise the test settles by hand. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Fake slow work: waits for the test to release it; records the signal it got. */
function slowWork<T>() {
  const gate = deferred<T>();
  const seen: { signal?: AbortSignal; finished: boolean } = { finished: false };
  const work = async (signal: AbortSignal): Promise<T> => {
    seen.signal = signal;
    const value = await gate.promise;
    seen.finished = true;
    return value;
  };
  return { work, gate, seen };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('hookDeadlineMs', () => {
  test('found-2: 5 s for the secondary hooks, whatever the history', () => {
    for (const hook of ['order-select', 'encounter-start', 'encounter-discharge']) {
      for (const patientHadHookInLast24h of [true, false]) {
        assert.equal(hookDeadlineMs(hook, { patientHadHookInLast24h }), 5000, hook);
      }
    }
  });

  test('found-2: 10 s for appointment-book, always', () => {
    assert.equal(hookDeadlineMs('appointment-book', { patientHadHookInLast24h: true }), 10_000);
    assert.equal(hookDeadlineMs('appointment-book', { patientHadHookInLast24h: false }), 10_000);
  });

  test('found-2: order-sign and order-dispatch get 10 s without a hook in the last 24 h, else 5 s', () => {
    for (const hook of ['order-sign', 'order-dispatch']) {
      assert.equal(hookDeadlineMs(hook, { patientHadHookInLast24h: false }), 10_000);
      assert.equal(hookDeadlineMs(hook, { patientHadHookInLast24h: true }), 5000);
    }
  });
});

describe('RecentHooks', () => {
  test('found-2: the 24 h rule per patient and ordering organisation', () => {
    let now = 0;
    const recent = new RecentHooks({ now: () => now });
    const subject = { patient: 'Patient/1', organization: 'Organization/A' };
    assert.equal(recent.deadlineMs('order-sign', subject), 10_000);
    recent.record(subject);
    assert.equal(recent.deadlineMs('order-sign', subject), 5000);
    // Another organisation or patient had no call: no cache opportunity.
    assert.equal(
      recent.deadlineMs('order-sign', { ...subject, organization: 'Organization/B' }),
      10_000,
    );
    assert.equal(recent.deadlineMs('order-dispatch', { patient: 'Patient/2' }), 10_000);
    now += 24 * 3_600_000 - 1;
    assert.equal(recent.hadHookWithinWindow(subject), true);
    now += 1;
    assert.equal(recent.hadHookWithinWindow(subject), false);
    assert.equal(recent.deadlineMs('order-sign', subject), 10_000);
  });

  test('found-2: a bounded memory forgets the oldest first (the longer deadline: safe side)', () => {
    const recent = new RecentHooks({ maxEntries: 2 });
    for (const patient of ['a', 'b', 'c']) recent.record({ patient });
    assert.equal(recent.hadHookWithinWindow({ patient: 'a' }), false);
    assert.equal(recent.hadHookWithinWindow({ patient: 'c' }), true);
  });
});

describe('withDeadline', () => {
  test('found-2: work done in time gives its value', async () => {
    const out = await withDeadline(async () => 42, 60_000);
    assert.deepEqual(out, { status: 'done', value: 42 });
  });

  test('found-2: a failure in time is thrown as is', async () => {
    const boom = new Error('refused');
    await assert.rejects(
      withDeadline(async () => {
        throw boom;
      }, 60_000),
      (e: unknown) => e === boom,
    );
  });

  test('found-3: abandon mode: late at once, then the work is aborted and its outcome ignored', async () => {
    const { work, gate, seen } = slowWork<string>();
    const out = await withDeadline(work, 1);
    assert.deepEqual(out, { status: 'late' });
    assert.equal(seen.finished, false);
    assert.equal(seen.signal?.aborted, true);
    assert.ok(seen.signal?.reason instanceof DeadlineError);
    gate.reject(new Error('aborted socket'));
    await tick();
  });

  test('found-7: background mode: late at once, the work goes on and its result reaches onLate', async () => {
    const { work, gate, seen } = slowWork<string>();
    const events: string[] = [];
    const late = deferred<void>();
    const out = await withDeadline(work, 1, (value) => {
      events.push(`onLate:${value}`);
      late.resolve();
    });
    events.push(`caller:${out.status}`);
    assert.equal(seen.signal?.aborted, false);
    gate.resolve('cards');
    await late.promise;
    assert.deepEqual(events, ['caller:late', 'onLate:cards']);
    assert.equal(seen.finished, true);
  });

  test('found-6: the user bypass ends the wait at once, before the deadline', async () => {
    const { work, gate, seen } = slowWork<string>();
    const bypass = new AbortController();
    const pending = withDeadline(work, 60_000, undefined, { signal: bypass.signal });
    await tick();
    bypass.abort();
    assert.deepEqual(await pending, { status: 'late' });
    assert.equal(seen.signal?.aborted, true);
    gate.resolve('ignored');
  });

  test('found-6: an already aborted bypass returns late without waiting', async () => {
    const bypass = new AbortController();
    bypass.abort();
    const { work, gate } = slowWork<number>();
    const events: number[] = [];
    assert.deepEqual(
      await withDeadline(work, 60_000, (v) => events.push(v), { signal: bypass.signal }),
      {
        status: 'late',
      },
    );
    gate.resolve(7);
    await tick();
    await tick();
    assert.deepEqual(events, [7]);
  });

  test('found-8: background work past the late limit is aborted and its result ignored', async () => {
    const { work, gate, seen } = slowWork<string>();
    const got: string[] = [];
    const out = await withDeadline(work, 1, (v) => got.push(v), { lateLimitMs: 1 });
    assert.equal(out.status, 'late');
    while (!seen.signal?.aborted) await new Promise((r) => setTimeout(r, 1));
    gate.resolve('too late');
    await tick();
    assert.deepEqual(got, []);
  });

  test('found-7: a late failure or a throwing onLate goes to onLateError, never unhandled', async () => {
    const errors: unknown[] = [];
    const a = slowWork<string>();
    await withDeadline(a.work, 1, () => undefined, { onLateError: (e) => errors.push(e) });
    const failure = new Error('late failure');
    a.gate.reject(failure);
    const b = slowWork<string>();
    const thrown = new Error('onLate threw');
    await withDeadline(
      b.work,
      1,
      () => {
        throw thrown;
      },
      { onLateError: (e) => errors.push(e) },
    );
    b.gate.resolve('x');
    await tick();
    await tick();
    assert.deepEqual(errors, [failure, thrown]);
  });
});
