/**
 * TLS proven from outside (sec-2, sec-3): Debian's `sslscan` (installed by `.ci/run`) scans the
 * running server on loopback, once with the ECDSA test certificate and once with an RSA one
 * (RSA certificates open the RSA key-exchange suites, which must stay refused).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generate } from 'selfsigned';
import { reloadServerTls } from '../../src/tls/reload.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

function sslscanPath(): string | undefined {
  try {
    return (
      execFileSync('sh', ['-c', 'command -v sslscan'], { encoding: 'utf8' }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}
const SSLSCAN = sslscanPath();
const skip = SSLSCAN ? false : 'sslscan is not installed (CI installs it: .ci/run)';

/** One XML element's attributes. */
type Attrs = Record<string, string>;

interface Scan {
  xml: string;
  protocols: Attrs[];
  ciphers: Attrs[];
  renegotiation?: Attrs;
  compression?: Attrs;
  heartbleed: Attrs[];
  signatureAlgorithm?: string;
}

const attrs = (tag: string): Attrs =>
  Object.fromEntries([...tag.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
const elements = (xml: string, name: string): Attrs[] =>
  [...xml.matchAll(new RegExp(`<${name}\\s[^>]*>`, 'g'))].map((m) => attrs(m[0]));

function scan(port: number): Promise<Scan> {
  return new Promise((resolve, reject) => {
    execFile(
      SSLSCAN!,
      ['--no-colour', '--xml=-', '--sni-name=localhost', `127.0.0.1:${port}`],
      { timeout: 180_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout) => {
        if (err) return reject(err);
        const xml = stdout.slice(stdout.indexOf('<?xml'));
        resolve({
          xml,
          protocols: elements(xml, 'protocol'),
          ciphers: elements(xml, 'cipher'),
          renegotiation: elements(xml, 'renegotiation')[0],
          compression: elements(xml, 'compression')[0],
          heartbleed: elements(xml, 'heartbleed'),
          signatureAlgorithm: /<signature-algorithm>([^<]*)<\/signature-algorithm>/.exec(xml)?.[1],
        });
      },
    );
  });
}

const TLS13_AEAD = /^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/;
const TLS12_ECDHE_AEAD = /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/;
const WEAK =
  /CBC|-SHA$|RC4|3DES|DES-CBC|NULL|ADH|AECDH|anon|EXPORT|MD5|CCM|ARIA|CAMELLIA|SEED|IDEA|PSK|SRP|^DHE-|^AES|^RSA/i;

function checkScan(s: Scan, label: string): void {
  const enabled = (type: string, version: string) =>
    s.protocols.find((p) => p.type === type && p.version === version)?.enabled;
  // Protocols: only TLS 1.2 and 1.3.
  assert.equal(enabled('ssl', '2'), '0', `${label}: SSLv2`);
  assert.equal(enabled('ssl', '3'), '0', `${label}: SSLv3`);
  assert.equal(enabled('tls', '1.0'), '0', `${label}: TLSv1.0`);
  assert.equal(enabled('tls', '1.1'), '0', `${label}: TLSv1.1`);
  assert.equal(enabled('tls', '1.2'), '1', `${label}: TLSv1.2`);
  assert.equal(enabled('tls', '1.3'), '1', `${label}: TLSv1.3`);
  // Suites: TLS 1.3 AEAD suites, or TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305.
  assert.ok(s.ciphers.length > 0, `${label}: no cipher found`);
  for (const c of s.ciphers) {
    const name = c.cipher ?? '';
    const where = `${label}: ${c.sslversion} ${name}`;
    assert.ok(c.sslversion === 'TLSv1.2' || c.sslversion === 'TLSv1.3', where);
    assert.match(name, c.sslversion === 'TLSv1.3' ? TLS13_AEAD : TLS12_ECDHE_AEAD, where);
    assert.doesNotMatch(name, WEAK, where);
    assert.ok(['strong', 'acceptable'].includes(c.strength ?? ''), `${where}: ${c.strength}`);
    assert.ok(Number(c.bits) >= 128, `${where}: ${c.bits} bits`);
  }
  for (const v of ['TLSv1.2', 'TLSv1.3']) {
    assert.ok(
      s.ciphers.some((c) => c.sslversion === v && c.status === 'preferred'),
      `${label}: a preferred ${v} suite`,
    );
  }
  // No TLS compression (CRIME): absent from the report, or reported unsupported.
  assert.notEqual(s.compression?.supported, '1', `${label}: compression`);
  // No insecure renegotiation (renegotiation is switched off altogether).
  assert.ok(s.renegotiation, `${label}: renegotiation checked`);
  assert.ok(
    !(s.renegotiation.supported === '1' && s.renegotiation.secure !== '1'),
    `${label}: insecure renegotiation`,
  );
  assert.equal(s.renegotiation.supported, '0', `${label}: renegotiation disabled`);
  for (const h of s.heartbleed) assert.equal(h.vulnerable, '0', `${label}: heartbleed`);
  // The certificate is signed with a SHA-2 algorithm.
  assert.match(s.signatureAlgorithm ?? '', /sha(256|384|512)/i, `${label}: signature algorithm`);
  assert.doesNotMatch(s.signatureAlgorithm ?? '', /sha1|md5/i, label);
}

describe('sec-3: TLS seen from outside (sslscan)', { skip }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => server?.close());
  const port = () => Number(new URL(server.base).port);

  it('sec-3: only TLS 1.2 and 1.3, only ECDHE AEAD suites, no compression or insecure renegotiation, SHA-256 signature (ECDSA certificate)', async () => {
    const s = await scan(port());
    checkScan(s, 'ECDSA');
    assert.ok(s.ciphers.every((c) => !/ECDHE-RSA/.test(c.cipher ?? '')));
  });

  it('sec-3: the same with an RSA certificate: no RSA key exchange, no DHE, no CBC', async () => {
    const notBeforeDate = new Date(Date.now() - 60_000);
    const rsa = await generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'rsa',
      keySize: 2048,
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate: new Date(notBeforeDate.getTime() + 86_400_000),
    });
    const files = { cert: join(server.dataDir, 'cert.pem'), key: join(server.dataDir, 'key.pem') };
    writeFileSync(files.key, rsa.private, { mode: 0o600 });
    writeFileSync(files.cert, rsa.cert);
    const log = { info() {}, warn() {}, error() {} };
    assert.ok(reloadServerTls(server.app.server, files, log), 'RSA certificate installed');
    const s = await scan(port());
    checkScan(s, 'RSA');
    assert.ok(
      s.ciphers.some((c) => /^ECDHE-RSA-/.test(c.cipher ?? '')),
      'ECDHE-RSA suites in use',
    );
    assert.match(s.signatureAlgorithm ?? '', /sha256WithRSAEncryption/i);
  });
});
