/**
 * Client side of the CDS Hooks JWT: signing the bearer token an EHR sends with each call, and
 * generating the client's key pair (the public half goes into its published JWK Set).
 */
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import type { CdsJwtAlg } from './keys.js';

/** Inputs of {@link signCdsJwt}. */
export interface SignCdsJwtOptions {
  /** The client's private key (EC P-384 or RSA >= 2048 bits). */
  privateJwk: JWK;
  /** The client's issuer URI, as registered with the service. */
  iss: string;
  /** The exact URL being invoked (CDS Hooks: `aud` SHALL be the endpoint URL). */
  aud: string;
  /** The key id; defaults to `privateJwk.kid`. */
  kid?: string;
  /** The URL of the client's JWK Set, sent as the `jku` header when given. */
  jku?: string;
  /** Seconds until `exp` (default 300, at most 300). */
  lifetimeSeconds?: number;
  /** The algorithm; defaults to `privateJwk.alg`, else ES384 for EC and RS384 for RSA. */
  alg?: CdsJwtAlg;
  /** The optional `tenant` claim (the invoking organisation). */
  tenant?: string;
  /** The issue time in epoch seconds (tests freeze it). */
  now?: number;
}

/** A generated client key pair, both halves carrying `kid`, `alg` and `use: 'sig'`. */
export interface ClientKeyPair {
  privateJwk: JWK;
  publicJwk: JWK;
}

const MAX_LIFETIME_SECONDS = 300;

/** Picks the algorithm for `jwk` when none is given. */
function algFor(jwk: JWK, alg: CdsJwtAlg | undefined): CdsJwtAlg {
  const chosen: string = alg ?? jwk.alg ?? (jwk.kty === 'RSA' ? 'RS384' : 'ES384');
  if (chosen !== 'ES384' && chosen !== 'RS384') {
    throw new TypeError('signCdsJwt: "alg" must be ES384 or RS384');
  }
  return chosen;
}

/** Signs a CDS Hooks client JWT with a fresh 256-bit hex `jti`. */
export async function signCdsJwt(opts: SignCdsJwtOptions): Promise<string> {
  const alg = algFor(opts.privateJwk, opts.alg);
  const kid = opts.kid ?? opts.privateJwk.kid;
  if (!kid) throw new TypeError('signCdsJwt: "kid" is required (option or privateJwk.kid)');
  if (!opts.iss || !opts.aud) throw new TypeError('signCdsJwt: "iss" and "aud" are required');
  const lifetime = opts.lifetimeSeconds ?? MAX_LIFETIME_SECONDS;
  if (!Number.isInteger(lifetime) || lifetime <= 0 || lifetime > MAX_LIFETIME_SECONDS) {
    throw new RangeError('signCdsJwt: "lifetimeSeconds" must be an integer in 1..300');
  }
  if (typeof opts.privateJwk.d !== 'string') {
    throw new TypeError('signCdsJwt: "privateJwk" is not a private key');
  }
  const key = await importJWK(opts.privateJwk, alg);
  const iat = Math.floor(opts.now ?? Date.now() / 1000);
  const jwt = new SignJWT({
    ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}),
    jti: randomBytes(32).toString('hex'),
  })
    .setProtectedHeader({ alg, typ: 'JWT', kid, ...(opts.jku ? { jku: opts.jku } : {}) })
    .setIssuer(opts.iss)
    .setAudience(opts.aud)
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetime);
  return jwt.sign(key);
}

/** Generates a client signing key pair (P-384 for ES384, 2048-bit RSA for RS384). */
export async function generateClientKeyPair(alg: CdsJwtAlg = 'ES384'): Promise<ClientKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS384' ? { modulusLength: 2048 } : {}),
  });
  const meta = { kid: randomBytes(16).toString('hex'), alg, use: 'sig' };
  return {
    privateJwk: { ...(await exportJWK(privateKey)), ...meta },
    publicJwk: { ...(await exportJWK(publicKey)), ...meta },
  };
}
