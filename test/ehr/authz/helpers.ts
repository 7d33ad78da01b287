/**
 * Fixtures of the authorization server tests: the registered clients (keys generated at test
 * time), a real HTTPS server on loopback around `handle`, an audit store that records what it is
 * given, captured log lines for the no-secrets checks, and a PostgreSQL schema or Redis key
 * prefix of each test's own. The OAuth client side is in `oauth-client.ts` (re-exported).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { JWK } from 'jose';
import pg from 'pg';
import { createClient } from 'redis';
import type { AuditStore, TokenAuditInput } from '../../../src/audit/types.js';
import { generateClientKeyPair } from '../../../src/auth/sign.js';
import {
  createAuthorizationServer,
  type AuthorizationServerOptions,
  type EhrAuthorizationServer,
  type EhrClient,
} from '../../../src/ehr/authz/index.js';
import { createLogger } from '../../../src/log.js';
import { selfSignedCertificate } from '../../../src/tls/certs.js';
import { serverTlsOptions } from '../../../src/tls/options.js';
import { send, type TestResponse } from '../../helpers/https.js';
import { CookieJar, REDIRECT, SECRET } from './oauth-client.js';

export * from './oauth-client.js';

export const PG_URL = process.env.CRDKIT_TEST_PG;
export const REDIS_URL = process.env.CRDKIT_TEST_REDIS;
export const needsPg = PG_URL ? {} : { skip: 'CRDKIT_TEST_PG is not set: no PostgreSQL' };
export const needsRedis = REDIS_URL ? {} : { skip: 'CRDKIT_TEST_REDIS is not set: no Redis' };

export const USERS = [
  { id: 'u1', name: 'Dr. Ada Lovelace', fhirUser: 'Practitioner/pr-1' },
  { id: 'u2', name: 'Dr. Alan Turing', fhirUser: 'Practitioner/pr-2' },
];

/** The private keys of the asymmetric clients (the server only gets the public halves). */
export interface ClientKeys {
  es384: JWK;
  rs384: JWK;
  payer: JWK;
  backend: JWK;
}

/** Every client kind the tests use. */
export async function testClients(): Promise<{ clients: EhrClient[]; keys: ClientKeys }> {
  const [es, rs, payer, backend] = await Promise.all([
    generateClientKeyPair('ES384'),
    generateClientKeyPair('RS384'),
    generateClientKeyPair('ES384'),
    generateClientKeyPair('ES384'),
  ]);
  const app = {
    grantTypes: ['authorization_code', 'refresh_token'] as EhrClient['grantTypes'],
    redirectUris: [REDIRECT],
    scope: 'launch openid fhirUser offline_access online_access patient/*.rs user/*.rs',
  };
  const clients: EhrClient[] = [
    {
      clientId: 'app-asym',
      name: 'Asymmetric app',
      kind: 'confidential-asymmetric',
      jwks: { keys: [es.publicJwk] },
      launchable: true,
      ...app,
    },
    {
      clientId: 'app-rsa',
      kind: 'confidential-asymmetric',
      jwks: { keys: [rs.publicJwk] },
      launchable: true,
      ...app,
    },
    {
      clientId: 'app-sym',
      name: 'Symmetric app',
      kind: 'confidential-symmetric',
      clientSecret: SECRET,
      launchable: true,
      ...app,
    },
    { clientId: 'app-nolaunch', kind: 'confidential-symmetric', clientSecret: SECRET, ...app },
    { clientId: 'app-public', kind: 'public', ...app },
    {
      clientId: 'app-norefresh',
      kind: 'confidential-symmetric',
      clientSecret: SECRET,
      grantTypes: ['authorization_code'],
      redirectUris: [REDIRECT],
      scope: 'launch openid offline_access patient/*.rs',
      launchable: true,
    },
    {
      clientId: 'crd-payer-a',
      name: 'Payer A CRD',
      kind: 'confidential-asymmetric',
      jwks: { keys: [payer.publicJwk] },
      grantTypes: ['client_credentials'],
      scope:
        'patient/Patient.rs patient/Coverage.rs patient/Encounter.rs patient/ServiceRequest.rs patient/Condition.r system/Organization.rs',
      payer: 'payer-a',
    },
    {
      clientId: 'backend',
      kind: 'confidential-asymmetric',
      jwks: { keys: [backend.publicJwk] },
      grantTypes: ['client_credentials'],
      scope: 'system/*.rs',
    },
  ];
  return {
    clients,
    keys: {
      es384: es.privateJwk,
      rs384: rs.privateJwk,
      payer: payer.privateJwk,
      backend: backend.privateJwk,
    },
  };
}

/** An audit store that keeps the token events it is given (and can be made to fail). */
export class RecordingAudit {
  readonly tokens: TokenAuditInput[] = [];
  failing = false;

  store(): AuditStore {
    const fail = () => Promise.reject(new Error('audit store down'));
    return {
      appendToken: async (input) => {
        if (this.failing)
          throw Object.assign(new Error('audit unavailable'), { code: 'ERR_AUDIT_UNAVAILABLE' });
        this.tokens.push(input);
        return { id: String(this.tokens.length) };
      },
      appendHook: fail,
      appendSecurity: fail,
      appendFhirAccess: fail,
      verify: fail,
      export: () => (async function* () {})(),
      readPayloads: fail,
      purge: fail,
      close: async () => undefined,
    };
  }

  events(kind: TokenAuditInput['event']): TokenAuditInput[] {
    return this.tokens.filter((t) => t.event === kind);
  }
}

/** One running authorization server on loopback HTTPS. */
export interface Harness {
  authz: EhrAuthorizationServer;
  /** Where this server listens. */
  base: string;
  /** The base URL it is configured with (`base` unless a test shares another's). */
  configured: string;
  ca: string;
  keys: ClientKeys;
  clients: EhrClient[];
  audit: RecordingAudit;
  logs: string[];
  /** Sends a request to `path` on this server. */
  request(
    path: string,
    opts?: { method?: string; headers?: Record<string, string>; body?: string; jar?: CookieJar },
  ): Promise<TestResponse>;
  close(): Promise<void>;
}

/** Starts a loopback HTTPS server with the authorization server; `over` adjusts the options. */
export async function startHarness(
  over: Partial<AuthorizationServerOptions> = {},
  shared?: {
    clients: EhrClient[];
    keys: ClientKeys;
    cookieKeys: string[];
    signingKeys?: AuthorizationServerOptions['signingKeys'];
  },
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-authz-'));
  const pem = await selfSignedCertificate();
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  let handler: Parameters<typeof createServer>[1] = (_req, res) => res.writeHead(503).end();
  const server: Server = createServer(
    serverTlsOptions({ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }),
    (req, res) => handler!(req, res),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { clients, keys } = shared ?? (await testClients());
  const audit = new RecordingAudit();
  const logs: string[] = [];
  const logger = createLogger(
    'debug',
    new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    }),
  );
  const authz = await createAuthorizationServer({
    baseUrl: base,
    clients,
    store: { kind: 'sqlite', path: join(dir, 'authz.db') },
    cookieKeys: shared?.cookieKeys ?? [randomBytes(32).toString('base64url')],
    ...(shared?.signingKeys ? { signingKeys: shared.signingKeys } : {}),
    audit: audit.store(),
    instance: 'test-ehr:1',
    logger,
    users: USERS,
    ...over,
  }).catch(async (err: unknown) => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  handler = (req, res) => authz.handle(req, res);
  return {
    authz,
    base,
    configured: over.baseUrl ?? base,
    ca: pem.cert,
    keys,
    clients,
    audit,
    logs,
    request(path, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.jar?.cookies.size) headers.cookie = opts.jar.header();
      if (opts.body !== undefined && !headers['content-type']) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
      }
      return send(`${base}${path}`, {
        method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'),
        headers,
        ...(opts.body !== undefined ? { body: opts.body } : {}),
        ca: pem.cert,
      }).then((res) => {
        opts.jar?.take(res);
        return res;
      });
    },
    async close() {
      await new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await authz.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** True when no captured log line holds any of `secrets`. */
export function logsFree(logs: string[], secrets: string[]): boolean {
  return logs.every((line) => secrets.every((s) => !s || !line.includes(s)));
}

/** A schema of its own in `CRDKIT_TEST_PG` (its URL selects it), dropped by `drop`. */
export async function pgSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `crdkit_authz_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = `${PG_URL}${PG_URL!.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`;
  return {
    url,
    async drop() {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

/** Deletes every key under `prefix` in `CRDKIT_TEST_REDIS`; returns the keys deleted. */
export async function dropRedisPrefix(prefix: string): Promise<string[]> {
  const c = createClient({ url: REDIS_URL });
  await c.connect();
  try {
    const keys: string[] = [];
    for await (const batch of c.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 }))
      keys.push(...batch);
    if (keys.length) await c.del(keys);
    return keys;
  } finally {
    await c.close();
  }
}
