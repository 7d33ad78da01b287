/**
 * From method and URL to the FHIR interaction: `GET [type]/[id]` read, `GET [type]?…` and
 * `POST [type]/_search` search, `POST [type]` create, `PUT [type]/[id]` update; a type the API
 * does not serve is a 404, a method the type does not answer to a 405.
 */
import type { FastifyRequest } from 'fastify';
import { interactionsOf } from './capability.js';
import { FhirApiError } from './errors.js';
import { acceptsJson, FormBody, queryPairs } from './http.js';
import * as interaction from './interactions.js';
import type { Answer, InteractionContext } from './interactions.js';
import { JSON_FORMATS } from './search.js';

/** The methods the URL's resource or type answers to (the `Allow` header of a 405). */
export function allowedMethods(type: string | undefined, id: string | undefined): string {
  if (type === undefined) return 'GET';
  const supported = interactionsOf(type);
  if (id === '_search') return 'GET, POST';
  if (id !== undefined) return supported.includes('update') ? 'GET, PUT' : 'GET';
  return supported.includes('create') ? 'GET, POST' : 'GET';
}

/** Runs the interaction `req` names, or throws the refusal. */
export function dispatch(req: FastifyRequest, ctx: InteractionContext, baseUrl: string): Answer {
  const access = ctx.access;
  const { type, id } = req.params as { type: string; id?: string };
  if (!acceptsJson(req.headers.accept)) throw new FhirApiError('ERR_FORMAT');
  const supported = interactionsOf(type);
  if (!supported.length) throw new FhirApiError('ERR_TYPE_UNSUPPORTED');
  access.resourceType = type;
  // HEAD is answered like GET (Fastify sends the headers only).
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const isSearch = id === undefined || id === '_search';

  if (isSearch && (method === 'GET' || (method === 'POST' && id === '_search'))) {
    access.action = 'search';
    access.interaction = 'search-type';
    if (req.body !== undefined && !(req.body instanceof FormBody)) {
      throw new FhirApiError('ERR_CONTENT_TYPE');
    }
    const form = req.body instanceof FormBody ? req.body.pairs : [];
    const params = [...queryPairs(req), ...form];
    const self = `${baseUrl}/${type}${params.length ? `?${new URLSearchParams(params)}` : ''}`;
    return interaction.search(ctx, type, params, self);
  }
  if (req.body instanceof FormBody) throw new FhirApiError('ERR_CONTENT_TYPE');

  if (id === undefined && method === 'POST' && supported.includes('create')) {
    access.action = 'create';
    access.interaction = 'create';
    return interaction.create(ctx, type, req.body);
  }
  if (id === undefined || id === '_search') throw new FhirApiError('ERR_INTERACTION');

  if (method === 'GET') {
    access.action = 'read';
    access.interaction = 'read';
    const query = queryPairs(req);
    access.parameters.push(...query.map(([name]) => name));
    for (const [name, value] of query) {
      if (name !== '_format') throw new FhirApiError('ERR_SEARCH_PARAM', 'a read takes none');
      if (!JSON_FORMATS.includes(value)) throw new FhirApiError('ERR_FORMAT');
    }
    return interaction.read(ctx, type, id);
  }
  if (method === 'PUT' && supported.includes('update')) {
    access.action = 'update';
    access.interaction = 'update';
    const ifMatch = req.headers['if-match'];
    const version = typeof ifMatch === 'string' ? ifMatch : undefined;
    return interaction.update(ctx, type, id, req.body, version);
  }
  throw new FhirApiError('ERR_INTERACTION');
}
