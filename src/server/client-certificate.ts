/**
 * Binding a client's JWT to its TLS client certificate (HRex sec-12, in the manner of RFC 8705
 * certificate-bound tokens): when the authenticated client's entry has `certificate`, the
 * certificate the connection was established with must be that one, so a token issued to one
 * client is refused over another client's connection.
 *
 * Matching rules (README "Mutual TLS"):
 * - `sha256`: the certificate's SHA-256 fingerprint, hex, compared case-insensitively and
 *   ignoring colons.
 * - `subject` without `=`: exactly the certificate's subject common name (one CN only).
 * - `subject` with `=`: the full subject distinguished name, `CN=client-a, O=Hospital A`:
 *   the same attributes with the same values, no more and no fewer, in any order (attribute
 *   names case-insensitive, values exact; `\` escapes a special character such as `,` or `+`,
 *   as in RFC 4514). Multi-valued RDNs are not supported (they never match).
 * - Both given: both must match. Only a certificate the handshake verified against `tls.ca`
 *   counts; no such certificate is a mismatch.
 */
import type { TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { CdsError } from '../cds/outcome.js';
import type { ClientEntry } from '../config/schema.js';

/** A client entry's `certificate` binding. */
export type CertificateBinding = NonNullable<ClientEntry['certificate']>;

const bindingsCache = new WeakMap<readonly ClientEntry[], Map<string, CertificateBinding>>();

/** The binding configured for `iss`, looked up in the configuration (not the token). */
function bindingFor(
  iss: string,
  clients: readonly ClientEntry[] | undefined,
  entry: { certificate?: CertificateBinding } | undefined,
): CertificateBinding | undefined {
  if (!clients) return entry?.certificate;
  let byIss = bindingsCache.get(clients);
  if (!byIss) {
    byIss = new Map();
    for (const c of clients) if (c.certificate) byIss.set(c.iss, c.certificate);
    bindingsCache.set(clients, byIss);
  }
  return byIss.get(iss) ?? entry?.certificate;
}

/** `AB:cd:…` or `abcd…` → `ABCD…`. */
export const normalizeFingerprint = (hex: string): string => hex.replace(/:/g, '').toUpperCase();

/** Splits `CN=a, O=b\, c` at unescaped commas into `['cn=a', 'o=b, c']`. */
function configuredAttributes(subject: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < subject.length; i++) {
    const ch = subject[i]!;
    if (ch === '\\' && i + 1 < subject.length) {
      current += ch + subject[i + 1];
      i++;
    } else if (ch === ',') {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map(normalizeAttribute);
}

/** `O = Hospital\, Inc` → `o=Hospital, Inc`: name lower-cased, value unescaped and trimmed. */
function normalizeAttribute(attr: string): string {
  const eq = attr.indexOf('=');
  if (eq < 0) return attr.trim();
  const value = attr
    .slice(eq + 1)
    .trim()
    .replace(/\\(.)/g, '$1');
  return `${attr.slice(0, eq).trim().toLowerCase()}=${value}`;
}

/**
 * The subject's attributes as Node prints them (`X509Certificate.subject`: one attribute per
 * line, RFC 2253 special characters and control characters escaped).
 */
function certificateAttributes(cert: X509Certificate): string[] {
  return cert.subject.split('\n').filter(Boolean).map(normalizeAttribute);
}

const sameMultiset = (a: string[], b: string[]): boolean => {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((v, i) => v === y[i]);
};

/** True when `cert` is the one `binding` names (every given field matches). */
export function certificateMatches(binding: CertificateBinding, cert: X509Certificate): boolean {
  if (binding.subject === undefined && binding.sha256 === undefined) return false;
  if (binding.sha256 !== undefined) {
    if (normalizeFingerprint(binding.sha256) !== normalizeFingerprint(cert.fingerprint256)) {
      return false;
    }
  }
  if (binding.subject !== undefined) {
    const attrs = certificateAttributes(cert);
    if (binding.subject.includes('=')) {
      if (!sameMultiset(configuredAttributes(binding.subject), attrs)) return false;
    } else {
      const cns = attrs.filter((a) => a.startsWith('cn=')).map((a) => a.slice(3));
      if (cns.length !== 1 || cns[0] !== binding.subject) return false;
    }
  }
  return true;
}

/** The certificate the handshake verified for this request's connection, if any. */
function verifiedPeer(req: FastifyRequest): X509Certificate | undefined {
  const socket = req.raw.socket as Partial<TLSSocket> | null;
  if (!socket || socket.authorized !== true || typeof socket.getPeerX509Certificate !== 'function')
    return undefined;
  return socket.getPeerX509Certificate() ?? undefined;
}

/**
 * Refuses the request (401 `ERR_CLIENT_CERTIFICATE`) when the authenticated client has a
 * certificate binding and this connection's verified client certificate is absent or another
 * one. The binding is read from `clients` (the configuration) by issuer when given. The message
 * names no certificate data.
 */
export function checkClientCertificate(
  req: FastifyRequest,
  verified: { iss: string; client?: unknown } | undefined,
  clients?: readonly ClientEntry[],
): void {
  if (!verified) return;
  const entry = verified.client as { certificate?: CertificateBinding } | undefined;
  const binding = bindingFor(verified.iss, clients, entry);
  if (!binding) return;
  const peer = verifiedPeer(req);
  if (!peer) {
    throw new CdsError(
      401,
      'ERR_CLIENT_CERTIFICATE',
      'this client must connect with its registered TLS client certificate; none was verified',
      'security',
    );
  }
  if (!certificateMatches(binding, peer)) {
    throw new CdsError(
      401,
      'ERR_CLIENT_CERTIFICATE',
      'the TLS client certificate of this connection is not the one registered for this client',
      'security',
    );
  }
}
