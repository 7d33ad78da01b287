/**
 * The payer's CRD server: Fastify over HTTPS with the routes of CDS Hooks. Each route is a short
 * pipeline (DESIGN.md): authenticate → route → validate → gather → decide → respond.
 */
import { readFileSync } from 'node:fs';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { serverTlsOptions } from '../tls/options.js';
import { AuthError } from '../auth/errors.js';
import { createVerifier, type Verifier } from '../auth/verify.js';
import type { ReplayStore } from '../auth/replay.js';
import { CdsError } from '../cds/outcome.js';
import { MAX_JSON_DEPTH, tooDeep } from '../cds/shapes.js';
import { discoveryDocument } from '../crd/discovery.js';
import { hookForService } from '../crd/hooks.js';
import { allowedFhirServer } from '../fhir/client.js';
import { createDelegation } from './delegation.js';
import type { RulesFile } from '../rules/index.js';
import { cardTypesByHook } from './card-types.js';
import { clientErrorHandler, errorHandler, frameworkErrors, notFoundHandler } from './errors.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { checkClientCertificate } from './client-certificate.js';
import { registerCors } from './cors.js';
import { RateLimiter, rateLimitHook } from './rate-limit.js';
import { handleHookCall, type HookCallDeps } from './hook-call.js';
import {
  assertionIds,
  hookAuditInput,
  receivedAt,
  registerAuditOfRefusals,
} from './audit-trail.js';
import type { AuditStore } from '../audit/index.js';

export interface ServerDeps {
  config: Config;
  logger: Logger;
  rules: RulesFile;
  replay: ReplayStore;
  /** The audit trail (found-37); every hook exchange is recorded before its answer is sent. */
  audit?: AuditStore;
  /** The clock (epoch ms); tests freeze it. */
  now?: () => number;
}

declare module 'fastify' {
  interface FastifyRequest {
    client?: import('../auth/verify.js').VerifiedClient;
    /** What the access line says about this request (never PHI, tokens or resources). */
    summary?: Record<string, unknown>;
    /** The request body as received, for the audit digest and encrypted payload only. */
    rawBody?: string;
    /** Set once the exchange has its audit record. */
    audited?: boolean;
  }
}

const SERVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Builds the server (not yet listening). */
export async function buildServer(deps: ServerDeps) {
  const { config } = deps;
  const app = Fastify({
    https: {
      ...serverTlsOptions(config.tls),
      // A slow client cannot hold a connection: headers within 10 s, checked every 2 s.
      headersTimeout: 10_000,
      connectionsCheckingInterval: 2_000,
      maxHeaderSize: 16_384,
    },
    frameworkErrors,
    clientErrorHandler,
    loggerInstance: deps.logger,
    bodyLimit: config.limits.bodyBytes,
    connectionTimeout: 30_000,
    keepAliveTimeout: 5_000,
    requestTimeout: 30_000,
    routerOptions: { maxParamLength: 100 },
    // While closing, requests still arriving on open connections get crdkit's own 503 (an
    // OperationOutcome, below), not Fastify's bare JSON.
    return503OnClosing: false,
    // One access line per request (onResponse below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // The Host header is never trusted for anything (JWT aud is built from baseUrl).
    trustProxy: false,
  });
  const verifier: Verifier = createVerifier({
    clients: config.clients,
    replay: deps.replay,
    clockSkewSeconds: config.auth.clockSkewSeconds,
    maxLifetimeSeconds: config.auth.maxLifetimeSeconds,
    ...(deps.now ? { now: () => Math.floor(deps.now!() / 1000) } : {}),
    // `fhir.ca` is the trust anchor for the EHR's servers: its FHIR API and its JWK Set URL.
    ...(config.fhir.ca ? { keySets: { ca: readFileSync(config.fhir.ca) } } : {}),
  });
  const base = config.baseUrl;

  app.setErrorHandler(errorHandler);
  // Fastify marks the routes closed, then runs preClose: from here on every request is refused.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_req, reply, done) => {
    if (!closing) return done();
    reply.header('retry-after', '1');
    done(new CdsError(503, 'ERR_SHUTTING_DOWN', 'the server is shutting down; retry', 'transient'));
  });
  app.setNotFoundHandler(notFoundHandler);
  app.removeAllContentTypeParsers();
  // Only JSON is accepted; anything else is a 415 before the body is read.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    req.rawBody = body as string;
    try {
      const parsed: unknown = JSON.parse(body as string);
      if (tooDeep(parsed)) {
        const message = `the request body nests deeper than ${MAX_JSON_DEPTH} levels`;
        return done(new CdsError(400, 'ERR_JSON_DEPTH', message, 'structure', '(body)'), undefined);
      }
      done(null, parsed);
    } catch {
      done(
        new CdsError(400, 'ERR_JSON', 'the request body is not valid JSON', 'structure', '(body)'),
        undefined,
      );
    }
  });
  app.addHook('onResponse', (req, reply, done) => {
    const path = req.url.split('?')[0];
    req.log.info(
      {
        method: req.method,
        path,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(req.client ? { client: req.client.client.name ?? req.client.iss } : {}),
        ...req.summary,
      },
      'request',
    );
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    reply.headers(SECURITY_HEADERS);
    done(null, payload);
  });
  registerCors(app, config.cors.origins);
  if (deps.audit) registerAuditOfRefusals(app, deps.audit, config.audit.instance);
  // Per verified issuer, after every route's authentication (onRequest), before the body is read.
  const limiter = new RateLimiter({
    perMinute: config.limits.requestsPerMinute,
    ...(deps.now ? { now: deps.now } : {}),
  });
  app.addHook('preParsing', rateLimitHook(limiter));

  const authenticate = (audience: string) => async (req: import('fastify').FastifyRequest) => {
    try {
      // Two Authorization headers: Node keeps the first; a proxy may have read the other.
      const names = req.raw.rawHeaders.filter((_, i) => i % 2 === 0);
      if (names.filter((h) => /^authorization$/i.test(h)).length > 1)
        throw new AuthError('ERR_JWT_MALFORMED', 'several Authorization headers');
      req.client = await verifier.verify(req.headers.authorization, audience);
      checkClientCertificate(req, req.client, config.clients);
    } catch (err) {
      // The expected audience is public (baseUrl plus path): saying it helps a caller that
      // addressed the server by another name, and reveals nothing from the token.
      if (err instanceof AuthError && err.code === 'ERR_JWT_AUD') {
        throw new AuthError('ERR_JWT_AUD', `expected "${audience}"`);
      }
      throw err;
    }
  };

  const cardTypes = cardTypesByHook(deps.rules);
  const discovery = discoveryDocument(deps.rules.payers.map((p) => p.name).join(', '), cardTypes);
  app.get(
    '/cds-services',
    {
      onRequest: config.auth.discoveryRequiresAuth ? authenticate(`${base}/cds-services`) : [],
    },
    async () => discovery,
  );

  const fhirCa = config.fhir.ca ? readFileSync(config.fhir.ca) : undefined;
  const delegation = createDelegation(config, deps.logger, fhirCa);
  const hookDeps: HookCallDeps = {
    config,
    rules: deps.rules,
    now: deps.now ?? Date.now,
    cardTypes,
    ...(fhirCa ? { fhirCa } : {}),
  };
  app.post<{ Params: { id: string } }>(
    '/cds-services/:id',
    {
      onRequest: async (req) => {
        const { id } = req.params as { id: string };
        // Names that could not be a service id are never turned into an audience.
        if (!SERVICE_ID.test(id))
          throw new CdsError(404, 'ERR_NOT_FOUND', 'no such service', 'not-found');
        await authenticate(`${base}/cds-services/${id}`)(req);
        if (!hookForService(id)) {
          throw new CdsError(404, 'ERR_SERVICE_UNKNOWN', 'no such service', 'not-found', 'hook');
        }
      },
    },
    async (req, reply) => {
      const def = hookForService(req.params.id)!;
      const result = await handleHookCall(hookDeps, def, req.client!, req.body);
      req.summary = result.summary;
      const bytes = Buffer.from(JSON.stringify(result.response));
      if (deps.audit) {
        // found-37: the record is written before the answer leaves; if it cannot be, the
        // answer is a 503 (AuditUnavailableError), never an unrecorded 200.
        const input = hookAuditInput(req, receivedAt(reply), config.audit.instance, 200, bytes, {
          coverageAssertionIds: assertionIds(result.response),
        });
        await deps.audit.appendHook(input);
        req.audited = true;
      }
      await reply.status(200).type('application/json').send(bytes);
      // sec-9: documentation needed → a delegate token for DTR, after the answer has left.
      if (delegation) {
        const body = req.body as {
          fhirServer?: string;
          fhirAuthorization?: { access_token?: string };
          context?: { patientId?: string };
        };
        const registered = allowedFhirServer(body.fhirServer, req.client!.client.fhirServers ?? []);
        void delegation.afterAnswer({
          fhirServer: registered?.href,
          accessToken: body.fhirAuthorization?.access_token,
          patient: body.context?.patientId,
          response: result.response,
        });
      }
      return reply;
    },
  );

  const methodNotAllowed =
    (allow: string) => async (_req: unknown, reply: import('fastify').FastifyReply) =>
      reply
        .status(405)
        .header('allow', allow)
        .type('application/fhir+json')
        .send(
          new CdsError(
            405,
            'ERR_METHOD',
            `method not allowed; use ${allow}`,
            'not-supported',
          ).toOutcome(),
        );
  app.route({
    method: ['POST', 'PUT', 'DELETE', 'PATCH'],
    url: '/cds-services',
    handler: methodNotAllowed('GET'),
  });
  app.route({
    method: ['GET', 'PUT', 'DELETE', 'PATCH'],
    url: '/cds-services/:id',
    handler: methodNotAllowed('POST'),
  });
  return app;
}

/** The server type returned by {@link buildServer}. */
export type CrdServer = Awaited<ReturnType<typeof buildServer>>;
