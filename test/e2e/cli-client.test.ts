/**
 * The README's three-terminal flow, as processes: `crdkit ehr` and `crdkit serve` from their
 * configuration files on free loopback ports, then `crdkit client order-sign`: it prints the
 * coverage information and leaves it on the order in the EHR (resp-48); the CRD server trusted
 * the EHR's published, rotating signing keys (its `jku`); `crdkit audit review` then reads the
 * payer's accesses from the EHR's trail (sec-8).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DeviceRequest } from '@medplum/fhirtypes';
import { generateClientKeyPair } from '../../src/auth/sign.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import { COVERAGE_INFORMATION_URL } from '../../src/crd/coverage-codes.js';
import { openResourceStore } from '../../src/ehr/store/index.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { freePort } from '../helpers/server.js';

const MAIN = join(process.cwd(), 'src', 'cli', 'main.ts');
const TSX = import.meta.resolve('tsx');
const run = (args: string[], cwd: string) =>
  spawnSync(process.execPath, ['--import', TSX, MAIN, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
  });

async function start(
  args: string[],
  cwd: string,
  ready: RegExp,
): Promise<{ child: ChildProcess; err: () => string }> {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], {
    cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!ready.test(err) && child.exitCode === null && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(err, ready, err);
  return { child, err: () => err };
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

describe('crdkit ehr + crdkit serve + crdkit client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-3way-'));
  const children: ChildProcess[] = [];
  let ehrPort = 0;
  let order = '';
  let patient = '';

  before(async () => {
    const pem = await selfSignedCertificate('localhost');
    writeFileSync(join(dir, 'cert.pem'), pem.cert);
    writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
    const crdServerKey = await generateClientKeyPair('ES384');
    const ehrClientKey = await generateClientKeyPair('ES384');
    writeFileSync(join(dir, 'ehr-client.jwk.json'), JSON.stringify(ehrClientKey.privateJwk), {
      mode: 0o600,
    });
    ehrPort = await freePort();
    const crdPort = await freePort();
    const ehrBase = `https://localhost:${ehrPort}`;
    const crdBase = `https://localhost:${crdPort}`;
    writeFileSync(
      join(dir, 'ehr.json'),
      JSON.stringify({
        baseUrl: ehrBase,
        listen: { port: ehrPort },
        tls: { cert: 'cert.pem', key: 'key.pem' },
        dataDir: 'ehr-data',
        clients: [
          {
            clientId: 'payer-crd',
            kind: 'confidential-asymmetric',
            jwks: { keys: [crdServerKey.publicJwk] },
            grantTypes: ['client_credentials', TOKEN_EXCHANGE],
            scope: 'patient/*.rs',
            payer: 'example-payer',
          },
          {
            clientId: 'ehr-crd-client',
            kind: 'confidential-asymmetric',
            jwks: { keys: [ehrClientKey.publicJwk] },
            grantTypes: ['client_credentials'],
            scope: 'system/*.rs system/DeviceRequest.u',
          },
        ],
        seed: true,
        crdClient: {
          iss: 'https://ehr.test/crd-client',
          clientId: 'ehr-crd-client',
          privateKey: 'ehr-client.jwk.json',
          payers: [
            {
              id: 'example-payer',
              name: 'Example Health Plan',
              identifiers: [{ system: 'urn:crdkit:payer', value: 'example-payer' }],
              cdsBaseUrl: crdBase,
              clientId: 'payer-crd',
              ca: 'cert.pem',
            },
          ],
        },
      }),
    );
    writeFileSync(
      join(dir, 'serve.json'),
      JSON.stringify({
        baseUrl: crdBase,
        listen: { port: crdPort },
        tls: { cert: 'cert.pem', key: 'key.pem' },
        clients: [
          {
            iss: 'https://ehr.test/crd-client',
            jwksUri: `${ehrBase}/.well-known/jwks.json`,
            fhirServers: [ehrBase],
          },
        ],
        rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
        dataDir: 'crd-data',
        fhir: { ca: 'cert.pem' },
      }),
    );
    const ehr = await start(['ehr', '--config', 'ehr.json'], dir, /EHR listening/);
    children.push(ehr.child);
    const crd = await start(['serve', '--config', 'serve.json'], dir, /CRD server listening/);
    children.push(crd.child);
    const store = openResourceStore({ path: join(dir, 'ehr-data', 'ehr.db') });
    const [avery] = store.search('Patient', [
      { name: 'identifier', values: ['urn:crdkit:demo|patient-avery'] },
    ]);
    const [oxygen] = store.search('DeviceRequest', [
      { name: 'identifier', values: ['urn:crdkit:demo|order-oxygen'] },
    ]);
    store.close();
    patient = avery!.id!;
    order = `DeviceRequest/${oxygen!.id}`;
  });

  after(async () => {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    rmSync(dir, { recursive: true, force: true });
  });

  test('resp-48: crdkit client order-sign prints the coverage information and stores it on the order', () => {
    const r = run(
      [
        'client',
        'order-sign',
        '--config',
        'ehr.json',
        '--patient',
        patient,
        '--order',
        order,
        '--no-prefetch',
      ],
      dir,
    );
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Example Health Plan \(primary coverage Coverage\/[\w-]+\): done/);
    assert.match(r.stdout, /covered=covered, pa-needed=auth-needed/);
    assert.match(r.stdout, new RegExp(`stored on ${order} in the EHR`));
    const store = openResourceStore({ path: join(dir, 'ehr-data', 'ehr.db') });
    const stored = store.read<DeviceRequest>('DeviceRequest', order.split('/')[1]!)!;
    store.close();
    assert.ok(stored.extension?.some((e) => e.url === COVERAGE_INFORMATION_URL));
  });

  test('found-39: a second run does not show the same advice again', () => {
    const r = run(
      ['client', 'order-sign', '--config', 'ehr.json', '--patient', patient, '--order', order],
      dir,
    );
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /card\(s\) already shown today, not repeated/);
    assert.doesNotMatch(r.stdout, /\[info\]/);
  });

  test('sec-8: crdkit audit review shows the payer reading the EHR during that call', () => {
    const r = run(['audit', 'review', '--config', 'ehr.json', '--json'], dir);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    const payer = report.clients.find((c: { client: string }) => c.client === 'payer-crd');
    assert.ok(payer, r.stdout);
    assert.ok(payer.accesses > 0, 'the payer read what its prefetch lacked');
    assert.equal(report.findings.length, 0);
  });
});
