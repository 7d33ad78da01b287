/**
 * validateResponse: CDS Hooks cards and system actions as the CRD client accepts them. An invalid
 * card is dropped whole with its reason; the others are kept; nothing is rendered or applied.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AnswerError, validateResponse } from '../../../src/client/answer/index.js';
import { fixture, SKIP } from '../../crd/fixtures.js';
import { card, coverageInfo, ORDERS, REQUEST, suggestionCard } from './helpers.js';

const reasons = (body: unknown, request = REQUEST) =>
  validateResponse(body, request).dropped.map((d) => `${d.where}: ${d.reason}`);

describe('validateResponse: valid responses', () => {
  test('resp-13: a complete card is kept as received, unknown members included (found-33)', () => {
    const c = card({ futureMember: { a: 1 }, overrideReasons: [{ code: 'x', display: 'X' }] });
    const out = validateResponse({ cards: [c, suggestionCard()], unknownTop: true }, REQUEST);
    assert.deepEqual(out.dropped, []);
    assert.deepEqual(out.cards[0], c);
    assert.equal(out.cards.length, 2);
    assert.deepEqual(out.systemActions, []);
  });

  test('resp-13: an empty cards array is a valid answer', () => {
    assert.deepEqual(validateResponse({ cards: [] }, REQUEST), {
      cards: [],
      systemActions: [],
      dropped: [],
    });
  });

  test('resp-13: the result is a copy; later changes to the input do not reach it', () => {
    const body = { cards: [card()] };
    const out = validateResponse(body, REQUEST);
    (body.cards[0] as { summary: string }).summary = 'changed';
    assert.equal(out.cards[0]?.summary, 'Prior authorization is needed for home oxygen');
  });

  test('resp-7: detail is kept as text, markup included, never rendered', () => {
    const detail = '<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=y>';
    const out = validateResponse({ cards: [card({ detail })] }, REQUEST);
    assert.equal(out.cards[0]?.detail, detail);
  });

  test('resp-22: IG example response: the card whose suggestion lacks a uuid is dropped (resp-3)', (t) => {
    const body = fixture('crd-ig/CRDServiceResponse.json');
    if (!body) return t.skip(SKIP);
    const out = validateResponse(body, REQUEST);
    assert.deepEqual(
      out.cards.map((c) => c.source.topic.code),
      ['clinical-reminder', 'guideline'],
    );
    assert.deepEqual(out.dropped, [
      { where: 'cards[2]', reason: '"suggestions.uuid" is missing (resp-3)' },
    ]);
    assert.equal(out.systemActions.length, 1);
  });

  test('resp-72: IG example 2: smart link with appContext and a non-card-type topic are kept', (t) => {
    const body = fixture('crd-ig/CRDServiceResponse2.json');
    if (!body) return t.skip(SKIP);
    const request = {
      hook: 'order-sign',
      orders: [
        { resourceType: 'MedicationRequest', id: '1111' },
        { resourceType: 'MedicationRequest', id: '2222' },
      ],
    };
    const out = validateResponse(body, request);
    const smart = out.cards.find((c) => c.links?.[0]?.type === 'smart');
    assert.equal(typeof smart?.links?.[0]?.appContext, 'string');
    // Four of the five example cards have suggestions, one with a uuid (resp-3).
    assert.deepEqual(
      out.cards.map((c) => c.source.topic.code),
      ['insurance', 'guideline'],
    );
    assert.equal(out.dropped.length, 3);
    assert.ok(out.dropped.every((d) => d.reason === '"suggestions.uuid" is missing (resp-3)'));
  });
});

describe('validateResponse: each invalid card is dropped whole, the others kept', () => {
  const link = (over: Record<string, unknown>) => ({
    links: [{ label: 'Policy', url: 'https://payer.example.org/p', type: 'absolute', ...over }],
  });
  const suggestion = (over: Record<string, unknown>) => ({
    suggestions: [
      {
        label: 'Switch',
        uuid: 's-1',
        actions: [{ type: 'delete', description: 'Remove', resourceId: 'ServiceRequest/2468' }],
        ...over,
      },
    ],
  });
  const action = (a: Record<string, unknown>) => suggestion({ actions: [a] });
  const cases: Array<[string, Record<string, unknown>, string]> = [
    [
      'resp-13: no uuid',
      card({ uuid: undefined }),
      '"uuid" is missing or not a short string (resp-13)',
    ],
    [
      'resp-13: numeric uuid',
      card({ uuid: 7 }),
      '"uuid" is missing or not a short string (resp-13)',
    ],
    ['resp-6: no summary', card({ summary: undefined }), '"summary" is missing or empty'],
    ['resp-6: blank summary', card({ summary: '   ' }), '"summary" is missing or empty'],
    [
      'resp-6: summary of 140 characters',
      card({ summary: 'x'.repeat(140) }),
      '"summary" is too long',
    ],
    ['resp-7: detail not a string', card({ detail: { md: 'x' } }), '"detail" is not a string'],
    [
      'resp-1: indicator hard-stop',
      card({ indicator: 'hard-stop' }),
      '"indicator" is not info, warning or critical',
    ],
    [
      'resp-1: no indicator',
      card({ indicator: undefined }),
      '"indicator" is not info, warning or critical',
    ],
    ['resp-4: no source', card({ source: undefined }), '"source" is missing'],
    [
      'resp-4: no source.label',
      card({ source: { topic: { system: 'https://x.example', code: 'a' } } }),
      '"source.label" is missing or empty',
    ],
    [
      'resp-5: no source.topic',
      card({ source: { label: 'Plan' } }),
      '"source.topic" is missing or has no "system" (resp-5)',
    ],
    [
      'resp-5: topic without system',
      card({ source: { label: 'Plan', topic: { code: 'guideline' } } }),
      '"source.topic" is missing or has no "system" (resp-5)',
    ],
    [
      'resp-5: topic without code',
      card({ source: { label: 'Plan', topic: { system: 'https://x.example' } } }),
      '"source.topic.code" is missing',
    ],
    [
      'resp-5: unknown code in the card-type system',
      card({
        source: {
          label: 'Plan',
          topic: {
            system: 'http://terminology.hl7.org/CodeSystem/cdshooks-card-type',
            code: 'ads',
          },
        },
      }),
      '"source.topic.code" is not a cdshooks-card-type code',
    ],
    [
      'resp-4: source.url javascript:',
      card({
        source: { label: 'Plan', url: 'javascript:alert(1)', topic: { system: 's', code: 'c' } },
      }),
      '"source.url" is not an absolute https URL',
    ],
    [
      'resp-19: link over http',
      card(link({ url: 'http://payer.example.org/p' })),
      '"links.url" is not an absolute https URL',
    ],
    [
      'resp-19: javascript: link',
      card(link({ url: 'javascript:alert(document.cookie)' })),
      '"links.url" is not an absolute https URL',
    ],
    [
      'resp-19: JavaScript: link, mixed case',
      card(link({ url: 'JaVaScRiPt:alert(1)' })),
      '"links.url" is not an absolute https URL',
    ],
    [
      'resp-19: data: link',
      card(link({ url: 'data:text/html,<script>alert(1)</script>' })),
      '"links.url" is not an absolute https URL',
    ],
    [
      'resp-19: relative link',
      card(link({ url: '/policies/o2' })),
      '"links.url" is not an absolute https URL',
    ],
    [
      'resp-19: link with credentials',
      card(link({ url: 'https://u:p@payer.example.org/' })),
      '"links.url" is not an absolute https URL',
    ],
    [
      'resp-19: link with a newline',
      card(link({ url: 'https://payer.example.org/\nx' })),
      '"links.url" is not an absolute https URL',
    ],
    [
      'resp-18: link without label',
      card(link({ label: undefined })),
      '"links.label" is missing or empty',
    ],
    [
      'resp-13: link without type',
      card(link({ type: undefined })),
      '"links.type" is not absolute or smart',
    ],
    [
      'resp-19: appContext on an absolute link',
      card(link({ appContext: '{}' })),
      '"links.appContext" is only allowed on smart links',
    ],
    [
      'resp-13: links not an array',
      card({ links: { url: 'https://a.example' } }),
      '"links" is not an array',
    ],
    [
      'CDS Hooks: suggestions without selectionBehavior',
      suggestionCard({ selectionBehavior: undefined }),
      '"selectionBehavior" must be at-most-one or any when there are suggestions',
    ],
    [
      'CDS Hooks: unknown selectionBehavior',
      suggestionCard({ selectionBehavior: 'all' }),
      '"selectionBehavior" must be at-most-one or any when there are suggestions',
    ],
    [
      'resp-3: suggestion without uuid',
      suggestionCard(suggestion({ uuid: undefined })),
      '"suggestions.uuid" is missing (resp-3)',
    ],
    [
      'CDS Hooks: suggestion without label',
      suggestionCard(suggestion({ label: '' })),
      '"suggestions.label" is missing or empty',
    ],
    [
      'CDS Hooks: suggestion without actions',
      suggestionCard(suggestion({ actions: [] })),
      '"suggestions.actions" is empty',
    ],
    [
      'CDS Hooks: action of unknown type',
      suggestionCard(action({ type: 'patch', description: 'x', resourceId: 'ServiceRequest/1' })),
      '"type" of an action is not create, update or delete',
    ],
    [
      'resp-13: action without description',
      suggestionCard(action({ type: 'delete', resourceId: 'ServiceRequest/2468' })),
      '"description" of an action is missing or not a string',
    ],
    [
      'CDS Hooks: create without resource',
      suggestionCard(action({ type: 'create', description: 'x' })),
      '"resource" of a create action is missing or has no "resourceType"',
    ],
    [
      'CDS Hooks: update without resource id',
      suggestionCard(
        action({ type: 'update', description: 'x', resource: { resourceType: 'ServiceRequest' } }),
      ),
      '"resource.id" of an update action is missing or not a FHIR id',
    ],
    [
      'CDS Hooks: delete without resourceId',
      suggestionCard(action({ type: 'delete', description: 'x' })),
      '"resourceId" of a delete action is missing or not Type/id',
    ],
    [
      'CDS Hooks: delete with a malformed resourceId',
      suggestionCard(action({ type: 'delete', description: 'x', resourceId: '../../etc' })),
      '"resourceId" of a delete action is missing or not Type/id',
    ],
    [
      'resp-25: coverage information offered on a card',
      suggestionCard(
        action({
          type: 'update',
          description: 'x',
          resource: { resourceType: 'ServiceRequest', id: '2468', extension: [coverageInfo()] },
        }),
      ),
      'a suggestion carries coverage information (resp-25)',
    ],
    [
      'dev-25: associated resource outside the request',
      card({ extension: { 'davinci-crd.associated-resource': [{ reference: 'Patient/123' }] } }),
      '"davinci-crd.associated-resource" names a resource that is not in the request',
    ],
    [
      'dev-25: associated resource not a reference',
      card({ extension: { 'davinci-crd.associated-resource': ['ServiceRequest/2468'] } }),
      '"davinci-crd.associated-resource" holds an entry that is not a reference',
    ],
    [
      'CDS Hooks: overrideReasons not codings',
      card({ overrideReasons: ['x'] }),
      '"overrideReasons" is not an array of codings',
    ],
  ];

  for (const [name, bad, reason] of cases) {
    test(`${name}: dropped with its reason`, () => {
      const good = card({ uuid: 'good-1' });
      const out = validateResponse(
        { cards: [good, bad, suggestionCard({ uuid: 'good-2' })] },
        REQUEST,
      );
      assert.deepEqual(out.dropped, [{ where: 'cards[1]', reason }]);
      assert.deepEqual(
        out.cards.map((c) => c.uuid),
        ['good-1', 'good-2'],
      );
    });
  }

  test('resp-13: a non-object card and a repeated uuid are dropped', () => {
    assert.deepEqual(reasons({ cards: [card(), 'card', null, card()] }), [
      'cards[1]: is not an object',
      'cards[2]: is not an object',
      'cards[3]: "uuid" repeats an earlier card',
    ]);
  });

  test('dev-14: cards beyond "max-cards" are dropped, the first ones kept', () => {
    const cards = [1, 2, 3].map((n) => card({ uuid: `u${n}` }));
    const out = validateResponse({ cards }, { ...REQUEST, maxCards: 2 });
    assert.deepEqual(
      out.cards.map((c) => c.uuid),
      ['u1', 'u2'],
    );
    assert.deepEqual(out.dropped, [
      { where: 'cards[2]', reason: 'more cards than "max-cards" allows' },
    ]);
  });

  test('resp-13: a response without a cards array is an AnswerError', () => {
    for (const body of [null, 'x', [], {}, { cards: {} }, { cards: 'none' }]) {
      assert.throws(
        () => validateResponse(body, REQUEST),
        (err: unknown) =>
          err instanceof AnswerError &&
          err.code === 'ERR_RESPONSE_SHAPE' &&
          err.message === 'the response has no "cards" array',
      );
    }
  });
});

describe('validateResponse: hostile responses', () => {
  test('found-33: __proto__ and constructor members never reach a prototype', () => {
    const raw =
      '{"cards":[{"uuid":"p1","summary":"s","indicator":"info","__proto__":{"polluted":1},' +
      '"constructor":{"prototype":{"polluted":2}},' +
      '"source":{"label":"Plan","topic":{"system":"s","code":"c"},"__proto__":{"polluted":3}}}],' +
      '"__proto__":{"polluted":4}}';
    const out = validateResponse(JSON.parse(raw), REQUEST);
    const c = out.cards[0]!;
    assert.equal(out.cards.length, 1);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(c), Object.prototype);
    assert.equal(Object.getPrototypeOf(c.source), Object.prototype);
    assert.equal(Object.hasOwn(c, '__proto__'), false);
    assert.equal(Object.hasOwn(c, 'constructor'), false);
    assert.equal((c as Record<string, unknown>).polluted, undefined);
    // Merging the result into another object afterwards is harmless too.
    const merged = Object.assign({}, c, c.source);
    assert.equal((merged as Record<string, unknown>).polluted, undefined);
  });

  test('found-33: huge strings drop only their card', () => {
    const out = validateResponse(
      {
        cards: [
          card({ uuid: 'a', summary: 'x'.repeat(5_000_000) }),
          card({ uuid: 'b', detail: 'y'.repeat(40_000) }),
          card({
            uuid: 'c',
            source: { label: 'z'.repeat(1000), topic: { system: 's', code: 'c' } },
          }),
          card({ uuid: 'ok' }),
        ],
      },
      REQUEST,
    );
    assert.deepEqual(out.dropped, [
      { where: 'cards[0]', reason: 'not usable JSON: a string is too long' },
      { where: 'cards[1]', reason: '"detail" is too long' },
      { where: 'cards[2]', reason: '"source.label" is too long' },
    ]);
    assert.deepEqual(
      out.cards.map((c) => c.uuid),
      ['ok'],
    );
  });

  test('found-33: deep nesting drops its card without exhausting the stack', () => {
    let deep: unknown = {};
    for (let i = 0; i < 100_000; i += 1) deep = { a: deep };
    const out = validateResponse(
      { cards: [card({ uuid: 'deep', futureMember: deep }), card({ uuid: 'ok' })] },
      REQUEST,
    );
    assert.deepEqual(out.dropped, [
      { where: 'cards[0]', reason: 'not usable JSON: nests too deeply' },
    ]);
    assert.equal(out.cards[0]?.uuid, 'ok');
  });

  test('found-33: a flood of cards is read up to a bound', () => {
    const cards = Array.from({ length: 150 }, (_, i) => card({ uuid: `u${i}` }));
    const out = validateResponse({ cards }, REQUEST);
    assert.equal(out.cards.length, 100);
    assert.deepEqual(out.dropped, [
      { where: 'cards[100..149]', reason: 'more cards than are read' },
    ]);
  });

  test('sec-8: reasons never quote the response content', () => {
    const marker = 'Jane-Doe-MRN-00042';
    const body = {
      cards: [
        card({ summary: `${marker} ${'x'.repeat(140)}` }),
        card({ uuid: marker.repeat(20) }),
        card({ links: [{ label: marker, url: `javascript:${marker}`, type: 'absolute' }] }),
      ],
      systemActions: [{ type: marker, resource: { resourceType: 'Patient', id: marker } }],
    };
    const out = validateResponse(body, REQUEST);
    assert.equal(out.dropped.length, 4);
    assert.ok(!JSON.stringify(out.dropped).includes(marker));
  });
});

describe('validateResponse: system actions', () => {
  const update = {
    type: 'update',
    resource: { resourceType: 'ServiceRequest', id: '1357', extension: [coverageInfo()] },
  };

  test('resp-48: a coverage-information update is kept (description optional)', () => {
    const out = validateResponse({ cards: [], systemActions: [update] }, REQUEST);
    assert.deepEqual(out.systemActions, [update]);
    assert.deepEqual(out.dropped, []);
  });

  test('resp-60: create and delete system actions are kept for the caller to decide', () => {
    const actions = [
      { type: 'create', resource: { resourceType: 'Task', status: 'ready' } },
      { type: 'delete', resourceId: ['ServiceRequest/2468'] },
    ];
    const out = validateResponse({ cards: [], systemActions: actions }, REQUEST);
    assert.deepEqual(out.systemActions, actions);
  });

  test('CDS Hooks: invalid system actions are dropped one by one', () => {
    const body = {
      cards: [],
      systemActions: [
        update,
        { type: 'update', resource: { resourceType: 'ServiceRequest' } },
        { type: 'delete' },
        { type: 'merge', resource: { resourceType: 'ServiceRequest', id: '1' } },
        { type: 'create', resource: { id: '1' } },
        { type: 'create', description: 7, resource: { resourceType: 'Task' } },
        'x',
      ],
    };
    assert.deepEqual(reasons(body), [
      'systemActions[1]: "resource.id" of an update action is missing or not a FHIR id',
      'systemActions[2]: "resourceId" of a delete action is missing or not Type/id',
      'systemActions[3]: "type" of an action is not create, update or delete',
      'systemActions[4]: "resource" of a create action is missing or has no "resourceType"',
      'systemActions[5]: "description" of an action is missing or not a string',
      'systemActions[6]: is not an object',
    ]);
  });

  test('CDS Hooks: systemActions that is not an array is reported, cards kept', () => {
    const out = validateResponse({ cards: [card()], systemActions: { a: 1 } }, REQUEST);
    assert.equal(out.cards.length, 1);
    assert.deepEqual(out.dropped, [
      { where: 'systemActions', reason: '"systemActions" is not an array' },
    ]);
  });

  test('hook-19: on order-select, coverage information asking for clinical documents is dropped', () => {
    const clinical = {
      type: 'update',
      resource: {
        resourceType: 'ServiceRequest',
        id: '1357',
        extension: [
          coverageInfo('Coverage/COV1', 'A-2', [
            { url: 'doc-needed', valueCode: 'clinical' },
            { url: 'doc-purpose', valueCode: 'withorder' },
          ]),
        ],
      },
    };
    const body = { cards: [], systemActions: [update, clinical] };
    assert.deepEqual(reasons(body, { hook: 'order-select', orders: ORDERS }), [
      'systemActions[1]: "doc-needed" clinical or admin is not allowed on a secondary hook (hook-19)',
    ]);
    assert.deepEqual(reasons(body, REQUEST), []);
  });
});
