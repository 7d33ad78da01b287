/**
 * The one FHIR client that carries an access token. It is bound to one origin when created and
 * refuses to send anything elsewhere (CDS Hooks: the token is for `fhirServer` only; sec-9: never
 * forwarded). No other code in crdkit sends an `Authorization` header to a FHIR server.
 */
import { request } from 'node:https';
import type { Resource } from '@medplum/fhirtypes';
import { tooDeep } from '../cds/shapes.js';
import { sharedAgent } from '../tls/agents.js';

/** Why a FHIR interaction failed: the caller turns these into resp-43 `technical` reasons. */
export class FhirError extends Error {
  override name = 'FhirError';

  constructor(
    readonly code:
      | 'ERR_FHIR_TIMEOUT'
      | 'ERR_FHIR_TLS'
      | 'ERR_FHIR_STATUS'
      | 'ERR_FHIR_BODY'
      | 'ERR_FHIR_NETWORK'
      | 'ERR_FHIR_ORIGIN',
    message: string,
  ) {
    super(message);
  }
}

export interface FhirClientOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  /** Extra trust anchors (PEM) for the EHR's FHIR server certificate. */
  ca?: string | Buffer;
}

/** Decides whether `fhirServer` may be contacted for a client: https and a registered origin. */
export function allowedFhirServer(
  fhirServer: string | undefined,
  registered: string[],
): URL | undefined {
  if (!fhirServer || !URL.canParse(fhirServer)) return undefined;
  const url = new URL(fhirServer);
  if (url.protocol !== 'https:' || url.username || url.password) return undefined;
  return registered.includes(url.origin) ? url : undefined;
}

/** A FHIR client bound to `base`'s origin, holding one access token for one hook call. */
export class FhirClient {
  readonly #base: URL;
  readonly #token: string;
  readonly #options: FhirClientOptions;

  constructor(base: URL, accessToken: string, options: FhirClientOptions) {
    this.#base = new URL(base.href.endsWith('/') ? base.href : `${base.href}/`);
    this.#token = accessToken;
    this.#options = options;
  }

  /** Reads `Type/id`; `null` when the server says it does not exist (404 or 410). */
  async read(type: string, id: string, signal: AbortSignal): Promise<Resource | null> {
    return this.#get(`${type}/${encodeURIComponent(id)}`, signal, true);
  }

  /** Runs a type search; returns the matching resources (search mode `match` or unmarked). */
  async search(
    type: string,
    params: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Resource[]> {
    const query = new URLSearchParams(params).toString();
    const bundle = (await this.#get(`${type}?${query}`, signal, false)) as {
      resourceType?: string;
      entry?: Array<{ resource?: Resource; search?: { mode?: string } }>;
    } | null;
    if (!bundle || bundle.resourceType !== 'Bundle') {
      throw new FhirError('ERR_FHIR_BODY', `search on ${type} did not return a Bundle`);
    }
    return (bundle.entry ?? [])
      .filter((e) => e.resource && (e.search?.mode ?? 'match') === 'match')
      .map((e) => e.resource as Resource);
  }

  /**
   * Runs a type search and returns the searchset Bundle as the server sent it: GET, or
   * `POST [type]/_search` with a form body when `post` (long queries).
   */
  async searchBundle(
    type: string,
    params: URLSearchParams,
    signal: AbortSignal,
    post = false,
  ): Promise<Resource> {
    const bundle = post
      ? await this.#send('POST', `${type}/_search`, signal, false, {
          type: 'application/x-www-form-urlencoded',
          body: params.toString(),
        })
      : await this.#send('GET', `${type}?${params.toString()}`, signal, false);
    if (!bundle || bundle.resourceType !== 'Bundle') {
      throw new FhirError('ERR_FHIR_BODY', `search on ${type} did not return a Bundle`);
    }
    return bundle;
  }

  /** Updates a resource (`PUT [type]/[id]`); returns what the server stored. */
  async update(resource: Resource, signal: AbortSignal, ifMatch?: string): Promise<Resource> {
    const stored = await this.#send(
      'PUT',
      `${resource.resourceType}/${encodeURIComponent(resource.id ?? '')}`,
      signal,
      false,
      {
        type: 'application/fhir+json',
        body: JSON.stringify(resource),
        ...(ifMatch ? { ifMatch: `W/"${ifMatch}"` } : {}),
      },
    );
    return stored ?? resource;
  }

  #get(path: string, signal: AbortSignal, allowNotFound: boolean): Promise<Resource | null> {
    return this.#send('GET', path, signal, allowNotFound);
  }

  #send(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    signal: AbortSignal,
    allowNotFound: boolean,
    content?: { type: string; body: string; ifMatch?: string },
  ): Promise<Resource | null> {
    const url = new URL(path, this.#base);
    // The single place the token leaves this process: only to the origin this client is bound to.
    if (url.origin !== this.#base.origin) {
      return Promise.reject(
        new FhirError('ERR_FHIR_ORIGIN', 'refused a request outside fhirServer'),
      );
    }
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method,
        agent: sharedAgent({ ca: this.#options.ca, maxSockets: 32 }),
        headers: {
          Accept: 'application/fhir+json',
          Authorization: `Bearer ${this.#token}`,
          ...(content
            ? {
                'Content-Type': content.type,
                'Content-Length': Buffer.byteLength(content.body),
                ...(content.ifMatch ? { 'If-Match': content.ifMatch } : {}),
              }
            : {}),
        },
        timeout: this.#options.timeoutMs,
        signal,
      });
      req.on('timeout', () =>
        req.destroy(new FhirError('ERR_FHIR_TIMEOUT', 'FHIR server timed out')),
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(toFhirError(err)));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (allowNotFound && (status === 404 || status === 410)) {
          res.resume();
          return resolve(null);
        }
        if (status < 200 || status >= 300) {
          res.resume();
          return reject(
            Object.assign(new FhirError('ERR_FHIR_STATUS', `FHIR server answered ${status}`), {
              status,
            }),
          );
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.#options.maxResponseBytes) {
            req.destroy(new FhirError('ERR_FHIR_BODY', 'FHIR response exceeded the size limit'));
          } else chunks.push(chunk);
        });
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(new FhirError('ERR_FHIR_BODY', 'FHIR response was not JSON'));
          }
          if (tooDeep(parsed)) {
            return reject(new FhirError('ERR_FHIR_BODY', 'FHIR response nests too deeply'));
          }
          resolve(parsed as Resource);
        });
        res.on('error', (err) => reject(toFhirError(err)));
      });
      req.end(content?.body);
    });
  }
}

function toFhirError(err: NodeJS.ErrnoException): FhirError {
  if (err instanceof FhirError) return err;
  if (err.name === 'AbortError')
    return new FhirError('ERR_FHIR_TIMEOUT', 'FHIR query deadline passed');
  const code = err.code ?? '';
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|^EPROTO$/.test(code)) {
    return new FhirError('ERR_FHIR_TLS', 'FHIR server certificate could not be verified');
  }
  return new FhirError('ERR_FHIR_NETWORK', 'FHIR server could not be reached');
}
