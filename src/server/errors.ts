/**
 * Turns every failure into a status plus OperationOutcome (hook-9, hook-10). Unexpected errors
 * become a 500 with a fixed message: no stack trace or request data leaves the process.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { SECURITY_HEADERS } from './security-headers.js';
import { CdsError, operationOutcome } from '../cds/outcome.js';

/** Fastify's own failures, mapped to the protocol's errors. */
const FASTIFY_ERRORS: Record<string, CdsError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: new CdsError(
    413,
    'ERR_BODY_TOO_LARGE',
    'the request body exceeds the size limit',
    'too-long',
  ),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: new CdsError(
    415,
    'ERR_CONTENT_TYPE',
    'the request body must be "application/json"',
    'not-supported',
  ),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: new CdsError(
    400,
    'ERR_CONTENT_LENGTH',
    'the "Content-Length" header does not match the body',
    'structure',
  ),
  FST_ERR_CTP_EMPTY_JSON_BODY: new CdsError(
    400,
    'ERR_REQUEST_INVALID',
    'the request body is empty',
    'structure',
    '(body)',
  ),
  FST_ERR_BAD_URL: new CdsError(400, 'ERR_URL', 'the request URL is malformed', 'structure'),
  FST_ERR_MAX_PARAM_LENGTH: new CdsError(404, 'ERR_NOT_FOUND', 'no such endpoint', 'not-found'),
  FST_ERR_CTP_INVALID_JSON_BODY: new CdsError(
    400,
    'ERR_JSON',
    'the request body is not valid JSON',
    'structure',
    '(body)',
  ),
};

/** Maps an error to the CdsError that is sent. */
export function toCdsError(err: FastifyError | Error): CdsError {
  if (err instanceof CdsError) return err;
  const code = (err as FastifyError).code;
  const known = code ? FASTIFY_ERRORS[code] : undefined;
  if (known) return known;
  if (err instanceof SyntaxError || (err as FastifyError).statusCode === 400) {
    return new CdsError(
      400,
      'ERR_JSON',
      'the request body is not valid JSON',
      'structure',
      '(body)',
    );
  }
  return new CdsError(
    500,
    'ERR_INTERNAL',
    'internal error; the request was not processed',
    'exception',
  );
}

/** Fastify error handler: logs the code only, answers with an OperationOutcome. */
export function errorHandler(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const cds = toCdsError(err);
  if (cds.status >= 500) {
    // `reason`: the store driver's code behind a 503 (SQLITE_BUSY, ERR_DB_GONE…), never a message.
    const reason = (err as { reason?: unknown }).reason;
    const why = typeof reason === 'string' ? { reason } : {};
    req.log.error(
      { err: { name: err.name, code: (err as FastifyError).code, ...why } },
      'request failed',
    );
  }
  req.summary = { ...req.summary, code: cds.code };
  if (cds.status === 401) {
    reply.header(
      'WWW-Authenticate',
      (cds as CdsError & { wwwAuthenticate?: string }).wwwAuthenticate ?? 'Bearer',
    );
  }
  void reply.status(cds.status).type('application/fhir+json').send(cds.toOutcome());
}

/** 404 for any route crdkit does not serve. */
export function notFoundHandler(req: FastifyRequest, reply: FastifyReply): void {
  // Methods Fastify does not route (TRACE, PROPFIND…) on a CDS Hooks path: that path exists,
  // so the answer is 405 with what it allows, not 404.
  const path = req.url.split('?')[0] ?? '';
  const allow =
    path === '/cds-services' ? 'GET' : /^\/cds-services\/[^/]+$/.test(path) ? 'POST' : '';
  if (allow) {
    void reply
      .status(405)
      .header('allow', allow)
      .type('application/fhir+json')
      .send(operationOutcome('not-supported', 'ERR_METHOD', `method not allowed; use ${allow}`));
    return;
  }
  void reply
    .status(404)
    .type('application/fhir+json')
    .send(operationOutcome('not-found', 'ERR_NOT_FOUND', 'no such endpoint'));
}

/** Framework errors raised before routing (bad URLs): the same OperationOutcome, no echo. */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  errorHandler(err, req, reply);
}

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'ERR_TIMEOUT', 'the request was not received in time'],
  HPE_HEADER_OVERFLOW: [431, 'ERR_HEADERS_TOO_LARGE', 'the request headers are too large'],
};

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (bad request line, oversized
 * headers, timeouts): answered with an OperationOutcome and the security headers, then closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, text] = CLIENT_ERRORS[err.code ?? ''] ?? [
    400,
    'ERR_HTTP',
    'the request is not valid HTTP',
  ];
  const issue = status === 408 ? 'timeout' : status === 431 ? 'too-long' : 'structure';
  const body = JSON.stringify(operationOutcome(issue, code, text));
  if (socket.writable) {
    const headers = Object.entries(SECURITY_HEADERS)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\n${headers}` +
        `content-type: application/fhir+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n` +
        body,
    );
  }
  socket.destroy();
}
