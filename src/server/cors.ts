/**
 * CORS for browser callers (SMART apps calling CDS services), as CDS Hooks advises: the allowed
 * origins come from `cors.origins` only, and an allowed origin is echoed, never `*`.
 *
 * - An allowed `Origin` gets `Access-Control-Allow-Origin: <that origin>` on every answer
 *   (errors too, so a browser can read the OperationOutcome), `Access-Control-Expose-Headers`
 *   for `Retry-After` and `WWW-Authenticate`, and no `Access-Control-Allow-Credentials`: the
 *   CDS Hooks JWT is a bearer token, never a cookie.
 * - A preflight (`OPTIONS /cds-services`, `OPTIONS /cds-services/{id}`) needs no token: 204 with
 *   the methods of that path (GET for discovery, POST for services), the request headers
 *   `Authorization, Content-Type` and a max age of 600 s.
 * - A disallowed or missing `Origin` gets no CORS header at all; its preflight is still answered
 *   204 (with `Allow`), so the browser refuses the call and the allow-list is not revealed.
 * - `Vary: Origin` is on every answer when origins are configured (the CORS headers depend on it).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Seconds a browser may cache a preflight answer. */
export const PREFLIGHT_MAX_AGE = 600;

/** `https://Host:443` → `https://host`: the form browsers send in `Origin`. */
export function normalizeOrigin(origin: string): string {
  return new URL(origin).origin;
}

/** The CORS policy of one configuration: `allowed(origin)` is true for listed origins only. */
export function corsPolicy(origins: readonly string[]) {
  const allowed = new Set(origins.map(normalizeOrigin));
  return {
    enabled: allowed.size > 0,
    /** The origin to echo, or undefined (absent, `null`, several values or not listed). */
    allowedOrigin(header: string | string[] | undefined): string | undefined {
      return typeof header === 'string' && allowed.has(header) ? header : undefined;
    },
  };
}

function addVary(reply: FastifyReply, field: string): void {
  const current = reply.getHeader('vary');
  const list = current === undefined ? [] : String(current).split(/\s*,\s*/);
  if (list.some((v) => v === '*' || v.toLowerCase() === field.toLowerCase())) return;
  reply.header('vary', [...list.filter(Boolean), field].join(', '));
}

/**
 * Adds the CORS headers to every answer and the preflight routes. Call once on the server,
 * before `listen`.
 */
export function registerCors(app: FastifyInstance<any, any, any, any, any>, origins: string[]) {
  const policy = corsPolicy(origins);

  app.addHook('onSend', (req: FastifyRequest, reply: FastifyReply, payload: unknown, done) => {
    if (policy.enabled) {
      addVary(reply, 'Origin');
      const origin = policy.allowedOrigin(req.headers.origin);
      if (origin) {
        reply.header('access-control-allow-origin', origin);
        reply.header('access-control-expose-headers', 'Retry-After, WWW-Authenticate');
      }
    }
    done(null, payload);
  });

  const preflight = (methods: string) => (req: FastifyRequest, reply: FastifyReply) => {
    // No token here: browsers never send one on a preflight.
    reply.header('allow', `${methods}, OPTIONS`);
    if (policy.allowedOrigin(req.headers.origin)) {
      reply.header('access-control-allow-methods', methods);
      reply.header('access-control-allow-headers', 'Authorization, Content-Type');
      reply.header('access-control-max-age', String(PREFLIGHT_MAX_AGE));
    }
    void reply.status(204).send();
  };
  app.options('/cds-services', preflight('GET'));
  app.options('/cds-services/:id', preflight('POST'));
}
