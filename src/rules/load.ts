/**
 * Loading a rules file (YAML, or JSON by extension) into a validated {@link RulesFile}.
 * Everything is checked here, once, so `decide` can trust what it gets.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { LineCounter, parseDocument, visit } from 'yaml';
import { type Path, Reader } from './read.js';
import { RULES_VERSION, RulesError, type RulesFile } from './schema.js';
import { readRulesFile } from './validate.js';

/**
 * Reads and validates the rules file at `path`. Throws a {@link RulesError} listing every
 * problem with its path (and YAML line): unknown keys, wrong types, unknown codes, long
 * summaries, FHIRPath that does not compile, duplicate ids, outcomes violating crd-ci-q1..q9.
 */
export function loadRules(path: string): RulesFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new RulesError(path, [
      { path: '(file)', code: 'RULES_IO', message: `cannot read (${code})` },
    ]);
  }
  return parseRules(text, path, extname(path).toLowerCase() === '.json' ? 'json' : 'yaml');
}

/** Validates rules given as text; `source` names it in messages. */
export function parseRules(
  text: string,
  source = '(inline)',
  format: 'yaml' | 'json' = 'yaml',
): RulesFile {
  let data: unknown;
  let reader: Reader;
  if (format === 'json') {
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new RulesError(source, [
        {
          path: '(file)',
          code: 'RULES_PARSE',
          message: `invalid JSON: ${e instanceof Error ? e.message : String(e)}`,
        },
      ]);
    }
    reader = new Reader();
  } else {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new RulesError(
        source,
        doc.errors.map((e) => ({
          path: '(file)',
          code: 'RULES_PARSE' as const,
          message: e.message.split('\n')[0] ?? '',
          line: lines.linePos(e.pos[0]).line,
        })),
      );
    }
    // YAML reads `code: 0123` as the number 123: keep such codes as written.
    visit(doc, {
      Scalar(_key, node) {
        if (typeof node.value === 'number' && /^[+-]?0\d/.test(node.source ?? '')) {
          node.value = node.source;
        }
      },
    });
    data = doc.toJS({ maxAliasCount: 1000 });
    reader = new Reader((path: Path) => {
      for (let n = path.length; n >= 0; n -= 1) {
        const node: unknown = doc.getIn(path.slice(0, n), true);
        const range = (node as { range?: [number, number, number] } | undefined)?.range;
        if (range !== undefined) return lines.linePos(range[0]).line;
      }
      return undefined;
    });
  }
  const { payers } = readRulesFile(reader, data);
  if (reader.issues.length > 0) throw new RulesError(source, reader.issues);
  // Outcomes and card templates are shared by every response that uses them: frozen, so no
  // code can change one call's answer by modifying another's.
  for (const payer of payers) {
    deepFreeze(payer.default);
    deepFreeze(payer.contacts);
    for (const plan of payer.plans) deepFreeze(plan.default);
    for (const rule of [...payer.rules, ...payer.plans.flatMap((p) => p.rules)]) {
      deepFreeze(rule.then);
      deepFreeze(rule.cards);
    }
  }
  return { version: RULES_VERSION, source, payers };
}

/** Freezes plain data (objects and arrays) all the way down. */
function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
}
