/**
 * The DTR context cache (sec-6): the one place request-derived data outlives the response,
 * in memory only, keyed by coverage-assertion-id, gone after its time limit. Frozen clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DtrContextCache } from '../../src/audit/index.js';

test('sec-6: a DTR context is gone once its time limit has passed', () => {
  let now = 1_000_000;
  const cache = new DtrContextCache({ ttlMs: 60_000, now: () => now });
  cache.set('ca-1', { questionnaire: 'Q1' });
  now += 59_999;
  assert.deepEqual(cache.get('ca-1'), { questionnaire: 'Q1' });
  assert.equal(cache.size, 1);
  now += 1;
  assert.equal(cache.get('ca-1'), undefined);
  assert.equal(cache.size, 0);
});

test('sec-6: expired entries are dropped without being read', () => {
  let now = 0;
  const cache = new DtrContextCache({ ttlMs: 10, now: () => now });
  cache.set('a', 1);
  now = 5;
  cache.set('b', 2);
  now = 10;
  assert.equal(cache.size, 1);
  now = 15;
  assert.equal(cache.size, 0);
});

test('sec-6: setting again restarts the time limit', () => {
  let now = 0;
  const cache = new DtrContextCache({ ttlMs: 10, now: () => now });
  cache.set('a', 1);
  now = 8;
  cache.set('a', 2);
  now = 15;
  assert.equal(cache.get('a'), 2);
});

test('sec-6: the cache holds at most maxEntries, dropping the oldest', () => {
  const cache = new DtrContextCache({ ttlMs: 1000, now: () => 0, maxEntries: 2 });
  cache.set('a', 1);
  cache.set('b', 2);
  cache.set('c', 3);
  assert.equal(cache.get('a'), undefined);
  assert.deepEqual([cache.get('b'), cache.get('c'), cache.size], [2, 3, 2]);
});

test('sec-6: a time limit that is not positive is refused', () => {
  assert.throws(() => new DtrContextCache({ ttlMs: 0 }), {
    name: 'RangeError',
    message: 'DtrContextCache: "ttlMs" must be a positive number',
  });
});
