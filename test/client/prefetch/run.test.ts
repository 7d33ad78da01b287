import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Bundle, Coverage, OperationOutcome } from '@medplum/fhirtypes';
import { runPrefetch, type PrefetchInput } from '../../../src/client/prefetch/index.js';
import { ORDER_DRAFT_PREFETCH } from '../../../src/crd/prefetch-templates.js';
import {
  barrier,
  FakeReader,
  ids,
  ORDER_SIGN_CONTEXT,
  PRIMARY,
  RECORDS,
  untilAborted,
} from './helpers.js';

const OO: OperationOutcome = {
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code: 'exception', diagnostics: 'db01 connection refused' }],
};

function run(
  templates: Record<string, string>,
  reader = new FakeReader(RECORDS),
  extra: Partial<PrefetchInput> = {},
) {
  return runPrefetch(
    {
      templates,
      context: ORDER_SIGN_CONTEXT,
      primaryCoverage: PRIMARY,
      deadlineMs: 2000,
      ...extra,
    },
    reader,
  );
}

describe('null or omitted (CDS Hooks: null for no data, omit what could not be fetched)', () => {
  test('cds-prefetch: a read that finds nothing (404) is null', async () => {
    const result = await run({ patient: 'Patient/nobody' });
    assert.deepEqual(result.prefetch, { patient: null });
    assert.deepEqual(result.failed, []);
  });

  test('cds-prefetch: a search that finds nothing is the empty searchset Bundle, not null', async () => {
    const result = await run({ roles: 'PractitionerRole?_id=none' });
    assert.deepEqual(result.prefetch.roles, {
      resourceType: 'Bundle',
      type: 'searchset',
      total: 0,
    });
  });

  test('found-23: no DeviceRequest among the draft orders makes devices null, with no query sent', async () => {
    const reader = new FakeReader(RECORDS);
    const context = {
      ...ORDER_SIGN_CONTEXT,
      draftOrders: {
        ...ORDER_SIGN_CONTEXT.draftOrders,
        entry: ORDER_SIGN_CONTEXT.draftOrders.entry.filter(
          (e) => e.resource.resourceType !== 'DeviceRequest',
        ),
      },
    };
    const result = await run({ devices: ORDER_DRAFT_PREFETCH.devices! }, reader, { context });
    assert.deepEqual(result.prefetch, { devices: null });
    assert.deepEqual(result.queries, []);
    assert.deepEqual(reader.searches(), []);
  });

  test('cds-prefetch: a template is never sent half-filled: one empty token makes the key null', async () => {
    const reader = new FakeReader(RECORDS);
    const result = await run(
      { obs: 'Observation?patient={{context.patientId}}&encounter={{context.missing}}' },
      reader,
    );
    assert.deepEqual(result.prefetch, { obs: null });
    assert.equal(reader.calls.length, 0);
  });

  test('cds-prefetch: an empty token makes the key null even when another token fails', async () => {
    const reader = new FakeReader(RECORDS);
    reader.hook = () => {
      throw new Error('HTTP 503');
    };
    const result = await run(
      {
        obs: 'Observation?performer={{context.draftOrders.entry.resource.requester.resolve().id}}&encounter={{context.missing}}',
      },
      reader,
    );
    assert.deepEqual(result.prefetch, { obs: null });
    assert.deepEqual(result.failed, []);
  });

  test('cds-prefetch: a context without encounterId gives encounter null', async () => {
    const { encounterId: _, ...context } = ORDER_SIGN_CONTEXT;
    const result = await run({ encounter: 'Encounter/{{context.encounterId}}' }, undefined, {
      context,
    });
    assert.deepEqual(result.prefetch, { encounter: null });
  });

  test('cds-prefetch: a reader that throws leaves the key out (error), and its dependents (unresolvable)', async () => {
    const reader = new FakeReader(RECORDS);
    reader.hook = (call) => {
      if (call.type === 'PractitionerRole' && call.op === 'search') throw new Error('HTTP 500');
    };
    const result = await run(
      {
        practitionerRoles: ORDER_DRAFT_PREFETCH.practitionerRoles!,
        practitioners: ORDER_DRAFT_PREFETCH.practitioners!,
        patient: 'Patient/{{context.patientId}}',
      },
      reader,
    );
    assert.deepEqual(Object.keys(result.prefetch), ['patient']);
    assert.deepEqual(
      result.failed.map(({ key, reason }) => ({ key, reason })),
      [
        { key: 'practitionerRoles', reason: 'error' },
        { key: 'practitioners', reason: 'unresolvable' },
      ],
    );
    assert.equal(result.failed[1]?.detail, 'needs %practitionerRoles, which could not be fetched');
  });

  test('cds-prefetch: an OperationOutcome answer is left out, never passed on to the payer', async () => {
    const reader = new FakeReader(RECORDS);
    reader.answer = (call) =>
      call.type === 'Patient' || call.type === 'Encounter' ? OO : 'default';
    const result = await run(
      { patient: 'Patient/{{context.patientId}}', encs: 'Encounter?patient={{context.patientId}}' },
      reader,
    );
    assert.deepEqual(result.prefetch, {});
    assert.deepEqual(result.failed, [
      {
        key: 'patient',
        reason: 'error',
        detail: 'reading Patient/p1 returned resourceType "OperationOutcome"',
      },
      {
        key: 'encs',
        reason: 'error',
        detail: 'searching Encounter returned resourceType "OperationOutcome", not "Bundle"',
      },
    ]);
    assert.ok(!JSON.stringify(result).includes('db01'), 'no EHR diagnostics in the result');
  });

  test('found-23: a resolve() read that fails leaves the key out', async () => {
    const reader = new FakeReader(RECORDS);
    reader.hook = (call) => {
      if (call.op === 'read' && call.type === 'Device') throw new Error('socket hang up');
    };
    const result = await run({ devices: ORDER_DRAFT_PREFETCH.devices! }, reader);
    assert.deepEqual(result.prefetch, {});
    assert.deepEqual(result.failed, [
      { key: 'devices', reason: 'error', detail: 'reading Device/dev-1 failed' },
    ]);
  });
});

describe('found-31: keys and queries come from discovery', () => {
  test('found-31: other key names, other order, dependent key listed first', async () => {
    const result = await run({
      prescribers: 'Practitioner?_id={{%roles.entry.resource.practitioner.resolve().id}}',
      device: ORDER_DRAFT_PREFETCH.devices!,
      roles:
        'PractitionerRole?_id={{context.draftOrders.entry.resource.requester.resolve().ofType(PractitionerRole).id}}',
    });
    assert.deepEqual(result.failed, []);
    assert.deepEqual(Object.keys(result.prefetch), ['prescribers', 'device', 'roles']);
    assert.deepEqual(ids(result.prefetch.prescribers), ['Practitioner/pr-req']);
    assert.deepEqual(ids(result.prefetch.device), ['Device/dev-1']);
  });

  test('found-31: a key that is no FHIRPath identifier is used as %`key`', async () => {
    const result = await run({
      'practitioner-roles': 'PractitionerRole?_id=role-req',
      people: 'Practitioner?_id={{%`practitioner-roles`.entry.resource.practitioner.resolve().id}}',
    });
    assert.deepEqual(
      result.queries.map((q) => q.query),
      ['PractitionerRole?_id=role-req', 'Practitioner?_id=pr-req'],
    );
  });

  test('found-31: a key named like an object property is an ordinary key', async () => {
    const own = await run(JSON.parse('{"__proto__":"Patient/{{context.patientId}}"}'));
    assert.ok(Object.prototype.hasOwnProperty.call(own.prefetch, '__proto__'));
    assert.equal(Object.getPrototypeOf(own.prefetch), Object.prototype);
  });
});

describe('found-24: dependent prefetch, parallelism, deadline, cycles', () => {
  test('found-24: independent queries run in parallel', async () => {
    const reader = new FakeReader(RECORDS);
    const both = barrier(2);
    reader.hook = (call) => (call.op === 'search' ? both() : undefined);
    const result = await run(
      {
        coverage: 'Coverage?patient={{context.patientId}}&status=active',
        encounters: 'Encounter?patient={{context.patientId}}',
      },
      reader,
    );
    assert.deepEqual(
      result.failed,
      [],
      'a sequential engine would wait at the barrier until the deadline',
    );
    assert.equal(reader.maxActive, 2);
  });

  test('found-24: a key using %other starts only after other has finished', async () => {
    const reader = new FakeReader(RECORDS);
    const result = await run(
      {
        practitioners: ORDER_DRAFT_PREFETCH.practitioners!,
        practitionerRoles: ORDER_DRAFT_PREFETCH.practitionerRoles!,
        encounter: 'Encounter/{{context.encounterId}}',
      },
      reader,
    );
    assert.deepEqual(result.failed, []);
    const order = reader.calls.map((c) => `${c.op} ${c.type}`);
    assert.ok(order.indexOf('search PractitionerRole') < order.indexOf('search Practitioner'));
    assert.ok(order.indexOf('read Encounter') < order.indexOf('search PractitionerRole'));
  });

  test('found-24: at most maxParallel requests are in flight', async () => {
    const reader = new FakeReader(RECORDS);
    reader.hook = () => new Promise((resolve) => setTimeout(resolve, 5));
    const result = await run(ORDER_DRAFT_PREFETCH, reader, { maxParallel: 2 });
    assert.deepEqual(result.failed, []);
    assert.equal(reader.maxActive, 2);
  });

  test('cds-prefetch: past the deadline a query is abandoned (timeout), the rest is returned', async () => {
    const reader = new FakeReader(RECORDS);
    // This reader ignores the signal: the engine must not wait for it.
    reader.hook = (call) => (call.type === 'PractitionerRole' ? new Promise(() => {}) : undefined);
    const started = Date.now();
    const result = await run(
      {
        patient: 'Patient/{{context.patientId}}',
        practitionerRoles: ORDER_DRAFT_PREFETCH.practitionerRoles!,
        practitioners: ORDER_DRAFT_PREFETCH.practitioners!,
      },
      reader,
      { deadlineMs: 100 },
    );
    assert.ok(Date.now() - started < 1000);
    assert.deepEqual(ids(result.prefetch.patient), 'Patient/p1');
    assert.deepEqual(
      result.failed.map(({ key, reason }) => ({ key, reason })),
      [
        { key: 'practitionerRoles', reason: 'timeout' },
        { key: 'practitioners', reason: 'timeout' },
      ],
    );
  });

  test('cds-prefetch: the reader gets the deadline signal', async () => {
    const reader = new FakeReader(RECORDS);
    let aborted = false;
    reader.hook = (call, signal) =>
      call.type === 'Patient'
        ? untilAborted(signal).finally(() => (aborted = signal.aborted))
        : undefined;
    const result = await run({ patient: 'Patient/{{context.patientId}}' }, reader, {
      deadlineMs: 30,
    });
    assert.deepEqual(result.failed, [
      { key: 'patient', reason: 'timeout', detail: 'the prefetch deadline passed' },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(aborted, true);
    assert.equal(result.queries[0]?.query, 'Patient/p1');
    assert.ok(result.queries[0]!.ms >= 20);
  });

  test('cds-prefetch: the caller can cancel the whole prefetch', async () => {
    const reader = new FakeReader(RECORDS);
    reader.hook = (_call, signal) => untilAborted(signal);
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(), 20);
    const result = await run({ patient: 'Patient/{{context.patientId}}' }, reader, {
      signal: cancel.signal,
    });
    assert.deepEqual(
      result.failed.map((f) => f.reason),
      ['timeout'],
    );
  });

  test('cds-prefetch: a deadline that is not a finite number of milliseconds is refused', async () => {
    for (const deadlineMs of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
      await assert.rejects(run({ patient: 'Patient/1' }, undefined, { deadlineMs }), {
        name: 'RangeError',
        message: '"deadlineMs" must be a finite number of milliseconds, 0 or more',
      });
    }
  });

  test('cds-prefetch: a dependency cycle fails those keys (cycle), not the call', async () => {
    const reader = new FakeReader(RECORDS);
    const result = await run(
      {
        a: 'Practitioner?_id={{%b.entry.resource.id}}',
        b: 'Practitioner?_id={{%a.entry.resource.id}}',
        self: 'Practitioner?_id={{%self.entry.resource.id}}',
        after: 'Organization?_id={{%a.entry.resource.id}}',
        patient: 'Patient/{{context.patientId}}',
      },
      reader,
    );
    assert.deepEqual(Object.keys(result.prefetch), ['patient']);
    assert.deepEqual(
      result.failed.map(({ key, reason }) => ({ key, reason })),
      [
        { key: 'a', reason: 'cycle' },
        { key: 'b', reason: 'cycle' },
        { key: 'self', reason: 'cycle' },
        { key: 'after', reason: 'unresolvable' },
      ],
    );
    assert.deepEqual(reader.reads(), ['Patient/p1']);
  });

  test('found-23: a %name that is no prefetch key counts as no data', async () => {
    const result = await run({
      roles:
        'PractitionerRole?_id={{%encounter.participant.individual.resolve().ofType(PractitionerRole).id}}',
    });
    assert.deepEqual(result.prefetch, { roles: null });
  });

  test('found-23: a key whose dependency is null sees no data', async () => {
    const result = await run({
      encounter: 'Encounter/gone',
      roles:
        'PractitionerRole?_id={{%encounter.participant.individual.resolve().ofType(PractitionerRole).id}}',
    });
    assert.deepEqual(result.prefetch, { encounter: null, roles: null });
  });

  test('cds-prefetch: queries are logged with their key and duration; null keys send none', async () => {
    const result = await run({
      patient: 'Patient/{{context.patientId}}',
      none: 'Device?_id={{context.nothing}}',
    });
    assert.deepEqual(
      result.queries.map(({ key, query }) => ({ key, query })),
      [{ key: 'patient', query: 'Patient/p1' }],
    );
    assert.equal(typeof result.queries[0]?.ms, 'number');
  });
});

describe('dev-29: the Coverage key holds only the primary coverage', () => {
  const coverage = { coverage: 'Coverage?patient={{context.patientId}}&status=active' };

  test('dev-29: the EHR is asked for the primary coverage only, and the Bundle holds just it', async () => {
    const reader = new FakeReader(RECORDS);
    const result = await run(coverage, reader);
    assert.deepEqual(reader.searches(), ['Coverage?patient=p1&status=active&_id=cov1']);
    assert.deepEqual(result.prefetch.coverage, {
      resourceType: 'Bundle',
      type: 'searchset',
      total: 1,
      entry: [{ resource: PRIMARY, search: { mode: 'match' } }],
    });
  });

  test('dev-29: a server that ignores _id still leaks no other coverage', async () => {
    const reader = new FakeReader(RECORDS);
    const all = RECORDS.filter((r) => r.resourceType === 'Coverage');
    reader.answer = (call) =>
      call.type === 'Coverage'
        ? ({
            resourceType: 'Bundle',
            type: 'searchset',
            total: 3,
            link: [{ relation: 'next', url: 'https://ehr.test/fhir/Coverage?page=2' }],
            entry: all.map((resource) => ({ resource })),
          } as Bundle)
        : 'default';
    const result = await run(coverage, reader);
    assert.deepEqual(ids(result.prefetch.coverage), ['Coverage/cov1']);
    assert.equal((result.prefetch.coverage as Bundle).link, undefined);
  });

  test('dev-29: a primary coverage that does not match the template gives an empty Bundle', async () => {
    const cancelled = RECORDS.find((r) => r.id === 'cov3') as Coverage;
    const result = await run(coverage, undefined, { primaryCoverage: cancelled });
    assert.deepEqual(result.prefetch.coverage, {
      resourceType: 'Bundle',
      type: 'searchset',
      total: 0,
    });
  });

  test('dev-29: without a primary coverage the Coverage key is left out, nothing is asked', async () => {
    const reader = new FakeReader(RECORDS);
    const result = await run(coverage, reader, { primaryCoverage: undefined });
    assert.deepEqual(result.prefetch, {});
    assert.deepEqual(result.failed, [
      { key: 'coverage', reason: 'unresolvable', detail: 'no primary Coverage was given (dev-29)' },
    ]);
    assert.equal(reader.calls.length, 0);
  });

  test('dev-29: a Coverage read is null unless it is the primary coverage', async () => {
    const reader = new FakeReader(RECORDS);
    const result = await run({ other: 'Coverage/cov2', primary: 'Coverage/cov1' }, reader);
    assert.deepEqual(result.prefetch, { other: null, primary: PRIMARY });
    assert.deepEqual(reader.reads(), ['Coverage/cov1']);
  });
});

describe('references resolve() follows', () => {
  test('found-23: a urn:uuid reference to another draft order resolves in the context', async () => {
    const reader = new FakeReader(RECORDS);
    const context = {
      patientId: 'p1',
      draftOrders: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          {
            fullUrl: 'urn:uuid:1f0e0000-0000-4000-8000-000000000001',
            resource: { resourceType: 'ServiceRequest', id: 'sr-9', status: 'draft' },
          },
          {
            fullUrl: 'urn:uuid:1f0e0000-0000-4000-8000-000000000002',
            resource: {
              resourceType: 'ServiceRequest',
              id: 'sr-10',
              basedOn: [{ reference: 'urn:uuid:1f0e0000-0000-4000-8000-000000000001' }],
            },
          },
        ],
      },
    };
    const result = await run(
      { base: 'ServiceRequest?_id={{context.draftOrders.entry.resource.basedOn.resolve().id}}' },
      reader,
      { context },
    );
    assert.deepEqual(reader.searches(), ['ServiceRequest?_id=sr-9']);
    assert.deepEqual(reader.reads(), []);
    assert.ok(result.prefetch.base);
  });

  test('found-23: absolute references are read only under the EHR base; contained ones never', async () => {
    const reader = new FakeReader(RECORDS);
    const context = {
      patientId: 'p1',
      draftOrders: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          {
            resource: {
              resourceType: 'MedicationRequest',
              id: 'mr-5',
              requester: { reference: 'https://ehr.test/fhir/Practitioner/pr-req' },
              performer: { reference: 'https://elsewhere.test/fhir/Practitioner/pr-perf' },
              recorder: { reference: '#contained-1' },
            },
          },
        ],
      },
    };
    const result = await run(
      {
        people:
          'Practitioner?_id={{context.draftOrders.entry.resource.(requester|performer|recorder).resolve().id}}',
      },
      reader,
      { context, fhirBase: 'https://ehr.test/fhir' },
    );
    assert.deepEqual(reader.reads(), ['Practitioner/pr-req']);
    assert.deepEqual(ids(result.prefetch.people), ['Practitioner/pr-req']);
  });

  test('found-23: order-dispatch reference strings resolve(); a missing order is left out of the ids', async () => {
    const result = await run(
      {
        srs: 'ServiceRequest?_id={{context.dispatchedOrders.resolve().ofType(ServiceRequest).id}}',
      },
      undefined,
      {
        context: {
          patientId: 'p1',
          dispatchedOrders: ['ServiceRequest/sr-d', 'ServiceRequest/gone'],
        },
      },
    );
    assert.deepEqual(
      result.queries.map((q) => q.query),
      ['ServiceRequest?_id=sr-d'],
    );
  });
});
