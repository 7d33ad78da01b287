/**
 * The configuration file of `crdkit ehr`: the EHR side (authorization server, FHIR API for
 * payers) and its CRD client. Checked like the server's (an unknown or invalid key stops
 * start-up with a message naming it); the keys are documented in docs/ehr.md.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes, type JsonWebKey } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, firstError, readJsonConfig, resolveAudit } from '../config/load.js';
import {
  AuditSchema,
  HttpsUrl,
  ListenSchema,
  LogSchema,
  TlsSchema,
  type Config,
} from '../config/schema.js';

const Jwk = Type.Object({ kty: Type.String() }, { additionalProperties: true });
const Jwks = Type.Object({ keys: Type.Array(Jwk, { minItems: 1 }) });
const StoreUrl = Type.String({ pattern: '^(sqlite|postgres(ql)?://.+|rediss?://.+)$' });

export const EhrClientSchema = Type.Object(
  {
    clientId: Type.String({ pattern: '^[A-Za-z0-9._:-]{1,128}$' }),
    name: Type.Optional(Type.String({ minLength: 1 })),
    kind: Type.Union([
      Type.Literal('confidential-symmetric'),
      Type.Literal('confidential-asymmetric'),
      Type.Literal('public'),
    ]),
    /** A symmetric client's secret, from a file (mode 0600) or inline (discouraged). */
    clientSecret: Type.Optional(Type.String({ minLength: 32 })),
    clientSecretFile: Type.Optional(Type.String({ minLength: 1 })),
    jwks: Type.Optional(Jwks),
    redirectUris: Type.Optional(Type.Array(HttpsUrl)),
    grantTypes: Type.Array(
      Type.Union([
        Type.Literal('authorization_code'),
        Type.Literal('client_credentials'),
        Type.Literal('refresh_token'),
        Type.Literal('urn:ietf:params:oauth:grant-type:token-exchange'),
      ]),
      { minItems: 1 },
    ),
    scope: Type.String({ minLength: 1 }),
    payer: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' })),
    launchable: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const AudienceSchema = Type.Object(
  {
    audience: HttpsUrl,
    actor: Type.Optional(Type.String({ minLength: 1 })),
    organization: Type.String({ minLength: 1 }),
    relationship: Type.Union([
      Type.Literal('same-organization'),
      Type.Literal('business-associate'),
    ]),
    associates: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  },
  { additionalProperties: false },
);

const PayerSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
    name: Type.String({ minLength: 1 }),
    identifiers: Type.Array(
      Type.Object(
        { system: Type.String({ minLength: 1 }), value: Type.String({ minLength: 1 }) },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    cdsBaseUrl: HttpsUrl,
    clientId: Type.String({ minLength: 1 }),
    ca: Type.Optional(Type.String({ minLength: 1 })),
    tls: Type.Optional(
      Type.Object(
        { cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** The EHR's CRD client (`crdkit client`). */
const CrdClientSchema = Type.Object(
  {
    /** The EHR's CDS Hooks issuer, as registered with the payers. */
    iss: Type.String({ minLength: 1 }),
    /** The EHR's OAuth client for its own FHIR reads and writes (SMART Backend Services). */
    clientId: Type.String({ minLength: 1 }),
    /** That client's private JWK file (ES384 or RS384, mode 0600). */
    privateKey: Type.String({ minLength: 1 }),
    /** The sharing policy file (default: the shipped policy/sensitive-codes.yaml). */
    policy: Type.Optional(Type.String({ minLength: 1 })),
    lateCalls: Type.Optional(Type.Union([Type.Literal('abandon'), Type.Literal('background')])),
    payers: Type.Array(PayerSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export const EhrConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    baseUrl: HttpsUrl,
    listen: Type.Optional(ListenSchema),
    tls: TlsSchema,
    dataDir: Type.Optional(Type.String({ minLength: 1 })),
    /** Where the authorization server keeps tokens and sessions. */
    store: Type.Optional(StoreUrl),
    clients: Type.Array(EhrClientSchema),
    users: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
            name: Type.String({ minLength: 1 }),
            fhirUser: Type.String({ pattern: '^(Practitioner|PractitionerRole)/[A-Za-z0-9.-]+$' }),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    delegation: Type.Optional(
      Type.Object({ audiences: Type.Array(AudienceSchema) }, { additionalProperties: false }),
    ),
    /** Load the synthetic demo patients into an empty resource store. */
    seed: Type.Optional(Type.Boolean()),
    crdClient: Type.Optional(CrdClientSchema),
    limits: Type.Optional(
      Type.Object(
        {
          requestsPerMinute: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          oauthRequestsPerMinute: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    audit: Type.Optional(AuditSchema),
    log: Type.Optional(LogSchema),
  },
  { additionalProperties: false },
);

export type EhrConfigFile = Static<typeof EhrConfigSchema>;
export type EhrClientEntry = Static<typeof EhrClientSchema>;

/** The EHR configuration after defaults are applied, paths resolved and secrets read. */
export interface EhrConfig {
  baseUrl: string;
  fhirBaseUrl: string;
  listen: { host: string; port: number };
  tls: Config['tls'];
  dataDir: string;
  store: string;
  clients: Array<Omit<EhrClientEntry, 'clientSecretFile'>>;
  users: Array<{ id: string; name: string; fhirUser: string }>;
  delegation: { audiences: Static<typeof AudienceSchema>[] };
  seed: boolean;
  /** The CRD client's settings, paths resolved; its CDS signing keys live in `dataDir`. */
  crdClient?: Static<typeof CrdClientSchema>;
  /** Where the CDS Hooks signing keys are kept (published at `/.well-known/jwks.json`). */
  signingKeyStore: string;
  /** FHIR API requests per minute per OAuth client (per process). */
  limits: { requestsPerMinute: number; oauthRequestsPerMinute: number };
  audit: Config['audit'];
  log: { level: string };
  /** Generated once into `dataDir` (mode 0600): cookie keys and the opaque-id secret. */
  secrets: EhrSecrets;
  demo: boolean;
}

export interface EhrSecrets {
  cookieKeys: string[];
  /** base64 of 32 bytes: the key of the per-payer opaque ids (sec-7). */
  idKey: string;
  /** The private ES384 JWK that signs OpenID id tokens (shared by every instance). */
  signingKeys: { keys: JsonWebKey[] };
}

function newSigningKey(): JsonWebKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomBytes(12).toString('base64url'), alg: 'ES384', use: 'sig' };
}

export const EHR_DEFAULTS = { host: '127.0.0.1', port: 9443, dataDir: '.crdkit/ehr' } as const;

/** Checks a parsed EHR config object; errors name the key. */
export function checkEhrConfig(raw: unknown): EhrConfigFile {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('', 'the configuration must be a JSON object');
  }
  const error = firstError(EhrConfigSchema, raw, '');
  if (error) throw new ConfigError(error.path || '(root)', error.message);
  const config = raw as EhrConfigFile;
  const ids = new Set<string>();
  config.clients.forEach((c, i) => {
    const at = `clients[${i}]`;
    if (ids.has(c.clientId)) throw new ConfigError(`${at}.clientId`, 'duplicate client id');
    ids.add(c.clientId);
    const secrets = [c.clientSecret, c.clientSecretFile].filter(Boolean).length;
    if (c.kind === 'confidential-symmetric' && secrets !== 1) {
      throw new ConfigError(
        at,
        'a symmetric client needs exactly one of clientSecret or clientSecretFile',
      );
    }
    if (c.kind !== 'confidential-symmetric' && secrets > 0) {
      throw new ConfigError(`${at}.clientSecret`, `a ${c.kind} client has no secret`);
    }
    if (c.kind === 'confidential-asymmetric' && !c.jwks) {
      throw new ConfigError(`${at}.jwks`, 'an asymmetric client needs its public keys');
    }
    if (c.kind === 'public' && c.launchable) {
      throw new ConfigError(
        `${at}.launchable`,
        'only confidential clients may be launched (sec-4)',
      );
    }
    if (c.kind === 'public' && c.grantTypes.includes('client_credentials')) {
      throw new ConfigError(`${at}.grantTypes`, 'a public client cannot use client_credentials');
    }
  });
  const base = new URL(config.baseUrl);
  if (base.pathname !== '/' || base.search || base.hash) {
    throw new ConfigError('baseUrl', 'must be an origin (https://host:port) without a path');
  }
  return config;
}

function writePrivate(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Reads `secrets.json` from the data folder, creating it (0600 in a 0700 folder) the first time. */
export function ensureEhrSecrets(dataDir: string): EhrSecrets {
  const path = join(dataDir, 'secrets.json');
  if (existsSync(path)) {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<EhrSecrets>;
    if (
      Array.isArray(parsed.cookieKeys) &&
      typeof parsed.idKey === 'string' &&
      Array.isArray(parsed.signingKeys?.keys)
    ) {
      return {
        cookieKeys: parsed.cookieKeys,
        idKey: parsed.idKey,
        signingKeys: parsed.signingKeys,
      };
    }
    throw new ConfigError('dataDir', `${path} is not a crdkit secrets file`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const secrets: EhrSecrets = {
    cookieKeys: [randomBytes(32).toString('base64url')],
    idKey: randomBytes(32).toString('base64'),
    signingKeys: { keys: [newSigningKey()] },
  };
  writePrivate(path, `${JSON.stringify(secrets, null, 2)}\n`);
  return secrets;
}

/** Applies defaults, resolves paths relative to `baseDir` and reads secrets. */
export function resolveEhrConfig(file: EhrConfigFile, baseDir: string, demo = false): EhrConfig {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const mustExist = (key: string, p: string) => {
    if (!existsSync(p)) throw new ConfigError(key, `file not found: ${p}`);
    return p;
  };
  const dataDir = at(file.dataDir ?? EHR_DEFAULTS.dataDir);
  const baseUrl = file.baseUrl.replace(/\/+$/, '');
  const port = file.listen?.port ?? EHR_DEFAULTS.port;
  return {
    baseUrl,
    fhirBaseUrl: `${baseUrl}/fhir`,
    listen: { host: file.listen?.host ?? EHR_DEFAULTS.host, port },
    tls: {
      cert: mustExist('tls.cert', at(file.tls.cert)),
      key: mustExist('tls.key', at(file.tls.key)),
      ...(file.tls.ca ? { ca: mustExist('tls.ca', at(file.tls.ca)) } : {}),
      requestCert: file.tls.requestCert ?? false,
    },
    dataDir,
    store: file.store ?? 'sqlite',
    clients: file.clients.map(({ clientSecretFile, ...c }, i) => {
      if (!clientSecretFile) return c;
      const path = mustExist(`clients[${i}].clientSecretFile`, at(clientSecretFile));
      const secret = readFileSync(path, 'utf8').trim();
      if (secret.length < 32) {
        throw new ConfigError(
          `clients[${i}].clientSecretFile`,
          'the secret is shorter than 32 characters',
        );
      }
      return { ...c, clientSecret: secret };
    }),
    users: file.users ?? [],
    delegation: { audiences: file.delegation?.audiences ?? [] },
    seed: file.seed ?? demo,
    ...(file.crdClient
      ? {
          crdClient: {
            ...file.crdClient,
            privateKey: mustExist('crdClient.privateKey', at(file.crdClient.privateKey)),
            ...(file.crdClient.policy
              ? { policy: mustExist('crdClient.policy', at(file.crdClient.policy)) }
              : {}),
            payers: file.crdClient.payers.map((p, i) => ({
              ...p,
              ...(p.ca ? { ca: mustExist(`crdClient.payers[${i}].ca`, at(p.ca)) } : {}),
              ...(p.tls
                ? {
                    tls: {
                      cert: mustExist(`crdClient.payers[${i}].tls.cert`, at(p.tls.cert)),
                      key: mustExist(`crdClient.payers[${i}].tls.key`, at(p.tls.key)),
                    },
                  }
                : {}),
            })),
          },
        }
      : {}),
    signingKeyStore: join(dataDir, 'cds-signing-keys.json'),
    limits: {
      requestsPerMinute: file.limits?.requestsPerMinute ?? 6000,
      oauthRequestsPerMinute: file.limits?.oauthRequestsPerMinute ?? 600,
    },
    audit: resolveAudit(file.audit, `${hostname()}:${port}`),
    log: { level: file.log?.level ?? 'info' },
    secrets: ensureEhrSecrets(dataDir),
    demo,
  };
}

/** Reads, checks and resolves an EHR configuration file. */
export function loadEhrConfig(path: string): EhrConfig {
  return resolveEhrConfig(checkEhrConfig(readJsonConfig(path)), dirname(resolve(path)));
}
