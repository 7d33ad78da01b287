/**
 * Prefetch tokens: the text between `{{` and `}}` (CDS Hooks "prefetch tokens"). A token is a
 * user identifier (`userPractitionerId`, …) or "simple FHIRPath" (found-23): a path from
 * `context`, a `%key` naming another prefetch key, or `today()`, with `ofType()`, `resolve()`,
 * `extension()`, `|` unions, `.(a|b)` path groups and `+`/`-` date arithmetic.
 *
 * Paths run on fhirpath.js (R4 model, so `medication` finds `medicationReference`). `resolve()` is
 * not fhirpath.js's own, which would fetch URLs: each term is cut at its `.resolve()` calls and
 * the references between the pieces are resolved by crdkit (context first, then the EHR's own
 * FHIR API through the reader).
 */
import type { Resource } from '@medplum/fhirtypes';
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4';
import { unresolvable, unsupported } from './failure.js';
import { countResolve, expandGroups, scan, splitResolve } from './scan.js';

/** Tokens that name the current user (CDS Hooks), plus the pre-1.0 `{{user}}` (`Type/id`). */
export const USER_TOKENS = [
  'userPractitionerId',
  'userPractitionerRoleId',
  'userPatientId',
  'userRelatedPersonId',
  'user',
] as const;
type UserToken = (typeof USER_TOKENS)[number];

/** CDS Hooks names `ofType`, `resolve` and `today`; the CRD templates also use `extension`. */
const FUNCTIONS = new Set(['ofType', 'resolve', 'today', 'extension']);

/** fhirpath.js AST nodes of paths, unions, literals and `+`/`-`; anything else is refused. */
const NODES = new Set([
  'EntireExpression',
  'TermExpression',
  'InvocationExpression',
  'UnionExpression',
  'AdditiveExpression',
  'InvocationTerm',
  'LiteralTerm',
  'ExternalConstantTerm',
  'ParenthesizedTerm',
  'ExternalConstant',
  'MemberInvocation',
  'FunctionInvocation',
  'Functn',
  'ParamList',
  'Identifier',
  'TypeSpecifier',
  'QualifiedIdentifier',
  'StringLiteral',
  'NumberLiteral',
  'DateLiteral',
  'QuantityLiteral',
  'Quantity',
  'Unit',
  'DateTimePrecision',
  'PluralDateTimePrecision',
]);

/** Evaluation steps per path piece: generous for real templates, a stop for runaway ones. */
const MAX_STEPS = 20_000;

type Path = (root: unknown, env: Record<string, unknown>) => unknown[];

type Term =
  | { kind: 'path'; path: Path }
  /** `p0.resolve().p1.resolve()…pn`: `pieces[i]` is undefined when nothing follows a resolve. */
  | { kind: 'chain'; pieces: Array<Path | undefined> };

/** A parsed token, ready to evaluate many times. */
export interface CompiledToken {
  source: string;
  /** `%names` used (without `%`): the prefetch keys this token waits for. */
  variables: string[];
  user?: UserToken;
  terms: Term[];
}

/** What a token is evaluated against. */
export interface TokenScope {
  context: Record<string, unknown>;
  /** The current user, `Type/id` (e.g. `PractitionerRole/123`). */
  user?: string;
  /** Every `%name` the token uses: a resource, a Bundle, or `[]` for no data. */
  variables: Record<string, unknown>;
  /** The resources that References (or reference strings) point to; unknown ones are left out. */
  resolve(items: unknown[]): Promise<Resource[]>;
}

/** Checks the AST against the allowed subset; returns the `%variables` used. */
function checkAst(node: unknown, source: string, variables: Set<string>): void {
  if (node === null || typeof node !== 'object') return;
  const n = node as { type?: string; text?: string; children?: unknown[] };
  const type = n.type ?? '';
  if (!NODES.has(type)) throw unsupported(`"{{${source}}}" uses ${describeNode(type)}`);
  if (type === 'AdditiveExpression' && n.text !== '+' && n.text !== '-') {
    throw unsupported(`"{{${source}}}" uses the operator "${n.text ?? ''}"`);
  }
  const name = identifierOf(n);
  if (type === 'Functn' && !FUNCTIONS.has(name)) {
    throw unsupported(`function ${name}() is not allowed in prefetch tokens`);
  }
  if (type === 'ExternalConstant') variables.add(name.replace(/^[`'"]|[`'"]$/g, ''));
  for (const child of n.children ?? []) checkAst(child, source, variables);
}

const describeNode = (type: string) =>
  type.endsWith('Expression')
    ? `a ${type.replace('Expression', '').toLowerCase()} expression`
    : `"${type}"`;

function identifierOf(n: { children?: unknown[]; text?: string }): string {
  const id = n.children?.find((c) => (c as { type?: string }).type === 'Identifier') as
    { text?: string } | undefined;
  return id?.text ?? n.text ?? '';
}

function compilePath(source: string, whole: string): Path {
  let fn: (root: unknown, env: Record<string, never>, options?: object) => unknown;
  try {
    fn = fhirpath.compile(source, r4Model) as typeof fn;
  } catch {
    throw unsupported(`"{{${whole}}}" is not valid FHIRPath`);
  }
  return (root, env) => {
    let steps = 0;
    const budget = () => {
      steps += 1;
      if (steps > MAX_STEPS) throw new Error('FHIRPath evaluation budget exceeded');
    };
    const out = fn(root, env as Record<string, never>, { debugger: budget });
    return Array.isArray(out) ? out : [out];
  };
}

/** A term starts at `context`, a `%key` or `today()` (CDS Hooks prefetch tokens). */
const HEAD = /^(context(?![\w`])|%|today\s*\()/;

function compileTerm(term: string, source: string): Term {
  if (!HEAD.test(term)) {
    throw unsupported(`"{{${source}}}" must start with "context", a %prefetch key or today()`);
  }
  const pieces = splitResolve(term);
  if (countResolve(term) !== pieces.length - 1) {
    throw unsupported(`"{{${source}}}" uses resolve() inside parentheses`);
  }
  if (pieces.length === 1) return { kind: 'path', path: compilePath(term, source) };
  scan(term, (i, depth) => {
    if (depth === 0 && /[+\-[]/.test(term[i]!)) {
      throw unsupported(`"{{${source}}}" combines resolve() with an operator`);
    }
  });
  return {
    kind: 'chain',
    pieces: pieces.map((piece, i) => {
      if (i === 0) return compilePath(piece, source);
      if (piece.trim() === '') return undefined;
      if (!piece.startsWith('.'))
        throw unsupported(`"{{${source}}}" is not a path after resolve()`);
      return compilePath(piece.slice(1), source);
    }),
  };
}

/**
 * Parses one token (without the braces). Throws a {@link PrefetchFailure} `unsupported` for
 * anything outside the subset.
 *
 * @example
 * compileToken('context.draftOrders.entry.resource.ofType(DeviceRequest).code.resolve().id')
 */
export function compileToken(source: string): CompiledToken {
  const text = source.trim();
  if ((USER_TOKENS as readonly string[]).includes(text)) {
    return { source: text, variables: [], user: text as UserToken, terms: [] };
  }
  if (text === '') throw unsupported('empty prefetch token "{{}}"');
  const terms = expandGroups(text);
  let ast: unknown;
  try {
    ast = fhirpath.parse(terms.join(' | '));
  } catch {
    throw unsupported(`"{{${text}}}" is not valid FHIRPath`);
  }
  const variables = new Set<string>();
  checkAst(ast, text, variables);
  return { source: text, variables: [...variables], terms: terms.map((t) => compileTerm(t, text)) };
}

/**
 * The token's values as strings, de-duplicated, in order of appearance. An empty array means
 * the token has no value. Throws a {@link PrefetchFailure}: `unsupported` when the values are
 * not simple (ids, codes, dates), `unresolvable` when FHIRPath fails, and what `resolve` throws.
 */
export async function evaluateToken(token: CompiledToken, scope: TokenScope): Promise<string[]> {
  const items = token.user
    ? await userValues(token.user, scope)
    : (await Promise.all(token.terms.map((t) => evaluateTerm(t, token, scope)))).flat();
  const out = new Set<string>();
  for (const item of items) {
    if (item === null || item === undefined) continue;
    if (typeof item === 'object') {
      throw unsupported(`"{{${token.source}}}" gives values that are not ids, codes or dates`);
    }
    const text = String(item);
    if (text !== '') out.add(text);
  }
  return [...out];
}

async function evaluateTerm(term: Term, token: CompiledToken, scope: TokenScope) {
  const root = { context: scope.context };
  const run = (path: Path, on: unknown) => {
    try {
      return path(on, scope.variables);
    } catch {
      throw unresolvable(`"{{${token.source}}}" could not be evaluated`);
    }
  };
  if (term.kind === 'path') return run(term.path, root);
  let items = run(term.pieces[0]!, root);
  for (const piece of term.pieces.slice(1)) {
    const resources = await scope.resolve(items);
    items = piece ? resources.flatMap((r) => run(piece, r)) : resources;
  }
  return items;
}

const USER_REF = /^(Practitioner|PractitionerRole|Patient|RelatedPerson)\/([A-Za-z0-9\-.]{1,64})$/;

/** The CDS Hooks user tokens, from the user's `Type/id`. */
async function userValues(name: UserToken, scope: TokenScope): Promise<string[]> {
  const m = USER_REF.exec(scope.user ?? '');
  if (!m) return [];
  const [, type, id] = m as unknown as [string, string, string];
  switch (name) {
    case 'user':
      return [`${type}/${id}`];
    case 'userPractitionerRoleId':
      return type === 'PractitionerRole' ? [id] : [];
    case 'userPatientId':
      return type === 'Patient' ? [id] : [];
    case 'userRelatedPersonId':
      return type === 'RelatedPerson' ? [id] : [];
    case 'userPractitionerId': {
      if (type === 'Practitioner') return [id];
      if (type !== 'PractitionerRole') return [];
      // The practitioner "corresponding to the current user" is the role's practitioner.
      const roles = await scope.resolve([`${type}/${id}`]);
      const refs = roles.flatMap((r) =>
        r.resourceType === 'PractitionerRole' && r.practitioner ? [r.practitioner] : [],
      );
      const practitioners = await scope.resolve(refs);
      return practitioners.flatMap((p) =>
        p.resourceType === 'Practitioner' && p.id ? [p.id] : [],
      );
    }
  }
}
