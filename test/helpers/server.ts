/**
 * Starts a real crdkit server on loopback for a test: certificates and the client's key pair are
 * generated at test time, logs are captured line by line for the no-secrets checks.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServer, type AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { generateClientKeyPair, signCdsJwt } from '../../src/auth/sign.js';
import { MemoryReplayStore, SqliteReplayStore } from '../../src/auth/replay.js';
import { openSqlite } from '../../src/store/sqlite.js';
import { openAuditStore, type AuditStore } from '../../src/audit/index.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import { resolveConfig } from '../../src/config/load.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { loadRules } from '../../src/rules/index.js';
import { buildServer, type CrdServer } from '../../src/server/app.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { startFhirStub, type FhirStub } from './fhir-stub.js';
import { send, type TestResponse } from './https.js';

/** A free loopback port (bound once and released). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

export const TEST_ISS = 'https://ehr.test/cds-client';

export interface TestServer {
  app: CrdServer;
  /** The server's data folder (a fresh temporary folder). */
  dataDir: string;
  /** The audit trail the server writes (absent with `audit: false`). */
  audit: AuditStore | undefined;
  /** `https://localhost:<port>`: the configured baseUrl, what JWT `aud` is built from. */
  base: string;
  ca: string;
  privateJwk: JWK;
  logs: string[];
  /** A signed JWT for `path` (e.g. `/cds-services/order-sign-crd`). */
  token(path: string, over?: { iss?: string; aud?: string }): Promise<string>;
  /** POSTs a hook request with a fresh valid JWT. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<TestResponse>;
  get(path: string, headers?: Record<string, string>): Promise<TestResponse>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  fhirServers?: string[];
  fhirCa?: string;
  fhirTimeoutMs?: number;
  bodyBytes?: number;
  rules?: string;
  now?: () => number;
  /** Keep spent `jti`s in SQLite under the data folder (as `crdkit serve` does). */
  sqlite?: boolean;
  /** Record the audit trail in SQLite under the data folder (default true, as `crdkit serve`). */
  audit?: boolean;
  /** `limits.requestsPerMinute` (the rate limit per issuer). */
  requestsPerMinute?: number;
  /** `cors.origins`. */
  corsOrigins?: string[];
  /** More trusted clients (inline JWKS), e.g. a second issuer for the rate-limit tests. */
  extraClients?: Array<{ iss: string; publicJwk: JWK }>;
  /** `delegation` (RFC 8693 for DTR); private keys are written to files in the data folder. */
  delegation?: {
    audience: string;
    ehrs: Array<{ fhirServer: string; tokenEndpoint: string; clientId: string; privateJwk: JWK }>;
  };
  /**
   * Mutual TLS: `ca` is the PEM of the CA that client certificates must come from (written to
   * `client-ca.pem`, configured as `tls.ca`); `requestCert` defaults to true.
   */
  mutualTls?: { ca: string; requestCert?: boolean };
  /** `clients[].certificate` bindings by issuer (the default client is `TEST_ISS`). */
  certificates?: Record<string, { subject?: string; sha256?: string }>;
}

/** Applies the mutual TLS options to a configuration file. */
function withMutualTls(file: ConfigFile, opts: TestServerOptions): ConfigFile {
  const bindings = opts.certificates ?? {};
  return {
    ...file,
    tls: opts.mutualTls
      ? { ...file.tls, ca: 'client-ca.pem', requestCert: opts.mutualTls.requestCert ?? true }
      : file.tls,
    clients: file.clients.map((c) =>
      bindings[c.iss] ? { ...c, certificate: bindings[c.iss] } : c,
    ),
  };
}

/** Starts a server with one trusted client (inline JWKS) and the sample rules. */
export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-test-'));
  const pem = await selfSignedCertificate('localhost');
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  if (opts.fhirCa) writeFileSync(join(dir, 'fhir-ca.pem'), opts.fhirCa);
  const pair = await generateClientKeyPair('ES384');
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  // Port 0 first, then the real base URL: aud is checked against the configured baseUrl.
  const file = (port: number): ConfigFile => ({
    baseUrl: `https://localhost:${port}`,
    listen: { host: '127.0.0.1', port },
    tls: { cert: 'cert.pem', key: 'key.pem' },
    clients: [
      {
        iss: TEST_ISS,
        name: 'test EHR',
        jwks: { keys: [pair.publicJwk as { kty: string }] },
        fhirServers: opts.fhirServers ?? [],
      },
      ...(opts.extraClients ?? []).map((c) => ({
        iss: c.iss,
        jwks: { keys: [c.publicJwk as { kty: string }] },
      })),
    ],
    rules: opts.rules ?? join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
    dataDir: dir,
    ...(opts.fhirCa ? { fhir: { ca: 'fhir-ca.pem', timeoutMs: opts.fhirTimeoutMs ?? 2000 } } : {}),
    ...(opts.bodyBytes || opts.requestsPerMinute
      ? {
          limits: {
            ...(opts.bodyBytes ? { bodyBytes: opts.bodyBytes } : {}),
            ...(opts.requestsPerMinute ? { requestsPerMinute: opts.requestsPerMinute } : {}),
          },
        }
      : {}),
    ...(opts.corsOrigins ? { cors: { origins: opts.corsOrigins } } : {}),
    ...(opts.delegation
      ? {
          delegation: {
            audience: opts.delegation.audience,
            ehrs: opts.delegation.ehrs.map((e, i) => {
              writeFileSync(join(dir, `delegate-${i}.jwk.json`), JSON.stringify(e.privateJwk), {
                mode: 0o600,
              });
              return {
                fhirServer: e.fhirServer,
                tokenEndpoint: e.tokenEndpoint,
                clientId: e.clientId,
                privateKey: `delegate-${i}.jwk.json`,
              };
            }),
          },
        }
      : {}),
    log: { level: 'info' },
  });
  const rules = loadRules(file(0).rules);
  const port = await freePort();
  if (opts.mutualTls) writeFileSync(join(dir, 'client-ca.pem'), opts.mutualTls.ca);
  const config = resolveConfig(withMutualTls(file(port), opts), dir);
  const replay = opts.sqlite
    ? new SqliteReplayStore(openSqlite(join(dir, 'crdkit.db')))
    : new MemoryReplayStore();
  const audit =
    opts.audit === false
      ? undefined
      : await openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'test' });
  const app = await buildServer({
    config,
    logger: createLogger('info', sink),
    rules,
    replay,
    ...(audit ? { audit } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  await app.listen({ host: '127.0.0.1', port });
  const base = `https://localhost:${port}`;
  const token = (path: string, over: { iss?: string; aud?: string } = {}) =>
    signCdsJwt({
      privateJwk: pair.privateJwk,
      iss: over.iss ?? TEST_ISS,
      aud: over.aud ?? `${base}${path}`,
    });
  return {
    app,
    dataDir: dir,
    base,
    ca: pem.cert,
    privateJwk: pair.privateJwk,
    logs,
    token,
    async post(path, body, headers = {}) {
      return send(`${base}${path}`, {
        method: 'POST',
        ca: pem.cert,
        body: typeof body === 'string' ? body : JSON.stringify(body),
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${await token(path)}`,
          ...headers,
        },
      });
    },
    async get(path, headers = {}) {
      return send(`${base}${path}`, {
        ca: pem.cert,
        headers: { authorization: `Bearer ${await token(path)}`, ...headers },
      });
    },
    audit,
    close: async () => {
      await app.close();
      replay.close?.();
      await audit?.close();
    },
  };
}

/** A server whose trusted client may query a loopback FHIR stub holding `resources`. */
export async function startServerWithStub(
  resources: object[],
): Promise<{ server: TestServer; stub: FhirStub; close(): Promise<void> }> {
  const stub = await startFhirStub(resources);
  const server = await startTestServer({ fhirServers: [stub.origin], fhirCa: stub.cert });
  return {
    server,
    stub,
    close: async () => {
      await server.close();
      await stub.close();
    },
  };
}
