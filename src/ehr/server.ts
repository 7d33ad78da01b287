/**
 * The EHR side assembled (`crdkit ehr`): one HTTPS server with the OAuth 2 / SMART authorization
 * server under `/oauth` (and SMART discovery at `/fhir/.well-known/smart-configuration`), the
 * FHIR API for payers under `/fhir`, RFC 8693 token exchange, the resource store with its
 * opaque-id mapping, and the audit trail every access and token event goes to.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { openAuditStore, type AuditStore } from '../audit/index.js';
import { compilePolicy, judgeResource, loadSharingPolicy } from '../client/policy/index.js';
import { stripElements } from '../client/policy/elements.js';
import { patientOf } from './store/index.js';
import { SigningKeys } from '../auth/signing-keys.js';
import { RateLimiter } from '../server/rate-limit.js';
import type { Consent, Coverage, Organization, Resource } from '@medplum/fhirtypes';
import type { AccessGrant } from './types.js';
import { serverTlsOptions } from '../tls/options.js';
import {
  createAuthorizationServer,
  type AuthorizationServerOptions,
  type EhrAuthorizationServer,
} from './authz/index.js';
import { registerTokenExchange } from './authz/token-exchange.js';
import type { EhrConfig } from './config.js';
import { registerFhirApi, type PayerSharing } from './fhir/index.js';
import { openOpaqueIds, type OpaqueIds } from './ids.js';
import { seedDemoData, type DemoRefs } from './seed/index.js';
import { openResourceStore, type ResourceStore } from './store/index.js';

export interface EhrDeps {
  config: EhrConfig;
  logger: Logger;
  /** An audit store to use instead of the configured one (tests share one). */
  audit?: AuditStore;
}

/** The running EHR side: its parts, for the CLI, the CRD client and tests. */
export interface EhrSide {
  app: Awaited<ReturnType<typeof buildApp>>;
  authz: EhrAuthorizationServer;
  store: ResourceStore;
  ids: OpaqueIds;
  audit: AuditStore;
  /** The demo records, when the store was seeded. */
  demo?: DemoRefs;
  /** The CRD client's signing key store (published at `/.well-known/jwks.json`). */
  signingKeyStore: string;
  close(): Promise<void>;
}

/**
 * The sharing policy the CRD client applies, applied again to the payers' own queries: data the
 * client would withhold from a call is not readable with that call's token either; elements the
 * client strips are stripped here too; and a payer sees only the coverages it is the payor of
 * (dev-29: the client sends no other payer's coverage, so neither does the API).
 */
function payerSharing(config: EhrConfig, store: ResourceStore) {
  const settings = loadSharingPolicy(config.crdClient?.policy);
  const policy = compilePolicy(settings);
  const identifiersOf = (payer: string) =>
    config.crdClient?.payers.find((p) => p.id === payer)?.identifiers ?? [
      { system: 'urn:crdkit:payer', value: payer },
    ];
  const isPayor = (coverage: Coverage, payer: string): boolean => {
    const ours = identifiersOf(payer);
    const match = (ids: Array<{ system?: string; value?: string }> | undefined) =>
      (ids ?? []).some((i) => ours.some((o) => o.system === i.system && o.value === i.value));
    return (coverage.payor ?? []).some((ref) => {
      if (ref.identifier && match([ref.identifier])) return true;
      const local = /^Organization\/([A-Za-z0-9.-]{1,64})$/.exec(ref.reference ?? '');
      return local ? match(store.read<Organization>('Organization', local[1]!)?.identifier) : false;
    });
  };
  const redact = (resource: Resource): Resource => {
    const copy = structuredClone(resource) as Resource & Record<string, unknown>;
    stripElements(copy, settings.elements ?? []);
    return copy;
  };
  return (grant: AccessGrant): PayerSharing => {
    const id = identifiersOf(grant.payer!)[0];
    const payer = id ? { identifier: `${id.system}|${id.value}` } : {};
    const now = new Date();
    // Each patient's active Consents are read once per request, not once per resource.
    const consents = new Map<string, Consent[]>();
    const consentsOf = (patient: string) => {
      let found = consents.get(patient);
      if (!found) {
        found = store.search<Consent>('Consent', [
          { name: 'patient', values: [`Patient/${patient}`] },
          { name: 'status', values: ['active'] },
        ]);
        consents.set(patient, found);
      }
      return found;
    };
    const withhold = (resource: Resource): boolean => {
      if (resource.resourceType === 'Consent') return true; // what a patient restricted is private
      if (resource.resourceType === 'Coverage' && !isPayor(resource, grant.payer!)) return true;
      const patient = grant.patient ?? patientOf(resource);
      const reasons = judgeResource(policy, resource as never, {
        consents: patient ? consentsOf(patient) : [],
        payer,
        now,
      });
      return reasons.length > 0;
    };
    return { withhold, redact };
  };
}

/**
 * The public JWK Set of the CRD client's signing keys, re-read only when the key store changes
 * (`crdkit client rotate-keys`), one load at a time: requests never write the store.
 */
function publishedKeys(store: string): () => Promise<{ keys: unknown[] }> {
  let loaded: { mtimeMs: number; jwks: { keys: unknown[] } } | undefined;
  let loading: Promise<{ keys: unknown[] }> | undefined;
  return async () => {
    const mtimeMs = existsSync(store) ? statSync(store).mtimeMs : -1;
    if (loaded && loaded.mtimeMs === mtimeMs) return loaded.jwks;
    loading ??= SigningKeys.create({ store })
      .then((keys) => {
        loaded = { mtimeMs: existsSync(store) ? statSync(store).mtimeMs : -1, jwks: keys.jwks() };
        return loaded.jwks;
      })
      .finally(() => {
        loading = undefined;
      });
    return loading;
  };
}

/** The demo's sign-in user: the ordering practitioner of the synthetic data. */
function demoUsers(demo: DemoRefs) {
  return [{ id: 'morgan', name: 'Dr. Morgan (demo)', fhirUser: demo['pract-morgan'] }];
}

function authzStore(config: EhrConfig) {
  if (config.store === 'sqlite') {
    return { kind: 'sqlite' as const, path: join(config.dataDir, 'authz.db') };
  }
  if (/^rediss?:\/\//.test(config.store)) return { kind: 'redis' as const, url: config.store };
  return { kind: 'postgres' as const, url: config.store };
}

async function buildApp(config: EhrConfig, logger: Logger, authz: EhrAuthorizationServer) {
  const tls = serverTlsOptions(config.tls);
  const oauthLimiter = new RateLimiter({ perMinute: config.limits.oauthRequestsPerMinute });
  return Fastify({
    // Only for Fastify's own view of the server (its "listening at https://…" line): the server
    // itself comes from serverFactory, with the same options.
    https: tls,
    loggerInstance: logger,
    // OAuth paths go to oidc-provider (Koa) before Fastify routes anything.
    serverFactory: (handler) =>
      createServer(
        {
          ...tls,
          headersTimeout: 10_000,
          requestTimeout: 30_000,
          connectionsCheckingInterval: 2_000,
        },
        (req: IncomingMessage, res: ServerResponse) => {
          const path = (req.url ?? '/').split('?')[0]!;
          if (!authz.ownsPath(path)) return handler(req, res);
          // Before any client is authenticated, the OAuth endpoints are limited per address.
          const decision = oauthLimiter.take(req.socket.remoteAddress ?? '');
          if (!decision.allowed) {
            res.writeHead(429, {
              'content-type': 'application/json',
              'cache-control': 'no-store',
              'retry-after': String(decision.retryAfterSeconds),
            });
            res.end(
              JSON.stringify({
                error: 'temporarily_unavailable',
                error_description: 'too many requests from this address; retry later',
              }),
            );
            return;
          }
          authz.handle(req, res);
        },
      ) as unknown as Server,
    connectionTimeout: 30_000,
    keepAliveTimeout: 5_000,
    requestTimeout: 30_000,
    return503OnClosing: true,
    trustProxy: false,
    // Request paths carry resource ids: the FHIR API logs its own line without them.
    logController: new LogController({ disableRequestLogging: true }),
  });
}

/** The authorization server's options from the EHR configuration (server and CLI share them). */
export function authorizationOptions(
  config: EhrConfig,
  audit: AuditStore,
  logger: Logger,
  demo?: DemoRefs,
  ids?: OpaqueIds,
): AuthorizationServerOptions {
  return {
    ...(ids
      ? { externalIds: (payer: string, type: string, id: string) => ids.toOpaque(payer, type, id) }
      : {}),
    baseUrl: config.baseUrl,
    clients: config.clients,
    store: authzStore(config),
    cookieKeys: config.secrets.cookieKeys,
    signingKeys: config.secrets.signingKeys,
    audit,
    instance: config.audit.instance,
    logger,
    users: config.users.length > 0 || !demo ? config.users : demoUsers(demo),
  };
}

/**
 * The authorization server with RFC 8693 token exchange registered (clients that list that
 * grant are only valid once it is): `crdkit ehr` and `crdkit client` open the same state.
 */
export async function openAuthorization(
  config: EhrConfig,
  audit: AuditStore,
  logger: Logger,
  demo?: DemoRefs,
  ids?: OpaqueIds,
): Promise<EhrAuthorizationServer> {
  const authz = await createAuthorizationServer(
    authorizationOptions(config, audit, logger, demo, ids),
  );
  // A delegate token whose audit record fails is withdrawn: kept by audit id until then.
  const issued = new Map<string, string>();
  registerTokenExchange(authz.provider, {
    fhirBaseUrl: config.fhirBaseUrl,
    resolveSubject: (token) => authz.resolver.resolve(token),
    issue: async (grant, clientId) => {
      const token = await authz.issueToken(grant, clientId);
      issued.set(token.tokenId, token.access_token);
      setTimeout(() => issued.delete(token.tokenId), 10_000).unref();
      return token;
    },
    revoke: async (tokenId) => {
      const token = issued.get(tokenId);
      issued.delete(tokenId);
      if (token) await authz.revoke(token);
    },
    audiences: config.delegation.audiences,
    audit,
    instance: config.audit.instance,
  });
  return authz;
}

/** Opens the configured audit store (the EHR's own trail). */
export function openEhrAudit(config: EhrConfig): Promise<AuditStore> {
  return openAuditStore({
    url: config.audit.store,
    dataDir: config.dataDir,
    instance: config.audit.instance,
    ...(config.audit.encryption ? { encryption: config.audit.encryption } : {}),
    retentionDays: config.audit.retentionDays,
  });
}

/** Opens storage, builds the authorization server and the FHIR API; not yet listening. */
export async function buildEhr(deps: EhrDeps): Promise<EhrSide> {
  const { config, logger } = deps;
  const instance = config.audit.instance;
  const audit = deps.audit ?? (await openEhrAudit(config));
  const closers: Array<() => unknown> = deps.audit ? [] : [() => audit.close()];
  try {
    const store = openResourceStore({ path: join(config.dataDir, 'ehr.db') });
    closers.push(() => store.close?.());
    const demo = config.seed ? seedDemoData(store) : undefined;
    const ids = openOpaqueIds({
      path: join(config.dataDir, 'ids.db'),
      baseUrl: config.fhirBaseUrl,
      secret: Buffer.from(config.secrets.idKey, 'base64'),
    });
    closers.push(() => ids.close?.());
    const authz = await openAuthorization(config, audit, logger, demo, ids);
    closers.push(() => authz.close());
    const app = await buildApp(config, logger, authz);
    await registerFhirApi(app, {
      prefix: '/fhir',
      baseUrl: config.fhirBaseUrl,
      store,
      resolver: authz.resolver,
      ids,
      audit,
      instance,
      sharing: payerSharing(config, store),
      requestsPerMinute: config.limits.requestsPerMinute,
    });
    // The CDS Hooks JWK Set of this EHR's CRD client (the `jku` payers fetch): public keys only,
    // read from the key store each time so a rotation by `crdkit client` shows at once.
    const published = publishedKeys(config.signingKeyStore);
    await published(); // creates the first key once, at start-up, before any request
    app.get('/.well-known/jwks.json', async (_req, reply) =>
      reply.header('cache-control', 'public, max-age=60').send(await published()),
    );
    closers.push(() => app.close());
    return {
      app,
      authz,
      store,
      ids,
      audit,
      ...(demo ? { demo } : {}),
      signingKeyStore: config.signingKeyStore,
      async close() {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close();
    throw err;
  }
}
