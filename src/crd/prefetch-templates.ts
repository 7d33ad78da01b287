/**
 * The standard CRD prefetch templates (CRD 2.2 `CRDServices.json`), which servers SHALL use when
 * those elements are relevant (found-29). They are built from path lists so each key reads as
 * "these references, resolved to this type".
 */

const union = (paths: string[]) => paths.join('|');
const ids = (type: string, paths: string[]) => `${type}?_id={{${union(paths)}}}`;

const PATIENT = 'Patient/{{context.patientId}}';
const ENCOUNTER = 'Encounter/{{context.encounterId}}';
const COVERAGE = 'Coverage?patient={{context.patientId}}&status=active';
const ENC_ROLE = '%encounter.participant.individual.resolve().ofType(PractitionerRole).id';
const ENC_PRACT = '%encounter.participant.individual.resolve().ofType(Practitioner).id';
const ROLE_PRACT = '%practitionerRoles.entry.resource.practitioner.resolve().id';
const ROLE_ORG = '%practitionerRoles.entry.resource.organization.resolve().id';
const ENC_ORG = '%encounter.serviceProvider.resolve().ofType(Organization).id';
const ROLE_LOC = '%practitionerRoles.entry.resource.location.resolve().id';
const ENC_LOC = '%encounter.location.location.resolve().id';

/** `base.<element>.resolve().ofType(<type>).id` for each element. */
const refs = (base: string, elements: string[], type: string) =>
  elements.map((e) => `${base}.${e}.resolve().ofType(${type}).id`);

const DRAFT = 'context.draftOrders.entry.resource';
const DRAFT_PEOPLE = ['sender', 'recipient', 'requester', 'performer', 'orderer', 'prescriber'];

/** order-sign and order-select share one set of templates. */
export const ORDER_DRAFT_PREFETCH: Record<string, string> = {
  patient: PATIENT,
  encounter: ENCOUNTER,
  coverage: COVERAGE,
  devices: `Device?_id={{${DRAFT}.ofType(DeviceRequest).code.resolve().id}}`,
  medications: `Medication?_id={{${DRAFT}.ofType(MedicationRequest).medication.resolve().id}}`,
  practitionerRoles: ids('PractitionerRole', [
    ENC_ROLE,
    ...refs(DRAFT, DRAFT_PEOPLE, 'PractitionerRole'),
  ]),
  practitioners: ids('Practitioner', [
    ROLE_PRACT,
    ENC_PRACT,
    ...refs(DRAFT, DRAFT_PEOPLE, 'Practitioner'),
  ]),
  organizations: ids('Organization', [
    ROLE_ORG,
    ENC_ORG,
    `${DRAFT}.dispenseRequest.performer.resolve().id`,
    ...refs(DRAFT, ['sender', 'recipient', 'performer'], 'Organization'),
  ]),
  locations: ids('Location', [ROLE_LOC, ENC_LOC, `${DRAFT}.locationReference.resolve().id`]),
};

const DISPATCH_TYPES = [
  ['communicationRequests', 'CommunicationRequest'],
  ['deviceRequests', 'DeviceRequest'],
  ['medicationRequests', 'MedicationRequest'],
  ['nutritionOrders', 'NutritionOrder'],
  ['serviceRequests', 'ServiceRequest'],
  ['visionPrescriptions', 'VisionPrescription'],
] as const;

const dispatchPeople = (type: string) => [
  ...refs('%communicationRequests.entry.resource', ['sender', 'recipient', 'requester'], type),
  ...refs('%deviceRequests.entry.resource', ['performer', 'requester'], type),
  ...refs('%medicationRequests.entry.resource', ['performer', 'requester'], type),
  ...refs('%serviceRequests.entry.resource', ['performer', 'requester'], type),
  ...refs('%nutritionOrders.entry.resource', ['orderer'], type),
  ...refs('%visionPrescriptions.entry.resource', ['prescriber'], type),
];

/**
 * order-dispatch. The IG's template also asks for `Encounter/{{context.encounterId}}`, which
 * the order-dispatch context does not define (digest §10.3): crdkit leaves that key out.
 */
export const ORDER_DISPATCH_PREFETCH: Record<string, string> = {
  patient: PATIENT,
  coverage: COVERAGE,
  ...Object.fromEntries(
    DISPATCH_TYPES.map(([key, type]) => [
      key,
      `${type}?_id={{context.dispatchedOrders.resolve().ofType(${type}).id}}`,
    ]),
  ),
  devices: 'Device?_id={{%deviceRequests.entry.resource.code.resolve().id}}',
  medications: 'Medication?_id={{%medicationRequests.entry.resource.medication.resolve().id}}',
  practitionerRoles: ids('PractitionerRole', [ENC_ROLE, ...dispatchPeople('PractitionerRole')]),
  practitioners: ids('Practitioner', [ROLE_PRACT, ENC_PRACT, ...dispatchPeople('Practitioner')]),
  organizations: ids('Organization', [
    ROLE_ORG,
    ENC_ORG,
    ...refs('%communicationRequests.entry.resource', ['recipient', 'sender'], 'Organization'),
    '%medicationRequests.entry.resource.dispenseRequest.performer.resolve().id',
    ...refs('%serviceRequests.entry.resource', ['performer'], 'Organization'),
  ]),
  locations: ids('Location', [
    ROLE_LOC,
    ENC_LOC,
    '%serviceRequests.entry.resource.locationReference.resolve().id',
  ]),
};

const APPT = 'context.appointments.entry.resource';
const ALT_REF = "extension('http://hl7.org/fhir/StructureDefinition/alternate-reference').value";
const apptPeople = (type: string) => [
  ...refs(APPT, ['participant.actor'], type),
  ...refs('%deviceRequests.entry.resource', ['performer', 'requester'], type),
  ...refs('%medicationRequests.entry.resource', ['performer', 'requester'], type),
  ...refs('%serviceRequests.entry.resource', ['performer', 'requester'], type),
];

/** appointment-book. */
export const APPOINTMENT_BOOK_PREFETCH: Record<string, string> = {
  patient: PATIENT,
  encounter: ENCOUNTER,
  coverage: COVERAGE,
  deviceRequests: `DeviceRequest?_id={{${APPT}.basedOn.${ALT_REF}.resolve().ofType(DeviceRequest).id}}`,
  serviceRequests: `ServiceRequest?_id={{${APPT}.basedOn.resolve().ofType(ServiceRequest).id}}`,
  medicationRequests: `MedicationRequest?_id={{${APPT}.basedOn.${ALT_REF}.resolve().ofType(MedicationRequest).id}}`,
  devices: 'Device?_id={{%deviceRequests.entry.resource.code.resolve().id}}',
  medications: 'Medication?_id={{%medicationRequests.entry.resource.medication.resolve().id}}',
  practitionerRoles: ids('PractitionerRole', [ENC_ROLE, ...apptPeople('PractitionerRole')]),
  practitioners: ids('Practitioner', [ROLE_PRACT, ENC_PRACT, ...apptPeople('Practitioner')]),
  organizations: ids('Organization', [
    ROLE_ORG,
    ENC_ORG,
    '%medicationRequests.entry.resource.dispenseRequest.performer.resolve().ofType(Organization).id',
    '%serviceRequests.entry.resource.performer.resolve().ofType(Organization).id',
  ]),
  locations: ids('Location', [
    ROLE_LOC,
    ENC_LOC,
    `${APPT}.participant.actor.resolve().ofType(Location).id`,
    '%serviceRequests.entry.resource.locationReference.resolve().ofType(Location).id',
  ]),
};

/** encounter-start and encounter-discharge. */
export const ENCOUNTER_PREFETCH: Record<string, string> = {
  patient: PATIENT,
  encounter: ENCOUNTER,
  coverage: COVERAGE,
  practitionerRoles: ids('PractitionerRole', [ENC_ROLE]),
  practitioners: ids('Practitioner', [ROLE_PRACT, ENC_PRACT]),
  organizations: ids('Organization', [ROLE_ORG, ENC_ORG]),
  locations: ids('Location', [ROLE_LOC, ENC_LOC]),
};

/**
 * The resource types a service's prefetch templates name (`Coverage?patient=…` → `Coverage`):
 * what the EHR's token for a call to that service may read (found-21).
 */
export function prefetchResourceTypes(templates: Record<string, string>): string[] {
  const types = new Set<string>();
  for (const template of Object.values(templates)) {
    const type = templateResourceType(template);
    if (type) types.add(type);
  }
  return [...types].sort();
}

/**
 * The resource type a template reads or searches (`Coverage?…`, `Patient/{{…}}`, a bare
 * `Consent`); undefined for a whole-token template such as `{{context.userId}}`.
 */
export function templateResourceType(template: string): string | undefined {
  return /^([A-Z][A-Za-z]+)(?:[/?]|$)/.exec(template.trim())?.[1];
}
