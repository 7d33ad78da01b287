/** Loading and checking the configuration file: errors name the key, start-up stops. */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { ConfigSchema, DEFAULTS, type Config, type ConfigFile } from './schema.js';

/** A configuration problem; `key` is the path of the offending key, e.g. `clients[0].jwksUri`. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'ERR_CONFIG';

  constructor(
    readonly key: string,
    message: string,
  ) {
    super(key ? `${key}: ${message}` : message);
  }
}

/** `/clients/0/jwksUri` → `clients[0].jwksUri`. */
function keyPath(pointer: string): string {
  return pointer
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/**
 * The most useful first error: unknown keys first (a misspelt key also shows up as a missing
 * one), and inside a union (`audit`: a URL or an object) the error of the member that fits.
 */
export function firstError(
  schema: TSchema,
  value: unknown,
  prefix: string,
): { path: string; message: string } | undefined {
  const errors = [...Value.Errors(schema, value)];
  const first =
    errors.find((e) => e.type === ValueErrorType.ObjectAdditionalProperties) ?? errors[0];
  if (!first) return undefined;
  const path = [prefix, keyPath(first.path)].filter(Boolean).join('.');
  if (first.type === ValueErrorType.ObjectAdditionalProperties)
    return { path, message: 'unknown key' };
  if (first.type === ValueErrorType.ObjectRequiredProperty) {
    return { path, message: 'required key is missing' };
  }
  if (first.type === ValueErrorType.Union) {
    const members = (first.schema as { anyOf?: TSchema[] }).anyOf ?? [];
    const isObject = typeof first.value === 'object' && first.value !== null;
    const member = members.find((m) => (m.type === 'object') === isObject);
    const inner = member && firstError(member, first.value, path);
    if (inner) return inner;
  }
  if (path === 'log.level') {
    return { path, message: 'must be one of fatal, error, warn, info, debug, trace, silent' };
  }
  return { path, message: lowerFirst(first.message) };
}

/** Checks a parsed config object against the schema and the cross-key rules. */
export function checkConfig(raw: unknown): ConfigFile {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('', 'the configuration must be a JSON object');
  }
  // Unknown keys first: a misspelt key also shows up as a missing one, and the typo is the news.
  const error = firstError(ConfigSchema, raw, '');
  if (error) throw new ConfigError(error.path || '(root)', error.message);
  const config = raw as ConfigFile;
  config.clients.forEach((client, i) => {
    if (!client.jwks === !client.jwksUri) {
      throw new ConfigError(`clients[${i}]`, 'give exactly one of "jwks" or "jwksUri"');
    }
  });
  const issuers = new Set<string>();
  config.clients.forEach((client, i) => {
    if (issuers.has(client.iss)) throw new ConfigError(`clients[${i}].iss`, 'duplicate issuer');
    issuers.add(client.iss);
  });
  const base = new URL(config.baseUrl);
  if (base.search || base.hash) {
    throw new ConfigError('baseUrl', 'must have no query string or fragment');
  }
  return config;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** Applies defaults and resolves file paths relative to the config file's folder. */
export function resolveConfig(file: ConfigFile, baseDir: string, demo = false): Config {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const mustExist = (key: string, p: string) => {
    if (!existsSync(p)) throw new ConfigError(key, `file not found: ${p}`);
    return p;
  };
  return {
    baseUrl: file.baseUrl.replace(/\/+$/, ''),
    listen: { host: file.listen?.host ?? DEFAULTS.host, port: file.listen?.port ?? DEFAULTS.port },
    tls: {
      cert: mustExist('tls.cert', at(file.tls.cert)),
      key: mustExist('tls.key', at(file.tls.key)),
      ...(file.tls.ca ? { ca: mustExist('tls.ca', at(file.tls.ca)) } : {}),
      requestCert: file.tls.requestCert ?? false,
    },
    clients: file.clients.map((c) => ({
      ...c,
      fhirServers: (c.fhirServers ?? []).map((u) => new URL(u).origin),
    })),
    rules: mustExist('rules', at(file.rules)),
    dataDir: at(file.dataDir ?? DEFAULTS.dataDir),
    replay: file.replay ?? 'sqlite',
    cors: { origins: file.cors?.origins ?? [] },
    audit: resolveAudit(file.audit, `${hostname()}:${file.listen?.port ?? DEFAULTS.port}`),
    auth: {
      clockSkewSeconds: file.auth?.clockSkewSeconds ?? DEFAULTS.clockSkewSeconds,
      maxLifetimeSeconds: file.auth?.maxLifetimeSeconds ?? DEFAULTS.maxLifetimeSeconds,
      discoveryRequiresAuth: file.auth?.discoveryRequiresAuth ?? true,
    },
    fhir: {
      ...(file.fhir?.ca ? { ca: mustExist('fhir.ca', at(file.fhir.ca)) } : {}),
      timeoutMs: file.fhir?.timeoutMs ?? DEFAULTS.fhirTimeoutMs,
      maxResponseBytes: file.fhir?.maxResponseBytes ?? DEFAULTS.fhirMaxResponseBytes,
    },
    ...(file.delegation
      ? {
          delegation: {
            audience: file.delegation.audience,
            ehrs: file.delegation.ehrs.map((e, i) => ({
              ...e,
              fhirServer: new URL(e.fhirServer).origin,
              privateKey: mustExist(`delegation.ehrs[${i}].privateKey`, at(e.privateKey)),
            })),
            ttlMinutes: file.delegation.ttlMinutes ?? 15,
          },
        }
      : {}),
    limits: {
      bodyBytes: file.limits?.bodyBytes ?? DEFAULTS.bodyBytes,
      maxOrders: file.limits?.maxOrders ?? DEFAULTS.maxOrders,
      requestsPerMinute: file.limits?.requestsPerMinute ?? DEFAULTS.requestsPerMinute,
    },
    log: { level: file.log?.level ?? 'info' },
    demo,
  };
}

/** Audit settings: a payload key set needs `currentKey` naming one of its keys. */
export function resolveAudit(audit: ConfigFile['audit'], defaultInstance: string): Config['audit'] {
  const a: Exclude<ConfigFile['audit'], string> & object =
    typeof audit === 'string' ? { store: audit } : (audit ?? {});
  const keys = a.payloadKeys;
  if (keys && Object.keys(keys).length > 0) {
    if (!a.currentKey || !Object.hasOwn(keys, a.currentKey)) {
      throw new ConfigError('audit.currentKey', 'must name one of audit.payloadKeys');
    }
  } else if (a.currentKey) {
    throw new ConfigError('audit.currentKey', 'needs audit.payloadKeys');
  }
  return {
    store: a.store ?? 'sqlite',
    instance: a.instance ?? defaultInstance,
    ...(keys && a.currentKey ? { encryption: { keys, current: a.currentKey } } : {}),
    retentionDays: a.retentionDays ?? 180,
  };
}

/** Reads and parses a JSON configuration file; errors say which file and why. */
export function readJsonConfig(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new ConfigError(
      '',
      `cannot read the configuration file ${path}${why ? ` (${why})` : ''}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('', `${path} is not valid JSON (${(err as Error).message})`);
  }
  return raw;
}

/** Reads, parses, checks and resolves a configuration file. */
export function loadConfig(path: string): Config {
  return resolveConfig(checkConfig(readJsonConfig(path)), dirname(resolve(path)));
}
