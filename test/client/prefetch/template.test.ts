import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import {
  expandGroups,
  PrefetchFailure,
  resolveTemplate,
  type TemplateVars,
} from '../../../src/client/prefetch/index.js';
import { ORDER_SIGN_CONTEXT, RECORDS } from './helpers.js';

const store = new Map(RECORDS.map((r) => [`${r.resourceType}/${r.id}`, r]));
const reads: string[] = [];
const read = async (type: string, id: string) => {
  reads.push(`${type}/${id}`);
  return store.get(`${type}/${id}`);
};

/** The resolved query, `empty`, or the failure reason. */
async function q(template: string, vars: Partial<TemplateVars> = {}): Promise<string> {
  try {
    const r = await resolveTemplate(template, { context: ORDER_SIGN_CONTEXT, read, ...vars });
    return 'empty' in r ? 'empty' : r.query;
  } catch (err) {
    if (err instanceof PrefetchFailure) return `${err.reason}: ${err.message}`;
    throw err;
  }
}

const bundleOf = (...resources: Resource[]): Resource => ({
  resourceType: 'Bundle',
  type: 'searchset',
  entry: resources.map((resource) => ({ resource })),
});

describe('found-23: prefetch tokens', () => {
  test('cds-prefetch: context fields', async () => {
    assert.equal(await q('Patient/{{context.patientId}}'), 'Patient/p1');
    assert.equal(await q('Encounter/{{context.encounterId}}'), 'Encounter/e1');
    assert.equal(
      await q('Coverage?patient={{context.patientId}}&status=active'),
      'Coverage?patient=p1&status=active',
    );
    assert.equal(await q('Patient/{{ context.patientId }}'), 'Patient/p1');
  });

  test('cds-prefetch: a whole-template token is a read of the reference it gives', async () => {
    assert.equal(await q('{{context.userId}}'), 'PractitionerRole/role-req');
    assert.equal(await q('{{user}}', { user: 'Practitioner/pr-1' }), 'Practitioner/pr-1');
    assert.match(await q('{{context.patientId}}'), /^unresolvable: /);
  });

  test('cds-prefetch: user tokens for each kind of user', async () => {
    const role = { user: 'PractitionerRole/role-req' };
    assert.equal(
      await q('PractitionerRole?_id={{userPractitionerRoleId}}', role),
      'PractitionerRole?_id=role-req',
    );
    // The practitioner of a PractitionerRole user is the role's practitioner.
    assert.equal(await q('Practitioner/{{userPractitionerId}}', role), 'Practitioner/pr-req');
    assert.equal(await q('Patient/{{userPatientId}}', role), 'empty');
    const practitioner = { user: 'Practitioner/pr-enc' };
    assert.equal(
      await q('Practitioner/{{userPractitionerId}}', practitioner),
      'Practitioner/pr-enc',
    );
    assert.equal(await q('PractitionerRole?_id={{userPractitionerRoleId}}', practitioner), 'empty');
    assert.equal(await q('Patient/{{userPatientId}}', { user: 'Patient/p1' }), 'Patient/p1');
    assert.equal(
      await q('RelatedPerson/{{userRelatedPersonId}}', { user: 'RelatedPerson/rp-1' }),
      'RelatedPerson/rp-1',
    );
    assert.equal(await q('Practitioner/{{userPractitionerId}}', {}), 'empty', 'no user');
  });

  test('found-23: ofType() and resolve() through the draft orders', async () => {
    assert.equal(
      await q(
        'Device?_id={{context.draftOrders.entry.resource.ofType(DeviceRequest).code.resolve().id}}',
      ),
      'Device?_id=dev-1',
    );
    assert.equal(
      await q(
        'Medication?_id={{context.draftOrders.entry.resource.ofType(MedicationRequest).medication.resolve().id}}',
      ),
      'Medication?_id=med-1',
    );
    assert.equal(
      await q(
        'Practitioner?_id={{context.draftOrders.entry.resource.requester.resolve().ofType(Practitioner).id}}',
      ),
      'Practitioner?_id=pr-req',
    );
  });

  test('found-23: %key variables hold a Bundle or a resource from an earlier key', async () => {
    const roles = bundleOf(
      store.get('PractitionerRole/role-req')!,
      store.get('PractitionerRole/role-enc')!,
    );
    assert.equal(
      await q('Practitioner?_id={{%practitionerRoles.entry.resource.practitioner.resolve().id}}', {
        prefetch: { practitionerRoles: roles },
      }),
      'Practitioner?_id=pr-req,pr-enc',
    );
    assert.equal(
      await q('Organization?_id={{%encounter.serviceProvider.resolve().ofType(Organization).id}}', {
        prefetch: { encounter: store.get('Encounter/e1')! },
      }),
      'Organization?_id=org-hosp',
    );
    assert.equal(
      await q('Organization?_id={{%encounter.serviceProvider.resolve().id}}', {
        prefetch: { encounter: null },
      }),
      'empty',
    );
  });

  test('found-23: unions and .(a|b|c) path groups, values de-duplicated in order', async () => {
    const union =
      'PractitionerRole?_id={{context.draftOrders.entry.resource.requester.resolve().ofType(PractitionerRole).id|context.draftOrders.entry.resource.performer.resolve().ofType(PractitionerRole).id}}';
    const grouped =
      'PractitionerRole?_id={{context.draftOrders.entry.resource.(requester|performer).resolve().ofType(PractitionerRole).id}}';
    assert.equal(await q(union), 'PractitionerRole?_id=role-req,role-perf');
    assert.equal(await q(grouped), 'PractitionerRole?_id=role-req,role-perf');
    assert.deepEqual(expandGroups('a.(b|c.d).e | f.(g|h)'), ['a.b.e', 'a.c.d.e', 'f.g', 'f.h']);
    assert.deepEqual(expandGroups("x.extension('a|b').(c|d)"), [
      "x.extension('a|b').c",
      "x.extension('a|b').d",
    ]);
  });

  test("found-23: extension('url').value", async () => {
    const context = {
      appointments: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          {
            resource: {
              resourceType: 'Appointment',
              id: 'a1',
              basedOn: [
                {
                  extension: [
                    {
                      url: 'http://hl7.org/fhir/StructureDefinition/alternate-reference',
                      valueReference: { reference: 'DeviceRequest/dr-a' },
                    },
                  ],
                },
              ],
            },
          },
        ],
      },
    };
    assert.equal(
      await q(
        "DeviceRequest?_id={{context.appointments.entry.resource.basedOn.extension('http://hl7.org/fhir/StructureDefinition/alternate-reference').value.resolve().ofType(DeviceRequest).id}}",
        { context },
      ),
      'DeviceRequest?_id=dr-a',
    );
  });

  test('found-23: today() and today() ± N days (CDS Hooks example: 2024-09-13)', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['Date'], now: new Date(2024, 8, 13, 12) });
    assert.equal(
      await q(
        'Observation?patient={{context.patientId}}&category=laboratory&date=gt{{today() - 90 days}}',
      ),
      'Observation?patient=p1&category=laboratory&date=gt2024-06-15',
    );
    assert.equal(
      await q(
        'Appointment?patient={{context.patientId}}&date=gt{{today()}}&date=lt{{today() + 365 days}}',
      ),
      'Appointment?patient=p1&date=gt2024-09-13&date=lt2025-09-13',
    );
  });

  test('cds-prefetch: token values are escaped and encoded, never able to add parameters', async () => {
    const context = { patientId: 'a,b&_include=x' };
    const r = await resolveTemplate('Observation?patient={{context.patientId}}', { context });
    assert.ok(!('empty' in r) && r.kind === 'search');
    assert.deepEqual([...r.params], [['patient', 'a\\,b&_include=x']]);
    assert.equal(r.query, 'Observation?patient=a%5C,b%26_include%3Dx');
  });

  test('cds-prefetch: a read takes exactly one valid id', async () => {
    assert.match(
      await q('Patient/{{context.patientId}}', { context: { patientId: '../x' } }),
      /^unresolvable/,
    );
    assert.match(
      await q('ServiceRequest/{{context.draftOrders.entry.resource.ofType(ServiceRequest).id}}', {
        context: {
          draftOrders: {
            resourceType: 'Bundle',
            entry: [
              { resource: { resourceType: 'ServiceRequest', id: 's1' } },
              { resource: { resourceType: 'ServiceRequest', id: 's2' } },
            ],
          },
        },
      }),
      /^unresolvable: .*several values/,
    );
  });

  test('cds-prefetch: a token must give ids, codes or dates, not objects', async () => {
    assert.match(await q('Bundle?_id={{context.draftOrders}}'), /^unsupported: /);
  });
});

describe('cds-prefetch: only the query restrictions CDS Hooks allows', () => {
  const allowed = [
    ['Patient/123', 'Patient/123'],
    [
      'Observation?patient={{context.patientId}}&code=http://loinc.org|4548-4&_count=1&_sort=-date',
      'Observation?patient=p1&code=http://loinc.org|4548-4&_count=1&_sort=-date',
    ],
    [
      'Condition?patient={{context.patientId}}&code:in=http://example.org/ValueSet/dm',
      'Condition?patient=p1&code:in=http://example.org/ValueSet/dm',
    ],
    [
      'Observation?date=ge2024-01-01&date=lt{{today()}}',
      /^Observation\?date=ge2024-01-01&date=lt\d{4}-\d\d-\d\d$/,
    ],
    [
      'Observation?_lastUpdated=gt2024-01-01T00:00:00Z',
      'Observation?_lastUpdated=gt2024-01-01T00:00:00Z',
    ],
    ['Device', 'Device'],
  ] as const;
  for (const [template, expected] of allowed) {
    test(`cds-prefetch: allows ${template}`, async () => {
      const got = await q(template);
      if (typeof expected === 'string') assert.equal(got, expected);
      else assert.match(got, expected);
    });
  }

  const refused: Array<[string, RegExp]> = [
    ['Observation?code:text=oxygen', /modifier ":text"/],
    ['Observation?code:not=1', /modifier ":not"/],
    ['Observation?subject.name=Smith', /no chaining/],
    ['Observation?subject:Patient.name=Smith', /no chaining/],
    [
      'PractitionerRole?_id={{userPractitionerRoleId}}&_include=PractitionerRole:practitioner',
      /_include/,
    ],
    ['Patient?_revinclude=Coverage:beneficiary', /_revinclude/],
    ['Patient?_has:Observation:patient:code=1234', /_has/],
    ['Observation?date=ne2024-01-01', /prefix/],
    ['Observation?date=sa{{today()}}', /prefix/],
    ['Observation?_count=many', /_count/],
    ['Observation?_sort={{context.patientId}}', /_sort/],
    ['Observation?code=', /has no value/],
    ['Observation?code', /has no value/],
    ['Patient/{{context.patientId}}/_history/1', /neither a read/],
    ['Patient/123?_elements=name', /neither a read/],
    ['https://elsewhere.example/fhir/Patient/123', /not a resource type/],
    ['/Patient/123', /does not start with a resource type|not a resource type/],
    ['patient/123', /not a resource type/],
    ['Patient/{{context.patientId', /without "}}"/],
    ['Patient/context.patientId}}', /without "{{"/],
    ['Patient/{{}}', /empty prefetch token/],
    ['Observation?{{context.patientId}}=1', /not literal/],
    ['{{context.userId}}?_id=1', /without a resource type/],
    [
      "Observation?_id={{context.draftOrders.entry.resource.where(status='draft').id}}",
      /function where\(\)/,
    ],
    ['Observation?_id={{context.draftOrders.entry.resource.id.first()}}', /function first\(\)/],
    ["Observation?_id={{context.patientId.memberOf('http://vs')}}", /function memberOf\(\)/],
    ["Observation?_id={{context.patientId.trace('x')}}", /function trace\(\)/],
    ["Observation?_id={{context.patientId = 'p1'}}", /equality expression/],
    ['Observation?_id={{context.draftOrders.entry[0].resource.id}}', /indexer expression/],
    ["Observation?_id={{context.patientId & 'x'}}", /operator "&"/],
    ['Patient/{{Patient.id}}', /must start with "context"/],
    ['Patient/{{userId}}', /must start with "context"/],
    [
      'Practitioner?_id={{(context.draftOrders.entry.resource.requester.resolve()).id}}',
      /must start with|inside parentheses/,
    ],
    [
      'Practitioner?_id={{context.draftOrders.entry.resource.requester.resolve().id + 1}}',
      /combines resolve\(\) with an operator/,
    ],
    ['Patient/{{context.patientId..x}}', /not valid FHIRPath/],
  ];
  for (const [template, message] of refused) {
    test(`cds-prefetch: refuses ${template}`, async () => {
      const before = reads.length;
      const got = await q(template);
      assert.match(got, /^unsupported: /);
      assert.match(got, message);
      assert.equal(reads.length, before, 'nothing read');
    });
  }
});
