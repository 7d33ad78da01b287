/**
 * The client side of RFC 8693 token exchange (sec-9): instead of ever passing the EHR's access
 * token to another system, the CRD server asks the EHR's own authorization server for a delegate
 * token for one named downstream service. The subject token is sent to that token endpoint only
 * (https, certificate checked, no redirects followed) and appears in no error or log line.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { importJWK, SignJWT, type JWK } from 'jose';
import { sharedAgent } from '../tls/agents.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** Why an exchange failed; `oauthError` is the server's `error` code when it sent a valid one. */
export type DelegateErrorCode =
  | 'ERR_DELEGATE_INPUT'
  | 'ERR_DELEGATE_ENDPOINT'
  | 'ERR_DELEGATE_TIMEOUT'
  | 'ERR_DELEGATE_TLS'
  | 'ERR_DELEGATE_NETWORK'
  | 'ERR_DELEGATE_REFUSED'
  | 'ERR_DELEGATE_STATUS'
  | 'ERR_DELEGATE_RESPONSE';

/** A failed exchange. The message is a fixed text: never a token, never the response body. */
export class DelegateError extends Error {
  override name = 'DelegateError';

  constructor(
    readonly code: DelegateErrorCode,
    message: string,
    /** The OAuth `error` of a refusal (`invalid_target`), only when it is a plain code. */
    readonly oauthError?: string,
    /** The HTTP status, when an answer came. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The client's credentials at the token endpoint. */
export type DelegateClient =
  | { clientId: string; privateJwk: JWK; alg?: 'ES384' | 'RS384' }
  | { clientId: string; clientSecret: string };

export interface ExchangeTokenOptions {
  /**
   * The token endpoint (https only) of the organisation that issued `subjectToken`: the one
   * configured for that `fhirServer`. The token is sent nowhere else.
   */
  tokenEndpoint: string;
  subjectToken: string;
  /** The downstream service the delegate token is for. */
  audience: string;
  /** Where the delegate token will be used (default: the EHR's FHIR server, server-side). */
  resource?: string;
  /** Scopes equal to or narrower than the subject token's (default: the same). */
  scope?: string;
  client: DelegateClient;
  /** Extra trust anchors (PEM) for the token endpoint's certificate. */
  ca?: string | Buffer;
  /** Time limit of the whole exchange (default 5000 ms). */
  timeoutMs?: number;
  /** Largest response accepted (default 65536 bytes). */
  maxResponseBytes?: number;
  /** Aborts the exchange (for example at the hook call's deadline). */
  signal?: AbortSignal;
}

export interface ExchangedToken {
  accessToken: string;
  expiresIn: number;
  scope?: string;
  issuedTokenType: string;
}

/** Seconds a client assertion is valid (SMART: `exp` at most 5 minutes ahead). */
const ASSERTION_LIFETIME = 60;

function endpointUrl(tokenEndpoint: string): URL {
  if (typeof tokenEndpoint !== 'string' || !URL.canParse(tokenEndpoint)) {
    throw new DelegateError('ERR_DELEGATE_ENDPOINT', 'tokenEndpoint is not a URL');
  }
  const url = new URL(tokenEndpoint);
  if (url.protocol !== 'https:') {
    throw new DelegateError('ERR_DELEGATE_ENDPOINT', 'tokenEndpoint must use https');
  }
  if (url.username || url.password || url.hash) {
    throw new DelegateError(
      'ERR_DELEGATE_ENDPOINT',
      'tokenEndpoint must not carry credentials or a fragment',
    );
  }
  return url;
}

/** RFC 6749 section 2.3.1: both halves form-encoded, then Basic. */
function basic(clientId: string, secret: string): string {
  const enc = (s: string): string => new URLSearchParams({ s }).toString().slice(2);
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`;
}

/** A private_key_jwt client assertion (SMART Backend Services): iss = sub = client id, aud = the token endpoint, one-minute lifetime, fresh jti. */
export async function clientAssertion(
  client: { clientId: string; privateJwk: JWK; alg?: 'ES384' | 'RS384' },
  aud: string,
): Promise<string> {
  const jwk = client.privateJwk;
  const alg =
    client.alg ?? (jwk.alg as string | undefined) ?? (jwk.kty === 'RSA' ? 'RS384' : 'ES384');
  if (alg !== 'ES384' && alg !== 'RS384') {
    throw new DelegateError('ERR_DELEGATE_INPUT', 'client "alg" must be ES384 or RS384');
  }
  if (typeof jwk.d !== 'string' || !jwk.kid) {
    throw new DelegateError(
      'ERR_DELEGATE_INPUT',
      'client "privateJwk" must be a private key with "kid"',
    );
  }
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK(jwk, alg);
  } catch {
    throw new DelegateError('ERR_DELEGATE_INPUT', 'client "privateJwk" could not be imported');
  }
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomBytes(32).toString('hex') })
    .setProtectedHeader({ alg, typ: 'JWT', kid: jwk.kid })
    .setIssuer(client.clientId)
    .setSubject(client.clientId)
    .setAudience(aud)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ASSERTION_LIFETIME)
    .sign(key);
}

const OAUTH_ERROR = /^[a-z_]{1,64}$/;

/**
 * One POST to a token endpoint: the client's authentication added (`client_secret_basic`, or a
 * `private_key_jwt` assertion for `url`), the answer read under the limits, and any non-200
 * mapped to a {@link DelegateError} carrying the OAuth error code only. Returns the JSON object.
 */
async function tokenRequest(
  url: URL,
  form: URLSearchParams,
  client: DelegateClient,
  limits: { ca?: string | Buffer; timeoutMs: number; maxBytes: number; signal?: AbortSignal },
  refused: string,
): Promise<{ status: number; json: Record<string, unknown> | undefined }> {
  const headers: Record<string, string> = {
    'Content-Type': 'application/x-www-form-urlencoded',
    Accept: 'application/json',
  };
  if ('clientSecret' in client) {
    headers.Authorization = basic(client.clientId, client.clientSecret);
  } else {
    form.set('client_id', client.clientId);
    form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    form.set('client_assertion', await clientAssertion(client, url.href));
  }
  const body = Buffer.from(form.toString());
  headers['Content-Length'] = String(body.length);
  const { status, text } = await post(
    url,
    headers,
    body,
    limits.ca,
    limits.timeoutMs,
    limits.maxBytes,
    limits.signal,
  );
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      json = parsed as Record<string, unknown>;
    }
  } catch {
    json = undefined;
  }
  if (status !== 200) {
    const error =
      typeof json?.error === 'string' && OAUTH_ERROR.test(json.error) ? json.error : undefined;
    if (error && status >= 400 && status < 500) {
      throw new DelegateError('ERR_DELEGATE_REFUSED', `${refused}: ${error}`, error, status);
    }
    throw new DelegateError(
      'ERR_DELEGATE_STATUS',
      `token endpoint answered ${status}${error ? ` (${error})` : ''}`,
      error,
      status,
    );
  }
  return { status, json };
}

/**
 * Exchanges `subjectToken` for a delegate token for `audience` (RFC 8693), authenticating with
 * private_key_jwt or client_secret_basic.
 */
export async function exchangeToken(opts: ExchangeTokenOptions): Promise<ExchangedToken> {
  const url = endpointUrl(opts.tokenEndpoint);
  const client = opts.client;
  if (!client?.clientId)
    throw new DelegateError('ERR_DELEGATE_INPUT', 'client "clientId" is required');
  if (!opts.subjectToken)
    throw new DelegateError('ERR_DELEGATE_INPUT', '"subjectToken" is required');
  if (!opts.audience) throw new DelegateError('ERR_DELEGATE_INPUT', '"audience" is required');
  const timeoutMs = opts.timeoutMs ?? 5000;
  const maxBytes = opts.maxResponseBytes ?? 65_536;

  const form = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: opts.subjectToken,
    subject_token_type: ACCESS_TOKEN_TYPE,
    requested_token_type: ACCESS_TOKEN_TYPE,
    audience: opts.audience,
  });
  if (opts.resource !== undefined) form.set('resource', opts.resource);
  if (opts.scope !== undefined) form.set('scope', opts.scope);
  const { status, json } = await tokenRequest(
    url,
    form,
    client,
    {
      ...(opts.ca ? { ca: opts.ca } : {}),
      timeoutMs,
      maxBytes,
      ...(opts.signal ? { signal: opts.signal } : {}),
    },
    'token exchange refused',
  );
  const accessToken = json?.access_token;
  const tokenType = json?.token_type;
  const issuedTokenType = json?.issued_token_type;
  const expiresIn = json?.expires_in;
  const scope = json?.scope;
  if (
    typeof accessToken !== 'string' ||
    accessToken.length === 0 ||
    typeof tokenType !== 'string' ||
    tokenType.toLowerCase() !== 'bearer' ||
    issuedTokenType !== ACCESS_TOKEN_TYPE ||
    typeof expiresIn !== 'number' ||
    !Number.isFinite(expiresIn) ||
    expiresIn <= 0 ||
    (scope !== undefined && typeof scope !== 'string')
  ) {
    throw new DelegateError(
      'ERR_DELEGATE_RESPONSE',
      'token endpoint answer is not a bearer access token response',
      undefined,
      status,
    );
  }
  return {
    accessToken,
    expiresIn: Math.floor(expiresIn),
    issuedTokenType,
    ...(typeof scope === 'string' ? { scope } : {}),
  };
}

function post(
  url: URL,
  headers: Record<string, string>,
  body: Buffer,
  ca: string | Buffer | undefined,
  timeoutMs: number,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    /** Rejects once with `err` (the first cause wins) and drops the connection. */
    const fail = (err: DelegateError): void => {
      if (finish()) reject(err);
      req.destroy();
    };
    const req = request(url, {
      method: 'POST',
      agent: sharedAgent({ ca, maxSockets: 16 }),
      headers,
    });
    const timer = setTimeout(
      () => fail(new DelegateError('ERR_DELEGATE_TIMEOUT', 'token endpoint timed out')),
      timeoutMs,
    );
    const onAbort = (): void =>
      fail(new DelegateError('ERR_DELEGATE_TIMEOUT', 'token exchange was aborted'));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) => fail(toDelegateError(err)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          fail(new DelegateError('ERR_DELEGATE_RESPONSE', 'token endpoint answer is too large'));
        } else chunks.push(chunk);
      });
      res.on('end', () => {
        if (finish()) {
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        }
      });
      res.on('error', (err: NodeJS.ErrnoException) => fail(toDelegateError(err)));
    });
    req.end(body);
  });
}

function toDelegateError(err: NodeJS.ErrnoException): DelegateError {
  if (err instanceof DelegateError) return err;
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
    return new DelegateError(
      'ERR_DELEGATE_TLS',
      'token endpoint certificate could not be verified',
    );
  }
  if (/SSL|TLS|^EPROTO$/.test(code)) {
    return new DelegateError('ERR_DELEGATE_TLS', 'TLS handshake with the token endpoint failed');
  }
  return new DelegateError('ERR_DELEGATE_NETWORK', 'token endpoint could not be reached');
}

/** Options of {@link clientCredentialsToken}. */
export interface ClientCredentialsOptions {
  tokenEndpoint: string;
  client: DelegateClient;
  scope: string;
  ca?: string | Buffer;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * A SMART Backend Services token (client credentials with a `private_key_jwt` assertion, or
 * `client_secret_basic`): how the EHR's own CRD client reads its EHR's FHIR API. Errors are
 * {@link DelegateError}s with the OAuth error code only.
 */
export async function clientCredentialsToken(
  opts: ClientCredentialsOptions,
): Promise<{ accessToken: string; expiresIn: number; scope?: string }> {
  const url = endpointUrl(opts.tokenEndpoint);
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: opts.scope });
  const { json = {} } = await tokenRequest(
    url,
    form,
    opts.client,
    {
      ...(opts.ca ? { ca: opts.ca } : {}),
      timeoutMs: opts.timeoutMs ?? 5000,
      maxBytes: 65_536,
      ...(opts.signal ? { signal: opts.signal } : {}),
    },
    'token request refused',
  );
  if (
    typeof json.access_token !== 'string' ||
    !json.access_token ||
    typeof json.expires_in !== 'number' ||
    String(json.token_type).toLowerCase() !== 'bearer'
  ) {
    throw new DelegateError('ERR_DELEGATE_RESPONSE', 'token endpoint answer is not a bearer token');
  }
  return {
    accessToken: json.access_token,
    expiresIn: Math.floor(json.expires_in),
    ...(typeof json.scope === 'string' ? { scope: json.scope } : {}),
  };
}
