/**
 * SMART App Launch scopes as the FHIR API applies them: v2 `patient/Coverage.rs`,
 * `system/*.cruds`, `user/Task.c`, and the v1 forms `patient/Coverage.read`, `.write`, `.*`.
 * A `patient/` scope reaches only the token's patient; `user/` and `system/` reach every patient
 * (the authorization server decides who gets them). Scopes with a query (`?category=…`) are not
 * enforced here, so they grant nothing (fail closed).
 */

/** A SMART v2 permission: create, read, update, delete, search. */
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface ParsedScope {
  context: 'patient' | 'user' | 'system';
  /** A resource type or `*`. */
  type: string;
  permissions: ReadonlySet<Permission>;
}

const SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]+)$/;
const V1: Record<string, Permission[]> = {
  read: ['r', 's'],
  write: ['c', 'u', 'd'],
  '*': ['c', 'r', 'u', 'd', 's'],
};

/** Parses one scope; anything else (`launch`, `openid`, malformed, with a query) is undefined. */
export function parseScope(scope: string): ParsedScope | undefined {
  const m = SCOPE.exec(scope);
  if (!m) return undefined;
  const [, context, type, rest] = m;
  let permissions: Permission[] | undefined = V1[rest!];
  // v2: a non-empty subsequence of "cruds", in that order.
  if (!permissions && /^c?r?u?d?s?$/.test(rest!)) permissions = [...rest!] as Permission[];
  if (!permissions?.length) return undefined;
  return {
    context: context as ParsedScope['context'],
    type: type!,
    permissions: new Set(permissions),
  };
}

/**
 * How far `scopes` allow `permission` on `type`: `'all'` (a `user/` or `system/` scope),
 * `'patient'` (only `patient/` scopes: the token's patient alone), or undefined (not at all).
 */
export function allowed(
  scopes: readonly string[],
  type: string,
  permission: Permission,
): 'all' | 'patient' | undefined {
  let reach: 'patient' | undefined;
  for (const scope of scopes) {
    const parsed = parseScope(scope);
    if (!parsed || !parsed.permissions.has(permission)) continue;
    if (parsed.type !== '*' && parsed.type !== type) continue;
    if (parsed.context !== 'patient') return 'all';
    reach = 'patient';
  }
  return reach;
}
