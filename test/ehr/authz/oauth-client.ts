/**
 * An OAuth client for the tests, speaking plain HTTPS to a {@link Harness}: form bodies, Basic
 * authentication, PKCE (S256), `private_key_jwt` client assertions with any claim overridden,
 * token requests, and the authorization code flow driven without a browser (a cookie jar, the
 * sign-in form posted like a user would).
 */
import { createHash, randomBytes } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import type { TestResponse } from '../../helpers/https.js';
import type { Harness } from './helpers.js';

/** The secret of the symmetric test clients. */
export const SECRET = 'symmetric-secret-0123456789abcdef0123456789';
/** The redirect URI of the test apps (never fetched: the tests read the redirect). */
export const REDIRECT = 'https://app.example/callback';

/** A cookie jar for one user agent (paths ignored: one host, tests only). */
export class CookieJar {
  readonly cookies = new Map<string, string>();

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  take(res: TestResponse): void {
    const set = res.headers['set-cookie'] ?? [];
    for (const line of set) {
      const [pair, ...attrs] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

/** An `application/x-www-form-urlencoded` body. */
export const form = (fields: Record<string, string | undefined>): string =>
  new URLSearchParams(
    Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined),
  ).toString();

/** `Authorization: Basic` for a symmetric client. */
export const basic = (id: string, secret = SECRET): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
});

/** A PKCE pair (S256). */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** Claims and header of a client assertion, each overridable (`undefined` removes one). */
export interface AssertionOptions {
  iss?: string | undefined;
  sub?: string | undefined;
  aud?: string | string[] | undefined;
  exp?: number | undefined;
  jti?: string | undefined;
  alg?: string;
  jku?: string;
}

/** Signs a `private_key_jwt` client assertion for `clientId` with `jwk`. */
export async function clientAssertion(
  h: Harness,
  clientId: string,
  jwk: JWK,
  over: AssertionOptions = {},
): Promise<string> {
  const alg = over.alg ?? (jwk.kty === 'RSA' ? 'RS384' : 'ES384');
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: clientId,
    sub: clientId,
    aud: `${h.configured}/oauth/token`,
    exp: now + 240,
    iat: now,
    jti: randomBytes(16).toString('hex'),
  };
  for (const [k, v] of Object.entries(over)) {
    if (k === 'alg' || k === 'jku') continue;
    if (v === undefined) delete claims[k];
    else claims[k] = v;
  }
  const key = await importJWK(jwk, alg.startsWith('HS') ? 'HS256' : alg);
  return new SignJWT(claims)
    .setProtectedHeader({ alg, typ: 'JWT', kid: jwk.kid!, ...(over.jku ? { jku: over.jku } : {}) })
    .sign(key);
}

/** The fields of a `private_key_jwt` authentication. */
export const assertionFields = (assertion: string): Record<string, string> => ({
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: assertion,
});

/** POSTs to the token endpoint. */
export function tokenRequest(
  h: Harness,
  fields: Record<string, string | undefined>,
  headers: Record<string, string> = {},
): Promise<TestResponse> {
  return h.request('/oauth/token', { body: form(fields), headers });
}

/** Client credentials for the backend service with a fresh assertion. */
export async function backendToken(h: Harness, scope = 'system/Patient.rs'): Promise<TestResponse> {
  const assertion = await clientAssertion(h, 'backend', h.keys.backend);
  return tokenRequest(h, {
    grant_type: 'client_credentials',
    scope,
    ...assertionFields(assertion),
  });
}

/** How a client authenticates at the token endpoint in {@link redeemCode}. */
export type ClientAuth =
  { kind: 'basic'; secret?: string } | { kind: 'jwt'; jwk: JWK } | { kind: 'none' };

/** Parameters of an authorization request. */
export interface AuthorizeOptions {
  clientId: string;
  scope: string;
  launch?: string;
  user?: string;
  decision?: 'approve' | 'deny';
  extra?: Record<string, string | undefined>;
  pkce?: { verifier: string; challenge: string };
  jar?: CookieJar;
}

/** The query parameters of a redirect's `Location`. */
export const locationParams = (res: TestResponse): URLSearchParams =>
  new URL(String(res.headers.location), 'https://invalid.test').searchParams;

/**
 * Drives `/oauth/auth` → sign-in → resume with plain HTTPS requests. Returns the final redirect
 * to the client (`code` or `error` in its query) and the PKCE verifier used.
 */
export async function authorize(
  h: Harness,
  opts: AuthorizeOptions,
): Promise<{ redirect: URL; verifier: string; steps: TestResponse[] }> {
  const jar = opts.jar ?? new CookieJar();
  const p = opts.pkce ?? pkce();
  const query = form({
    response_type: 'code',
    client_id: opts.clientId,
    redirect_uri: REDIRECT,
    scope: opts.scope,
    state: 'st-1',
    aud: `${h.configured}/fhir`,
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    ...(opts.launch ? { launch: opts.launch } : {}),
    ...opts.extra,
  });
  const steps: TestResponse[] = [];
  let res = await h.request(`/oauth/auth?${query}`, { jar });
  steps.push(res);
  for (let hops = 0; hops < 6; hops++) {
    const location = res.headers.location;
    if (res.status !== 303 && res.status !== 302) break;
    const target = new URL(String(location), h.configured);
    if (target.origin !== h.configured) return { redirect: target, verifier: p.verifier, steps };
    if (target.pathname.startsWith('/oauth/interaction/')) {
      res = await h.request(target.pathname, {
        jar,
        body: form({ user: opts.user ?? 'u1', decision: opts.decision ?? 'approve' }),
      });
    } else {
      res = await h.request(`${target.pathname}${target.search}`, { jar });
    }
    steps.push(res);
  }
  throw new Error(`authorization flow stopped at HTTP ${res.status}: ${res.text.slice(0, 200)}`);
}

/** The token endpoint authentication fields and headers for `auth`. */
export async function authFor(
  h: Harness,
  clientId: string,
  auth: ClientAuth,
): Promise<{ fields: Record<string, string>; headers: Record<string, string> }> {
  if (auth.kind === 'basic') return { fields: {}, headers: basic(clientId, auth.secret) };
  if (auth.kind === 'jwt') {
    return { fields: assertionFields(await clientAssertion(h, clientId, auth.jwk)), headers: {} };
  }
  return { fields: { client_id: clientId }, headers: {} };
}

/** Redeems `code` at the token endpoint. */
export async function redeemCode(
  h: Harness,
  clientId: string,
  auth: ClientAuth,
  code: string,
  verifier: string,
): Promise<TestResponse> {
  const { fields, headers } = await authFor(h, clientId, auth);
  return tokenRequest(
    h,
    {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      ...fields,
    },
    headers,
  );
}
