/**
 * The FHIR interactions of the API for payers, each a short pipeline: check the scope, translate
 * the ids received, apply the patient restriction, touch the store, check sec-7, translate the
 * ids sent. Every step that refuses throws a `FhirApiError`; the route answers and audits.
 */
import type { Resource } from '@medplum/fhirtypes';
import { tooDeep } from '../../cds/shapes.js';
import { exposesIdentifier } from '../ids/guard.js';
import { patientOf } from '../store/compartment.js';
import { StoreError } from '../store/errors.js';
import type { ResourceStore } from '../store/resource-store.js';
import { reach, touch, visible, type Access } from './access.js';
import { FhirApiError } from './errors.js';
import type { IdView } from './id-view.js';
import { includeReferences, MAX_MATCHES, parseSearch, searchset } from './search.js';

/** What a route sends: status, body (a FHIR resource) and extra headers. */
export interface Answer {
  status: number;
  body: Resource;
  headers?: Record<string, string>;
}

export interface InteractionContext {
  store: ResourceStore;
  baseUrl: string;
  access: Access;
  view: IdView;
  /** Logs a fixed message (no data) when the sec-7 guard refuses. */
  onGuard(type: string): void;
  /** The sharing policy for payers: true when the resource must not leave. */
  withhold?: (resource: Resource) => boolean;
  /** The sharing policy's stripped elements, on a copy. */
  redact?: (resource: Resource) => Resource;
}

type Json = Record<string, unknown>;

/**
 * sec-7 guard, on every resource about to leave. Its id (internal, and the one the client would
 * see) must not equal or contain one of its identifier values. A failure is the EHR's own data
 * fault, not the client's: the whole answer is refused with 500 `ERR_SEC7` (so the payer reports
 * a technical failure rather than acting on a partial answer), a fixed line is logged without
 * the id or type-specific data, and the audit record names the resource for the operator.
 */
function guard(ctx: InteractionContext, resources: Resource[]): void {
  for (const r of resources) {
    if (exposesIdentifier(r, [r.id, ctx.view.external(r.resourceType, r.id!)])) {
      ctx.onGuard(r.resourceType);
      throw new FhirApiError('ERR_SEC7');
    }
  }
}

function versionHeaders(ctx: InteractionContext, r: Resource): Record<string, string> {
  const headers: Record<string, string> = {};
  if (r.meta?.versionId) headers.etag = `W/"${r.meta.versionId}"`;
  if (r.meta?.lastUpdated) headers['last-modified'] = new Date(r.meta.lastUpdated).toUTCString();
  const id = ctx.view.external(r.resourceType, r.id!);
  headers.location = `${ctx.baseUrl}/${r.resourceType}/${id}/_history/${r.meta?.versionId ?? 1}`;
  return headers;
}

/** `GET [base]/[type]/[id]`. Another patient's resource is a 404, like an absent one. */
export function read(ctx: InteractionContext, type: string, id: string): Answer {
  const limit = reach(ctx.access.grant!, type, 'r');
  const internal = ctx.view.internal(type, id);
  const found = internal ? ctx.store.read(type, internal) : undefined;
  if (!found) throw new FhirApiError('ERR_NOT_FOUND');
  if (!visible(found, limit) || ctx.withhold?.(found)) {
    touch(ctx.access, found);
    throw new FhirApiError('ERR_NOT_FOUND');
  }
  guard(ctx, [found]);
  touch(ctx.access, found);
  const { location: _location, ...headers } = versionHeaders(ctx, found);
  const shown = ctx.redact ? ctx.redact(found) : found;
  return { status: 200, body: ctx.view.outgoing(shown), headers };
}

/**
 * `GET [base]/[type]?…` and `POST [base]/[type]/_search`. Patient parameters must name the
 * token's patient (403 otherwise); every other match is filtered to what the token may see.
 */
export function search(
  ctx: InteractionContext,
  type: string,
  params: Array<[string, string]>,
  selfUrl: string,
): Answer {
  ctx.access.parameters.push(...params.map(([name]) => name));
  const parsed = parseSearch(type, params, ctx.view, ctx.baseUrl);
  const limit = reach(ctx.access.grant!, type, 's');
  for (const include of parsed.includes) {
    for (const target of include.targets) reach(ctx.access.grant!, target, 'r');
  }
  if (limit.patient !== undefined) {
    const others = parsed.patients.filter((p) => p !== limit.patient);
    if (others.length) {
      others.filter(Boolean).forEach((p) => ctx.access.patients.add(p));
      throw new FhirApiError('ERR_PATIENT');
    }
  }
  const found = ctx.store.search(type, parsed.criteria, {
    ...(limit.patient !== undefined ? { patient: limit.patient } : {}),
    limit: MAX_MATCHES + 1,
  });
  if (found.length > MAX_MATCHES) throw new FhirApiError('ERR_SEARCH_TOO_BROAD');
  const matches = found.filter((r) => visible(r, limit) && !ctx.withhold?.(r));
  const seen = new Set(matches.map((r) => `${r.resourceType}/${r.id}`));
  const included: Resource[] = [];
  for (const include of parsed.includes) {
    for (const match of matches) {
      for (const ref of includeReferences(match, include)) {
        const key = `${ref.type}/${ref.id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const r = ctx.store.read(ref.type, ref.id);
        if (r && visible(r, reach(ctx.access.grant!, ref.type, 'r')) && !ctx.withhold?.(r)) {
          included.push(r);
        }
      }
    }
  }
  guard(ctx, [...matches, ...included]);
  [...matches, ...included].forEach((r) => touch(ctx.access, r));
  const shown = (list: Resource[]) => (ctx.redact ? list.map(ctx.redact) : list);
  const bundle = searchset(ctx.baseUrl, selfUrl, shown(matches), shown(included));
  return { status: 200, body: ctx.view.outgoing(bundle) };
}

/** The body as a resource of `type`, or 400. */
function bodyResource(body: unknown, type: string): Json {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FhirApiError('ERR_BODY');
  }
  const resource = body as Json;
  if (resource.resourceType !== type) throw new FhirApiError('ERR_BODY', undefined, 'resourceType');
  if (tooDeep(resource)) throw new FhirApiError('ERR_JSON_DEPTH');
  return resource;
}

/** `POST [base]/[type]`: a new resource under a new id (an id in the body is ignored). */
export function create(ctx: InteractionContext, type: string, body: unknown): Answer {
  const limit = reach(ctx.access.grant!, type, 'c');
  const { id: _ignored, meta: _meta, ...fields } = bodyResource(body, type);
  const resource = ctx.view.incoming(fields as unknown as Resource);
  if (!visible(resource, limit)) {
    const owner = patientOf(resource);
    if (owner) ctx.access.patients.add(owner);
    throw new FhirApiError('ERR_PATIENT');
  }
  const stored = ctx.store.create(resource);
  touch(ctx.access, stored);
  guard(ctx, [stored]);
  return { status: 201, body: ctx.view.outgoing(stored), headers: versionHeaders(ctx, stored) };
}

/** `W/"3"` or `"3"` of an `If-Match` header, as a version id. */
function ifMatchVersion(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:W\/)?"([A-Za-z0-9\-.]{1,64})"$/.exec(header.trim());
  if (!m) throw new FhirApiError('ERR_PRECONDITION');
  return m[1];
}

/**
 * `PUT [base]/[type]/[id]` of an existing resource (no update-as-create). The body's id must be
 * the URL's, its ids are made internal (an id the client was never given is a 400), and it
 * stays with the same patient.
 */
export function update(
  ctx: InteractionContext,
  type: string,
  id: string,
  body: unknown,
  ifMatch: string | undefined,
): Answer {
  const limit = reach(ctx.access.grant!, type, 'u');
  const internal = ctx.view.internal(type, id);
  const current = internal ? ctx.store.read(type, internal) : undefined;
  if (!current) throw new FhirApiError('ERR_NOT_FOUND');
  if (!visible(current, limit)) {
    touch(ctx.access, current);
    throw new FhirApiError('ERR_NOT_FOUND');
  }
  const raw = bodyResource(body, type);
  if (raw.id !== id) throw new FhirApiError('ERR_BODY_ID', undefined, 'id');
  const version = ifMatchVersion(ifMatch);
  const resource = ctx.view.incoming(raw as unknown as Resource);
  if (patientOf(resource) !== patientOf(current)) {
    touch(ctx.access, current);
    throw new FhirApiError('ERR_PATIENT_CHANGED');
  }
  // An update must not make the resource unservable (an identifier equal to its id).
  guard(ctx, [resource]);
  let stored: Resource;
  try {
    stored = ctx.store.update(resource, version !== undefined ? { ifMatch: version } : {});
  } catch (err) {
    if (err instanceof StoreError && err.code === 'ERR_STORE_VERSION') {
      throw new FhirApiError('ERR_PRECONDITION');
    }
    throw err;
  }
  touch(ctx.access, stored);
  guard(ctx, [stored]);
  return { status: 200, body: ctx.view.outgoing(stored), headers: versionHeaders(ctx, stored) };
}
