/**
 * AdviceMemory (found-39): the same advice across re-invocations is shown once per patient
 * within the time limit; cards are recognised by their content, not their uuid.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdviceMemory, fingerprint, type Card } from '../../../src/client/answer/index.js';

const HOUR = 3_600_000;

function card(uuid: string, over: Partial<Card> = {}): Card {
  return {
    uuid,
    summary: 'Prior authorization is needed',
    detail: 'Send the CMN.',
    indicator: 'info',
    source: { label: 'Example Health Plan', topic: { system: 's', code: 'guideline' } },
    links: [{ label: 'Policy', url: 'https://payer.example.org/p', type: 'absolute' }],
    ...over,
  };
}

describe('AdviceMemory', () => {
  test('found-39: a repeat with a new uuid is not shown again for the same patient', () => {
    let now = 0;
    const memory = new AdviceMemory({ now: () => now });
    assert.deepEqual(memory.seen('Patient/123', [card('a')]), [card('a')]);
    now += HOUR;
    assert.deepEqual(memory.seen('Patient/123', [card('b')]), []);
    // Another patient sees it.
    assert.deepEqual(memory.seen('Patient/456', [card('c')]), [card('c')]);
  });

  test('found-39: different summary, detail, link or source label is new advice', () => {
    const memory = new AdviceMemory({ now: () => 0 });
    memory.seen('p', [card('a')]);
    const variants = [
      card('b', { summary: 'Other summary' }),
      card('c', { detail: 'Other detail' }),
      card('d', { detail: undefined }),
      card('e', {
        links: [{ label: 'Policy', url: 'https://payer.example.org/q', type: 'absolute' }],
      }),
      card('f', { source: { label: 'Other Plan', topic: { system: 's', code: 'guideline' } } }),
    ];
    assert.deepEqual(memory.seen('p', variants), variants);
  });

  test('found-39: repeats within one response are shown once', () => {
    const memory = new AdviceMemory();
    assert.deepEqual(
      memory.seen('p', [card('a'), card('b'), card('c', { summary: 'x' })]).map((c) => c.uuid),
      ['a', 'c'],
    );
  });

  test('found-39: after the time limit (default 24 h) the advice is shown again', () => {
    let now = 1_000;
    const memory = new AdviceMemory({ now: () => now });
    memory.seen('p', [card('a')]);
    now += 24 * HOUR - 1;
    assert.deepEqual(memory.seen('p', [card('b')]), []);
    now += 1;
    assert.deepEqual(memory.seen('p', [card('c')]), [card('c')]);
  });

  test('found-39: a configurable time limit; expired entries are purged', () => {
    let now = 0;
    const memory = new AdviceMemory({ now: () => now, ttlMs: HOUR });
    memory.seen('p', [card('a'), card('b', { summary: 'x' })]);
    assert.equal(memory.size, 2);
    now += HOUR;
    assert.deepEqual(memory.seen('q', [card('c')]), [card('c')]);
    assert.equal(memory.size, 1);
  });

  test('found-39: patient and order as key keeps per-order advice apart', () => {
    const memory = new AdviceMemory();
    assert.equal(memory.seen('Patient/1|ServiceRequest/1', [card('a')]).length, 1);
    assert.equal(memory.seen('Patient/1|ServiceRequest/2', [card('b')]).length, 1);
    assert.equal(memory.seen('Patient/1|ServiceRequest/1', [card('c')]).length, 0);
  });

  test('found-39: forget() shows the advice again; the memory is bounded', () => {
    const memory = new AdviceMemory({ maxEntries: 2 });
    memory.seen('p', [card('a')]);
    memory.forget('p', [card('z')]);
    assert.equal(memory.seen('p', [card('b')]).length, 1);
    memory.seen('p', [card('c', { summary: '2' }), card('d', { summary: '3' })]);
    assert.equal(memory.size, 2);
    // The oldest was forgotten first: the safe side (shown again).
    assert.equal(memory.seen('p', [card('e')]).length, 1);
  });

  test('sec-8: advice is remembered as a SHA-256 digest, never as text', () => {
    const digest = fingerprint(card('a', { summary: 'Jane Doe needs a PA' }));
    assert.match(digest, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(fingerprint(card('b', { summary: 'Jane Doe needs a PA' })), digest);
    assert.throws(() => new AdviceMemory({ ttlMs: 0 }), RangeError);
  });
});
