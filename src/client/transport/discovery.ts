/**
 * CDS Hooks discovery as the CRD client reads it (`GET {base}/cds-services`): parsed and checked
 * once, cached for a day (found-16) and refreshed early after a failed hook call (found-17).
 * Prefetch keys and templates are kept exactly as the service gives them (found-30, found-31).
 */
import type { ConfigurationOption } from '../../crd/configuration.js';
import { copyJson, isObject, NotJsonError } from '../answer/safe-json.js';
import type { Problem } from '../answer/types.js';

/** One CDS Service as the client uses it. */
export interface DiscoveryService {
  /** The service id: the last path segment of `{base}/cds-services/{id}`. */
  id: string;
  hook: string;
  title?: string;
  description: string;
  /** Prefetch key -> query template, exactly as published (found-31). */
  prefetch: Record<string, string>;
  usageRequirements?: string;
  /** `davinci-crd.version` (dev-1, dev-2): the CRD versions the service supports. */
  versions: string[];
  /** `davinci-crd.configuration-options` (dev-4): what the client may set (dev-12). */
  configurationOptions: ConfigurationOption[];
  /** The service's `extension` object, unknown members included (found-33). */
  extension: Record<string, unknown>;
}

export interface Discovery {
  services: DiscoveryService[];
  /** What was skipped or repaired, by position (`services[2].prefetch`); no content quoted. */
  problems: Problem[];
}

export type DiscoveryErrorCode =
  | 'ERR_DISCOVERY_URL'
  | 'ERR_DISCOVERY_SHAPE'
  | 'ERR_DISCOVERY_VERSION'
  | 'ERR_DISCOVERY_CONFIGURATION';

/** A discovery document or its use failed; the message never quotes the document. */
export class DiscoveryError extends Error {
  override name = 'DiscoveryError';

  constructor(
    readonly code: DiscoveryErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A service id that is one URL path segment of unreserved characters, and not `.` or `..`. */
const SERVICE_ID = /^(?!\.+$)[A-Za-z0-9\-._~]{1,128}$/;
/** `crdver-1` allows no minor version 0; `X.0` is accepted here anyway (digest §10.6). */
const VERSION = /^[1-9]\d{0,3}\.\d{1,4}$/;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_SERVICES = 100;
const MAX_PREFETCH = 64;
const MAX_TEMPLATE = 8192;
const MAX_OPTIONS = 100;

class Skip extends Error {}

/**
 * Checks a discovery document. Throws {@link DiscoveryError} when it has no `services` array;
 * an invalid service (id, hook or prefetch) is skipped, an invalid version or configuration
 * option is left out, each with a problem recorded.
 */
export function parseDiscovery(body: unknown): Discovery {
  if (!isObject(body) || !Array.isArray(body.services)) {
    throw new DiscoveryError(
      'ERR_DISCOVERY_SHAPE',
      'the discovery document has no "services" array',
    );
  }
  const problems: Problem[] = [];
  const services: DiscoveryService[] = [];
  const ids = new Set<string>();
  body.services.slice(0, MAX_SERVICES).forEach((raw: unknown, i) => {
    const where = `services[${i}]`;
    try {
      const service = parseService(raw, where, problems);
      if (ids.has(service.id)) throw new Skip('"id" repeats an earlier service');
      ids.add(service.id);
      services.push(service);
    } catch (err) {
      if (!(err instanceof Skip)) throw err;
      problems.push({ where, reason: err.message });
    }
  });
  if (body.services.length > MAX_SERVICES) {
    const where = `services[${MAX_SERVICES}..${body.services.length - 1}]`;
    problems.push({ where, reason: 'more services than are read' });
  }
  return { services, problems };
}

function parseService(input: unknown, where: string, problems: Problem[]): DiscoveryService {
  let raw: unknown;
  try {
    // A copy: nothing of the caller's object is shared; reserved member names are refused.
    raw = copyJson(input, { reserved: 'throw' });
  } catch (err) {
    if (err instanceof NotJsonError) throw new Skip(`is not usable JSON: ${err.message}`);
    throw err;
  }
  if (!isObject(raw)) throw new Skip('is not an object');
  if (typeof raw.id !== 'string' || !SERVICE_ID.test(raw.id)) {
    throw new Skip('"id" is missing or not a plain path segment');
  }
  if (typeof raw.hook !== 'string' || raw.hook === '' || raw.hook.length > 128) {
    throw new Skip('"hook" is missing');
  }
  const service: DiscoveryService = {
    id: raw.id,
    hook: raw.hook,
    description: typeof raw.description === 'string' ? raw.description : '',
    prefetch: parsePrefetch(raw.prefetch),
    versions: [],
    configurationOptions: [],
    extension: isObject(raw.extension) ? raw.extension : {},
  };
  if (typeof raw.description !== 'string') {
    problems.push({ where: `${where}.description`, reason: '"description" is missing' });
  }
  if (typeof raw.title === 'string') service.title = raw.title;
  if (typeof raw.usageRequirements === 'string') service.usageRequirements = raw.usageRequirements;
  service.versions = parseVersions(service.extension['davinci-crd.version'], where, problems);
  service.configurationOptions = parseOptions(
    service.extension['davinci-crd.configuration-options'],
    where,
    problems,
  );
  return service;
}

/** found-31: keys and templates as given; only their JSON types and sizes are checked. */
function parsePrefetch(raw: unknown): Record<string, string> {
  if (raw === undefined) return {};
  if (!isObject(raw)) throw new Skip('"prefetch" is not an object');
  const entries = Object.entries(raw);
  if (entries.length > MAX_PREFETCH) throw new Skip('"prefetch" has too many keys');
  const out: Record<string, string> = {};
  for (const [key, template] of entries) {
    if (key === '') throw new Skip('"prefetch" has an empty key');
    if (typeof template !== 'string' || template === '' || template.length > MAX_TEMPLATE) {
      throw new Skip('"prefetch" has a template that is not a string or is too long');
    }
    out[key] = template;
  }
  return out;
}

function parseVersions(raw: unknown, where: string, problems: Problem[]): string[] {
  const at = `${where}.extension.davinci-crd.version`;
  if (raw === undefined) {
    problems.push({ where: at, reason: 'no CRD version is listed (dev-1)' });
    return [];
  }
  if (!Array.isArray(raw)) {
    problems.push({ where: at, reason: '"davinci-crd.version" is not an array' });
    return [];
  }
  const ok = raw.filter((v): v is string => typeof v === 'string' && VERSION.test(v));
  if (ok.length !== raw.length) {
    problems.push({
      where: at,
      reason: '"davinci-crd.version" holds a value that is not major.minor',
    });
  }
  return [...new Set(ok)];
}

function parseOptions(raw: unknown, where: string, problems: Problem[]): ConfigurationOption[] {
  if (raw === undefined) return [];
  const at = `${where}.extension.davinci-crd.configuration-options`;
  if (!Array.isArray(raw)) {
    problems.push({ where: at, reason: '"davinci-crd.configuration-options" is not an array' });
    return [];
  }
  const out: ConfigurationOption[] = [];
  const codes = new Set<string>();
  if (raw.length > MAX_OPTIONS) problems.push({ where: at, reason: 'more options than are read' });
  raw.slice(0, MAX_OPTIONS).forEach((o: unknown, i) => {
    const reason = optionProblem(o, codes);
    if (reason) return problems.push({ where: `${at}[${i}]`, reason });
    const option = o as ConfigurationOption;
    codes.add(option.code);
    out.push(option);
  });
  return out;
}

/** dev-4, dev-7, dev-8: why an option is unusable, or undefined. */
function optionProblem(o: unknown, codes: Set<string>): string | undefined {
  if (!isObject(o)) return 'is not an object';
  if (typeof o.code !== 'string' || o.code === '' || o.code.length > 128)
    return '"code" is missing';
  if (FORBIDDEN_KEYS.has(o.code)) return '"code" is a reserved name';
  if (codes.has(o.code)) return '"code" repeats an earlier option (dev-8)';
  if (o.type !== 'boolean' && o.type !== 'integer') return '"type" is not boolean or integer';
  if (typeof o.name !== 'string' || typeof o.description !== 'string') {
    return '"name" or "description" is missing (dev-4)';
  }
  if (o.default !== undefined && !fitsType(o.default, o.type)) {
    return '"default" does not match "type"';
  }
  return undefined;
}

function fitsType(v: unknown, type: 'boolean' | 'integer'): boolean {
  return type === 'boolean' ? typeof v === 'boolean' : Number.isInteger(v) && (v as number) >= 0;
}

/** The request `extension` members a call to `service` carries (dev-3, dev-12). */
export interface RequestExtensions {
  'davinci-crd.requestedVersion'?: string;
  'davinci-crd.configuration'?: Record<string, boolean | number>;
}

/**
 * Builds the request extensions for `service`:
 * - dev-3: `davinci-crd.requestedVersion`, the highest version both sides support, sent
 *   whenever the service lists versions (required when it lists several). Throws
 *   ERR_DISCOVERY_VERSION when there is none in common.
 * - dev-12: `davinci-crd.configuration` with the client's settings for the options the service
 *   advertises; settings for options it does not list are left out (dev-16 allows them, but
 *   they would tell the payer about the client's setup for nothing). A setting of the wrong type
 *   throws ERR_DISCOVERY_CONFIGURATION.
 */
export function requestExtensions(
  service: DiscoveryService,
  opts: { supportedVersions: readonly string[]; configuration?: Record<string, boolean | number> },
): RequestExtensions {
  const out: RequestExtensions = {};
  if (service.versions.length > 0) {
    const common = service.versions.filter((v) => opts.supportedVersions.includes(v));
    if (common.length === 0) {
      throw new DiscoveryError(
        'ERR_DISCOVERY_VERSION',
        `service "${service.id}" supports no CRD version this client supports`,
      );
    }
    out['davinci-crd.requestedVersion'] = common.sort(compareVersions).at(-1)!;
  }
  const settings = opts.configuration ?? {};
  const configuration: Record<string, boolean | number> = {};
  for (const option of service.configurationOptions) {
    if (!Object.hasOwn(settings, option.code)) continue;
    const value = settings[option.code];
    if (!fitsType(value, option.type)) {
      throw new DiscoveryError(
        'ERR_DISCOVERY_CONFIGURATION',
        `configuration "${option.code}" must be ${option.type === 'boolean' ? 'a boolean' : 'a non-negative integer'}`,
      );
    }
    configuration[option.code] = value as boolean | number;
  }
  if (Object.keys(configuration).length > 0) out['davinci-crd.configuration'] = configuration;
  return out;
}

function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
}

/** Options of {@link DiscoveryCache}. */
export interface DiscoveryCacheOptions {
  /** Fetches a discovery URL and returns its parsed JSON (e.g. with `getJson` and a fresh JWT). */
  fetch: (url: string) => Promise<unknown>;
  /** The clock in epoch milliseconds (tests freeze it). */
  now?: () => number;
  /** How long a discovery document is used (default 24 h, found-16). */
  maxAgeMs?: number;
}

interface Entry {
  promise: Promise<Discovery>;
  fetchedAt: number;
}

const DAY_MS = 86_400_000;

/**
 * Discovery documents per CDS Services base URL. A document is fetched again after `maxAgeMs`
 * (found-16) or after {@link DiscoveryCache.invalidate} (found-17: after a hook error, refresh
 * before failing). Concurrent callers share one fetch; a failed fetch is not cached.
 */
export class DiscoveryCache {
  readonly #fetch: (url: string) => Promise<unknown>;
  readonly #now: () => number;
  readonly #maxAgeMs: number;
  readonly #entries = new Map<string, Entry>();

  constructor(opts: DiscoveryCacheOptions) {
    this.#fetch = opts.fetch;
    this.#now = opts.now ?? Date.now;
    this.#maxAgeMs = opts.maxAgeMs ?? DAY_MS;
  }

  /** The discovery document of `baseUrl` (an https URL; `/cds-services` is appended). */
  async get(baseUrl: string): Promise<Discovery> {
    const base = normaliseBase(baseUrl);
    const now = this.#now();
    const entry = this.#entries.get(base);
    if (entry && now - entry.fetchedAt < this.#maxAgeMs) return entry.promise;
    const url = `${base}/cds-services`;
    const promise = Promise.resolve()
      .then(() => this.#fetch(url))
      .then(parseDiscovery);
    const fresh: Entry = { promise, fetchedAt: now };
    this.#entries.set(base, fresh);
    // A failure is not kept: the next call tries again. Only this fetch's own entry is removed.
    promise.catch(() => {
      if (this.#entries.get(base) === fresh) this.#entries.delete(base);
    });
    return promise;
  }

  /** Forgets `baseUrl`'s document: the next {@link get} fetches it again (found-17). */
  invalidate(baseUrl: string): void {
    this.#entries.delete(normaliseBase(baseUrl));
  }

  /** found-17: re-runs discovery now (after a hook error) and returns the fresh document. */
  async refresh(baseUrl: string): Promise<Discovery> {
    this.invalidate(baseUrl);
    return this.get(baseUrl);
  }
}

/** `https://payer.example.org/crd/` -> `https://payer.example.org/crd`; https only. */
function normaliseBase(baseUrl: string): string {
  if (typeof baseUrl !== 'string' || !URL.canParse(baseUrl)) {
    throw new DiscoveryError('ERR_DISCOVERY_URL', 'the CDS Services base URL is not a URL');
  }
  const url = new URL(baseUrl);
  if (url.protocol !== 'https:' || url.username || url.password || url.search || url.hash) {
    throw new DiscoveryError(
      'ERR_DISCOVERY_URL',
      'the CDS Services base URL must be https, without credentials, query or fragment',
    );
  }
  return url.href.replace(/\/+$/, '');
}

/** The URL of `service` under `baseUrl`: `{base}/cds-services/{id}` (the JWT `aud`). */
export function serviceUrl(baseUrl: string, service: Pick<DiscoveryService, 'id'>): string {
  if (!SERVICE_ID.test(service.id)) {
    throw new DiscoveryError('ERR_DISCOVERY_SHAPE', 'the service "id" is not a plain path segment');
  }
  return `${normaliseBase(baseUrl)}/cds-services/${service.id}`;
}
