/**
 * The HTTP side of the FHIR API: its body parsers (FHIR JSON; form-encoded for `_search`), the
 * `Accept` and query-string helpers, and Fastify's own failures mapped to the API's errors.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CdsError } from '../../cds/outcome.js';
import { tooDeep } from '../../cds/shapes.js';
import { FhirApiError } from './errors.js';

/** The content type of every answer. */
export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** Headers on every answer: nothing is cached, nothing is sniffed. */
export const ANSWER_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

/** A form-encoded body (only `_search` takes one). */
export class FormBody {
  constructor(readonly pairs: Array<[string, string]>) {}
}

const FASTIFY_ERRORS: Record<string, FhirApiError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: new FhirApiError('ERR_CONTENT_TYPE'),
  FST_ERR_CTP_BODY_TOO_LARGE: new FhirApiError('ERR_BODY_TOO_LARGE'),
  FST_ERR_CTP_EMPTY_JSON_BODY: new FhirApiError('ERR_BODY'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: new FhirApiError('ERR_JSON'),
  FST_ERR_CTP_INVALID_JSON_BODY: new FhirApiError('ERR_JSON'),
};

/** Any failure as the CdsError that is sent; unexpected ones become a fixed 500. */
export function toError(err: unknown): CdsError {
  if (err instanceof CdsError) return err;
  const code = (err as { code?: unknown })?.code;
  return (typeof code === 'string' && FASTIFY_ERRORS[code]) || new FhirApiError('ERR_INTERNAL');
}

/** Whether an `Accept` header admits FHIR JSON. */
export function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept
    .split(',')
    .map((part) => part.split(';')[0]!.trim().toLowerCase())
    .some((t) => ['*/*', 'application/*', 'application/json', 'application/fhir+json'].includes(t));
}

/** The query string as ordered name/value pairs (repeats kept: `_include` may repeat). */
export function queryPairs(req: FastifyRequest): Array<[string, string]> {
  const q = req.url.indexOf('?');
  return q < 0 ? [] : [...new URLSearchParams(req.url.slice(q + 1)).entries()];
}

/**
 * Replaces the context's body parsers: FHIR JSON (`application/fhir+json`, `application/json`,
 * depth-limited) up to `bodyLimit` bytes, and form bodies up to 64 KiB. Anything else is a 415.
 */
export function addBodyParsers(
  api: FastifyInstance<any, any, any, any, any>,
  bodyLimit: number,
): void {
  api.removeAllContentTypeParsers();
  api.addContentTypeParser(
    ['application/fhir+json', 'application/json'],
    { parseAs: 'string', bodyLimit },
    (_req, body, done) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body as string);
      } catch {
        return done(new FhirApiError('ERR_JSON'), undefined);
      }
      if (tooDeep(parsed)) return done(new FhirApiError('ERR_JSON_DEPTH'), undefined);
      done(null, parsed);
    },
  );
  api.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 65_536 },
    (_req, body, done) => done(null, new FormBody([...new URLSearchParams(body as string)])),
  );
}
