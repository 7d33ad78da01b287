/**
 * The one logger configuration. Redaction lives here (DESIGN: "Redaction: the logger's
 * configuration"): request bodies, headers that carry credentials and anything that looks like a
 * token or resource are removed before a line is written, whatever the calling code passes.
 */
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/** Paths that are never written, at any depth the callers use. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.body',
  'res.body',
  'body',
  'authorization',
  'token',
  'jwt',
  'fhirAuthorization',
  'access_token',
  'prefetch',
  'context',
  'resource',
  'key',
  'privateKey',
  'jwk',
  '*.authorization',
  '*.fhirAuthorization',
  '*.access_token',
  '*.prefetch',
  '*.context',
  '*.resource',
  '*.privateKey',
];

/** Options shared by the server and the CLI; `level` comes from configuration. */
export function loggerOptions(level = 'info'): LoggerOptions {
  return {
    level,
    base: { service: 'crdkit' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      // Only what an operator needs: no query string (it may carry ids), no headers.
      req: (req: { method?: string; url?: string; id?: string }) => ({
        method: req.method,
        path: typeof req.url === 'string' ? req.url.split('?')[0] : undefined,
        id: req.id,
      }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      err: (err: { name?: string; code?: string; message?: string }) => ({
        type: err.name,
        code: err.code,
        message: err.message,
      }),
    },
  };
}

/** Creates a logger; tests pass a destination to capture and inspect every line. */
export function createLogger(level = 'info', destination?: DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}
