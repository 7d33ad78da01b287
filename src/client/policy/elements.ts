/**
 * Elements always stripped before a resource leaves (`Patient.photo`, narrative). A resource that
 * lost an element carries the REDACTED security label, so the payer knows the copy is partial and
 * does not write it back over the original.
 */
import { isResource } from './facts.js';

/** v3-ObservationValue REDACTED: information removed for security reasons. */
export const REDACTED = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'REDACTED',
  display: 'redacted',
} as const;

export interface ElementRule {
  resourceType: string;
  path: string;
}

type Json = Record<string, unknown>;

/** The keys of `resource` an element name covers: `photo`, `_photo`; `value[x]`: `valueString` … */
function keysFor(resource: Json, path: string): string[] {
  if (!path.endsWith('[x]')) return [path, `_${path}`].filter((k) => Object.hasOwn(resource, k));
  const base = path.slice(0, -3);
  return Object.keys(resource).filter((k) => {
    const name = k.startsWith('_') ? k.slice(1) : k;
    return name.length > base.length && name.startsWith(base) && /[A-Z]/.test(name[base.length]!);
  });
}

/**
 * Removes the configured elements from a resource and its contained resources, in place (the
 * caller owns a copy). Returns what was removed as `Type.element`, each once.
 */
export function stripElements(resource: Json & { resourceType: string }, rules: ElementRule[]) {
  const removed = new Set<string>();
  for (const rule of rules) {
    if (rule.resourceType !== '*' && rule.resourceType !== resource.resourceType) continue;
    const keys = keysFor(resource, rule.path);
    for (const key of keys) delete resource[key];
    if (keys.length > 0) removed.add(`${resource.resourceType}.${rule.path}`);
  }
  if (Array.isArray(resource.contained)) {
    for (const inner of resource.contained) {
      if (isResource(inner)) for (const r of stripElements(inner, rules)) removed.add(r);
    }
  }
  if (removed.size > 0) markRedacted(resource);
  return [...removed];
}

function markRedacted(resource: Json): void {
  const valid = typeof resource.meta === 'object' && resource.meta && !Array.isArray(resource.meta);
  if (!valid) resource.meta = {};
  const meta = resource.meta as Json;
  const security = Array.isArray(meta.security) ? (meta.security as Json[]) : [];
  const present = security.some((l) => l.system === REDACTED.system && l.code === REDACTED.code);
  if (!present) meta.security = [...security, { ...REDACTED }];
}
