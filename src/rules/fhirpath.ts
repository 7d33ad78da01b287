/**
 * FHIRPath for rule conditions: compiled once at load time against the R4 model, evaluated
 * synchronously with a step and time budget. Functions that would reach the network
 * (`resolve`, `memberOf`, terminology calls) or write request data to the log (`trace`) are
 * refused at load time.
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4';

/** Variables a rule expression may use besides the root fields (`%order`, `%hook`, …). */
export const ENV_VARIABLES = ['order', 'coverage', 'patient', 'hook', 'today', 'payer'] as const;
/** fhirpath.js built-ins that are harmless. */
const BUILTIN_VARIABLES = new Set(['ucum', 'context']);
const FORBIDDEN_FUNCTIONS = new Set([
  'resolve',
  'memberOf',
  'subsumes',
  'subsumedBy',
  'expand',
  'lookup',
  'validateVS',
  'validateCS',
  'translate',
  'trace',
]);

/** Evaluation budget per expression: AST evaluation steps and wall-clock milliseconds. */
export const BUDGET = { steps: 50_000, ms: 100 } as const;

/** An expression exceeded {@link BUDGET}. */
export class FhirPathBudgetError extends Error {
  override name = 'FhirPathBudgetError';
  readonly code = 'RULES_FHIRPATH_BUDGET';
}

/** A compiled rule expression. */
export interface CompiledExpression {
  source: string;
  /** Evaluates against `root`; throws on evaluation errors or when over budget. */
  evaluate(root: unknown, env: Record<string, unknown>): unknown[];
}

/**
 * Compiles `source` or throws an Error whose message says what is wrong (syntax, a refused
 * function, an unknown `%variable`, a function fhirpath.js does not implement).
 */
export function compileExpression(source: string): CompiledExpression {
  if (source.trim() === '') throw new Error('empty expression');
  const fn = fhirpath.compile(source, r4Model, { traceFn: () => undefined });
  const ast: unknown = fhirpath.parse(source);
  for (const name of names(ast, 'Functn')) {
    if (FORBIDDEN_FUNCTIONS.has(name)) {
      throw new Error(`function ${name}() is not allowed in rules (network or logging)`);
    }
  }
  for (const name of names(ast, 'ExternalConstant')) {
    const bare = name.replace(/^[`"']|[`"']$/g, '');
    if (!BUILTIN_VARIABLES.has(bare) && !(ENV_VARIABLES as readonly string[]).includes(bare)) {
      throw new Error(
        `unknown variable %${bare}; use one of ${ENV_VARIABLES.map((v) => `%${v}`).join(
          ', ',
        )} or the root fields`,
      );
    }
  }
  const compiled: CompiledExpression = {
    source,
    evaluate(root, env) {
      let steps = 0;
      const deadline = Date.now() + BUDGET.ms;
      const result: unknown = fn(root, env as Record<string, never>, {
        debugger: () => {
          steps += 1;
          if (steps > BUDGET.steps || ((steps & 255) === 0 && Date.now() > deadline)) {
            throw new FhirPathBudgetError('FHIRPath evaluation budget exceeded');
          }
        },
      });
      return Array.isArray(result) ? result : [result];
    },
  };
  trial(compiled);
  return compiled;
}

/**
 * Runs the expression once on an empty request so that unknown functions fail at load time
 * (fhirpath.js only reports them when evaluated). Other errors are data-dependent: ignored.
 */
function trial(expr: CompiledExpression): void {
  const order = { resourceType: 'ServiceRequest' };
  const coverage = { resourceType: 'Coverage' };
  const env = { order, coverage, patient: {}, hook: 'order-sign', today: '2000-01-01', payer: 'x' };
  try {
    expr.evaluate({ context: {}, prefetch: {}, order, coverage, patient: {} }, env);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/^Not implemented|asynchronous function/.test(msg)) throw new Error(msg);
  }
}

/** FHIRPath truth for rules: at least one value and none of them `false`. */
export function isTrue(result: unknown[]): boolean {
  return result.length > 0 && result.every((v) => v !== false);
}

/** Texts of the Identifier children of every AST node of `type`. */
function names(node: unknown, type: string, out: string[] = []): string[] {
  if (node === null || typeof node !== 'object') return out;
  const n = node as { type?: string; children?: unknown[] };
  if (n.type === type) {
    const id = n.children?.find((c) => (c as { type?: string }).type === 'Identifier');
    const text = (id as { text?: unknown } | undefined)?.text;
    if (typeof text === 'string') out.push(text);
  }
  for (const c of n.children ?? []) names(c, type, out);
  return out;
}
