/**
 * Synthetic demo data for the EHR side: three made-up patients (no real people; SSNs in the
 * never-issued 999 range, NPIs that only pass the check digit), their coverages, the payers, the
 * care team, an encounter and draft orders the demo payer's rules know (home oxygen E0431,
 * blepharoplasty CPT 15823, adalimumab). It is written as a transaction Bundle and loaded with
 * `loadBundle`, so the internal ids are random and unrelated to any identifier (sec-7).
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { loadBundle } from '../store/bundle.js';
import type { ResourceStore } from '../store/resource-store.js';

/** The identifier system that names each demo resource (`value` is its {@link DemoKey}). */
export const DEMO_SYSTEM = 'urn:crdkit:demo';
/** The identifier the demo CRD server matches its payer by. */
export const DEMO_PAYER_IDENTIFIER = { system: 'urn:crdkit:payer', value: 'example-payer' };
export const MRN_SYSTEM = 'http://hospital.example/mrn';
export const SSN_SYSTEM = 'http://hl7.org/fhir/sid/us-ssn';

const NPI = 'http://hl7.org/fhir/sid/us-npi';
const HCPCS = 'https://bluebutton.cms.gov/resources/codesystem/hcpcs';
const CPT = 'http://www.ama-assn.org/go/cpt';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const NUCC = 'http://nucc.org/provider-taxonomy';
const ORG_TYPE = 'http://terminology.hl7.org/CodeSystem/organization-type';
const MEMBER_SYSTEM = 'urn:crdkit:member-id';
const OTHER_PAYER_IDENTIFIER = { system: 'urn:crdkit:payer', value: 'other-payer' };

const DEMO_KEYS = [
  'org-payer',
  'org-payer-other',
  'org-hospital',
  'loc-hospital',
  'loc-clinic',
  'pract-morgan',
  'pract-quinn',
  'role-morgan',
  'role-quinn',
  'patient-avery',
  'patient-blake',
  'patient-casey',
  'coverage-avery',
  'coverage-avery-cancelled',
  'coverage-blake-primary',
  'coverage-blake-secondary',
  'encounter-avery',
  'device-oxygen',
  'medication-adalimumab',
  'order-oxygen',
  'order-adalimumab',
  'order-blepharoplasty',
  'appointment-blake',
] as const;

/** The name of one demo resource. */
export type DemoKey = (typeof DEMO_KEYS)[number];

/** The stored `Type/id` of each demo resource. */
export type DemoRefs = Record<DemoKey, string>;

/** A reference to a demo resource by its `urn:uuid:` full URL in the Bundle. */
type RefTo = (key: DemoKey, display?: string) => { reference: string; display?: string };
const demo = (key: DemoKey) => ({ system: DEMO_SYSTEM, value: key });
const address = (line: string, city: string) => ({
  line: [line],
  city,
  state: 'OH',
  postalCode: '44101',
  country: 'US',
});

function patient(key: DemoKey, mrn: string, ssn: string, name: [string, string], extra: object) {
  return {
    resourceType: 'Patient',
    identifier: [
      demo(key),
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        system: MRN_SYSTEM,
        value: mrn,
      },
      { system: SSN_SYSTEM, value: ssn },
    ],
    active: true,
    name: [{ use: 'official', family: name[1], given: [name[0]] }],
    ...extra,
  };
}

function coverage(
  ref: RefTo,
  key: DemoKey,
  beneficiary: DemoKey,
  payer: 'org-payer' | 'org-payer-other',
  extra: object,
) {
  const identifier = payer === 'org-payer' ? DEMO_PAYER_IDENTIFIER : OTHER_PAYER_IDENTIFIER;
  return {
    resourceType: 'Coverage',
    identifier: [demo(key)],
    status: 'active',
    beneficiary: ref(beneficiary),
    subscriber: ref(beneficiary),
    relationship: {
      coding: [
        { system: 'http://terminology.hl7.org/CodeSystem/subscriber-relationship', code: 'self' },
      ],
    },
    // The payer by reference and by identifier: a payer sees an opaque Organization id, so it
    // recognises itself by the identifier.
    payor: [{ ...ref(payer), identifier }],
    ...extra,
  };
}

/** The demo resources, keyed for the transaction Bundle. */
function demoResources(ref: RefTo): Array<[DemoKey, Record<string, unknown>]> {
  return [
    [
      'org-payer',
      {
        resourceType: 'Organization',
        identifier: [demo('org-payer'), DEMO_PAYER_IDENTIFIER],
        active: true,
        type: [{ coding: [{ system: ORG_TYPE, code: 'pay', display: 'Payer' }] }],
        name: 'Example Health Plan',
      },
    ],
    [
      'org-payer-other',
      {
        resourceType: 'Organization',
        identifier: [demo('org-payer-other'), OTHER_PAYER_IDENTIFIER],
        active: true,
        type: [{ coding: [{ system: ORG_TYPE, code: 'pay', display: 'Payer' }] }],
        name: 'Other Mutual Insurance',
      },
    ],
    [
      'org-hospital',
      {
        resourceType: 'Organization',
        identifier: [demo('org-hospital'), { system: NPI, value: '1234567893' }],
        active: true,
        type: [{ coding: [{ system: ORG_TYPE, code: 'prov', display: 'Healthcare Provider' }] }],
        name: 'Example Community Hospital',
        telecom: [{ system: 'phone', value: '555-0100', use: 'work' }],
        address: [address('1 Demo Way', 'Anytown')],
      },
    ],
    [
      'loc-hospital',
      {
        resourceType: 'Location',
        identifier: [demo('loc-hospital')],
        status: 'active',
        name: 'Example Community Hospital, Main Campus',
        address: address('1 Demo Way', 'Anytown'),
        managingOrganization: ref('org-hospital'),
      },
    ],
    [
      'loc-clinic',
      {
        resourceType: 'Location',
        identifier: [demo('loc-clinic')],
        status: 'active',
        name: 'Example Eye Clinic',
        address: address('20 Sample Road', 'Anytown'),
        managingOrganization: ref('org-hospital'),
      },
    ],
    [
      'pract-morgan',
      {
        resourceType: 'Practitioner',
        identifier: [demo('pract-morgan'), { system: NPI, value: '1999999992' }],
        active: true,
        name: [{ family: 'Demo', given: ['Morgan'], prefix: ['Dr.'] }],
      },
    ],
    [
      'pract-quinn',
      {
        resourceType: 'Practitioner',
        identifier: [demo('pract-quinn'), { system: NPI, value: '1987654328' }],
        active: true,
        name: [{ family: 'Sample', given: ['Quinn'], prefix: ['Dr.'] }],
      },
    ],
    [
      'role-morgan',
      {
        resourceType: 'PractitionerRole',
        identifier: [demo('role-morgan')],
        active: true,
        practitioner: ref('pract-morgan', 'Dr. Morgan Demo'),
        organization: ref('org-hospital', 'Example Community Hospital'),
        location: [ref('loc-hospital')],
        code: [
          {
            coding: [
              { system: 'http://terminology.hl7.org/CodeSystem/practitioner-role', code: 'doctor' },
            ],
          },
        ],
        specialty: [{ coding: [{ system: NUCC, code: '207Q00000X', display: 'Family Medicine' }] }],
        telecom: [{ system: 'phone', value: '555-0101', use: 'work' }],
      },
    ],
    [
      'role-quinn',
      {
        resourceType: 'PractitionerRole',
        identifier: [demo('role-quinn')],
        active: true,
        practitioner: ref('pract-quinn', 'Dr. Quinn Sample'),
        organization: ref('org-hospital', 'Example Community Hospital'),
        location: [ref('loc-clinic')],
        specialty: [{ coding: [{ system: NUCC, code: '207W00000X', display: 'Ophthalmology' }] }],
        telecom: [{ system: 'phone', value: '555-0102', use: 'work' }],
      },
    ],
    [
      'patient-avery',
      patient('patient-avery', 'MRN-100001', '999-01-0001', ['Avery', 'Example'], {
        gender: 'female',
        birthDate: '1950-04-12',
        address: [address('5 Fictional Lane', 'Anytown')],
      }),
    ],
    [
      'patient-blake',
      patient('patient-blake', 'MRN-100002', '999-01-0002', ['Blake', 'Sample'], {
        gender: 'male',
        birthDate: '1962-09-30',
        address: [address('7 Imaginary Court', 'Anytown')],
      }),
    ],
    [
      'patient-casey',
      patient('patient-casey', 'MRN-100003', '999-01-0003', ['Casey', 'Testperson'], {
        gender: 'other',
        birthDate: '1985-01-20',
      }),
    ],
    [
      'coverage-avery',
      coverage(ref, 'coverage-avery', 'patient-avery', 'org-payer', {
        subscriberId: 'EHP-0001-01',
        identifier: [demo('coverage-avery'), { system: MEMBER_SYSTEM, value: 'EHP-0001-01' }],
        order: 1,
        period: { start: '2025-01-01' },
        class: [
          {
            type: {
              coding: [
                { system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'plan' },
              ],
            },
            value: 'gold',
            name: 'Example Gold',
          },
        ],
      }),
    ],
    [
      'coverage-avery-cancelled',
      coverage(ref, 'coverage-avery-cancelled', 'patient-avery', 'org-payer-other', {
        status: 'cancelled',
        subscriberId: 'OMI-7731-00',
        period: { start: '2020-01-01', end: '2024-12-31' },
      }),
    ],
    [
      'coverage-blake-primary',
      coverage(ref, 'coverage-blake-primary', 'patient-blake', 'org-payer', {
        subscriberId: 'EHP-0002-01',
        order: 1,
        period: { start: '2024-07-01' },
      }),
    ],
    [
      'coverage-blake-secondary',
      coverage(ref, 'coverage-blake-secondary', 'patient-blake', 'org-payer-other', {
        subscriberId: 'OMI-8812-02',
        order: 2,
        period: { start: '2024-07-01' },
      }),
    ],
    [
      'encounter-avery',
      {
        resourceType: 'Encounter',
        identifier: [demo('encounter-avery')],
        status: 'in-progress',
        class: {
          system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
          code: 'AMB',
          display: 'ambulatory',
        },
        subject: ref('patient-avery'),
        participant: [{ individual: ref('role-morgan') }],
        period: { start: '2025-06-02T09:00:00Z' },
        location: [{ location: ref('loc-hospital') }],
        serviceProvider: ref('org-hospital'),
      },
    ],
    [
      'device-oxygen',
      {
        resourceType: 'Device',
        identifier: [demo('device-oxygen')],
        status: 'active',
        deviceName: [{ name: 'Portable gaseous oxygen system', type: 'user-friendly-name' }],
        type: {
          coding: [
            { system: HCPCS, code: 'E0431', display: 'Portable gaseous oxygen system, rental' },
          ],
        },
      },
    ],
    [
      'medication-adalimumab',
      {
        resourceType: 'Medication',
        identifier: [demo('medication-adalimumab')],
        code: {
          coding: [{ system: RXNORM, code: '327361', display: 'adalimumab' }],
          text: 'adalimumab',
        },
      },
    ],
    [
      'order-oxygen',
      {
        resourceType: 'DeviceRequest',
        identifier: [demo('order-oxygen')],
        status: 'draft',
        intent: 'order',
        codeReference: ref('device-oxygen'),
        subject: ref('patient-avery'),
        encounter: ref('encounter-avery'),
        authoredOn: '2025-06-02',
        requester: ref('role-morgan'),
        performer: ref('org-hospital'),
      },
    ],
    [
      'order-adalimumab',
      {
        resourceType: 'MedicationRequest',
        identifier: [demo('order-adalimumab')],
        status: 'draft',
        intent: 'order',
        medicationReference: ref('medication-adalimumab'),
        subject: ref('patient-avery'),
        encounter: ref('encounter-avery'),
        authoredOn: '2025-06-02',
        requester: ref('role-morgan'),
        dosageInstruction: [{ text: '40 mg subcutaneously every other week' }],
      },
    ],
    [
      'order-blepharoplasty',
      {
        resourceType: 'ServiceRequest',
        identifier: [demo('order-blepharoplasty')],
        status: 'draft',
        intent: 'order',
        code: {
          coding: [
            {
              system: CPT,
              code: '15823',
              display: 'Blepharoplasty, upper eyelid; with excessive skin weighting down lid',
            },
          ],
        },
        subject: ref('patient-blake'),
        authoredOn: '2025-06-03',
        requester: ref('role-quinn'),
        performer: [ref('role-quinn')],
        locationReference: [ref('loc-clinic')],
      },
    ],
    [
      'appointment-blake',
      {
        resourceType: 'Appointment',
        identifier: [demo('appointment-blake')],
        status: 'proposed',
        basedOn: [ref('order-blepharoplasty')],
        start: '2025-07-01T14:00:00Z',
        end: '2025-07-01T15:00:00Z',
        participant: [
          { actor: ref('patient-blake'), status: 'needs-action' },
          { actor: ref('role-quinn'), status: 'accepted' },
          { actor: ref('loc-clinic'), status: 'accepted' },
        ],
      },
    ],
  ];
}

/** The demo data as a FHIR transaction Bundle, and the `urn:uuid:` full URL of each key. */
export function demoBundle(): { bundle: Bundle; urls: Record<DemoKey, string> } {
  const urls = Object.fromEntries(DEMO_KEYS.map((k) => [k, `urn:uuid:${randomUUID()}`])) as Record<
    DemoKey,
    string
  >;
  const ref: RefTo = (key, display) => ({ reference: urls[key], ...(display ? { display } : {}) });
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: demoResources(ref).map(([key, resource]) => ({
      fullUrl: urls[key],
      resource: resource as unknown as Resource,
      request: { method: 'POST', url: resource.resourceType as string },
    })),
  };
  return { bundle, urls };
}

/** The stored demo resources, found by their `urn:crdkit:demo` identifier; undefined if absent. */
function findDemo(store: ResourceStore): DemoRefs | undefined {
  const ref: RefTo = (key) => ({ reference: key });
  const types = new Map(demoResources(ref).map(([key, r]) => [key, r.resourceType as string]));
  const refs: Partial<DemoRefs> = {};
  for (const key of DEMO_KEYS) {
    const type = types.get(key)!;
    const [found] = store.search(type, [{ name: 'identifier', values: [`${DEMO_SYSTEM}|${key}`] }]);
    if (!found) return undefined;
    refs[key] = `${type}/${found.id}`;
  }
  return refs as DemoRefs;
}

/**
 * Loads the demo data unless it is already there, and returns where each demo resource is.
 *
 * @example
 * ```ts
 * const demo = seedDemoData(store);
 * demo['patient-avery']; // 'Patient/8d1c…' (random, unrelated to MRN-100001)
 * ```
 */
export function seedDemoData(store: ResourceStore): DemoRefs {
  const existing = findDemo(store);
  if (existing) return existing;
  const { bundle, urls } = demoBundle();
  const { ids } = loadBundle(store, bundle);
  return Object.fromEntries(DEMO_KEYS.map((k) => [k, ids.get(urls[k])!])) as DemoRefs;
}
