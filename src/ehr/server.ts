/**
 * The EHR side assembled (`crdkit ehr`): one HTTPS server with the OAuth 2 / SMART authorization
 * server under `/oauth` (and SMART discovery at `/fhir/.well-known/smart-configuration`), the
 * FHIR API for payers under `/fhir`, RFC 8693 token exchange, the resource store with its
 * opaque-id mapping, and the audit trail every access and token event goes to.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import Fastify from 'fastify';
import type { Logger } from 'pino';
import { openAuditStore, type AuditStore } from '../audit/index.js';
import { compilePolicy, judgeResource, loadSharingPolicy } from '../client/policy/index.js';
import { SigningKeys } from '../client/transport/index.js';
import type { Consent, Resource } from '@medplum/fhirtypes';
import type { AccessGrant } from './types.js';
import { serverTlsOptions } from '../tls/options.js';
import {
  createAuthorizationServer,
  type AuthorizationServerOptions,
  type EhrAuthorizationServer,
} from './authz/index.js';
import { registerTokenExchange } from './authz/token-exchange.js';
import type { EhrConfig } from './config.js';
import { registerFhirApi } from './fhir/index.js';
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
  close(): Promise<void>;
}

/**
 * The sharing policy the CRD client applies, applied again to the payers' own queries: data the
 * client would withhold from a call is not readable with that call's token either.
 */
function payerSharing(config: EhrConfig, store: ResourceStore) {
  const policy = compilePolicy(loadSharingPolicy(config.crdClient?.policy));
  const identity = (payer: string) => {
    const id = config.crdClient?.payers.find((p) => p.id === payer)?.identifiers[0];
    return id ? { identifier: `${id.system}|${id.value}` } : {};
  };
  return (resource: Resource, grant: AccessGrant): boolean => {
    const consents = grant.patient
      ? store.search<Consent>('Consent', [
          { name: 'patient', values: [grant.patient] },
          { name: 'status', values: ['active'] },
        ])
      : [];
    const reasons = judgeResource(policy, resource as never, {
      consents,
      payer: identity(grant.payer!),
      now: new Date(),
    });
    return reasons.length > 0;
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
  return Fastify({
    // Only for Fastify's own view of the server (its "listening at https://…" line): the server
    // itself comes from serverFactory, with the same options.
    https: tls,
    loggerInstance: logger,
    // OAuth paths go to oidc-provider (Koa) before Fastify routes anything.
    serverFactory: (handler) =>
      createServer(
        { ...tls, headersTimeout: 10_000, connectionsCheckingInterval: 2_000 },
        (req: IncomingMessage, res: ServerResponse) => {
          const path = (req.url ?? '/').split('?')[0]!;
          if (authz.ownsPath(path)) authz.handle(req, res);
          else handler(req, res);
        },
      ) as unknown as Server,
    connectionTimeout: 30_000,
    keepAliveTimeout: 5_000,
    requestTimeout: 30_000,
    return503OnClosing: true,
    trustProxy: false,
  });
}

/** The authorization server's options from the EHR configuration (server and CLI share them). */
export function authorizationOptions(
  config: EhrConfig,
  audit: AuditStore,
  logger: Logger,
  demo?: DemoRefs,
): AuthorizationServerOptions {
  return {
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
): Promise<EhrAuthorizationServer> {
  const authz = await createAuthorizationServer(authorizationOptions(config, audit, logger, demo));
  registerTokenExchange(authz.provider, {
    fhirBaseUrl: config.fhirBaseUrl,
    resolveSubject: (token) => authz.resolver.resolve(token),
    issue: (grant, clientId) => authz.issueToken(grant, clientId),
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
    const authz = await openAuthorization(config, audit, logger, demo);
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
      withhold: payerSharing(config, store),
    });
    // The CDS Hooks JWK Set of this EHR's CRD client (the `jku` payers fetch): public keys only,
    // read from the key store each time so a rotation by `crdkit client` shows at once.
    app.get('/.well-known/jwks.json', async (_req, reply) => {
      const keys = await SigningKeys.create({ store: config.signingKeyStore });
      return reply.header('cache-control', 'public, max-age=60').send(keys.jwks());
    });
    closers.push(() => app.close());
    return {
      app,
      authz,
      store,
      ids,
      audit,
      ...(demo ? { demo } : {}),
      async close() {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close();
    throw err;
  }
}
