/**
 * applyCoverageInformation: coverage-information system actions are stored on the EHR's own
 * order without user action (resp-48), changing nothing but those extensions (resp-37), and are
 * returned for later DTR and PAS calls (resp-46). Anything else is never applied.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Extension, Resource } from '@medplum/fhirtypes';
import {
  applyCoverageInformation,
  validateResponse,
  type SystemAction,
} from '../../../src/client/answer/index.js';
import { COVERAGE_INFORMATION_URL } from '../../../src/crd/coverage-codes.js';
import { fixture, SKIP } from '../../crd/fixtures.js';
import { coverageInfo } from './helpers.js';

const BILLING = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options';

/** The EHR's own order: its own extension, a note, a code. */
function order(id = '1357', extension: Extension[] = []): Resource {
  return {
    resourceType: 'ServiceRequest',
    id,
    status: 'draft',
    intent: 'order',
    subject: { reference: 'Patient/123' },
    code: { coding: [{ system: 'https://www.cms.gov/hcpcs', code: 'E0431' }] },
    note: [{ text: 'portable' }],
    extension: [{ url: BILLING, valueCodeableConcept: { text: 'E0431' } }, ...extension],
  } as Resource;
}

/** The payer's update: the order as sent plus `ci`. */
function update(base: Resource, ...ci: Extension[]): SystemAction {
  const resource = structuredClone(base) as Resource & { extension?: Extension[] };
  resource.extension = [
    ...(resource.extension ?? []).filter((e) => e.url !== COVERAGE_INFORMATION_URL),
    ...ci,
  ];
  return { type: 'update', description: 'Coverage information', resource };
}

const ciOf = (r: Resource | undefined) =>
  ((r as { extension?: Extension[] } | undefined)?.extension ?? []).filter(
    (e) => e.url === COVERAGE_INFORMATION_URL,
  );

describe('applyCoverageInformation: applied', () => {
  test('resp-48: the extension is stored on the order, everything else kept as the EHR has it', () => {
    const mine = order();
    const before = structuredClone(mine);
    const ci = coverageInfo();
    const out = applyCoverageInformation([mine, order('2468')], [update(mine, ci)]);
    assert.deepEqual(out.rejected, []);
    assert.deepEqual(out.others, []);
    assert.equal(out.updated.length, 1);
    const expected = structuredClone(before) as Resource & { extension: Extension[] };
    expected.extension.push(ci);
    assert.deepEqual(out.updated[0], expected);
    // The EHR's input object is not modified.
    assert.deepEqual(mine, before);
  });

  test('resp-46: the applied extensions are returned with their order, for DTR and PAS', () => {
    const a = coverageInfo('Coverage/COV1', 'A-1');
    const b = coverageInfo('Coverage/COV1', 'A-2', [
      { url: 'expiry-date', valueDate: '2026-06-30' },
    ]);
    const out = applyCoverageInformation(
      [order('1357'), order('2468')],
      [update(order('1357'), a), update(order('2468'), b)],
    );
    assert.deepEqual(out.coverageInformation, [
      { order: 'ServiceRequest/1357', extension: a },
      { order: 'ServiceRequest/2468', extension: b },
    ]);
    assert.deepEqual(
      out.updated.map((r) => ciOf(r)),
      [[a], [b]],
    );
  });

  test('resp-34: new coverage information replaces the earlier one of the same coverage only', () => {
    const old = coverageInfo('Coverage/COV1', 'OLD');
    const otherPayer = coverageInfo('Coverage/COV2', 'OTHER');
    const mine = order('1357', [old, otherPayer]);
    // The EHR sent its order with the earlier assertions (resp-46); the payer's copy replaces its own.
    const fresh = coverageInfo('https://ehr.example.org/fhir/Coverage/COV1', 'NEW');
    const out = applyCoverageInformation([mine], [update(mine, otherPayer, fresh)]);
    assert.deepEqual(out.rejected, []);
    const ext = (out.updated[0] as { extension: Extension[] }).extension;
    assert.deepEqual(
      ext.map((e) => e.url),
      [BILLING, COVERAGE_INFORMATION_URL, COVERAGE_INFORMATION_URL],
    );
    assert.deepEqual(ciOf(out.updated[0]), [otherPayer, fresh]);
    // Only the new assertion is reported; the echoed one of the other coverage is not.
    assert.deepEqual(out.coverageInformation, [{ order: 'ServiceRequest/1357', extension: fresh }]);
  });

  test('resp-46: an update that only echoes the known assertion changes nothing', () => {
    const old = coverageInfo('Coverage/COV1', 'OLD');
    const mine = order('1357', [old]);
    const out = applyCoverageInformation([mine], [update(mine, old)]);
    assert.deepEqual(out, { updated: [], coverageInformation: [], rejected: [], others: [] });
  });

  test('resp-32: with "coverage" given, a payer cannot rewrite another coverage\'s assertion', () => {
    const otherPayer = coverageInfo('Coverage/COV2', 'OTHER');
    const mine = order('1357', [otherPayer]);
    const forged = coverageInfo('Coverage/COV2', 'FORGED');
    const out = applyCoverageInformation([mine], [update(mine, forged)], {
      coverage: 'Coverage/COV1',
    });
    assert.deepEqual(out.rejected, [
      {
        where: 'systemActions[0]',
        reason: 'the coverage information names another coverage than the one asked about',
      },
    ]);
    assert.deepEqual(out.updated, []);
  });

  test('resp-48: IG example 3 is applied to the CommunicationRequest of request 3', (t) => {
    const req = fixture('crd-ig/CRDServiceRequest3.json') as
      { context: { draftOrders: { entry: Array<{ resource: Resource }> } } } | undefined;
    const res = fixture('crd-ig/CRDServiceResponse3.json');
    if (!req || !res) return t.skip(SKIP);
    const mine = req.context.draftOrders.entry[0]!.resource;
    const valid = validateResponse(res, {
      hook: 'order-sign',
      orders: [{ resourceType: mine.resourceType, id: mine.id! }],
    });
    const out = applyCoverageInformation([mine], valid.systemActions);
    assert.deepEqual(out.rejected, []);
    assert.equal(out.coverageInformation.length, 1);
    assert.equal(out.coverageInformation[0]?.order, 'CommunicationRequest/example');
    assert.deepEqual(
      { ...out.updated[0], extension: undefined },
      { ...mine, extension: undefined },
    );
  });

  test('resp-37: the payer copy is compared with the order as sent (sharing policy removed the note)', () => {
    const mine = order();
    const sent = structuredClone(mine) as Resource & { note?: unknown };
    delete sent.note;
    const ci = coverageInfo();
    const out = applyCoverageInformation([mine], [update(sent, ci)], { sent: [sent] });
    assert.deepEqual(out.rejected, []);
    assert.deepEqual((out.updated[0] as { note?: unknown }).note, [{ text: 'portable' }]);
    assert.deepEqual(ciOf(out.updated[0]), [ci]);
  });
});

describe('applyCoverageInformation: rejected, nothing applied', () => {
  const mine = order();
  const cases: Array<[string, SystemAction, string, { coverage?: string }?]> = [
    [
      'resp-48: an order that is not in the request',
      update(order('9999'), coverageInfo()),
      'the update is for a resource that is not an order of this request',
    ],
    [
      'resp-48: same id, other resource type',
      update({ ...mine, resourceType: 'DeviceRequest' } as Resource, coverageInfo()),
      'the update is for a resource that is not an order of this request',
    ],
    [
      'resp-37: the status is changed',
      update({ ...mine, status: 'active' } as Resource, coverageInfo()),
      'the update changes more than the coverage information (resp-37)',
    ],
    [
      'resp-37: the EHR extension is removed',
      update({ ...mine, extension: [] } as Resource, coverageInfo()),
      'the update changes more than the coverage information (resp-37)',
    ],
    [
      'resp-37: a note is added',
      update(
        { ...mine, note: [{ text: 'portable' }, { text: 'payer' }] } as Resource,
        coverageInfo(),
      ),
      'the update changes more than the coverage information (resp-37)',
    ],
    [
      'crd-ci-q5: invalid coverage information',
      update(
        mine,
        coverageInfo('Coverage/COV1', 'A-1', [{ url: 'satisfied-pa-id', valueString: 'PA1' }]),
      ),
      'the coverage information is invalid: crd-ci-q5',
    ],
    [
      'crd-ci-card: coverage information without coverage',
      update(mine, {
        url: COVERAGE_INFORMATION_URL,
        extension: [{ url: 'covered', valueCode: 'covered' }],
      }),
      'the coverage information is invalid: crd-ci-card',
    ],
    [
      'resp-32: coverage information for another coverage than asked about',
      update(mine, coverageInfo('Coverage/COV2')),
      'the coverage information names another coverage than the one asked about',
      { coverage: 'Coverage/COV1' },
    ],
  ];
  for (const [name, action, reason, opts] of cases) {
    test(`${name}: rejected with its reason`, () => {
      const out = applyCoverageInformation([mine], [action], opts);
      assert.deepEqual(out.rejected, [{ where: 'systemActions[0]', reason }]);
      assert.deepEqual(out.updated, []);
      assert.deepEqual(out.coverageInformation, []);
    });
  }

  test('resp-50: nothing is applied to a revoked order', () => {
    const revoked = { ...order(), status: 'revoked' } as Resource;
    const out = applyCoverageInformation([revoked], [update(revoked, coverageInfo())]);
    assert.deepEqual(out.rejected, [
      { where: 'systemActions[0]', reason: 'the order is no longer active (resp-50)' },
    ]);
  });

  test('resp-48: one rejected update does not stop a valid one', () => {
    const out = applyCoverageInformation(
      [order('1357'), order('2468')],
      [update(order('9999'), coverageInfo()), update(order('2468'), coverageInfo())],
    );
    assert.equal(out.rejected.length, 1);
    assert.deepEqual(
      out.coverageInformation.map((c) => c.order),
      ['ServiceRequest/2468'],
    );
  });

  test('resp-68: other system actions are never applied, only handed back', () => {
    const actions: SystemAction[] = [
      { type: 'create', resource: { resourceType: 'Task', status: 'ready' } as Resource },
      { type: 'update', resource: { resourceType: 'Coverage', id: 'COV1' } as Resource },
      { type: 'update', resource: order() },
      { type: 'delete', resourceId: 'ServiceRequest/1357' },
    ];
    const out = applyCoverageInformation([order()], actions);
    assert.deepEqual(out.updated, []);
    assert.deepEqual(out.rejected, []);
    assert.deepEqual(
      out.others.map((o) => o.where),
      ['systemActions[0]', 'systemActions[1]', 'systemActions[2]', 'systemActions[3]'],
    );
  });
});
