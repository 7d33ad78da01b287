/** Development certificates for the demo server and tests. Never used when a config names files. */
import { generate } from 'selfsigned';

export interface PemPair {
  cert: string;
  key: string;
}

/**
 * A self-signed ECDSA P-256 certificate signed with SHA-256 (selfsigned defaults to SHA-1),
 * valid for localhost, 127.0.0.1 and ::1.
 */
export async function selfSignedCertificate(cn = 'localhost', days = 365): Promise<PemPair> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + days * 86_400_000);
  const pems = await generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: cn },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
