/**
 * Development certificates for the demo server and tests (a self-signed server certificate; a
 * throw-away CA and certificates it issues, for mutual TLS). Never used when a config names files.
 */
import { generate } from 'selfsigned';

export interface PemPair {
  cert: string;
  key: string;
}

/** From a minute ago (small clock differences) for `days` days. */
function validity(days: number): { notBeforeDate: Date; notAfterDate: Date } {
  const notBeforeDate = new Date(Date.now() - 60_000);
  return { notBeforeDate, notAfterDate: new Date(notBeforeDate.getTime() + days * 86_400_000) };
}

/**
 * A self-signed ECDSA P-256 certificate signed with SHA-256 (selfsigned defaults to SHA-1),
 * valid for localhost, 127.0.0.1 and ::1.
 */
export async function selfSignedCertificate(cn = 'localhost', days = 365): Promise<PemPair> {
  const { notBeforeDate, notAfterDate } = validity(days);
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

/** A certificate authority for development and tests (ECDSA P-256, SHA-256). */
export async function certificateAuthority(
  cn = 'crdkit development CA',
  days = 365,
): Promise<PemPair> {
  const { notBeforeDate, notAfterDate } = validity(days);
  const pems = await generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/**
 * A TLS client certificate issued by `ca` (ECDSA P-256, SHA-256, extended key usage
 * clientAuth). `subject` lists the distinguished name's attributes by short name (`CN`, `O`,
 * `OU`, `L`, `ST`, `C`; `commonName` and `organizationName` also work), e.g.
 * `[['CN', 'client-a'], ['O', 'Hospital A']]`.
 */
export async function clientCertificate(
  ca: PemPair,
  subject: Array<[name: string, value: string]>,
  days = 30,
): Promise<PemPair> {
  const { notBeforeDate, notAfterDate } = validity(days);
  const pems = await generate(
    // selfsigned joins the attributes into one DN string: escape RFC 4514 specials so that a
    // value such as "Hospital, Inc" is kept whole instead of being cut at the comma.
    subject.map(([name, value]) => ({
      name,
      value: value
        .replace(/[\\,+"<>;=]/g, '\\$&')
        .replace(/^[ #]/, '\\$&')
        .replace(/ $/, '\\ '),
    })),
    {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      ca: { key: ca.key, cert: ca.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
    },
  );
  return { cert: pems.cert, key: pems.private };
}
