/**
 * The configuration file's schema. Every key is documented in README.md ("Configuration"); an
 * unknown or invalid key stops start-up with a message naming it (see `load.ts`).
 */
import { Type, type Static } from '@sinclair/typebox';

export const HttpsUrl = Type.String({ pattern: '^https://[^\\s]+$', description: 'an https URL' });

const AuditStoreUrl = Type.String({ pattern: '^(sqlite|postgres(ql)?://.+)$' });

const Jwk = Type.Object({ kty: Type.String() }, { additionalProperties: true });

export const ClientSchema = Type.Object(
  {
    iss: Type.String({ minLength: 1 }),
    name: Type.Optional(Type.String()),
    jwks: Type.Optional(Type.Object({ keys: Type.Array(Jwk, { minItems: 1 }) })),
    jwksUri: Type.Optional(HttpsUrl),
    fhirServers: Type.Optional(Type.Array(HttpsUrl)),
    certificate: Type.Optional(
      Type.Object(
        {
          subject: Type.Optional(Type.String({ minLength: 1 })),
          sha256: Type.Optional(Type.String({ pattern: '^([0-9A-Fa-f]{2}:?){32}$' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** `listen`: where the server listens. */
export const ListenSchema = Type.Object(
  {
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  },
  { additionalProperties: false },
);

/** `tls`: the server's certificate and key, and mutual TLS. */
export const TlsSchema = Type.Object(
  {
    cert: Type.String({ minLength: 1 }),
    key: Type.String({ minLength: 1 }),
    ca: Type.Optional(Type.String({ minLength: 1 })),
    requestCert: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** `audit`: a store URL, or the full object (`"audit": "postgres://…"` is short for `{ store }`). */
export const AuditSchema = Type.Union([
  AuditStoreUrl,
  Type.Object(
    {
      store: Type.Optional(AuditStoreUrl),
      instance: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
      payloadKeys: Type.Optional(
        Type.Record(
          Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
          Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$' }),
        ),
      ),
      currentKey: Type.Optional(Type.String({ minLength: 1 })),
      retentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
    },
    { additionalProperties: false },
  ),
]);

/** `log`: the log level. */
export const LogSchema = Type.Object(
  {
    level: Type.Optional(
      Type.Union(
        ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      ),
    ),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    baseUrl: HttpsUrl,
    listen: Type.Optional(ListenSchema),
    tls: TlsSchema,
    clients: Type.Array(ClientSchema, { minItems: 1 }),
    rules: Type.String({ minLength: 1 }),
    dataDir: Type.Optional(Type.String({ minLength: 1 })),
    replay: Type.Optional(Type.String({ pattern: '^(sqlite|memory|rediss?://.+)$' })),
    audit: Type.Optional(AuditSchema),
    cors: Type.Optional(
      Type.Object(
        { origins: Type.Array(Type.String({ pattern: '^https://[^\\s/]+$' })) },
        { additionalProperties: false },
      ),
    ),
    auth: Type.Optional(
      Type.Object(
        {
          clockSkewSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
          maxLifetimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
          discoveryRequiresAuth: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    delegation: Type.Optional(
      Type.Object(
        {
          /** The downstream service delegate tokens are asked for (e.g. the payer's DTR). */
          audience: HttpsUrl,
          /** Per EHR: its FHIR origin, its token endpoint, and this server's client there. */
          ehrs: Type.Array(
            Type.Object(
              {
                fhirServer: HttpsUrl,
                tokenEndpoint: HttpsUrl,
                clientId: Type.String({ minLength: 1 }),
                privateKey: Type.String({ minLength: 1 }),
              },
              { additionalProperties: false },
            ),
            { minItems: 1 },
          ),
          /** How long the DTR context (with its delegate token) is kept, in minutes. */
          ttlMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 60 })),
        },
        { additionalProperties: false },
      ),
    ),
    fhir: Type.Optional(
      Type.Object(
        {
          ca: Type.Optional(Type.String({ minLength: 1 })),
          timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 30000 })),
          maxResponseBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
        },
        { additionalProperties: false },
      ),
    ),
    limits: Type.Optional(
      Type.Object(
        {
          bodyBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 67108864 })),
          maxOrders: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
          requestsPerMinute: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000 })),
        },
        { additionalProperties: false },
      ),
    ),
    log: Type.Optional(LogSchema),
  },
  { additionalProperties: false },
);

export type ConfigFile = Static<typeof ConfigSchema>;
export type ClientEntry = Static<typeof ClientSchema>;

/** The configuration after defaults are applied and paths resolved. */
export interface Config {
  baseUrl: string;
  listen: { host: string; port: number };
  tls: { cert: string; key: string; ca?: string; requestCert: boolean };
  clients: ClientEntry[];
  rules: string;
  dataDir: string;
  /** Where spent `jti`s are kept: `sqlite` (default), `memory` (one process) or a Redis URL. */
  replay: string;
  cors: { origins: string[] };
  audit: {
    store: string;
    instance: string;
    encryption?: { keys: Record<string, string>; current: string };
    retentionDays: number;
  };
  auth: { clockSkewSeconds: number; maxLifetimeSeconds: number; discoveryRequiresAuth: boolean };
  fhir: { ca?: string; timeoutMs: number; maxResponseBytes: number };
  /** RFC 8693 (sec-9): delegate tokens for the DTR service instead of passing the EHR's token on. */
  delegation?: {
    audience: string;
    ehrs: Array<{
      fhirServer: string;
      tokenEndpoint: string;
      clientId: string;
      privateKey: string;
    }>;
    ttlMinutes: number;
  };
  limits: { bodyBytes: number; maxOrders: number; requestsPerMinute: number };
  log: { level: string };
  /** True when running on generated demo credentials (`crdkit serve` without `--config`). */
  demo: boolean;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8443,
  clockSkewSeconds: 60,
  maxLifetimeSeconds: 300,
  fhirTimeoutMs: 3000,
  fhirMaxResponseBytes: 4 * 1024 * 1024,
  bodyBytes: 1024 * 1024,
  maxOrders: 100,
  requestsPerMinute: 6000,
  dataDir: '.crdkit',
} as const;
