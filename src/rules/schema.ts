/**
 * The loaded, validated form of a rules file (see `docs/rules.md` for the file format).
 * Everything here is produced by `loadRules`/`parseRules`; nothing is built by hand elsewhere.
 */
import type {
  CardTemplate,
  ContactDetail,
  CoverageDetail,
  Coding,
  Covered,
  DocNeeded,
  DocPurpose,
  HookName,
  InfoNeeded,
  PaNeeded,
  Reason,
} from '../crd/types.js';
import type { CompiledExpression } from './fhirpath.js';

/** The only rules-file format version this code reads. */
export const RULES_VERSION = 1;

/** One problem found while loading a rules file. */
export interface RulesIssue {
  /** Where, e.g. `payers[0].rules[2].when`. */
  path: string;
  /** Stable code, e.g. `RULES_UNKNOWN_KEY` (see {@link RulesIssueCode}). */
  code: RulesIssueCode;
  message: string;
  /** 1-based line in a YAML file, when known. */
  line?: number;
}

/** Stable issue codes (documented in docs/rules.md). */
export type RulesIssueCode =
  | 'RULES_IO'
  | 'RULES_PARSE'
  | 'RULES_UNKNOWN_KEY'
  | 'RULES_MISSING_KEY'
  | 'RULES_TYPE'
  | 'RULES_UNKNOWN_CODE'
  | 'RULES_BAD_VALUE'
  | 'RULES_SUMMARY_TOO_LONG'
  | 'RULES_FHIRPATH'
  | 'RULES_DUPLICATE_ID'
  | 'RULES_UNKNOWN_REFERENCE'
  | 'RULES_INVARIANT';

/** Thrown by the loader; `issues` lists every problem found, each naming its path. */
export class RulesError extends Error {
  override name = 'RulesError';
  /** Stable error code for callers (the per-issue codes are in `issues`). */
  readonly code = 'RULES_INVALID';

  constructor(
    readonly file: string,
    readonly issues: RulesIssue[],
  ) {
    super(
      `${file}: ${issues.length} problem(s)\n` +
        issues
          .map(
            (i) =>
              `  ${i.path}${i.line === undefined ? '' : ` (line ${i.line})`}: ` +
              `${i.message} [${i.code}]`,
          )
          .join('\n'),
    );
  }
}

/** A set of codes in one code system (or its known equivalents). */
export interface CodeMatcher {
  /** Canonical system URL (aliases such as `hcpcs` already expanded). */
  system: string;
  /** Every system URL treated as the same code system. */
  systems: readonly string[];
  /** Listed codes (`code` or `codes`). */
  codes?: ReadonlySet<string>;
  /** Inclusive range of same-length codes, compared as strings (`range: {from, to}`). */
  range?: { from: string; to: string };
}

/** The coverage outcome a rule (or default) asserts; mirrors `Determination`. */
export interface Outcome {
  covered: Covered;
  paNeeded?: PaNeeded;
  docNeeded?: DocNeeded[];
  docPurpose?: DocPurpose[];
  infoNeeded?: InfoNeeded[];
  questionnaires?: string[];
  details?: CoverageDetail[];
  reasons?: Reason[];
  billingCodes?: Coding[];
  contacts?: ContactDetail[];
  /** `expiry-date` = the decision date plus this many days. */
  expiresInDays?: number;
}

/** Which parts of the outcome become `conditional` when a need is unmet. */
export type ConditionalTarget = 'covered' | 'paNeeded' | 'docNeeded';

/** Data a rule needs (conf-12): when the expression is not true, the outcome is conditional. */
export interface Need {
  expr: CompiledExpression;
  infoNeeded: InfoNeeded;
  conditional: ConditionalTarget[];
  /** Reason text added when unmet (required for infoNeeded `OTH`, crd-ci-q6). */
  reason?: string;
}

/** One coverage rule. */
export interface Rule {
  id: string;
  description?: string;
  /** Any code of the order in any matcher matches; empty = no code condition. */
  codes: CodeMatcher[];
  resourceTypes?: string[];
  plans?: string[];
  hooks?: HookName[];
  when?: CompiledExpression;
  needs: Need[];
  then: Outcome;
  cards: CardTemplate[];
  /** Where it was defined, e.g. `ruleSets.common[3]` (for logs). */
  path: string;
}

/** A benefit plan (Coverage.class with type `plan`) with its own rules and default. */
export interface Plan {
  id: string;
  name?: string;
  default?: Outcome;
  rules: Rule[];
}

/** A payer served by this CRD server. */
export interface Payer {
  id: string;
  /** Card.source.label (resp-4). */
  name: string;
  match: { identifiers: Array<{ system: string; value: string }>; organizationIds: string[] };
  contacts?: ContactDetail[];
  default: Outcome;
  plans: Plan[];
  /** Payer-level rules with rule-set includes expanded, in file order. */
  rules: Rule[];
}

/** A loaded rules file. */
export interface RulesFile {
  version: typeof RULES_VERSION;
  /** The file it came from (for messages). */
  source: string;
  payers: Payer[];
}
