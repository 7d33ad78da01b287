/**
 * JSON shape checks for the FHIR content of a hook request: the elements crdkit reads must have
 * their FHIR JSON types (hook-13: content that fails FHIR core validation is a 400), and no
 * value may nest deeper than a fixed limit. Every walk here is iterative, so hostile nesting
 * cannot exhaust the stack.
 */

/** Deepest JSON nesting accepted in a request or a FHIR response. */
export const MAX_JSON_DEPTH = 64;

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** True when `value` nests deeper than `max` arrays and objects. */
export function tooDeep(value: Json, max = MAX_JSON_DEPTH): boolean {
  const stack: Array<[Json, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

export type Kind =
  | 'id'
  | 'string'
  | 'object'
  | 'object[]'
  | 'CodeableConcept'
  | 'CodeableConcept[]'
  | 'Reference'
  | 'Reference[]'
  | 'Identifier[]'
  | 'Period';

/** The elements crdkit reads, per resource type: `a.b` descends objects, `a[].b` arrays. */
const READ: Record<string, Array<[string, Kind]>> = {
  ServiceRequest: [
    ['code', 'CodeableConcept'],
    ['basedOn', 'Reference[]'],
  ],
  DeviceRequest: [
    ['codeCodeableConcept', 'CodeableConcept'],
    ['codeReference', 'Reference'],
    ['basedOn', 'Reference[]'],
  ],
  MedicationRequest: [
    ['medicationCodeableConcept', 'CodeableConcept'],
    ['medicationReference', 'Reference'],
    ['basedOn', 'Reference[]'],
  ],
  NutritionOrder: [
    ['oralDiet', 'object'],
    ['oralDiet.type', 'CodeableConcept[]'],
    ['enteralFormula', 'object'],
    ['enteralFormula.baseFormulaType', 'CodeableConcept'],
    ['enteralFormula.additiveType', 'CodeableConcept'],
    ['supplement', 'object[]'],
    ['supplement[].type', 'CodeableConcept'],
  ],
  VisionPrescription: [
    ['lensSpecification', 'object[]'],
    ['lensSpecification[].product', 'CodeableConcept'],
  ],
  CommunicationRequest: [
    ['payload', 'object[]'],
    ['basedOn', 'Reference[]'],
  ],
  Appointment: [
    ['serviceType', 'CodeableConcept[]'],
    ['serviceCategory', 'CodeableConcept[]'],
    ['basedOn', 'Reference[]'],
  ],
  Coverage: [
    ['status', 'string'],
    ['payor', 'Reference[]'],
    ['beneficiary', 'Reference'],
    ['period', 'Period'],
    ['class', 'object[]'],
    ['class[].value', 'string'],
    ['class[].type', 'CodeableConcept'],
    ['identifier', 'Identifier[]'],
    ['subscriberId', 'string'],
  ],
  Organization: [['identifier', 'Identifier[]']],
  Medication: [['code', 'CodeableConcept']],
  Device: [['type', 'CodeableConcept']],
  Bundle: [['entry', 'object[]']],
};

/**
 * Resource ids: FHIR's `[A-Za-z0-9\-.]{1,64}`, plus `_`, which the Inferno kit's example
 * Coverage (`coverage_example`) uses. Ids made only of dots are refused: they would change a URL.
 */
interface Segment {
  key: string;
  each: boolean;
}

/** {@link READ} with its paths split once. */
const READ_SEGMENTS: Record<string, Array<[readonly Segment[], Kind]>> = Object.fromEntries(
  Object.entries(READ).map(([type, rules]) => [
    type,
    rules.map(([path, kind]) => [
      path.split('.').map((s) => ({ key: s.replace(/\[\]$/, ''), each: s.endsWith('[]') })),
      kind,
    ]),
  ]),
);

const FHIR_ID = /^(?!\.+$)[A-Za-z0-9\-._]{1,64}$/;

const strings = (o: Record<string, Json>, keys: string[]) =>
  keys.every((k) => o[k] === undefined || typeof o[k] === 'string');

const codings = (v: Json) =>
  v === undefined ||
  (Array.isArray(v) &&
    v.every((c) => isObject(c) && strings(c, ['system', 'code', 'display', 'version'])));

const isIdentifier = (v: Json) => isObject(v) && strings(v, ['system', 'value']);

/** Whether `value` has the JSON shape of `kind` (only the members crdkit reads are checked). */
function fits(value: Json, kind: Kind): boolean {
  switch (kind) {
    case 'id':
      return typeof value === 'string' && FHIR_ID.test(value);
    case 'string':
      return typeof value === 'string';
    case 'object':
      return isObject(value);
    case 'object[]':
      return Array.isArray(value) && value.every(isObject);
    case 'CodeableConcept':
      return isObject(value) && strings(value, ['text']) && codings(value.coding);
    case 'CodeableConcept[]':
      return Array.isArray(value) && value.every((v) => fits(v, 'CodeableConcept'));
    case 'Reference':
      return isObject(value) && strings(value, ['reference', 'display', 'type']);
    case 'Reference[]':
      return Array.isArray(value) && value.every((v) => fits(v, 'Reference'));
    case 'Identifier[]':
      return Array.isArray(value) && value.every(isIdentifier);
    case 'Period':
      return isObject(value) && strings(value, ['start', 'end']);
  }
}

/** A shape problem: where (`context.draftOrders.entry[0].resource.code`) and what. */
export interface ShapeProblem {
  path: string;
  message: string;
}

/** Values at `path` (segments of `a.b` / `a[].b`) under `root`, with their concrete paths. */
function at(
  root: Record<string, Json>,
  segments: readonly Segment[],
  base: string,
): Array<[Json, string]> {
  let current: Array<[Json, string]> = [[root, base]];
  for (const { key, each } of segments) {
    const next: Array<[Json, string]> = [];
    for (const [v, p] of current) {
      if (!isObject(v) || v[key] === undefined) continue;
      const child = v[key];
      if (!each) next.push([child, `${p}.${key}`]);
      else if (Array.isArray(child)) child.forEach((c, i) => next.push([c, `${p}.${key}[${i}]`]));
    }
    if (next.length === 0) return next;
    current = next;
  }
  return current;
}

/**
 * Rules that hold wherever the element appears: extensions (crdkit reads billing options and
 * copies order extensions) and resource ids. Other unknown content is left alone (hook-23).
 */
function genericProblem(o: Record<string, Json>, path: string): ShapeProblem | undefined {
  for (const key of ['extension', 'modifierExtension']) {
    const list = o[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return { path: `${path}.${key}`, message: 'must be an array' };
    for (const [i, e] of list.entries()) {
      const at = `${path}.${key}[${i}]`;
      if (!isObject(e) || typeof e.url !== 'string') {
        return { path: at, message: 'must be an extension with a "url"' };
      }
      if (
        e.valueCodeableConcept !== undefined &&
        !fits(e.valueCodeableConcept, 'CodeableConcept')
      ) {
        return { path: `${at}.valueCodeableConcept`, message: 'must be a CodeableConcept' };
      }
      if (e.valueReference !== undefined && !fits(e.valueReference, 'Reference')) {
        return { path: `${at}.valueReference`, message: 'must be a Reference' };
      }
    }
  }
  if (typeof o.resourceType === 'string' && o.id !== undefined && !fits(o.id, 'id')) {
    return { path: `${path}.id`, message: 'must be a FHIR id' };
  }
  return undefined;
}

/**
 * The first problem in a resource's shape, or undefined. `base` is the resource's path in the
 * request. Checks the generic datatype rules everywhere and the elements crdkit reads.
 */
export function resourceShapeProblem(resource: Json, base: string): ShapeProblem | undefined {
  if (!isObject(resource) || typeof resource.resourceType !== 'string') {
    return { path: base, message: 'must be a FHIR resource' };
  }
  const stack: Array<[Json, string]> = [[resource, base]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (Array.isArray(v)) {
      v.forEach((c, i) => typeof c === 'object' && c !== null && stack.push([c, `${path}[${i}]`]));
      continue;
    }
    if (!isObject(v)) continue;
    const problem = genericProblem(v, path);
    if (problem) return problem;
    const rules =
      typeof v.resourceType === 'string' && Object.hasOwn(READ_SEGMENTS, v.resourceType)
        ? READ_SEGMENTS[v.resourceType]!
        : [];
    for (const [rule, kind] of rules) {
      for (const [value, p] of at(v, rule, path)) {
        if (!fits(value, kind)) return { path: p, message: `must be ${article(kind)}` };
      }
    }
    for (const [k, c] of Object.entries(v)) {
      if (typeof c === 'object' && c !== null) stack.push([c, `${path}.${k}`]);
    }
  }
  return undefined;
}

function article(kind: Kind): string {
  const names: Record<Kind, string> = {
    id: 'a FHIR id',
    string: 'a string',
    object: 'an object',
    'object[]': 'an array of objects',
    CodeableConcept: 'a CodeableConcept',
    'CodeableConcept[]': 'an array of CodeableConcepts',
    Reference: 'a Reference',
    'Reference[]': 'an array of References',
    'Identifier[]': 'an array of Identifiers',
    Period: 'a Period',
  };
  return names[kind];
}
