/**
 * Checks a hook request against the CDS Hooks and CRD request rules (hook-20, hook-13) and
 * returns it in one normalized shape. CDS Hooks violations are 400; a request that is valid CDS
 * Hooks but breaks a CRD constraint is 422. Unknown elements are ignored (hook-23, found-33).
 */
import type { Resource } from '@medplum/fhirtypes';
import { CdsError } from './outcome.js';
import { resourceShapeProblem } from './shapes.js';
import type { ContextField, HookDefinition } from '../crd/hooks.js';

/** The CDS Hooks `fhirAuthorization` object as received (`subject`: the CRD server's client id). */
export interface FhirAuthorization {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  subject: string;
  patient?: string;
}

/** A checked hook request. `context` keeps the received values under their current names. */
export interface HookRequest {
  hook: string;
  hookInstance: string;
  fhirServer?: string;
  fhirAuthorization?: FhirAuthorization;
  context: Record<string, unknown>;
  /** Prefetch as received: a value is a resource, a Bundle, `null` (no data) or absent. */
  prefetch: Record<string, unknown>;
  extension: Record<string, unknown>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// FHIR ids; ids made only of dots are refused: as a path segment they would change the URL.
const FHIR_ID = /^(?!\.+$)[A-Za-z0-9\-.]{1,64}$/;
const RELATIVE_REF = /^([A-Z][A-Za-z]+)\/((?!\.+$)[A-Za-z0-9\-.]{1,64})$/;

const bad = (
  element: string,
  message: string,
  issue: 'required' | 'value' | 'structure' = 'value',
) => new CdsError(400, 'ERR_REQUEST_INVALID', message, issue, element);

const unprocessable = (element: string, message: string) =>
  new CdsError(422, 'ERR_REQUEST_CRD', message, 'business-rule', element);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses `Type/id`; undefined when the value is not a relative reference. */
export function parseReference(value: unknown): { type: string; id: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const m = RELATIVE_REF.exec(value);
  return m ? { type: m[1]!, id: m[2]! } : undefined;
}

function checkAuthorization(raw: unknown): FhirAuthorization {
  if (!isObject(raw))
    throw bad('fhirAuthorization', '"fhirAuthorization" must be an object', 'structure');
  const field = (name: string) => `fhirAuthorization.${name}`;
  for (const name of ['access_token', 'scope', 'subject']) {
    if (typeof raw[name] !== 'string' || raw[name] === '') {
      throw bad(
        field(name),
        `"${field(name)}" is required and must be a non-empty string`,
        'required',
      );
    }
  }
  if (raw.token_type !== 'Bearer')
    throw bad(field('token_type'), `"${field('token_type')}" must be "Bearer"`);
  if (!Number.isInteger(raw.expires_in) || (raw.expires_in as number) < 0) {
    throw bad(field('expires_in'), `"${field('expires_in')}" must be a non-negative integer`);
  }
  if (raw.patient !== undefined && typeof raw.patient !== 'string') {
    throw bad(field('patient'), `"${field('patient')}" must be a string`);
  }
  return raw as unknown as FhirAuthorization;
}

function checkBundle(name: string, value: unknown): void {
  const at = `context.${name}`;
  if (!isObject(value) || value.resourceType !== 'Bundle') {
    throw bad(at, `"${at}" must be a FHIR Bundle`, 'structure');
  }
  if (!Array.isArray(value.entry) || value.entry.length === 0) {
    throw bad(`${at}.entry`, `"${at}.entry" must hold at least one entry`, 'required');
  }
  value.entry.forEach((entry: unknown, i: number) => {
    const r = isObject(entry) ? entry.resource : undefined;
    if (!isObject(r) || typeof r.resourceType !== 'string') {
      throw bad(
        `${at}.entry[${i}].resource`,
        `"${at}.entry[${i}].resource" must be a resource`,
        'structure',
      );
    }
    // found-36: context resources need an id that actions and apps can reference.
    if (typeof r.id !== 'string' || !FHIR_ID.test(r.id)) {
      throw bad(
        `${at}.entry[${i}].resource.id`,
        `"${at}.entry[${i}].resource.id" must be a FHIR id`,
        'required',
      );
    }
  });
}

function checkField(field: ContextField, value: unknown): void {
  const at = `context.${field.name}`;
  switch (field.kind) {
    case 'id':
      if (typeof value !== 'string' || !FHIR_ID.test(value)) {
        throw bad(at, `"${at}" must be a FHIR id (not a reference)`);
      }
      return;
    case 'reference': {
      const ref = parseReference(value);
      if (!ref || (field.types && !field.types.includes(ref.type))) {
        const allowed = field.types ? ` to ${field.types.join(', ')}` : '';
        throw bad(at, `"${at}" must be a relative reference${allowed}`);
      }
      return;
    }
    case 'reference[]':
      if (!Array.isArray(value) || value.length === 0)
        throw bad(at, `"${at}" must be a non-empty array`);
      value.forEach((v, i) => {
        const ref = parseReference(v);
        if (!ref || (field.types && !field.types.includes(ref.type))) {
          throw bad(`${at}[${i}]`, `"${at}[${i}]" must be a reference to an order`);
        }
      });
      return;
    case 'string[]':
      if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string')) {
        throw bad(at, `"${at}" must be a non-empty array of strings`);
      }
      return;
    case 'array':
      if (!Array.isArray(value) || value.some((v) => !isObject(v))) {
        throw bad(at, `"${at}" must be an array of resources`);
      }
      return;
    case 'bundle':
      checkBundle(field.name, value);
  }
}

/** CRD 2.0.1 names (Inferno): `order` and `task`, each possibly a single value. */
function normalizeAliases(
  def: HookDefinition,
  context: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...context };
  for (const [old, current] of Object.entries(def.aliases ?? {})) {
    if (out[current] === undefined && out[old] !== undefined) {
      out[current] = Array.isArray(out[old]) ? out[old] : [out[old]];
    }
  }
  return out;
}

/** Resources in a context Bundle. */
export function bundleResources(bundle: unknown): Resource[] {
  if (!isObject(bundle) || !Array.isArray(bundle.entry)) return [];
  return bundle.entry
    .map((e: unknown) => (isObject(e) ? e.resource : undefined))
    .filter(isObject) as unknown as Resource[];
}

function checkCrdContext(def: HookDefinition, context: Record<string, unknown>): void {
  if (def.hook === 'order-sign' || def.hook === 'order-select') {
    const orders = bundleResources(context.draftOrders);
    const refs = new Set(orders.map((r) => `${r.resourceType}/${r.id}`));
    if (def.hook === 'order-select') {
      (context.selections as string[]).forEach((s, i) => {
        if (!refs.has(s)) {
          throw unprocessable(
            `context.selections[${i}]`,
            `"context.selections[${i}]" is not in "context.draftOrders"`,
          );
        }
      });
    }
  }
  if (def.hook === 'appointment-book') {
    bundleResources(context.appointments).forEach((r, i) => {
      if (r.resourceType !== 'Appointment') {
        throw unprocessable(
          `context.appointments.entry[${i}]`,
          `"context.appointments.entry[${i}]" must be an Appointment`,
        );
      }
    });
  }
}

/** hook-13: FHIR content crdkit reads must have its FHIR JSON shape (400 naming the element). */
function checkShapes(context: Record<string, unknown>, prefetch: unknown): void {
  const found: Array<[unknown, string]> = [];
  for (const [key, value] of Object.entries(context)) {
    if (Array.isArray(value))
      value.forEach((v, i) => isObject(v) && found.push([v, `context.${key}[${i}]`]));
    else if (isObject(value)) found.push([value, `context.${key}`]);
  }
  for (const [key, value] of Object.entries(isObject(prefetch) ? prefetch : {})) {
    if (value === null) continue;
    if (!isObject(value))
      throw bad(`prefetch.${key}`, `"prefetch.${key}" must be a resource or null`);
    found.push([value, `prefetch.${key}`]);
  }
  for (const [value, path] of found) {
    const problem = resourceShapeProblem(value, path);
    if (problem) {
      throw new CdsError(
        400,
        'ERR_FHIR_INVALID',
        `"${problem.path}" ${problem.message}`,
        'structure',
        problem.path,
      );
    }
  }
}

/** The orders (or Appointments) a request names, counted before any work is done. */
function orderCount(context: Record<string, unknown>): number {
  return (
    bundleResources(context.draftOrders).length +
    bundleResources(context.appointments).length +
    (Array.isArray(context.dispatchedOrders) ? context.dispatchedOrders.length : 0)
  );
}

/** Request limits (see README "Configuration": `limits`). */
export interface RequestLimits {
  maxOrders: number;
}

/** Checks a parsed JSON body for the hook served by `def`. */
export function checkHookRequest(
  def: HookDefinition,
  body: unknown,
  limits: RequestLimits = { maxOrders: 100 },
): HookRequest {
  if (!isObject(body)) throw bad('(body)', 'the request body must be a JSON object', 'structure');
  if (typeof body.hook !== 'string') throw bad('hook', '"hook" is required', 'required');
  if (body.hook !== def.hook) {
    throw bad('hook', `"hook" must be "${def.hook}" for this service`);
  }
  if (typeof body.hookInstance !== 'string' || !UUID.test(body.hookInstance)) {
    throw bad('hookInstance', '"hookInstance" must be a UUID');
  }
  if (
    body.fhirServer !== undefined &&
    (typeof body.fhirServer !== 'string' || !URL.canParse(body.fhirServer))
  ) {
    throw bad('fhirServer', '"fhirServer" must be an absolute URL');
  }
  if (body.fhirAuthorization !== undefined && body.fhirServer === undefined) {
    throw bad(
      'fhirServer',
      '"fhirServer" is required when "fhirAuthorization" is present',
      'required',
    );
  }
  const fhirAuthorization =
    body.fhirAuthorization === undefined ? undefined : checkAuthorization(body.fhirAuthorization);
  if (!isObject(body.context)) throw bad('context', '"context" must be an object', 'required');
  if (body.prefetch !== undefined && body.prefetch !== null && !isObject(body.prefetch)) {
    throw bad('prefetch', '"prefetch" must be an object', 'structure');
  }
  if (body.extension !== undefined && !isObject(body.extension)) {
    throw bad('extension', '"extension" must be an object', 'structure');
  }
  const context = normalizeAliases(def, body.context);
  for (const field of def.context) {
    const value = context[field.name];
    if (value === undefined || value === null) {
      if (field.required)
        throw bad(`context.${field.name}`, `"context.${field.name}" is required`, 'required');
      continue;
    }
    checkField(field, value);
  }
  if (orderCount(context) > limits.maxOrders) {
    throw new CdsError(
      422,
      'ERR_TOO_MANY_ORDERS',
      `the request names more than ${limits.maxOrders} orders; split it into several calls`,
      'too-long',
      'context',
    );
  }
  checkShapes(context, body.prefetch);
  checkCrdContext(def, context);
  // hook-20: CRD makes fhirServer and fhirAuthorization 1..1 (optional in base CDS Hooks).
  if (body.fhirServer === undefined) {
    throw unprocessable('fhirServer', '"fhirServer" is required by CRD (CRDHooksRequest)');
  }
  if (!fhirAuthorization) {
    throw unprocessable(
      'fhirAuthorization',
      '"fhirAuthorization" is required by CRD (CRDHooksRequest)',
    );
  }
  return {
    hook: body.hook,
    hookInstance: body.hookInstance,
    fhirServer: body.fhirServer as string,
    fhirAuthorization,
    context,
    prefetch: isObject(body.prefetch) ? body.prefetch : {},
    extension: isObject(body.extension) ? body.extension : {},
  };
}
