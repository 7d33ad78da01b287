import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { checkServerTls } from '../../src/tls/check.js';

async function files(): Promise<{ dir: string; cert: string; key: string; otherKey: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-tls-'));
  const a = await selfSignedCertificate();
  const b = await selfSignedCertificate();
  writeFileSync(join(dir, 'cert.pem'), a.cert);
  writeFileSync(join(dir, 'key.pem'), a.key);
  writeFileSync(join(dir, 'other-key.pem'), b.key);
  return {
    dir,
    cert: join(dir, 'cert.pem'),
    key: join(dir, 'key.pem'),
    otherKey: join(dir, 'other-key.pem'),
  };
}

const config = (tls: Config['tls']) => ({ tls }) as Config;

function refusedKey(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.key;
  }
  assert.fail('accepted');
}

describe('start-up TLS checks name the key', () => {
  it('sec-2: a matching certificate and key pass', async () => {
    const f = await files();
    assert.doesNotThrow(() =>
      checkServerTls(config({ cert: f.cert, key: f.key, requestCert: false })),
    );
  });

  it('a key that does not match the certificate names tls.key', async () => {
    const f = await files();
    const key = refusedKey(() =>
      checkServerTls(config({ cert: f.cert, key: f.otherKey, requestCert: false })),
    );
    assert.equal(key, 'tls.key');
  });

  it('a certificate given as the key names tls.key; garbage as the certificate names tls.cert', async () => {
    const f = await files();
    assert.equal(
      refusedKey(() => checkServerTls(config({ cert: f.cert, key: f.cert, requestCert: false }))),
      'tls.key',
    );
    writeFileSync(join(f.dir, 'junk.pem'), 'not a certificate');
    const junk = join(f.dir, 'junk.pem');
    assert.equal(
      refusedKey(() => checkServerTls(config({ cert: junk, key: f.key, requestCert: false }))),
      'tls.cert',
    );
  });
});
