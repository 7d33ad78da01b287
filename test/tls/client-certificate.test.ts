import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import {
  certificateMatches,
  checkClientCertificate,
  normalizeFingerprint,
} from '../../src/server/client-certificate.js';
import { CdsError } from '../../src/cds/outcome.js';
import {
  certificateAuthority,
  clientCertificate,
  selfSignedCertificate,
} from '../../src/tls/certs.js';
import { checkServerTls } from '../../src/tls/check.js';

let cert: X509Certificate;
let other: X509Certificate;
let commaCert: X509Certificate;
before(async () => {
  const ca = await certificateAuthority('crdkit test CA');
  const a = await clientCertificate(ca, [
    ['commonName', 'client-a'],
    ['organizationName', 'Hospital A'],
  ]);
  const b = await clientCertificate(ca, [['commonName', 'client-b']]);
  const c = await clientCertificate(ca, [
    ['commonName', 'client-c'],
    ['organizationName', 'Hospital, Inc'],
    ['OU', 'a+b=c'],
  ]);
  cert = new X509Certificate(a.cert);
  other = new X509Certificate(b.cert);
  commaCert = new X509Certificate(c.cert);
});

describe('HRex sec-12: matching a client certificate binding', () => {
  it('sha256 matches the fingerprint in any case, with or without colons', () => {
    const fp = cert.fingerprint256;
    assert.ok(certificateMatches({ sha256: fp }, cert));
    assert.ok(certificateMatches({ sha256: fp.toLowerCase() }, cert));
    assert.ok(certificateMatches({ sha256: fp.replace(/:/g, '') }, cert));
    assert.ok(!certificateMatches({ sha256: other.fingerprint256 }, cert));
    assert.equal(normalizeFingerprint('ab:cd'), 'ABCD');
  });

  it('a subject without "=" is the common name, exactly', () => {
    assert.ok(certificateMatches({ subject: 'client-a' }, cert));
    assert.ok(!certificateMatches({ subject: 'Client-A' }, cert));
    assert.ok(!certificateMatches({ subject: 'client' }, cert));
    assert.ok(!certificateMatches({ subject: 'Hospital A' }, cert));
  });

  it('a subject with "=" is the whole distinguished name, in any order, no attribute more or less', () => {
    assert.ok(certificateMatches({ subject: 'CN=client-a, O=Hospital A' }, cert));
    assert.ok(certificateMatches({ subject: 'o=Hospital A,cn=client-a' }, cert));
    assert.ok(!certificateMatches({ subject: 'CN=client-a' }, cert));
    assert.ok(!certificateMatches({ subject: 'CN=client-a, O=Hospital B' }, cert));
    assert.ok(!certificateMatches({ subject: 'CN=client-a, O=Hospital A, OU=x' }, cert));
    // RFC 4514 escapes: a comma inside a value is written `\,`.
    const escaped = 'CN=client-c, O=Hospital\\, Inc, OU=a\\+b\\=c';
    assert.ok(certificateMatches({ subject: escaped }, commaCert));
    assert.ok(
      certificateMatches({ subject: 'CN=client-c, O=Hospital\\, Inc, OU=a\\+b=c' }, commaCert),
    );
    assert.ok(
      !certificateMatches({ subject: 'CN=client-c, O=Hospital, Inc, OU=a+b=c' }, commaCert),
    );
  });

  it('subject and sha256 together must both match; an empty binding matches nothing', () => {
    assert.ok(certificateMatches({ subject: 'client-a', sha256: cert.fingerprint256 }, cert));
    assert.ok(!certificateMatches({ subject: 'client-a', sha256: other.fingerprint256 }, cert));
    assert.ok(!certificateMatches({ subject: 'client-b', sha256: cert.fingerprint256 }, cert));
    assert.ok(!certificateMatches({}, cert));
  });

  it('sec-2: a bound client on a connection without a verified certificate is refused (401)', () => {
    const req = { raw: { socket: { authorized: false } } } as never;
    const verified = { iss: 'urn:a', client: { certificate: { subject: 'client-a' } } };
    assert.throws(
      () => checkClientCertificate(req, verified),
      (err: unknown) =>
        err instanceof CdsError && err.status === 401 && err.code === 'ERR_CLIENT_CERTIFICATE',
    );
    // The configuration's entry wins over whatever the verified client object carries.
    const clients = [{ iss: 'urn:a', certificate: { subject: 'client-a' } }];
    assert.throws(() => checkClientCertificate(req, { iss: 'urn:a', client: {} }, clients));
    assert.doesNotThrow(() => checkClientCertificate(req, { iss: 'urn:b', client: {} }, clients));
  });
});

describe('sec-2: start-up checks of the mutual TLS settings name the key', () => {
  async function config(tls: Partial<Config['tls']>, clients: Config['clients'] = []) {
    const dir = mkdtempSync(join(tmpdir(), 'crdkit-mtls-'));
    const pem = await selfSignedCertificate();
    const ca = await certificateAuthority();
    writeFileSync(join(dir, 'cert.pem'), pem.cert);
    writeFileSync(join(dir, 'key.pem'), pem.key);
    writeFileSync(join(dir, 'ca.pem'), ca.cert);
    return {
      tls: {
        cert: join(dir, 'cert.pem'),
        key: join(dir, 'key.pem'),
        requestCert: false,
        ...tls,
        ...(tls.ca ? { ca: join(dir, 'ca.pem') } : {}),
      },
      clients,
    } as Config;
  }
  const refusedKey = (c: Config): string => {
    try {
      checkServerTls(c);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.key;
    }
    assert.fail('accepted');
  };

  it('tls.requestCert without tls.ca is refused (system roots would be trusted for clients)', async () => {
    assert.equal(refusedKey(await config({ requestCert: true })), 'tls.ca');
    const good = await config({ requestCert: true, ca: 'ca.pem' });
    assert.doesNotThrow(() => checkServerTls(good));
  });

  it('a certificate binding without tls.requestCert, or with neither subject nor sha256, is refused', async () => {
    const bound = [{ iss: 'urn:a', jwks: { keys: [] }, certificate: { subject: 'client-a' } }];
    assert.equal(refusedKey(await config({}, bound)), 'clients[0].certificate');
    const empty = [{ iss: 'urn:a', jwks: { keys: [] }, certificate: {} }];
    assert.equal(
      refusedKey(await config({ requestCert: true, ca: 'ca.pem' }, empty)),
      'clients[0].certificate',
    );
    const good = await config({ requestCert: true, ca: 'ca.pem' }, bound);
    assert.doesNotThrow(() => checkServerTls(good));
  });
});
