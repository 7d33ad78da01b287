/**
 * Read-only access to the shared public fixtures (`../shared/fixtures` from the project root).
 * They are read in place, never copied; tests skip when the folder is absent (fresh clone).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The shared fixtures folder, relative to the project root (process.cwd()). */
export const FIXTURES = join(process.cwd(), '..', 'shared', 'fixtures');

/** Parsed JSON of `rel` (e.g. `crd-ig/CRDServiceRequest.json`), or undefined when absent. */
export function fixture(rel: string): unknown {
  const file = join(FIXTURES, rel);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as unknown) : undefined;
}

/** The message tests pass to `t.skip` when a fixture is missing. */
export const SKIP = 'shared fixtures not found at ../shared/fixtures (fresh clone): skipped';

/** Every object in `root` whose `url` is `url` (depth-first). */
export function findByUrl<T = Record<string, unknown>>(root: unknown, url: string): T[] {
  const out: T[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (n === null || typeof n !== 'object') return;
    const o = n as Record<string, unknown>;
    if (o.url === url) out.push(o as T);
    Object.values(o).forEach(walk);
  };
  walk(root);
  return out;
}
