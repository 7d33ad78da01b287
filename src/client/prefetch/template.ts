/**
 * Prefetch templates: a FHIR read (`Patient/{{context.patientId}}`) or type search
 * (`Coverage?patient={{context.patientId}}&status=active`) with tokens. Parsing checks the CDS
 * Hooks "prefetch query restrictions"; filling turns tokens into values and never produces a
 * half-filled query: a token without a value makes the whole template empty.
 */
import type { Resource } from '@medplum/fhirtypes';
import { unresolvable, unsupported } from './failure.js';
import { createResolver } from './references.js';
import { compileToken, evaluateToken, type CompiledToken, type TokenScope } from './token.js';

/** Literal text or a token. */
export type Piece = string | CompiledToken;

export interface SearchParam {
  /** With its modifier, e.g. `code:in`. */
  name: string;
  value: Piece[];
}

export type ParsedTemplate =
  | { kind: 'read'; template: string; type: string; id: Piece[]; variables: string[] }
  /** The whole template is one token giving `Type/id` (e.g. `{{context.userId}}`). */
  | { kind: 'reference'; template: string; token: CompiledToken; variables: string[] }
  | { kind: 'search'; template: string; type: string; params: SearchParam[]; variables: string[] };

/**
 * A filled template. `query` is the relative URL as logged and tested (commas, pipes, colons
 * and slashes left unescaped); `params` is what a search sends. `empty`: the named token has no
 * value, so there is nothing to ask for.
 */
export type ResolvedTemplate =
  | { kind: 'read'; type: string; id: string; query: string }
  | { kind: 'search'; type: string; params: URLSearchParams; query: string }
  | { empty: true; token: string };

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const ID = /^(?!\.+$)[A-Za-z0-9\-.]{1,64}$/;
const REFERENCE = /^([A-Z][A-Za-z]{1,63})\/((?!\.+$)[A-Za-z0-9\-.]{1,64})$/;
/** A search parameter code (lower-case start, hyphens) and at most one modifier. */
const PARAM = /^(_?[a-z][A-Za-z0-9-]*)(?::([A-Za-z-]+))?$/;
/** Result parameters and `_lastUpdated` (an instant: a date parameter). */
const SPECIAL = new Set(['_id', '_count', '_sort', '_lastUpdated']);
const SORT = /^-?_?[a-z][A-Za-z0-9-]*(,-?_?[a-z][A-Za-z0-9-]*)*$/;
/** Date prefixes CDS Hooks does not allow (it allows `eq`, `lt`, `gt`, `ge`, `le`). */
const BAD_PREFIX = /^(ne|sa|eb|ap)\d{4}(-\d\d(-\d\d)?)?(T|$)/;
const MAX_TEMPLATE = 8192;

type Raw = Array<string | { token: string }>;

/** Splits a template into literal text and `{{token}}` sources. */
function tokenize(template: string): Raw {
  const out: Raw = [];
  let rest = template;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    const text = open < 0 ? rest : rest.slice(0, open);
    if (text.includes('}}')) throw unsupported(`"}}" without "{{" in "${template}"`);
    if (text) out.push(text);
    if (open < 0) break;
    const close = rest.indexOf('}}', open + 2);
    if (close < 0) throw unsupported(`"{{" without "}}" in "${template}"`);
    const token = rest.slice(open + 2, close);
    if (token.includes('{{')) throw unsupported(`nested "{{" in "${template}"`);
    out.push({ token });
    rest = rest.slice(close + 2);
  }
  return out;
}

/** Splits at `sep` in literal text only, into at most `max` parts. */
function split(raw: Raw, sep: string, max = Infinity): Raw[] {
  const parts: Raw[] = [[]];
  for (const piece of raw) {
    if (typeof piece !== 'string') {
      parts.at(-1)!.push(piece);
      continue;
    }
    piece.split(sep).forEach((text, i) => {
      if (i > 0) {
        if (parts.length < max) parts.push([]);
        else parts.at(-1)!.push(sep);
      }
      if (text) parts.at(-1)!.push(text);
    });
  }
  return parts.map(joinText);
}

function joinText(raw: Raw): Raw {
  const out: Raw = [];
  for (const piece of raw) {
    const last = out.at(-1);
    if (typeof piece === 'string' && typeof last === 'string') out[out.length - 1] = last + piece;
    else out.push(piece);
  }
  return out;
}

function decode(text: string, template: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw unsupported(`bad percent-encoding in "${template}"`);
  }
}

const compile = (raw: Raw, template: string): Piece[] =>
  raw.map((p) => (typeof p === 'string' ? decode(p, template) : compileToken(p.token)));

function checkParam(name: string, value: Piece[], template: string): void {
  const m = PARAM.exec(name);
  const quoted = `"${name}" in "${template}"`;
  if (!m) throw unsupported(`search parameter ${quoted} is not a plain parameter (no chaining)`);
  const [, code, modifier] = m as unknown as [string, string, string | undefined];
  if (modifier !== undefined && modifier !== 'in') {
    throw unsupported(`modifier ":${modifier}" of ${quoted} is not allowed (only ":in")`);
  }
  if (code.startsWith('_') && !SPECIAL.has(code)) {
    throw unsupported(`parameter ${quoted} is not allowed (only _id, _count, _sort)`);
  }
  const [first] = value;
  const literal = value.length === 1 && typeof first === 'string' ? first : undefined;
  if (code === '_count' && literal !== undefined && !/^[1-9]\d{0,5}$/.test(literal)) {
    throw unsupported(`_count in "${template}" must be a positive integer`);
  }
  if (code === '_sort' && (literal === undefined || !SORT.test(literal))) {
    throw unsupported(`_sort in "${template}" must list parameter names`);
  }
  const prefixed =
    typeof first === 'string' &&
    (BAD_PREFIX.test(first) || (/^(ne|sa|eb|ap)$/.test(first) && value.length > 1));
  if (prefixed) throw unsupported(`the prefix of ${quoted} is not allowed (eq, lt, gt, ge, le)`);
}

/**
 * Parses and checks a template. Throws a {@link PrefetchFailure} `unsupported` when the
 * template is not a read or type search within the CDS Hooks prefetch restrictions (read, type
 * search, token equality and `:in`, date prefixes eq/lt/gt/ge/le, `_count`, `_sort`).
 */
export function parseTemplate(template: string): ParsedTemplate {
  if (template.length > MAX_TEMPLATE) throw unsupported('template too long');
  const text = template.trim();
  const [path = [], query] = split(tokenize(text), '?', 2);
  const [head, tail] = path;

  if (path.length === 1 && typeof head === 'object') {
    if (query) throw unsupported(`"${text}" searches without a resource type`);
    const token = compileToken(head.token);
    return { kind: 'reference', template: text, token, variables: token.variables };
  }
  if (typeof head !== 'string') throw unsupported(`"${text}" does not start with a resource type`);
  const slash = head.indexOf('/');
  const type = slash < 0 ? head : head.slice(0, slash);
  if (!TYPE.test(type)) throw unsupported(`"${type}" in "${text}" is not a resource type`);

  if (slash >= 0) {
    const idText = head.slice(slash + 1);
    const idRaw: Raw = idText ? [idText, ...path.slice(1)] : path.slice(1);
    const literalOk = idRaw.length === 1 && typeof idRaw[0] === 'string' && ID.test(idText);
    const tokenOk = idRaw.length === 1 && typeof idRaw[0] === 'object';
    if (query !== undefined || !(literalOk || tokenOk)) {
      throw unsupported(`"${text}" is neither a read (Type/id) nor a type search`);
    }
    const id = compile(idRaw, text);
    return { kind: 'read', template: text, type, id, variables: variablesOf(id) };
  }
  if (tail !== undefined) throw unsupported(`"${text}" is not a type search`);

  const params: SearchParam[] = [];
  for (const part of split(query ?? [], '&')) {
    if (part.length === 0) continue;
    const [nameRaw = [], valueRaw] = split(part, '=', 2);
    if (nameRaw.length !== 1 || typeof nameRaw[0] !== 'string') {
      throw unsupported(`a search parameter name in "${text}" is not literal`);
    }
    const name = decode(nameRaw[0], text);
    if (!valueRaw || valueRaw.length === 0)
      throw unsupported(`"${name}" in "${text}" has no value`);
    const value = compile(valueRaw, text);
    checkParam(name, value, text);
    params.push({ name, value });
  }
  const variables = variablesOf(params.flatMap((p) => p.value));
  return { kind: 'search', template: text, type, params, variables };
}

const variablesOf = (pieces: Piece[]) => [
  ...new Set(pieces.flatMap((p) => (typeof p === 'string' ? [] : p.variables))),
];

/** FHIR search escaping of one value, so a comma inside it is not read as "or". */
const escapeValue = (v: string) => v.replace(/[\\,$|]/g, (c) => `\\${c}`);

/** Percent-encoding for the logged query, leaving `,`, `|`, `:` and `/` readable. */
export const encodeForLog = (v: string) =>
  encodeURIComponent(v).replace(/%(2C|7C|3A|2F)/gi, (e) => decodeURIComponent(e));

/**
 * Every token's values. A token without values wins over another token's failure: the query
 * cannot be formed either way, and the data it would select is known not to exist.
 */
async function evaluateAll(
  tokens: CompiledToken[],
  scope: TokenScope,
): Promise<Map<CompiledToken, string[]> | { empty: CompiledToken }> {
  const settled = await Promise.allSettled(tokens.map((t) => evaluateToken(t, scope)));
  const empty = settled.findIndex((s) => s.status === 'fulfilled' && s.value.length === 0);
  if (empty >= 0) return { empty: tokens[empty]! };
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  const values = settled.map((s) => (s as PromiseFulfilledResult<string[]>).value);
  return new Map(tokens.map((t, i) => [t, values[i]!]));
}

const tokensOf = (pieces: Piece[]) =>
  pieces.filter((p): p is CompiledToken => typeof p !== 'string');

/** A search value: literal text, and each token's values joined by commas ("or"). */
const fill = (pieces: Piece[], values: Map<CompiledToken, string[]>) =>
  pieces
    .map((p) => (typeof p === 'string' ? p : values.get(p)!.map(escapeValue).join(',')))
    .join('');

/**
 * Fills a parsed template. Throws a {@link PrefetchFailure} when a token cannot be evaluated or
 * its value does not fit a read.
 */
export async function fillTemplate(
  parsed: ParsedTemplate,
  scope: TokenScope,
): Promise<ResolvedTemplate> {
  const pieces =
    parsed.kind === 'search'
      ? parsed.params.flatMap((p) => p.value)
      : parsed.kind === 'read'
        ? parsed.id
        : [parsed.token];
  const values = await evaluateAll(tokensOf(pieces), scope);
  if (!(values instanceof Map)) return { empty: true, token: values.empty.source };

  if (parsed.kind === 'search') {
    const params = new URLSearchParams(
      parsed.params.map((p): [string, string] => [p.name, fill(p.value, values)]),
    );
    const pairs = [...params].map(([k, v]) => `${k}=${encodeForLog(v)}`);
    const query = pairs.length ? `${parsed.type}?${pairs.join('&')}` : parsed.type;
    return { kind: 'search', type: parsed.type, params, query };
  }
  const [piece] = pieces;
  const found = typeof piece === 'string' ? [piece] : values.get(piece!)!;
  if (found.length > 1) {
    throw unresolvable(`"${parsed.template}" gives several values for a read`);
  }
  const [value] = found as [string];
  const m = parsed.kind === 'read' ? [value, parsed.type, value] : REFERENCE.exec(value);
  if (!m || !ID.test(m[2]!)) {
    throw unresolvable(`"${parsed.template}" does not give a valid ${parsed.kind} target`);
  }
  const [, type, id] = m as [string, string, string];
  return { kind: 'read', type, id, query: `${type}/${id}` };
}

/** What {@link resolveTemplate} fills a template from. */
export interface TemplateVars {
  context: Record<string, unknown>;
  /** The current user, `Type/id`. */
  user?: string;
  /** Earlier keys' results for `%key` (a missing or `null` key counts as no data). */
  prefetch?: Record<string, Resource | null>;
  /** Reads from the EHR's FHIR API for `resolve()`; without it only the context is searched. */
  read?: (type: string, id: string) => Promise<Resource | undefined>;
}

/**
 * Parses and fills one template: the resolved query, or `{ empty: true }` when a token has no
 * value (the key's data is absent: `null` in prefetch). Throws a {@link PrefetchFailure}.
 *
 * @example
 * await resolveTemplate('Patient/{{context.patientId}}', { context: { patientId: '123' } });
 * // { kind: 'read', type: 'Patient', id: '123', query: 'Patient/123' }
 */
export async function resolveTemplate(
  template: string,
  vars: TemplateVars,
): Promise<ResolvedTemplate> {
  const parsed = parseTemplate(template);
  const resolver = createResolver(vars.context, vars.read);
  const variables = Object.fromEntries(parsed.variables.map((v) => [v, vars.prefetch?.[v] ?? []]));
  return fillTemplate(parsed, {
    context: vars.context,
    user: vars.user,
    variables,
    resolve: (items) => resolver.resolve(items),
  });
}
