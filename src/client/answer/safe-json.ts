/**
 * A defensive copy of JSON received from a payer: plain objects, arrays and JSON scalars only,
 * bounded depth and size, and no member that could reach an object's prototype when the copy is
 * later merged or assigned (`__proto__`, `constructor`, `prototype`).
 */
import { MAX_JSON_DEPTH } from '../../cds/shapes.js';

/** Members never copied: assigning them to a plain object could change its prototype. */
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/** Bounds of {@link copyJson}. */
export interface CopyLimits {
  /** Deepest nesting of arrays and objects (default {@link MAX_JSON_DEPTH}). */
  maxDepth?: number;
  /** Most values (scalars, arrays, objects) copied (default 100 000). */
  maxNodes?: number;
  /** Longest string, in UTF-16 units (default 1 MiB). */
  maxString?: number;
  /** What to do with a reserved member name: leave it out (default) or throw. */
  reserved?: 'omit' | 'throw';
}

/** Thrown by {@link copyJson}; the message is a fixed text, never the content. */
export class NotJsonError extends Error {
  override name = 'NotJsonError';
}

/** Returns a deep copy of `value` within `limits`, or throws {@link NotJsonError}. */
export function copyJson<T = unknown>(value: unknown, limits: CopyLimits = {}): T {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  const maxNodes = limits.maxNodes ?? 100_000;
  const maxString = limits.maxString ?? 1 << 20;
  const throwOnReserved = limits.reserved === 'throw';
  let nodes = 0;

  const copy = (v: unknown, depth: number): unknown => {
    nodes += 1;
    if (nodes > maxNodes) throw new NotJsonError('too many values');
    if (v === null || typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      if (v.length > maxString) throw new NotJsonError('a string is too long');
      return v;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new NotJsonError('a number is not finite');
      return v;
    }
    if (typeof v !== 'object') throw new NotJsonError('a value is not JSON');
    // The depth is checked before descending, so hostile nesting cannot exhaust the stack.
    if (depth >= maxDepth) throw new NotJsonError('nests too deeply');
    if (Array.isArray(v)) return v.map((c) => copy(c, depth + 1));
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      throw new NotJsonError('an object is not a plain JSON object');
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(v)) {
      if (FORBIDDEN.has(key)) {
        if (throwOnReserved) throw new NotJsonError('a member name is reserved');
        continue;
      }
      const child = (v as Record<string, unknown>)[key];
      if (child !== undefined) out[key] = copy(child, depth + 1);
    }
    return out;
  };

  return copy(value, 0) as T;
}

/** True for a plain (non-array, non-null) object. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
