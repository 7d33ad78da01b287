import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { runPrefetch } from '../../../src/client/prefetch/index.js';
import {
  APPOINTMENT_BOOK_PREFETCH,
  ENCOUNTER_PREFETCH,
  ORDER_DISPATCH_PREFETCH,
  ORDER_DRAFT_PREFETCH,
} from '../../../src/crd/prefetch-templates.js';
import { FakeReader, PRIMARY, RECORDS } from './helpers.js';

const EXTRA = {
  labs: 'Observation?patient={{context.patientId}}&category=laboratory&date=gt{{today() - 30 days}}',
  user: '{{context.userId}}',
  role: 'PractitionerRole?_id={{userPractitionerRoleId}}',
  me: 'Practitioner/{{userPractitionerId}}',
};
const TEMPLATE_SETS = [
  ORDER_DRAFT_PREFETCH,
  ORDER_DISPATCH_PREFETCH,
  APPOINTMENT_BOOK_PREFETCH,
  ENCOUNTER_PREFETCH,
].map((set) => ({ ...set, ...EXTRA }));

const TYPES = [
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'Device',
  'Medication',
  'Encounter',
  'ServiceRequest',
  'MedicationRequest',
  'DeviceRequest',
];

/** Known ids, arbitrary strings and the characters that could break a query string. */
const id = fc.oneof(
  fc.constantFrom('p1', 'e1', 'dev-1', 'med-1', 'role-req', 'pr-req', 'org-hosp', 'sr-d', 'gone'),
  fc.string({ maxLength: 10 }),
  fc.constantFrom('', ' ', ',', '=', '&', '%', '\\', '|', '$', '?', '#', '..', 'a,b', 'a&b=c'),
);
const refString = fc.oneof(
  fc.tuple(fc.constantFrom(...TYPES), id).map(([t, i]) => `${t}/${i}`),
  fc.string({ maxLength: 16 }),
  fc.constantFrom('#c1', 'urn:uuid:0', 'https://elsewhere.test/Practitioner/x', ''),
);
const reference = fc.record({ reference: refString, display: fc.string() }, { requiredKeys: [] });
const references = fc.array(reference, { maxLength: 2 });
const order = fc.record(
  {
    resourceType: fc.constantFrom(
      'DeviceRequest',
      'MedicationRequest',
      'ServiceRequest',
      'CommunicationRequest',
      'NutritionOrder',
      'VisionPrescription',
    ),
    id,
    requester: reference,
    performer: fc.oneof(reference, references),
    codeReference: reference,
    medicationReference: reference,
    locationReference: references,
    sender: reference,
    recipient: references,
    orderer: reference,
    prescriber: reference,
    dispenseRequest: fc.record({ performer: reference }),
  },
  { requiredKeys: ['resourceType'] },
);
const bundle = (resource: fc.Arbitrary<unknown>) =>
  fc.record({
    resourceType: fc.constant('Bundle'),
    type: fc.constant('collection'),
    entry: fc.array(fc.record({ fullUrl: refString, resource }, { requiredKeys: ['resource'] }), {
      maxLength: 4,
    }),
  });
const appointment = fc.record({
  resourceType: fc.constant('Appointment'),
  id,
  basedOn: references,
  participant: fc.array(fc.record({ actor: reference }), { maxLength: 3 }),
});
const context = fc.record(
  {
    patientId: id,
    encounterId: id,
    userId: refString,
    draftOrders: bundle(order),
    dispatchedOrders: fc.array(refString, { maxLength: 3 }),
    appointments: bundle(appointment),
  },
  { requiredKeys: [] },
);

test('cds-prefetch: random contexts never give a query with "=&", "=,", an empty "or" value or a trailing "="', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...TEMPLATE_SETS), context, async (templates, ctx) => {
      const reader = new FakeReader(RECORDS);
      const result = await runPrefetch(
        { templates, context: ctx, primaryCoverage: PRIMARY, deadlineMs: 5000 },
        reader,
      );
      for (const { query } of result.queries) {
        // A comma inside a value is escaped (`\,`, logged as `%5C,`): only bare commas separate.
        assert.ok(!/=&|=,|=$|(?<!%5C),(,|&|$)/.test(query), query);
      }
      for (const call of reader.calls) {
        if (call.op === 'search') {
          for (const [name, value] of new URLSearchParams(call.arg)) {
            assert.ok(value !== '' && !/^,|(?<!\\),(,|$)/.test(value), `${name}=${value}`);
          }
        } else {
          assert.match(call.arg, /^[A-Za-z0-9\-.]{1,64}$/);
        }
      }
      const failedKeys = result.failed.map((f) => f.key);
      assert.deepEqual(
        [...Object.keys(result.prefetch), ...failedKeys].sort(),
        Object.keys(templates).sort(),
        'every key is either in prefetch or in failed',
      );
      for (const f of result.failed) assert.equal(f.reason, 'unresolvable', f.detail);
    }),
    { numRuns: 150 },
  );
});
