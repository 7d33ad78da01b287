/**
 * Every TLS setting crdkit uses, in one place (sec-2, sec-3, HRex sec-9). No other module builds
 * `https` or `tls` options.
 */
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';

/**
 * TLS 1.2 suites allowed: ECDHE key exchange with AEAD ciphers only (AES-GCM as in NIST
 * SP 800-52r2, plus ChaCha20-Poly1305 for clients without AES hardware). Node's
 * defaults with only `minVersion` would still accept CBC, SHA-1, CCM8 and ARIA suites.
 * TLS 1.3 suites are configured separately (`TLS13_SUITES`).
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** TLS 1.3 suites, all AEAD; CCM suites are left out. */
export const TLS13_SUITES = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
];

/** The cipher string passed to OpenSSL (TLS 1.3 and 1.2 names may share one list). */
export const CIPHERS = [...TLS13_SUITES, ...TLS12_CIPHERS].join(':');

/** Settings common to servers and clients: TLS 1.2 minimum, 1.3 preferred, no renegotiation. */
export const BASE_TLS = {
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers: CIPHERS,
  honorCipherOrder: true,
  ecdhCurve: 'X25519:P-256:P-384',
} as const;

export interface ServerTlsFiles {
  cert: string;
  key: string;
  ca?: string;
  requestCert?: boolean;
}

/** Options for `https.createServer` from PEM file paths. */
export function serverTlsOptions(files: ServerTlsFiles): SecureContextOptions & {
  requestCert: boolean;
  rejectUnauthorized: boolean;
} {
  const requestCert = files.requestCert === true;
  return {
    ...BASE_TLS,
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    ...(files.ca ? { ca: readFileSync(files.ca) } : {}),
    requestCert,
    // With mutual TLS on, a client without a certificate from `ca` fails the handshake.
    rejectUnauthorized: requestCert,
  };
}

/** Options for outgoing TLS (FHIR queries, key sets): certificate checks are never disabled. */
export function clientTlsOptions(ca?: string | Buffer): SecureContextOptions & {
  rejectUnauthorized: true;
} {
  return { ...BASE_TLS, ...(ca ? { ca } : {}), rejectUnauthorized: true };
}
