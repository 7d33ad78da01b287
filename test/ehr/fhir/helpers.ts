/**
 * A test EHR: the FHIR API for payers on a Fastify app (HTTPS with a certificate generated at
 * test time), the demo data, a real SQLite audit trail, a fake token resolver and captured logs.
 * Requests go through `inject` by default, or over TLS on loopback with `listen: true`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { AuditEvent, Resource } from '@medplum/fhirtypes';
import { openAuditStore, type AuditStore } from '../../../src/audit/index.js';
import { registerFhirApi, type FhirApiOptions } from '../../../src/ehr/fhir/index.js';
import { openOpaqueIds, type OpaqueIds } from '../../../src/ehr/ids.js';
import { seedDemoData, type DemoRefs } from '../../../src/ehr/seed/index.js';
import { openResourceStore, type ResourceStore } from '../../../src/ehr/store/index.js';
import type { AccessGrant, TokenResolver } from '../../../src/ehr/types.js';
import { createLogger } from '../../../src/log.js';
import { selfSignedCertificate } from '../../../src/tls/certs.js';
import { serverTlsOptions } from '../../../src/tls/options.js';
import { send, type TestResponse } from '../../helpers/https.js';
import { freePort } from '../../helpers/server.js';

export const PAYER = 'example-payer';
export const OTHER_PAYER = 'other-payer';
export const T_NOW = new Date('2025-06-02T10:00:00.000Z');

/** A fake resolver: tokens registered by the test map to grants; anything else is unknown. */
export class FakeResolver implements TokenResolver {
  readonly grants = new Map<string, AccessGrant>();
  fail = false;

  async resolve(token: string): Promise<AccessGrant | undefined> {
    if (this.fail) throw new Error('resolver down');
    return this.grants.get(token);
  }
}

export interface TestEhr {
  app: FastifyInstance<any, any, any, any, any>;
  base: string;
  store: ResourceStore;
  ids: OpaqueIds;
  audit: AuditStore;
  resolver: FakeResolver;
  demo: DemoRefs;
  logs: string[];
  ca: string;
  dir: string;
  /** Registers `token` with a grant built from {@link grantFor}'s defaults and `over`. */
  token(token: string, over?: Partial<AccessGrant>): string;
  /** One request: `path` is relative to the FHIR base (`Coverage?patient=…`). */
  request(
    method: string,
    path: string,
    opts?: { token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<TestResponse>;
  /** The internal id of a demo key (`patient-avery` → its uuid). */
  id(key: keyof DemoRefs): string;
  /** What `payer` sees for a demo key. */
  opaque(key: keyof DemoRefs, payer?: string): string;
  /** The FHIR access records written so far (oldest first). */
  accessEvents(): Promise<AuditEvent[]>;
  /** The security events written so far (no audit-read ones). */
  securityEvents(): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

/** A grant for the demo payer's CRD service, bound to `patient` (an internal id). */
export function grantFor(
  base: string,
  patient: string,
  over: Partial<AccessGrant> = {},
): AccessGrant {
  return {
    tokenId: `jti-${Math.random().toString(36).slice(2)}`,
    clientId: 'payer-crd',
    clientName: 'Example Health Plan CRD',
    scopes: [
      'patient/Patient.rs',
      'patient/Coverage.rs',
      'patient/Encounter.rs',
      'patient/Practitioner.rs',
      'patient/PractitionerRole.rs',
      'patient/Organization.rs',
      'patient/Location.rs',
      'patient/Device.rs',
      'patient/Medication.rs',
      'patient/DeviceRequest.rus',
      'patient/MedicationRequest.rus',
      'patient/ServiceRequest.rus',
      'patient/Appointment.rus',
      'patient/Task.c',
    ],
    patient,
    hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
    service: 'order-sign-crd',
    declaredTypes: ['Patient', 'Coverage'],
    audience: base,
    payer: PAYER,
    issuedAt: new Date(T_NOW.getTime() - 5_000),
    expiresAt: new Date(T_NOW.getTime() + 25_000),
    ...over,
  };
}

export interface TestEhrOptions {
  /** Listen on loopback over TLS (requests then go over the network). */
  listen?: boolean;
  api?: Partial<FhirApiOptions>;
}

/** Starts a test EHR with the demo data. */
export async function startTestEhr(opts: TestEhrOptions = {}): Promise<TestEhr> {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-ehr-'));
  const pem = await selfSignedCertificate('localhost');
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  const port = opts.listen ? await freePort() : 8443;
  const base = `https://127.0.0.1:${port}/fhir`;
  const dbPath = join(dir, 'ehr.db');
  const store = openResourceStore({ path: dbPath, now: () => T_NOW });
  const demo = seedDemoData(store);
  const ids = openOpaqueIds({ path: dbPath, baseUrl: base });
  const audit = await openAuditStore({ url: 'sqlite', dataDir: dir, instance: 't' });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger('info', sink);
  const app = Fastify({
    https: serverTlsOptions({ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }),
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  const resolver = new FakeResolver();
  await registerFhirApi(app, {
    prefix: '/fhir',
    baseUrl: base,
    store,
    resolver,
    ids,
    audit,
    instance: 'ehr-test',
    now: () => T_NOW,
    ...opts.api,
  });
  if (opts.listen) await app.listen({ host: '127.0.0.1', port });
  else await app.ready();

  const ehr: TestEhr = {
    app,
    base,
    store,
    ids,
    audit,
    resolver,
    demo,
    logs,
    ca: pem.cert,
    dir,
    token(token, over = {}) {
      resolver.grants.set(token, grantFor(base, ehr.id('patient-avery'), over));
      return token;
    },
    async request(method, path, r = {}) {
      const headers: Record<string, string> = { ...r.headers };
      if (r.token !== undefined) headers.authorization = `Bearer ${r.token}`;
      let payload: string | undefined;
      if (r.body !== undefined) {
        payload = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
        headers['content-type'] ??= 'application/fhir+json';
      }
      if (opts.listen) {
        return send(`${base}/${path}`, {
          method,
          headers,
          ...(payload !== undefined ? { body: payload } : {}),
          ca: pem.cert,
        });
      }
      const res = await app.inject({
        method: method as 'GET',
        url: `/fhir/${path}`,
        headers,
        ...(payload !== undefined ? { payload } : {}),
      });
      let json: unknown;
      try {
        json = res.body ? JSON.parse(res.body) : undefined;
      } catch {
        json = undefined;
      }
      return {
        status: res.statusCode,
        headers: res.headers as TestResponse['headers'],
        text: res.body,
        json,
      };
    },
    id: (key) => demo[key].split('/')[1]!,
    opaque: (key, payer = PAYER) => {
      const [type, id] = demo[key].split('/');
      return ids.toOpaque(payer, type!, id!);
    },
    async accessEvents() {
      return (await events(audit)).filter((e) =>
        e.subtype?.some((c) => c.system === 'urn:crdkit:fhir-access'),
      );
    },
    async securityEvents() {
      return (await events(audit)).filter((e) =>
        e.subtype?.some((c) => c.system === 'urn:crdkit:security-event' && c.code !== 'audit-read'),
      );
    },
    async close() {
      await app.close();
      await audit.close();
      ids.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return ehr;
}

async function events(audit: AuditStore): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for await (const e of audit.export({ reader: 'test' })) out.push(e);
  return out;
}

/** The `detail` value of an access record's query entity (`parameters`, `http-status`…). */
export function detail(event: AuditEvent, type: string): string | undefined {
  for (const entity of event.entity ?? []) {
    for (const d of entity.detail ?? []) if (d.type === type) return d.valueString;
  }
  return undefined;
}

/** The entity references of an audit record. */
export function references(event: AuditEvent): string[] {
  return (event.entity ?? []).map((e) => e.what?.reference).filter((r): r is string => !!r);
}

/** The resources of a search Bundle, and their search modes. */
export function entries(bundle: any): Array<{ resource: Resource; mode: string; fullUrl: string }> {
  return (bundle?.entry ?? []).map((e: any) => ({
    resource: e.resource,
    mode: e.search?.mode,
    fullUrl: e.fullUrl,
  }));
}
