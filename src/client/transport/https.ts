/**
 * The CRD client's HTTPS calls to a CDS Service: the hook POST and the discovery GET (sec-2:
 * TLS only; HRex sec-9: TLS 1.2 or later with certificate checks, from `clientTlsOptions`;
 * mutual TLS when configured). JSON only, size-capped, no redirects followed. Errors carry a
 * stable code and a fixed message: never the token, the URL or the response body.
 */
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { tooDeep } from '../../cds/shapes.js';
import { sharedAgent } from '../../tls/agents.js';

export type HookCallErrorCode =
  | 'ERR_HOOK_INPUT'
  | 'ERR_HOOK_URL'
  | 'ERR_HOOK_TLS'
  | 'ERR_HOOK_NETWORK'
  | 'ERR_HOOK_ABORTED'
  | 'ERR_HOOK_TOO_LARGE'
  | 'ERR_HOOK_BODY';

/** A failed call to a CDS Service (found-17: the caller may re-run discovery and retry). */
export class HookCallError extends Error {
  override name = 'HookCallError';

  constructor(
    readonly code: HookCallErrorCode,
    message: string,
    /** The HTTP status, when an answer came. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Options of {@link postHook} and {@link getJson}. */
export interface HookCallOptions {
  /** The CDS Hooks JWT for this URL, sent as `Authorization: Bearer`. */
  jwt: string;
  /** Extra trust anchors (PEM) for the service's certificate. */
  ca?: string | Buffer;
  /** The client certificate and key (PEM) for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Ends the call (the hook deadline, see `withDeadline`). */
  signal: AbortSignal;
  /** Largest response accepted (default 1 MiB). */
  maxResponseBytes?: number;
}

export interface HookCallResult {
  status: number;
  /** The parsed JSON body; `null` for a non-2xx answer without a JSON body. */
  body: unknown;
}

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const JSON_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i;
const DEFAULT_MAX_BYTES = 1 << 20;

/** POSTs a hook request (JSON, no whitespace: found-40) to a CDS Service. */
export function postHook(
  url: string,
  body: unknown,
  opts: HookCallOptions,
): Promise<HookCallResult> {
  let payload: Buffer;
  try {
    payload = Buffer.from(JSON.stringify(body));
  } catch {
    return Promise.reject(new HookCallError('ERR_HOOK_INPUT', 'the hook request is not JSON'));
  }
  return call('POST', url, payload, opts);
}

/** GETs JSON from a CDS Service (discovery: CDS Hooks requires the JWT there too). */
export function getJson(url: string, opts: HookCallOptions): Promise<HookCallResult> {
  return call('GET', url, undefined, opts);
}

function checkUrl(url: string): URL {
  if (typeof url !== 'string' || !URL.canParse(url)) {
    throw new HookCallError('ERR_HOOK_URL', 'the service URL is not a URL');
  }
  const u = new URL(url);
  // sec-2: never plain HTTP, whatever the caller passes.
  if (u.protocol !== 'https:')
    throw new HookCallError('ERR_HOOK_URL', 'the service URL must use https');
  if (u.username || u.password || u.hash) {
    throw new HookCallError(
      'ERR_HOOK_URL',
      'the service URL must not carry credentials or a fragment',
    );
  }
  return u;
}

function call(
  method: 'GET' | 'POST',
  url: string,
  payload: Buffer | undefined,
  opts: HookCallOptions,
): Promise<HookCallResult> {
  let target: URL;
  try {
    target = checkUrl(url);
    if (typeof opts.jwt !== 'string' || !JWT.test(opts.jwt)) {
      throw new HookCallError('ERR_HOOK_INPUT', 'the "jwt" is not a compact JWS');
    }
    if ((opts.cert === undefined) !== (opts.key === undefined)) {
      throw new HookCallError('ERR_HOOK_INPUT', 'mutual TLS needs both "cert" and "key"');
    }
    if (!(opts.signal instanceof AbortSignal)) {
      throw new HookCallError('ERR_HOOK_INPUT', 'a "signal" is required (the hook deadline)');
    }
  } catch (err) {
    return Promise.reject(err);
  }
  const maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_BYTES;
  const headers: Record<string, string> = {
    Accept: 'application/json',
    Authorization: `Bearer ${opts.jwt}`,
  };
  if (payload) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(payload.length);
  }

  return new Promise((resolve, reject) => {
    const req = request(target, {
      method,
      headers,
      agent: sharedAgent({ ca: opts.ca, cert: opts.cert, key: opts.key, maxSockets: 32 }),
      signal: opts.signal,
    });
    req.on('error', (err: NodeJS.ErrnoException) => reject(toHookCallError(err)));
    req.on('response', (res) => {
      // Stops reading: later stream errors are expected and have nowhere to go.
      const stop = (): void => {
        res.on('error', () => undefined);
        res.destroy();
      };
      readResponse(res, maxBytes, stop).then(resolve, reject);
    });
    req.end(payload);
  });
}

async function readResponse(
  res: IncomingMessage,
  maxBytes: number,
  stop: () => void,
): Promise<HookCallResult> {
  const status = res.statusCode ?? 0;
  const ok = status >= 200 && status < 300;
  const isJson = JSON_TYPE.test(res.headers['content-type'] ?? '');
  const tooLarge = new HookCallError(
    'ERR_HOOK_TOO_LARGE',
    'the response exceeds the size limit',
    status,
  );
  if (Number(res.headers['content-length'] ?? 0) > maxBytes) {
    stop();
    throw tooLarge;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        stop();
        throw tooLarge;
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw toHookCallError(err as NodeJS.ErrnoException);
  }
  if (!isJson) {
    if (ok) throw new HookCallError('ERR_HOOK_BODY', 'the response is not JSON', status);
    return { status, body: null };
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    if (ok) throw new HookCallError('ERR_HOOK_BODY', 'the response is not valid JSON', status);
    return { status, body: null };
  }
  if (tooDeep(body))
    throw new HookCallError('ERR_HOOK_BODY', 'the response nests too deeply', status);
  return { status, body };
}

function toHookCallError(err: NodeJS.ErrnoException): HookCallError {
  if (err instanceof HookCallError) return err;
  if (err.name === 'AbortError' || err.code === 'ABORT_ERR') {
    return new HookCallError('ERR_HOOK_ABORTED', 'the call was aborted (deadline or bypass)');
  }
  const code = err.code ?? '';
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|^EPROTO$/.test(code)) {
    return new HookCallError('ERR_HOOK_TLS', 'the TLS handshake with the service failed');
  }
  return new HookCallError('ERR_HOOK_NETWORK', 'the service could not be reached');
}
