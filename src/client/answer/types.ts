/**
 * The CDS Hooks response as the CRD client keeps it after validation (CDS Hooks 2.0 cards and
 * system actions, CRD `CRDHooksResponseBase`). Unknown members are kept (found-33), so every
 * shape is open; only the members checked by `validateResponse` are typed.
 */
import type { Resource } from '@medplum/fhirtypes';

/** `source.topic` and `overrideReasons` entries. */
export interface Coding {
  system: string;
  code: string;
  display?: string;
}

/** A card link; `appContext` only on `smart` links. */
export interface Link {
  label: string;
  /** An absolute https URL; never rendered as HTML here. */
  url: string;
  type: 'absolute' | 'smart';
  appContext?: string;
}

/** A suggestion action (`description` required) or a system action (`description` optional). */
export interface Action {
  type: 'create' | 'update' | 'delete';
  description?: string;
  /** The whole resource, for `create` and `update`. */
  resource?: Resource;
  /** `Type/id` of what a `delete` removes (CDS Hooks 2.0 string; an array is also accepted). */
  resourceId?: string | string[];
  extension?: Record<string, unknown>;
  [member: string]: unknown;
}

/** A system action: the same shape as a suggestion action. */
export type SystemAction = Action;

export interface Suggestion {
  label: string;
  /** resp-3: every suggestion has a uuid. */
  uuid: string;
  isRecommended?: boolean;
  actions: Action[];
  [member: string]: unknown;
}

/** A validated card. `detail` is GitHub-flavoured markdown from the payer, kept as plain text. */
export interface Card {
  uuid: string;
  /** Fewer than 140 characters. */
  summary: string;
  detail?: string;
  indicator: 'info' | 'warning' | 'critical';
  source: { label: string; url?: string; icon?: string; topic: Coding; [member: string]: unknown };
  links?: Link[];
  suggestions?: Suggestion[];
  selectionBehavior?: 'at-most-one' | 'any';
  overrideReasons?: Coding[];
  extension?: {
    'davinci-crd.associated-resource'?: Array<{ reference: string }>;
    [member: string]: unknown;
  };
  [member: string]: unknown;
}

/**
 * Why something from the payer was left out: `where` is its position (`cards[2]`,
 * `systemActions[0]`), `reason` a fixed text naming the member in quotes. Neither ever holds
 * content of the response (which may carry patient data).
 */
export interface Problem {
  where: string;
  reason: string;
}
