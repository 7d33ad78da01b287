/**
 * The server's side of the audit trail (found-37): every hook exchange is recorded before its
 * answer is sent, refusals and security events too, without tokens. The records themselves,
 * their chain and encryption live in `src/audit/`.
 */
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditStore, HookAuditInput, SecurityAuditInput } from '../audit/index.js';
import { COVERAGE_INFORMATION_URL } from '../crd/coverage-info.js';
import type { HookResponse } from './respond.js';

type Json = Record<string, any>;

/** `coverage-assertion-id`s in a response's coverage-information system actions. */
export function assertionIds(response: HookResponse): string[] {
  const ids = new Set<string>();
  for (const action of response.systemActions ?? []) {
    for (const ext of (action.resource as Json).extension ?? []) {
      if (ext.url !== COVERAGE_INFORMATION_URL) continue;
      for (const sub of ext.extension ?? []) {
        if (sub.url === 'coverage-assertion-id') ids.add(sub.valueString);
      }
    }
  }
  return [...ids];
}

/** Orders (or Appointments) the request names, by reference only. */
function orderReferences(body: Json | undefined): string[] {
  const context = body?.context ?? {};
  const fromBundle = (b: Json | undefined) =>
    Array.isArray(b?.entry)
      ? b.entry
          .map((e: Json) => e?.resource)
          .filter((r: Json) => typeof r?.resourceType === 'string' && typeof r?.id === 'string')
          .map((r: Json) => `${r.resourceType}/${r.id}`)
      : [];
  const dispatched = Array.isArray(context.dispatchedOrders)
    ? context.dispatchedOrders.filter((r: unknown) => typeof r === 'string')
    : [];
  return [...fromBundle(context.draftOrders), ...fromBundle(context.appointments), ...dispatched]
    .filter((r: string) => r.length <= 200)
    .slice(0, 200);
}

/** SHA-256 fingerprint of a client certificate verified in the handshake (mutual TLS). */
function peerFingerprint(req: FastifyRequest): string | undefined {
  const socket = req.raw.socket as TLSSocket;
  if (socket.authorized !== true || typeof socket.getPeerX509Certificate !== 'function') return;
  return socket.getPeerX509Certificate()?.fingerprint256;
}

/** When the request was received (the AuditEvent's `recorded`, see docs/audit.md). */
export function receivedAt(reply: FastifyReply): Date {
  return new Date(Date.now() - reply.elapsedTime);
}

/** What one hook exchange leaves in the audit trail. */
export function hookAuditInput(
  req: FastifyRequest,
  at: Date,
  instance: string,
  status: number,
  response: Buffer | undefined,
  extra: { coverageAssertionIds?: string[]; errorCode?: string } = {},
): HookAuditInput {
  const body = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Json;
  const patientId = body.context?.patientId;
  const { id } = req.params as { id?: string };
  return {
    at,
    instance,
    client: {
      iss: req.client?.iss ?? '(unauthenticated)',
      ...(req.client?.client.name ? { name: req.client.client.name } : {}),
      ...(peerFingerprint(req) ? { certificateSha256: peerFingerprint(req)! } : {}),
    },
    service: id ?? '',
    hook: typeof body.hook === 'string' ? body.hook.slice(0, 64) : '',
    ...(typeof body.hookInstance === 'string'
      ? { hookInstance: body.hookInstance.slice(0, 64) }
      : {}),
    ...(typeof patientId === 'string' && patientId.length <= 64
      ? { patient: `Patient/${patientId}` }
      : {}),
    orders: orderReferences(body),
    coverageAssertionIds: extra.coverageAssertionIds ?? [],
    status,
    outcome: status < 300 ? 'success' : status < 500 ? 'minor-failure' : 'serious-failure',
    ...(extra.errorCode ? { errorCode: extra.errorCode } : {}),
    ...(req.rawBody !== undefined ? { requestBody: Buffer.from(req.rawBody) } : {}),
    ...(response ? { responseBody: response } : {}),
  };
}

const SECURITY_KINDS: Record<number, SecurityAuditInput['kind']> = {
  401: 'auth-refused',
  429: 'rate-limited',
};

/**
 * Records refusals: a refused hook call as a hook record, a refused token or a rate limit as a
 * security event (never the token), a failed TLS handshake as a security event. A failure to
 * record a refusal is logged; it does not change the refusal.
 */
export function registerAuditOfRefusals(
  app: FastifyInstance<any, any, any, any, any>,
  audit: AuditStore,
  instance: string,
): void {
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const status = reply.statusCode;
    if (status < 400 || req.audited) return payload;
    const errorCode = (req.summary?.code as string | undefined) ?? `HTTP_${status}`;
    try {
      const kind = errorCode === 'ERR_JWT_REPLAY' ? 'replay' : SECURITY_KINDS[status];
      if (kind) {
        await audit.appendSecurity({
          at: receivedAt(reply),
          instance,
          kind,
          ...(req.client ? { client: { iss: req.client.iss } } : {}),
          ...(req.ip ? { source: req.ip } : {}),
          errorCode,
        });
      } else if (req.method === 'POST' && req.url.startsWith('/cds-services/')) {
        const bytes = typeof payload === 'string' ? Buffer.from(payload) : undefined;
        const at = receivedAt(reply);
        await audit.appendHook(hookAuditInput(req, at, instance, status, bytes, { errorCode }));
      }
    } catch (err) {
      req.log.error({ code: (err as { code?: string }).code }, 'audit record of a refusal failed');
    }
    return payload;
  });
  app.server.on(
    'tlsClientError',
    (err: NodeJS.ErrnoException, socket: { remoteAddress?: string }) => {
      audit
        .appendSecurity({
          at: new Date(),
          instance,
          kind: 'tls-failure',
          ...(socket.remoteAddress ? { source: socket.remoteAddress } : {}),
          errorCode: 'ERR_TLS_HANDSHAKE',
          ...(err.code ? { detail: err.code } : {}),
        })
        .catch(() => app.log.error('audit record of a TLS failure failed'));
    },
  );
}
