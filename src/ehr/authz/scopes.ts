/**
 * SMART App Launch 2.2 scopes: parsing the v2 form (`patient/Coverage.rs`, `system/*.r`,
 * `user/Task.cu?status=ready`) and the v1 form (`patient/Coverage.read`), normalising v1 to v2,
 * and deciding which requested scopes a client's registered scope covers. The authorization
 * server never grants a scope its client was not registered for, and grants `system/` scopes
 * only to backend services (client credentials).
 */

/** The launch context of a resource scope. */
export type ScopeContext = 'patient' | 'user' | 'system';

/** A parsed SMART resource scope. */
export interface ResourceScope {
  context: ScopeContext;
  /** A FHIR resource type or `*`. */
  resourceType: string;
  /** The v2 permissions in canonical order, a subset of `cruds`. */
  permissions: string;
  /** The v2 query (`status=ready`), without the `?`. */
  query?: string;
}

/** Scopes that are not resource scopes and that the server understands. */
export const NON_RESOURCE_SCOPES = [
  'launch',
  'openid',
  'fhirUser',
  'offline_access',
  'online_access',
] as const;

/** The scopes the OpenID Connect layer (id token claims) handles. */
export const OIDC_SCOPES = ['openid', 'fhirUser'] as const;

const PERMISSION_ORDER = 'cruds';
const V1_PERMISSIONS: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };
const RESOURCE_SCOPE =
  /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)(?:\?([\x21-\x7e]{1,512}))?$/;

/** Parses a SMART v1 or v2 resource scope; undefined when `scope` is not one. */
export function parseResourceScope(scope: string): ResourceScope | undefined {
  const m = RESOURCE_SCOPE.exec(scope);
  if (!m) return undefined;
  const [, context, resourceType, perms, query] = m as unknown as [
    string,
    ScopeContext,
    string,
    string,
    string | undefined,
  ];
  if (perms === '') return undefined;
  const v1 = V1_PERMISSIONS[perms];
  // A v2 query parameter only exists on a v2 scope.
  if (v1 !== undefined && query !== undefined) return undefined;
  return { context, resourceType, permissions: v1 ?? perms, ...(query ? { query } : {}) };
}

/** The v2 text of a parsed scope. */
export function formatResourceScope(scope: ResourceScope): string {
  const base = `${scope.context}/${scope.resourceType}.${scope.permissions}`;
  return scope.query ? `${base}?${scope.query}` : base;
}

/** `scope` in SMART v2 form (v1 `.read` becomes `.rs`); other scopes are returned unchanged. */
export function normalizeScope(scope: string): string {
  const parsed = parseResourceScope(scope);
  return parsed ? formatResourceScope(parsed) : scope;
}

/** Splits a space-separated scope string, dropping empty and repeated values. */
export function splitScopes(scope: string | undefined): string[] {
  return [...new Set((scope ?? '').split(' ').filter(Boolean))];
}

/** True when the server understands `scope` (a resource scope or a known launch/OIDC scope). */
export function isKnownScope(scope: string): boolean {
  return (
    parseResourceScope(scope) !== undefined ||
    (NON_RESOURCE_SCOPES as readonly string[]).includes(scope)
  );
}

/** True when the permissions of `requested` are all in `allowed`. */
function permissionsWithin(requested: string, allowed: string): boolean {
  return [...requested].every((p) => allowed.includes(p) && PERMISSION_ORDER.includes(p));
}

/**
 * True when the registered scope `allowed` covers the requested `requested`: same context, same
 * resource type or `*`, no permission beyond it, and, when `allowed` carries a v2 query, the
 * same query (a query only narrows, so an unqualified registration covers a qualified request).
 */
export function covers(allowed: ResourceScope, requested: ResourceScope): boolean {
  return (
    allowed.context === requested.context &&
    (allowed.resourceType === '*' || allowed.resourceType === requested.resourceType) &&
    permissionsWithin(requested.permissions, allowed.permissions) &&
    (allowed.query === undefined || allowed.query === requested.query)
  );
}

/** The flow a token is requested in, which decides the contexts allowed. */
export type ScopeFlow = 'authorization_code' | 'client_credentials';

/** What a client may be granted, from its registration. */
export interface ScopePolicy {
  /** The registered scopes (the most the client may ever get). */
  registered: readonly string[];
  /** The client may receive refresh tokens. */
  refresh: boolean;
  /** The client may be launched by the EHR (`launch` scope). */
  launchable: boolean;
}

/**
 * The requested scopes (in request order, as requested) that `policy` allows in `flow`; the
 * others are dropped, as SMART lets a server grant fewer scopes than asked for. Resource scopes
 * must be covered by a registered one: `system/` only with client credentials, `patient/` and
 * `user/` only with an authorization code. `launch` needs a launchable client, `offline_access`
 * and `online_access` a client with the refresh_token grant.
 */
export function permittedScopes(
  requested: readonly string[],
  policy: ScopePolicy,
  flow: ScopeFlow,
): string[] {
  const registered = policy.registered
    .map(parseResourceScope)
    .filter((s): s is ResourceScope => s !== undefined);
  return [...new Set(requested)].filter((scope) => {
    const parsed = parseResourceScope(scope);
    if (parsed) {
      const contextOk =
        flow === 'client_credentials' ? parsed.context === 'system' : parsed.context !== 'system';
      return contextOk && registered.some((r) => covers(r, parsed));
    }
    if (flow === 'client_credentials' || !policy.registered.includes(scope)) return false;
    if (scope === 'launch') return policy.launchable;
    if (scope === 'offline_access' || scope === 'online_access') return policy.refresh;
    return (OIDC_SCOPES as readonly string[]).includes(scope);
  });
}

/** A FHIR resource type name. */
export const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/**
 * The read-only scopes of a token minted for one CDS Hooks call (found-21): `patient/<Type>.rs`
 * for each resource type the service declared in its prefetch, and nothing else.
 */
export function hookScopes(declaredTypes: readonly string[]): string[] {
  return [...new Set(declaredTypes)].map((type) => `patient/${type}.rs`);
}
