/**
 * The EHR's FHIR R4 API for payers (CRD: the CRD client is the FHIR server a payer's CRD server
 * queries). Every request is authenticated by its bearer token, limited by the token's SMART
 * scopes and patient, translated to the payer's opaque ids (sec-7) and recorded in the audit
 * trail before it is answered (sec-8); no record, no answer.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { CdsError } from '../../cds/outcome.js';
import { AuditUnavailableError, type AuditStore } from '../../audit/index.js';
import type { OpaqueIds } from '../ids.js';
import type { ResourceStore } from '../store/resource-store.js';
import type { Resource } from '@medplum/fhirtypes';
import type { AccessGrant, TokenResolver } from '../types.js';
import { authenticate, newAccess, recordAccess, type Access } from './access.js';
import { capabilityStatement, defaultOAuthEndpoints, type OAuthEndpoints } from './capability.js';
import { allowedMethods, dispatch } from './dispatch.js';
import { FhirApiError } from './errors.js';
import { acceptsJson, addBodyParsers, ANSWER_HEADERS, FHIR_JSON, toError } from './http.js';
import { idView } from './id-view.js';
import { RateLimiter } from '../../server/rate-limit.js';
import type { Answer, InteractionContext } from './interactions.js';

export { FHIR_API_ERRORS, FhirApiError, type FhirApiErrorCode } from './errors.js';
export { capabilityStatement, defaultOAuthEndpoints, type OAuthEndpoints } from './capability.js';
export { allowed, parseScope, type ParsedScope, type Permission } from './scopes.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The EHR FHIR API's record of this request (grant, resources touched, parameters). */
    ehrFhir?: Access;
  }
}

export interface FhirApiOptions {
  /** Where the API is mounted, e.g. `/fhir`. */
  prefix: string;
  /** The public FHIR base URL (`https://127.0.0.1:8443/fhir`): tokens' audience, full URLs. */
  baseUrl: string;
  store: ResourceStore;
  resolver: TokenResolver;
  ids: OpaqueIds;
  /** The audit trail (sec-8). Without it nothing is recorded: for tests and demos only. */
  audit?: AuditStore;
  /** This instance's name in audit records (`hostname:pid`). */
  instance: string;
  /** Where the request lines go (default: the app's logger). */
  logger?: Logger;
  /** OAuth endpoints for the CapabilityStatement (default `B/oauth/…`, B = baseUrl minus `/fhir`). */
  oauth?: OAuthEndpoints;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Requests per minute per OAuth client (default 6000), in memory, per process. */
  requestsPerMinute?: number;
  /**
   * The EHR's sharing policy for payers' own queries (the client is the final arbiter), made
   * once per request of a payer's grant: `withhold` is true when a resource must not reach that
   * payer (it is answered like one the token may not see: 404 on read, left out of searches);
   * `redact` is a copy without the policy's stripped elements.
   */
  sharing?: (grant: AccessGrant) => PayerSharing;
  /** The clock (tests freeze it). */
  now?: () => Date;
}

/** See {@link FhirApiOptions.sharing}. */
export interface PayerSharing {
  withhold(resource: Resource): boolean;
  redact(resource: Resource): Resource;
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/**
 * Registers the API under `opts.prefix` in its own Fastify context (its own body parsers, error
 * and not-found handlers). Endpoints: `GET metadata`; `GET [type]/[id]` (read), `GET [type]?…`
 * and `POST [type]/_search` (search), `PUT [type]/[id]` (update of orders and Appointment),
 * `POST [type]` (create of Task and ClaimResponse). See `capability.ts` for the full table.
 *
 * @example
 * ```ts
 * await registerFhirApi(app, {
 *   prefix: '/fhir', baseUrl: 'https://127.0.0.1:8443/fhir', store, resolver, ids, audit,
 *   instance: `${hostname()}:${process.pid}`,
 * });
 * ```
 */
export async function registerFhirApi(
  // Any Fastify server (HTTP/2, HTTPS) and logger: the API only adds routes in its own context.
  app: FastifyInstance<any, any, any, any, any>,
  opts: FhirApiOptions,
): Promise<void> {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const now = opts.now ?? (() => new Date());
  const log = opts.logger ?? (app.log as Logger);
  const oauth = opts.oauth ?? defaultOAuthEndpoints(baseUrl);
  const started = now().toISOString();

  /** Audits, then sends; an audit failure turns any answer into a 503 without data. */
  const send = async (req: FastifyRequest, reply: FastifyReply, answer: Answer, code?: string) => {
    const access = req.ehrFhir ?? newAccess(now());
    let final = answer;
    let errorCode = code;
    if (opts.audit) {
      try {
        await recordAccess(opts.audit, opts.instance, req, access, answer.status, code);
      } catch (err) {
        const unavailable = err instanceof CdsError ? err : new AuditUnavailableError();
        log.error({ code: unavailable.code }, 'EHR FHIR API: audit record failed; answered 503');
        errorCode = unavailable.code;
        final = { status: unavailable.status, body: unavailable.toOutcome() as never };
      }
    }
    const { type } = (req.params ?? {}) as { type?: string };
    (opts.logger ?? req.log).info(
      {
        method: req.method,
        ...(type && TYPE.test(type) ? { type } : {}),
        ...(access.interaction ? { interaction: access.interaction } : {}),
        status: final.status,
        ...(errorCode ? { code: errorCode } : {}),
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'fhir request',
    );
    return reply
      .status(final.status)
      .headers({ ...ANSWER_HEADERS, ...final.headers })
      .type(FHIR_JSON)
      .send(JSON.stringify(final.body));
  };

  const fail = (req: FastifyRequest, reply: FastifyReply, err: unknown) => {
    const error = toError(err);
    if (error.status >= 500 && !(err instanceof CdsError)) {
      const e = err as { name?: string; code?: string };
      log.error({ err: { name: e?.name, code: e?.code } }, 'EHR FHIR API: request failed');
    }
    const wwwAuthenticate = (error as FhirApiError).wwwAuthenticate;
    const headers: Record<string, string> = wwwAuthenticate
      ? { 'www-authenticate': wwwAuthenticate }
      : {};
    const retryAfter = (error as FhirApiError).retryAfterSeconds;
    if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
    if (error.status === 405) {
      const { type, id } = (req.params ?? {}) as { type?: string; id?: string };
      headers.allow = allowedMethods(type, id);
    }
    return send(
      req,
      reply,
      { status: error.status, body: error.toOutcome() as never, headers },
      error.code,
    );
  };

  // Per OAuth client, after authentication (a caller without a valid token cannot spend a
  // client's allowance); every refusal is still one audit record.
  const limiter = new RateLimiter({ perMinute: opts.requestsPerMinute ?? 6000 });
  const requireToken = async (req: FastifyRequest) => {
    const access = req.ehrFhir!;
    const grant = await authenticate(req, access, opts.resolver, baseUrl, now());
    access.view = idView(opts.ids, grant);
    const decision = limiter.take(grant.clientId);
    if (!decision.allowed) {
      const err = new FhirApiError('ERR_RATE_LIMITED');
      err.retryAfterSeconds = decision.retryAfterSeconds;
      throw err;
    }
  };

  const context = (req: FastifyRequest): InteractionContext => {
    // The EHR's own apps (grants without a payer) see what their scopes allow, unfiltered.
    const sharing =
      opts.sharing && req.ehrFhir!.view!.payer !== undefined
        ? opts.sharing(req.ehrFhir!.grant!)
        : undefined;
    return {
      store: opts.store,
      baseUrl,
      access: req.ehrFhir!,
      view: req.ehrFhir!.view!,
      ...(sharing ? { withhold: sharing.withhold, redact: sharing.redact } : {}),
      onGuard: (type) =>
        log.error(
          { code: 'ERR_SEC7', type },
          'EHR FHIR API: refused a resource whose id is related to a business identifier',
        ),
    };
  };

  await app.register(
    async (api) => {
      addBodyParsers(api, opts.bodyLimit ?? 1_048_576);
      api.addHook('onRequest', async (req) => {
        req.ehrFhir = newAccess(now());
      });
      api.setErrorHandler((err, req, reply) => fail(req, reply, err));
      api.setNotFoundHandler(async (req, reply) => {
        try {
          await requireToken(req);
          throw new FhirApiError('ERR_ENDPOINT');
        } catch (err) {
          return fail(req, reply, err);
        }
      });

      api.route({
        method: [...METHODS],
        url: '/metadata',
        handler: async (req, reply) => {
          const access = req.ehrFhir!;
          access.action = 'capabilities';
          access.interaction = 'capabilities';
          if (req.method !== 'GET' && req.method !== 'HEAD') {
            return fail(req, reply, new FhirApiError('ERR_INTERACTION'));
          }
          if (!acceptsJson(req.headers.accept))
            return fail(req, reply, new FhirApiError('ERR_FORMAT'));
          // The CapabilityStatement is public (SMART discovery reads it before any token). A
          // valid token's read is recorded; an absent or invalid one is ignored.
          if (req.headers.authorization) {
            try {
              await requireToken(req);
            } catch {
              delete access.grant;
              access.tokenSent = false;
            }
          }
          return send(req, reply, {
            status: 200,
            body: capabilityStatement(baseUrl, oauth, started),
          });
        },
      });
      for (const url of ['/:type', '/:type/:id']) {
        api.route({
          method: [...METHODS],
          url,
          onRequest: requireToken,
          handler: async (req, reply) => {
            try {
              return await send(req, reply, dispatch(req, context(req), baseUrl));
            } catch (err) {
              return fail(req, reply, err);
            }
          },
        });
      }
    },
    { prefix: opts.prefix },
  );
}
