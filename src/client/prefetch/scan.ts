/**
 * Text-level helpers for prefetch tokens: scanning outside string literals, splitting unions,
 * expanding `.(a|b)` path groups and cutting paths at `.resolve()`.
 */
import { unsupported } from './failure.js';

/** Union terms after `.(a|b)` expansion. */
const MAX_TERMS = 500;

/**
 * Visits each character outside string literals and backtick identifiers with the parenthesis
 * depth before it; `visit` returning `true` stops the scan.
 */
export function scan(text: string, visit: (i: number, depth: number) => boolean | void): void {
  let depth = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i]!;
    if (c === "'" || c === '`') {
      const end = closingQuote(text, i);
      if (end < 0) throw unsupported(`unterminated ${c} in "{{${text}}}"`);
      i = end;
      continue;
    }
    if (c === ')') depth -= 1;
    if (depth < 0) throw unsupported(`unbalanced ")" in "{{${text}}}"`);
    if (visit(i, depth) === true) return;
    if (c === '(') depth += 1;
  }
  if (depth !== 0) throw unsupported(`unbalanced "(" in "{{${text}}}"`);
}

function closingQuote(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i += 1) {
    if (text[i] === '\\') i += 1;
    else if (text[i] === text[start]) return i;
  }
  return -1;
}

/** Splits at `|` outside parentheses and literals. */
function splitUnion(text: string): string[] {
  const cuts: number[] = [];
  scan(text, (i, depth) => {
    if (depth === 0 && text[i] === '|') cuts.push(i);
  });
  const out: string[] = [];
  let from = 0;
  for (const cut of [...cuts, text.length]) {
    out.push(text.slice(from, cut).trim());
    from = cut + 1;
  }
  return out;
}

/**
 * Expands the path groups of the standard templates' shorthand,
 * `a.(b|c).d` → `a.b.d`, `a.c.d` (not FHIRPath, so fhirpath.js cannot parse them).
 */
export function expandGroups(expression: string): string[] {
  const expand = (term: string): string[] => {
    let group: { dot: number; open: number } | undefined;
    scan(term, (i, depth) => {
      if (depth === 0 && term[i] === '.' && /^\.\s*\(/.test(term.slice(i))) {
        group = { dot: i, open: term.indexOf('(', i) };
        return true;
      }
    });
    if (!group) return [term];
    const { dot, open } = group;
    let close = -1;
    scan(term.slice(open), (i, depth) => {
      if (depth === 0 && term[open + i] === ')') {
        close = open + i;
        return true;
      }
    });
    const prefix = term.slice(0, dot);
    const suffix = term.slice(close + 1);
    return splitUnion(term.slice(open + 1, close)).flatMap((alt) =>
      expand(`${prefix}.${alt}${suffix}`),
    );
  };
  const terms = splitUnion(expression).flatMap(expand);
  if (terms.length > MAX_TERMS) throw unsupported(`too many paths in "{{${expression}}}"`);
  return terms;
}

/** Cuts a term at its top-level `.resolve()` calls. */
export function splitResolve(term: string): string[] {
  const cuts: Array<[number, number]> = [];
  scan(term, (i, depth) => {
    if (depth !== 0 || term[i] !== '.') return;
    const m = /^\.\s*resolve\s*\(\s*\)/.exec(term.slice(i));
    if (m) cuts.push([i, i + m[0].length]);
  });
  const pieces: string[] = [];
  let from = 0;
  for (const [start, end] of cuts) {
    pieces.push(term.slice(from, start));
    from = end;
  }
  pieces.push(term.slice(from));
  return pieces;
}

/** How many `resolve(` calls the text has, at any depth. */
export function countResolve(text: string): number {
  let count = 0;
  scan(text, (i) => {
    const call = text.startsWith('resolve', i) && /^resolve\s*\(/.test(text.slice(i, i + 64));
    if (call && !/[\w`]/.test(text[i - 1] ?? '')) count += 1;
  });
  return count;
}
