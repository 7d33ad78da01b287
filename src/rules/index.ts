/**
 * The payer's coverage rules: load and validate a rules file, match a Coverage to a payer,
 * decide coverage for an order. See docs/rules.md for the file format.
 */
export { loadRules, parseRules } from './load.js';
export { matchPayer, planOf, type PayerMatchError } from './payer.js';
export { decide, related, type DecideOptions } from './evaluate.js';
export { SYSTEM_ALIASES, systemsFor, matches, anyMatch } from './code-systems.js';
export {
  BUDGET,
  compileExpression,
  ENV_VARIABLES,
  FhirPathBudgetError,
  isTrue,
} from './fhirpath.js';
export type { CompiledExpression } from './fhirpath.js';
export {
  RULES_VERSION,
  RulesError,
  type CodeMatcher,
  type ConditionalTarget,
  type Need,
  type Outcome,
  type Payer,
  type Plan,
  type Rule,
  type RulesFile,
  type RulesIssue,
  type RulesIssueCode,
} from './schema.js';
