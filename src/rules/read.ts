/**
 * Typed reading of untrusted parsed YAML/JSON with path tracking: every helper records a
 * {@link RulesIssue} naming the path (`payers[0].rules[2].when`) instead of throwing, so one
 * load reports every problem.
 */
import type { RulesIssue, RulesIssueCode } from './schema.js';

/** A path into the document: keys and list indexes. */
export type Path = ReadonlyArray<string | number>;

/** `['payers', 0, 'rules']` → `payers[0].rules`. */
export function formatPath(path: Path): string {
  return (
    path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${p}`)).join('') ||
    '(root)'
  );
}

/** Collects issues while reading. `lineOf` maps a path to its YAML line when known. */
export class Reader {
  readonly issues: RulesIssue[] = [];

  constructor(private readonly lineOf: (path: Path) => number | undefined = () => undefined) {}

  /** Records a problem at `path`. */
  issue(path: Path, code: RulesIssueCode, message: string): void {
    const line = this.lineOf(path);
    this.issues.push({ path: formatPath(path), code, message, ...(line ? { line } : {}) });
  }

  /**
   * Reads a mapping, reporting unknown keys (`RULES_UNKNOWN_KEY`) and missing required ones.
   * Returns undefined (after an issue) when `v` is not a mapping.
   */
  object(
    v: unknown,
    path: Path,
    required: string[],
    optional: string[] | '*' = [],
  ): Record<string, unknown> | undefined {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      this.issue(path, 'RULES_TYPE', `expected a mapping, got ${kind(v)}`);
      return undefined;
    }
    const o = v as Record<string, unknown>;
    for (const k of optional === '*' ? [] : Object.keys(o)) {
      if (!required.includes(k) && !optional.includes(k)) {
        const allowed = [...required, ...optional].join(', ');
        this.issue([...path, k], 'RULES_UNKNOWN_KEY', `unknown key "${k}" (allowed: ${allowed})`);
      }
    }
    for (const k of required) {
      if (o[k] === undefined || o[k] === null) {
        this.issue([...path, k], 'RULES_MISSING_KEY', `"${k}" is required`);
      }
    }
    return o;
  }

  /** Reads a mapping with free keys (e.g. rule-set names); keys must be ids. */
  map(v: unknown, path: Path): Record<string, unknown> {
    return this.object(v, path, [], '*') ?? {};
  }

  /** Reads a non-empty string. */
  string(v: unknown, path: Path): string | undefined {
    if (typeof v === 'number' && Number.isFinite(v)) return String(v); // YAML: code: 77065
    if (typeof v !== 'string' || v.trim() === '') {
      this.issue(path, 'RULES_TYPE', `expected a non-empty string, got ${kind(v)}`);
      return undefined;
    }
    return v;
  }

  /** Reads a list; `undefined`/absent is an empty list when `optional`. */
  list(v: unknown, path: Path, optional = true): unknown[] {
    if (v === undefined && optional) return [];
    if (!Array.isArray(v)) {
      this.issue(path, 'RULES_TYPE', `expected a list, got ${kind(v)}`);
      return [];
    }
    return v;
  }

  /** Reads a list of strings. */
  strings(v: unknown, path: Path): string[] {
    const out: string[] = [];
    this.list(v, path).forEach((s, i) => {
      const r = this.string(s, [...path, i]);
      if (r !== undefined) out.push(r);
    });
    return out;
  }

  /** Reads a code that must be one of `allowed` (`RULES_UNKNOWN_CODE` otherwise). */
  code<T extends string>(v: unknown, allowed: readonly T[], path: Path): T | undefined {
    const s = this.string(v, path);
    if (s === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(s)) {
      this.issue(
        path,
        'RULES_UNKNOWN_CODE',
        `unknown code "${s}" (allowed: ${allowed.join(', ')})`,
      );
      return undefined;
    }
    return s as T;
  }

  /** Reads a list of codes from `allowed`. */
  codes<T extends string>(v: unknown, allowed: readonly T[], path: Path): T[] {
    const out: T[] = [];
    this.list(v, path).forEach((s, i) => {
      const r = this.code(s, allowed, [...path, i]);
      if (r !== undefined) out.push(r);
    });
    return out;
  }

  /** Reads a finite number (an integer ≥ `min` when `integer`). */
  number(v: unknown, path: Path, integer = false, min = -Infinity): number | undefined {
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      (integer && !Number.isInteger(v)) ||
      v < min
    ) {
      this.issue(
        path,
        'RULES_TYPE',
        `expected ${integer ? 'an integer' : 'a number'}` +
          `${min > -Infinity ? ` ≥ ${min}` : ''}, got ${kind(v)}`,
      );
      return undefined;
    }
    return v;
  }

  /** Reads a boolean. */
  boolean(v: unknown, path: Path): boolean | undefined {
    if (typeof v !== 'boolean') {
      this.issue(path, 'RULES_TYPE', `expected true or false, got ${kind(v)}`);
      return undefined;
    }
    return v;
  }

  /** Reads an absolute http(s) URL. */
  url(v: unknown, path: Path): string | undefined {
    const s = this.string(v, path);
    if (s === undefined) return undefined;
    if (!/^https?:\/\/[^\s/]+\S*$/.test(s)) {
      this.issue(path, 'RULES_BAD_VALUE', `expected an absolute http(s) URL, got "${s}"`);
      return undefined;
    }
    return s;
  }
}

/** A short description of a value's type for messages (never the value itself). */
export function kind(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a mapping' : `a ${typeof v}`;
}
