/**
 * The CRD client's sharing policy: what may leave the EHR for a payer. CRD security.md: "CRD
 * clients are the final arbiters of what data can or cannot be shared with CRD servers"; HRex
 * sec-5 and sec-6: patient consent and sensitive information are handled as the law and the more
 * protective policy require.
 */
import type { Consent } from '@medplum/fhirtypes';

/** A code in a code system; in policy lists, a code ending in `*` is a prefix. */
export interface PolicyCoding {
  system: string;
  code: string;
}

/** The sharing policy, as loaded from the client's configuration. JSON-serialisable. */
export interface SharingPolicy {
  /** Resources with any of these `meta.security` labels are never sent (v3-Confidentiality R …). */
  withholdSecurityLabels: PolicyCoding[];
  /** Named lists of sensitive clinical codes (`substance-use`, `hiv` …) the operator can edit. */
  categories: Record<string, { enabled: boolean; codes: PolicyCoding[] }>;
  /** Apply the patient's active Consent resources (HRex sec-5). */
  honourConsent: boolean;
  /** Top-level elements always removed (`Patient.photo`); `*` as resourceType means any type. */
  elements?: Array<{ resourceType: string; path: string }>;
}

/** Why something was withheld. */
export type WithheldReason = 'security-label' | 'category' | 'consent' | 'element';

/**
 * One withholding, for the audit trail: by reference and reason only, never resource content.
 * `detail` is a label (`v3-ActCode#ETH`), a category name (`substance-use`), a consent
 * (`Consent/c1`) or an element (`Patient.photo`).
 */
export interface Withheld {
  reference: string;
  reason: WithheldReason;
  detail: string;
}

/** The payer a call would go to: its Organization reference and/or identifier. */
export interface PayerIdentity {
  /** `Organization/123` (the EHR's own reference to the payer organisation). */
  organization?: string;
  /** `system|value` (both must match) or a bare `value` (any system). */
  identifier?: string;
}

/** What {@link applySharingPolicy} inspects. Nothing here is changed. */
export interface SharingInput {
  /** The hook's `context`. */
  context: Record<string, unknown>;
  /** The hook's `prefetch`: each value a resource, a Bundle or `null`. */
  prefetch: Record<string, unknown>;
  /** The patient's Consent resources (the caller's selection for this patient). */
  consents: Consent[];
  payer: PayerIdentity;
  /** The time consent periods are checked against (default: now). */
  now?: Date;
}

/**
 * The outcome. `send`: call the payer with `context` and `prefetch`. `withheld-order`: every
 * order the hook is about was withheld, so no call is made. In both cases `withheldOrders` names
 * the orders that get no CRD call, and `withheld` says why.
 */
export type SharingResult =
  | {
      outcome: 'send';
      context: Record<string, unknown>;
      prefetch: Record<string, unknown>;
      withheld: Withheld[];
      withheldOrders: string[];
    }
  | { outcome: 'withheld-order'; withheld: Withheld[]; withheldOrders: string[] };
