import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildCards,
  CARD_TYPE_SYSTEM,
  type CardInput,
  describeReference,
  MAX_SUMMARY,
  truncate,
} from '../../src/crd/cards.js';

const opts = { payerName: 'Acme Health Plan', enabled: () => true, maxCards: 10 };
const instructions: CardInput = {
  kind: 'instructions',
  summary: 'Send the oximetry result',
  detail: 'Attach the oximetry result.',
  topic: 'coverage-info',
};
const reference: CardInput = {
  kind: 'external-reference',
  summary: 'Home oxygen criteria',
  topic: 'guideline',
  links: [{ label: 'LCD L33797', url: 'https://www.cms.gov/lcd?id=33797' }],
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('buildCards', () => {
  test('resp-3/resp-5: every card has a uuid and a cdshooks-card-type topic', () => {
    const cards = buildCards(
      [instructions, reference, { ...instructions, summary: 'Other' }],
      opts,
    );
    assert.equal(cards.length, 3);
    assert.equal(new Set(cards.map((c) => c.uuid)).size, 3, 'fresh uuids');
    for (const c of cards) {
      assert.match(c.uuid, UUID);
      assert.equal(c.source.topic.system, CARD_TYPE_SYSTEM);
      assert.equal(typeof c.source.topic.code, 'string');
    }
    assert.deepEqual(cards[1]?.source.topic, {
      system: CARD_TYPE_SYSTEM,
      code: 'guideline',
      display: 'Guideline',
    });
  });

  test('resp-4: source.label is the payer name', () => {
    assert.equal(buildCards([instructions], opts)[0]?.source.label, 'Acme Health Plan');
  });

  test('resp-1/resp-2: indicator defaults to info', () => {
    assert.equal(buildCards([instructions], opts)[0]?.indicator, 'info');
  });

  test('resp-6: summary under 140 characters', () => {
    const long = 'x'.repeat(200);
    const [card] = buildCards([{ ...instructions, summary: long }], opts);
    assert.equal([...(card?.summary ?? '')].length, MAX_SUMMARY);
    assert.ok(card?.summary.endsWith('…'));
    assert.equal(truncate('short'), 'short');
    assert.equal(truncate('é'.repeat(139)), 'é'.repeat(139));
  });

  test('resp-24: Instructions cards have a detail and no links or suggestions', () => {
    const [card] = buildCards(
      [{ ...instructions, detail: undefined, links: [{ label: 'x', url: 'https://x.example' }] }],
      opts,
    );
    assert.equal(card?.detail, 'Send the oximetry result', 'the summary stands in');
    assert.equal(card?.links, undefined);
    assert.equal('suggestions' in (card ?? {}), false);
  });

  test('resp-19/resp-20/resp-10: External Reference: absolute links, summarised in detail', () => {
    const [card] = buildCards([reference], opts);
    assert.deepEqual(card?.links, [
      { label: 'LCD L33797', url: 'https://www.cms.gov/lcd?id=33797', type: 'absolute' },
    ]);
    assert.match(card?.detail ?? '', /^See LCD L33797\./);
    assert.match(card?.detail ?? '', /\[LCD L33797\]\(https:\/\/www\.cms\.gov\/lcd\?id=33797\)/);
  });

  test('dev-24/dev-25: identical cards for several orders merge and name the orders', () => {
    const cards = buildCards(
      [
        { ...reference, orders: ['ServiceRequest/1357'] },
        { ...instructions, orders: ['ServiceRequest/1357'] },
        { ...reference, orders: ['ServiceRequest/2468'] },
        { ...reference, orders: ['ServiceRequest/2468'] },
      ],
      opts,
    );
    assert.equal(cards.length, 2);
    const merged = cards[0];
    assert.deepEqual(merged?.extension, {
      'davinci-crd.associated-resource': [
        { reference: 'ServiceRequest/1357' },
        { reference: 'ServiceRequest/2468' },
      ],
    });
    assert.match(
      merged?.detail ?? '',
      /Applies to service request 1357 and service request 2468\.$/,
    );
    assert.deepEqual(cards[1]?.extension?.['davinci-crd.associated-resource'], [
      { reference: 'ServiceRequest/1357' },
    ]);
  });

  test('dev-24: the caller can name orders in clinical terms', () => {
    const [card] = buildCards([{ ...instructions, orders: ['DeviceRequest/7'] }], {
      ...opts,
      describeOrder: () => 'the portable oxygen order',
    });
    assert.match(card?.detail ?? '', /Applies to the portable oxygen order\.$/);
    assert.equal(describeReference('http://ehr/fhir/MedicationRequest/9'), 'medication request 9');
  });

  test('dev-5/dev-14: cards of a disabled card type are dropped', () => {
    const cards = buildCards([instructions, reference], {
      ...opts,
      enabled: (topic) => topic !== 'guideline',
    });
    assert.deepEqual(
      cards.map((c) => c.source.topic.code),
      ['coverage-info'],
    );
  });

  test('max-cards: at most maxCards, critical > warning > info', () => {
    const mk = (summary: string, indicator: CardInput['indicator']): CardInput => ({
      ...instructions,
      summary,
      indicator,
    });
    const cards = buildCards(
      [mk('a', 'info'), mk('b', 'warning'), mk('c', 'critical'), mk('d', 'warning')],
      { ...opts, maxCards: 3 },
    );
    assert.deepEqual(
      cards.map((c) => c.summary),
      ['c', 'b', 'd'],
    );
    assert.deepEqual(buildCards([instructions], { ...opts, maxCards: 0 }), []);
  });
});
