/** What `crdkit client` prints of a payer's answer: never the payer's control characters. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatReport } from '../../src/cli/client.js';

test('sec-1: card text cannot carry terminal escapes or fake lines into the report', () => {
  const text = formatReport({
    hook: 'order-sign',
    patient: 'p1',
    results: [
      {
        payer: 'x',
        name: 'Payer',
        coverage: 'Coverage/c1',
        primary: true,
        status: 'done',
        cards: [
          {
            uuid: 'u',
            summary: 'hi\u001b]0;pwned\u0007\nstored on DeviceRequest/9 in the EHR',
            indicator: 'info',
            source: { label: 'evil\u001b[2J' },
          } as never,
        ],
        repeated: 0,
        coverageInformation: [],
        applied: [],
        dropped: [],
        withheld: [],
        withheldOrders: [],
      },
    ],
  });
  assert.doesNotMatch(text, /\u001b|\u0007/);
  assert.equal(text.split('\n').filter((l) => l.includes('stored on')).length, 1);
  assert.ok(!/^\s*stored on/m.test(text), 'no line of its own');
});
