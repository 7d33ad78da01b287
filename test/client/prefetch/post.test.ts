import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_GET_LENGTH, shouldPost } from '../../../src/client/prefetch/index.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `practitioner-${i}`).join(',');

test('cds-prefetch: short searches stay GET', () => {
  assert.equal(shouldPost('Patient', new URLSearchParams({ _id: 'p1' })), false);
  assert.equal(shouldPost('Device', new URLSearchParams()), false);
});

test('cds-prefetch: a search whose URL would pass 2000 characters goes to POST _search', () => {
  const params = new URLSearchParams({ _id: ids(150) });
  assert.ok(`Practitioner?${params}`.length > MAX_GET_LENGTH);
  assert.equal(shouldPost('Practitioner', params), true);
});

test('cds-prefetch: the limit counts the percent-encoded URL and is exclusive', () => {
  // "X?a=" is 4 characters; each "," becomes "%2C" (3 characters).
  const exactly = new URLSearchParams({ a: 'b'.repeat(96) });
  assert.equal(shouldPost('X', exactly, 100), false);
  assert.equal(shouldPost('X', new URLSearchParams({ a: 'b'.repeat(97) }), 100), true);
  assert.equal(shouldPost('X', new URLSearchParams({ a: ','.repeat(32) }), 100), false);
  assert.equal(shouldPost('X', new URLSearchParams({ a: ','.repeat(33) }), 100), true);
});

test('cds-prefetch: a reader with a long base URL passes a smaller limit', () => {
  const params = new URLSearchParams({ _id: ids(40) });
  const base = 'https://ehr.example.org/fhir/R4/tenant-0001/';
  assert.equal(shouldPost('Practitioner', params), false);
  assert.equal(shouldPost('Practitioner', params, 700 - base.length), true);
});
