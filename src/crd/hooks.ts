/**
 * The CRD hook catalogue: for each of the six hooks, its service, context rules, prefetch
 * templates and the card types the service can return (dev-5).
 */
import type { HookName } from './types.js';
import {
  APPOINTMENT_BOOK_PREFETCH,
  ENCOUNTER_PREFETCH,
  ORDER_DISPATCH_PREFETCH,
  ORDER_DRAFT_PREFETCH,
} from './prefetch-templates.js';

/** The order resource types CRD covers (select, sign and dispatch). */
export const ORDER_TYPES = [
  'CommunicationRequest',
  'DeviceRequest',
  'MedicationRequest',
  'NutritionOrder',
  'ServiceRequest',
  'VisionPrescription',
] as const;

export type ContextKind = 'id' | 'reference' | 'reference[]' | 'bundle' | 'string[]' | 'array';

export interface ContextField {
  name: string;
  kind: ContextKind;
  required: boolean;
  /** Resource types a reference may point to. */
  types?: readonly string[];
}

export interface HookDefinition {
  hook: HookName;
  /** The service id in discovery and in `POST /cds-services/{id}`. */
  id: string;
  title: string;
  description: string;
  primary: boolean;
  context: ContextField[];
  /** Older context names still accepted (CRD 2.0.1 / Inferno: order-dispatch `order`, `task`). */
  aliases?: Record<string, string>;
  prefetch: Record<string, string>;
  /**
   * Card types (cdshooks-card-type codes) the service returns by itself; the server adds the
   * topics of the payer's rules for this hook (see `server/card-types.ts`).
   */
  cardTypes: string[];
}

const USER = ['Practitioner', 'PractitionerRole'] as const;
const userId = (types: readonly string[] = USER): ContextField => ({
  name: 'userId',
  kind: 'reference',
  required: true,
  types,
});
const patientId: ContextField = { name: 'patientId', kind: 'id', required: true };
const encounterId = (required: boolean): ContextField => ({
  name: 'encounterId',
  kind: 'id',
  required,
});
const ORDER_CARDS = ['coverage-info'];

/** Every hook crdkit serves, keyed by hook name. */
export const HOOKS: Record<HookName, HookDefinition> = {
  'order-sign': {
    hook: 'order-sign',
    id: 'order-sign-crd',
    title: 'Order Sign Coverage Requirements',
    description:
      'Coverage, prior authorization and documentation requirements for orders being signed',
    primary: true,
    context: [
      userId(),
      patientId,
      encounterId(false),
      { name: 'draftOrders', kind: 'bundle', required: true },
    ],
    prefetch: ORDER_DRAFT_PREFETCH,
    cardTypes: ORDER_CARDS,
  },
  'order-select': {
    hook: 'order-select',
    id: 'order-select-crd',
    title: 'Order Select Coverage Requirements',
    description: 'Early coverage guidance while orders are being selected',
    primary: false,
    context: [
      userId(),
      patientId,
      encounterId(false),
      { name: 'selections', kind: 'string[]', required: true },
      { name: 'draftOrders', kind: 'bundle', required: true },
    ],
    prefetch: ORDER_DRAFT_PREFETCH,
    cardTypes: ORDER_CARDS,
  },
  'order-dispatch': {
    hook: 'order-dispatch',
    id: 'order-dispatch-crd',
    title: 'Order Dispatch Coverage Requirements',
    description: 'Coverage requirements when an order is routed to a specific performer',
    primary: true,
    context: [
      patientId,
      { name: 'dispatchedOrders', kind: 'reference[]', required: true, types: ORDER_TYPES },
      { name: 'performer', kind: 'reference', required: true },
      { name: 'fulfillmentTasks', kind: 'array', required: false },
    ],
    aliases: { order: 'dispatchedOrders', task: 'fulfillmentTasks' },
    prefetch: ORDER_DISPATCH_PREFETCH,
    cardTypes: ORDER_CARDS,
  },
  'appointment-book': {
    hook: 'appointment-book',
    id: 'appointment-book-crd',
    title: 'Appointment Booking Coverage Requirements',
    description: 'Coverage and prior authorization requirements for appointments being booked',
    primary: true,
    context: [
      userId(['Practitioner', 'PractitionerRole', 'Patient', 'RelatedPerson']),
      patientId,
      encounterId(false),
      { name: 'appointments', kind: 'bundle', required: true },
    ],
    prefetch: APPOINTMENT_BOOK_PREFETCH,
    cardTypes: ORDER_CARDS,
  },
  'encounter-start': {
    hook: 'encounter-start',
    id: 'encounter-start-crd',
    title: 'Encounter Start Coverage Guidance',
    description: 'Coverage guidance at the start of an encounter',
    primary: false,
    context: [userId(), patientId, encounterId(true)],
    prefetch: ENCOUNTER_PREFETCH,
    cardTypes: [],
  },
  'encounter-discharge': {
    hook: 'encounter-discharge',
    id: 'encounter-discharge-crd',
    title: 'Encounter Discharge Coverage Guidance',
    description: 'Coverage guidance when an encounter is ending',
    primary: false,
    context: [userId(), patientId, encounterId(true)],
    prefetch: ENCOUNTER_PREFETCH,
    cardTypes: [],
  },
};

const BY_ID = new Map(Object.values(HOOKS).map((h) => [h.id, h]));

/** The hook served at a service id, if any. */
export function hookForService(id: string): HookDefinition | undefined {
  return BY_ID.get(id);
}
