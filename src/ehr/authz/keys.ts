/**
 * The keys that sign id tokens (OpenID Connect, SMART `sso-openid-connect`). Configured keys are
 * used as given (the first one signs); without them one ES384 key is generated at start-up, which
 * is fine for one instance but not for several (their JWKS would differ): the caller is warned.
 */
import { randomBytes, type JsonWebKey } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { ConfigError } from '../../config/load.js';

type Jwk = JsonWebKey & { kid?: string; alg?: string; use?: string };

const EC_ALGS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };
const ALLOWED = new Set(['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384']);

/** The signing algorithm of a private JWK, or undefined when it cannot sign id tokens. */
function algOf(jwk: Jwk): string | undefined {
  if (jwk.alg) return ALLOWED.has(jwk.alg) ? jwk.alg : undefined;
  if (jwk.kty === 'EC') return EC_ALGS[jwk.crv ?? ''];
  if (jwk.kty === 'RSA') return 'RS256';
  return undefined;
}

/** The id token signing keys and their algorithms (first = the one clients get by default). */
export interface SigningKeys {
  keys: Jwk[];
  algs: string[];
  generated: boolean;
}

/** Checks the configured keys, or generates one ES384 key. */
export async function signingKeys(configured?: { keys: JsonWebKey[] }): Promise<SigningKeys> {
  if (!configured) {
    const { privateKey } = await generateKeyPair('ES384', { extractable: true });
    const jwk = {
      ...(await exportJWK(privateKey)),
      kid: randomBytes(12).toString('base64url'),
      alg: 'ES384',
      use: 'sig',
    };
    return { keys: [jwk as Jwk], algs: ['ES384'], generated: true };
  }
  const keys = (configured.keys ?? []) as Jwk[];
  if (keys.length === 0) throw new ConfigError('authz.signingKeys', 'must hold at least one key');
  const algs: string[] = [];
  keys.forEach((jwk, i) => {
    const alg = algOf(jwk);
    if (!alg) throw new ConfigError(`authz.signingKeys.keys[${i}]`, 'must be an EC or RSA key');
    if (typeof jwk.d !== 'string') {
      throw new ConfigError(`authz.signingKeys.keys[${i}]`, 'must be a private key');
    }
    if (!jwk.kid) throw new ConfigError(`authz.signingKeys.keys[${i}]`, 'needs a "kid"');
    if (!algs.includes(alg)) algs.push(alg);
  });
  return { keys: keys.map((k) => ({ ...k, alg: algOf(k)!, use: 'sig' })), algs, generated: false };
}
