/**
 * The JWS signature check for the two algorithms CDS Hooks recommends, on Node's native crypto.
 * jose 6 checks signatures through WebCrypto, whose per-call set-up cost on Node 20 was the
 * largest single item on the server's event loop (docs/benchmarks.md); `crypto.verify` with a
 * callback runs the same OpenSSL check on the thread pool for a fraction of that cost.
 * Algorithm and key checks stay strict: the caller has already limited `alg` to ES384/RS384,
 * and the key must match it here too.
 */
import { constants, KeyObject, verify } from 'node:crypto';
import type { CdsJwtAlg } from './keys.js';

/** P-384 signatures are r||s, 48 bytes each (RFC 7518 §3.4). */
const ES384_SIGNATURE_BYTES = 96;

/** Whether `key` is the kind of key `alg` needs (EC P-384, or RSA of 2048 bits or more). */
export function keyFitsAlg(key: KeyObject, alg: CdsJwtAlg): boolean {
  if (key.type !== 'public') return false;
  const details = key.asymmetricKeyDetails ?? {};
  return alg === 'ES384'
    ? key.asymmetricKeyType === 'ec' && details.namedCurve === 'secp384r1'
    : key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= 2048;
}

/**
 * Verifies a JWS signature: `signingInput` is `base64url(header).base64url(payload)`. Resolves
 * false (never rejects) when the signature does not verify or has the wrong form.
 */
export function verifyJwsSignature(
  alg: CdsJwtAlg,
  key: KeyObject,
  signingInput: string,
  signature: Buffer,
): Promise<boolean> {
  if (!keyFitsAlg(key, alg)) return Promise.resolve(false);
  if (alg === 'ES384' && signature.length !== ES384_SIGNATURE_BYTES) return Promise.resolve(false);
  const options =
    alg === 'ES384'
      ? { key, dsaEncoding: 'ieee-p1363' as const }
      : { key, padding: constants.RSA_PKCS1_PADDING };
  return new Promise((resolve) => {
    try {
      verify('sha384', Buffer.from(signingInput), options, signature, (err, ok) =>
        resolve(!err && ok === true),
      );
    } catch {
      resolve(false);
    }
  });
}
