/**
 * Loading and checking a sharing policy (YAML, or JSON by extension). Every problem stops
 * start-up with a {@link ConfigError} naming the key (`categories.hiv.codes[2].system`).
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, visit } from 'yaml';
import { ConfigError } from '../../config/load.js';
import { canonicalSystem } from './codes.js';
import { REDACTED } from './elements.js';
import type { PolicyCoding, SharingPolicy } from './types.js';

/** The policy shipped with crdkit: `policy/sensitive-codes.yaml` at the package root. */
export const DEFAULT_POLICY_FILE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'policy',
  'sensitive-codes.yaml',
);

const URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/;
const CATEGORY = /^[a-z0-9][a-z0-9-]*$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]+$/;
const ELEMENT = /^[a-z][A-Za-z0-9]*(\[x\])?$/;
/** Elements that cannot be stripped: references, labels and the type itself depend on them. */
const KEPT = new Set(['id', 'meta', 'resourceType']);

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const join = (prefix: string, key: string) => (prefix ? `${prefix}.${key}` : key);

function only(value: Json, allowed: string[], at: string): void {
  const unknown = Object.keys(value).find((k) => !allowed.includes(k));
  if (unknown !== undefined) throw new ConfigError(join(at, unknown), 'unknown key');
}

function field<T>(
  value: Json,
  key: string,
  at: string,
  check: (v: unknown) => v is T,
  what: string,
) {
  if (!Object.hasOwn(value, key)) throw new ConfigError(join(at, key), 'required key is missing');
  const v = value[key];
  if (!check(v)) throw new ConfigError(join(at, key), `must be ${what}`);
  return v;
}

const isArray = (v: unknown): v is unknown[] => Array.isArray(v);
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
const isText = (v: unknown): v is string => typeof v === 'string' && /^\S+$/.test(v);

function coding(raw: unknown, at: string, prefixes: boolean): PolicyCoding {
  if (!isObject(raw)) throw new ConfigError(at, 'must be an object with "system" and "code"');
  only(raw, ['system', 'code', 'display'], at);
  const system = field(raw, 'system', at, isText, 'an absolute URI');
  if (!URI.test(system)) throw new ConfigError(`${at}.system`, 'must be an absolute URI');
  const code = field(raw, 'code', at, isText, 'a code without spaces');
  const star = code.indexOf('*');
  if (star >= 0 && !prefixes) throw new ConfigError(`${at}.code`, '"*" is not allowed in a label');
  if (star >= 0 && (star !== code.length - 1 || code.length === 1)) {
    throw new ConfigError(`${at}.code`, '"*" is allowed only last, after a prefix');
  }
  return { system, code };
}

function codings(raw: Json, key: string, at: string, prefixes: boolean): PolicyCoding[] {
  const list = field(raw, key, at, isArray, 'a list');
  return list.map((c, i) => coding(c, `${join(at, key)}[${i}]`, prefixes));
}

/**
 * Checks a parsed sharing policy and returns a frozen copy holding only its known keys. `prefix`
 * names where it sits in a larger configuration (`client.sharingPolicy`).
 *
 * @example checkSharingPolicy({ withholdSecurityLabels: [], categories: {}, honourConsent: true })
 */
export function checkSharingPolicy(raw: unknown, prefix = ''): SharingPolicy {
  if (!isObject(raw)) throw new ConfigError(prefix, 'the sharing policy must be an object');
  only(raw, ['withholdSecurityLabels', 'categories', 'honourConsent', 'elements'], prefix);
  const labels = codings(raw, 'withholdSecurityLabels', prefix, false);
  labels.forEach((l, i) => {
    const redacted = canonicalSystem(l.system) === canonicalSystem(REDACTED.system);
    if (redacted && l.code === REDACTED.code) {
      const at = join(prefix, `withholdSecurityLabels[${i}]`);
      throw new ConfigError(at, 'REDACTED marks resources whose elements crdkit stripped');
    }
  });
  const categories: SharingPolicy['categories'] = {};
  const rawCategories = field(raw, 'categories', prefix, isObject, 'an object of categories');
  for (const [name, value] of Object.entries(rawCategories)) {
    const at = join(prefix, `categories.${name}`);
    if (!CATEGORY.test(name)) throw new ConfigError(at, 'name must be lower-case-with-dashes');
    if (!isObject(value)) throw new ConfigError(at, 'must be an object with "enabled" and "codes"');
    only(value, ['enabled', 'codes'], at);
    const enabled = field(value, 'enabled', at, isBoolean, 'true or false');
    categories[name] = { enabled, codes: codings(value, 'codes', at, true) };
  }
  const honourConsent = field(raw, 'honourConsent', prefix, isBoolean, 'true or false');
  const policy: SharingPolicy = { withholdSecurityLabels: labels, categories, honourConsent };
  if (Object.hasOwn(raw, 'elements')) policy.elements = elements(raw, prefix);
  return deepFreeze(policy);
}

function elements(raw: Json, prefix: string): NonNullable<SharingPolicy['elements']> {
  return field(raw, 'elements', prefix, isArray, 'a list').map((e, i) => {
    const at = join(prefix, `elements[${i}]`);
    if (!isObject(e)) throw new ConfigError(at, 'must be an object with "resourceType" and "path"');
    only(e, ['resourceType', 'path'], at);
    const resourceType = field(e, 'resourceType', at, isText, 'a resource type or "*"');
    if (resourceType !== '*' && !RESOURCE_TYPE.test(resourceType)) {
      throw new ConfigError(`${at}.resourceType`, 'must be a resource type or "*"');
    }
    const path = field(e, 'path', at, isText, 'a top-level element name');
    if (!ELEMENT.test(path)) {
      throw new ConfigError(`${at}.path`, 'must be a top-level element name such as "photo"');
    }
    if (KEPT.has(path)) throw new ConfigError(`${at}.path`, `"${path}" cannot be stripped`);
    return { resourceType, path };
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Parses policy text; `source` names it in messages. */
export function parseSharingPolicy(text: string, source: string, format: 'yaml' | 'json') {
  let raw: unknown;
  if (format === 'json') {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('', `${source} is not valid JSON (${(err as Error).message})`);
    }
    return checkSharingPolicy(raw);
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const [error] = doc.errors;
  if (error) {
    throw new ConfigError('', `${source} is not valid YAML (${error.message.split('\n')[0]})`);
  }
  // `code: 0123` or `code: 90791` are codes, not numbers: keep them as written.
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'number' && node.source !== undefined) node.value = node.source;
    },
  });
  return checkSharingPolicy(doc.toJS({ maxAliasCount: 100 }));
}

/**
 * Reads and checks a sharing policy file (`.json` as JSON, anything else as YAML); without a
 * file, the policy shipped with crdkit.
 *
 * @example const policy = loadSharingPolicy(); // policy/sensitive-codes.yaml
 */
export function loadSharingPolicy(file: string = DEFAULT_POLICY_FILE): SharingPolicy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError('', `cannot read the sharing policy file ${file}`);
  }
  return parseSharingPolicy(text, file, extname(file).toLowerCase() === '.json' ? 'json' : 'yaml');
}
