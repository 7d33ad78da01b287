/**
 * The shapes shared by the coverage rules (`rules/`), the coverage-information builder
 * (`crd/coverage-info.ts`), the card builders (`crd/cards.ts`) and the server pipeline.
 */
import type { Coverage, Extension, Resource } from '@medplum/fhirtypes';

/** The six CRD hooks (CRD 2.2 `ValueSet/cdsHookType`). */
export type HookName =
  | 'appointment-book'
  | 'encounter-discharge'
  | 'encounter-start'
  | 'order-dispatch'
  | 'order-select'
  | 'order-sign';

/** Hooks whose responses SHALL carry coverage information (hook-16). */
export const PRIMARY_HOOKS: ReadonlySet<HookName> = new Set([
  'appointment-book',
  'order-sign',
  'order-dispatch',
]);

export type Covered = 'covered' | 'not-covered' | 'conditional' | 'indeterminate';
export type PaNeeded =
  'no-auth' | 'auth-needed' | 'satisfied' | 'performpa' | 'conditional' | 'indeterminate';
export type DocNeeded = 'clinical' | 'admin' | 'patient' | 'conditional' | 'indeterminate';
export type DocPurpose = 'withpa' | 'withclaim' | 'withorder' | 'retain-doc' | 'OTH';
export type InfoNeeded =
  'performer' | 'location' | 'timeframe' | 'contract-window' | 'detail-code' | 'OTH';

/** `coverageAssertionReasons` codes (system `http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp`). */
export type ReasonCode =
  | 'gold-card'
  | 'no-member-found'
  | 'no-active-coverage'
  | 'coverage-not-found'
  | 'auth-out-network'
  | 'technical';

export interface Coding {
  system?: string;
  code?: string;
  display?: string;
}

/** A reason: a code from the CRD value set, or any coding with the `text` q7 then requires. */
export interface Reason {
  code?: ReasonCode;
  coding?: Coding;
  text?: string;
}

export interface CoverageDetail {
  category: 'cat-limitation' | 'cat-decisional' | 'cat-other';
  /** A code from `http://terminology.hl7.org/CodeSystem/crd-coverage-detail`, e.g. `allowed-quantity`. */
  code: string;
  value:
    | { boolean: boolean }
    | { string: string }
    | { url: string }
    | { quantity: { value: number; unit?: string; system?: string; code?: string } }
    | { period: { start?: string; end?: string } };
  qualification?: string;
}

export interface ContactDetail {
  name?: string;
  telecom?: Array<{ system: 'phone' | 'fax' | 'email' | 'url'; value: string }>;
}

/** One coverage determination for one order: the content of one ext-coverage-information. */
export interface Determination {
  covered: Covered;
  paNeeded?: PaNeeded;
  docNeeded?: DocNeeded[];
  docPurpose?: DocPurpose[];
  infoNeeded?: InfoNeeded[];
  billingCodes?: Coding[];
  reasons?: Reason[];
  details?: CoverageDetail[];
  questionnaires?: string[];
  satisfiedPaId?: string;
  contacts?: ContactDetail[];
  expiryDate?: string;
}

/** Card content from the rules; the builder adds uuid, source and indicator defaults. */
export interface CardTemplate {
  kind: 'instructions' | 'external-reference';
  summary: string;
  detail?: string;
  indicator?: 'info' | 'warning' | 'critical';
  /** A `cdshooks-card-type` code, e.g. `clinical-reminder`, `guideline`, `coverage-info`. */
  topic: string;
  links?: Array<{ label: string; url: string }>;
}

/** What the rules decide for one order in scope. */
export interface Decision {
  /** The rule that matched (for logs and audit; never PHI). */
  ruleId: string;
  determination: Determination;
  cards: CardTemplate[];
}

/** What the server gives the rules for one order in scope. */
export interface DecisionInput {
  hook: HookName;
  /** The order or Appointment in scope, as received. */
  order: Resource;
  /** The primary Coverage, already matched to a payer in the rules file. */
  coverage: Coverage;
  payerId: string;
  /**
   * FHIRPath evaluation root for rule conditions:
   * `{ context, prefetch, order, coverage, patient }` (prefetch values after gathering).
   */
  data: Record<string, unknown>;
  /** Today's date as YYYY-MM-DD (the server's clock, injectable in tests). */
  today: string;
}

export type CoverageInformationExtension = Extension;
