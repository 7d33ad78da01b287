/**
 * `crdkit audit review` run as a user runs it: the real command over a configuration file whose
 * SQLite trail was written through the store API. Exit 1 with findings, 0 without, 2 when it
 * cannot run; it says so when the window holds no FHIR access.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openAuditStore } from '../../../src/audit/index.js';
import { PACKAGE_ROOT } from '../../../src/config/demo.js';
import type { ConfigFile } from '../../../src/config/schema.js';
import type { ReviewReport } from '../../../src/ehr/review.js';
import { selfSignedCertificate } from '../../../src/tls/certs.js';
import { access, at, cleanHookCall, CLIENT, issue, revoke } from './helpers.js';

const TSX = import.meta.resolve('tsx');
const MAIN = join(PACKAGE_ROOT, 'src', 'cli', 'main.ts');

const dir = mkdtempSync(join(tmpdir(), 'crdkit-cli-review-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function crdkit(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', TSX, MAIN, ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('sec-8: crdkit audit review exits 1 and names the finding, 0 when the window holds no FHIR access (and says so), 2 on a usage error', async () => {
  const pem = await selfSignedCertificate('localhost');
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  const file: ConfigFile = {
    baseUrl: 'https://localhost:8443',
    tls: { cert: 'cert.pem', key: 'key.pem' },
    clients: [{ iss: 'https://ehr.test/cli', jwksUri: 'https://ehr.test/jwks.json' }],
    rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
    dataDir: 'data',
    audit: { store: 'sqlite', instance: 'review-test:1' },
  };
  const config = join(dir, 'crdkit.json');
  writeFileSync(config, JSON.stringify(file), { mode: 0o600 });

  const store = await openAuditStore({
    url: 'sqlite',
    dataDir: join(dir, 'data'),
    instance: 'review-test:1',
  });
  let bad!: string;
  try {
    await cleanHookCall(store, 0);
    const call = await issue(store, 10);
    bad = call.hookInstance;
    await store.appendFhirAccess(access(call, 11, 'Patient/p2'));
    await revoke(store, call, 15);
  } finally {
    await store.close();
  }

  const r = crdkit(['audit', 'review', '--config', config, '--json']);
  assert.equal(r.status, 1, r.stderr);
  const report = JSON.parse(r.stdout) as ReviewReport;
  assert.equal(report.accesses, 4);
  assert.deepEqual(
    report.findings.map((f) => [f.kind, f.client, f.hookInstance, f.references]),
    [['other-patient', CLIENT.id, bad, ['Patient/p2']]],
  );
  assert.equal(report.clients[0]!.findings, 1);

  const table = crdkit(['audit', 'review', '--config', config]);
  assert.equal(table.status, 1, table.stderr);
  assert.match(table.stdout, /4 FHIR accesses reviewed/);
  assert.match(table.stdout, /Findings: 1 \(other-patient 1\)/);
  assert.match(table.stdout, new RegExp(`other-patient\\s+${CLIENT.id}\\s+${bad}`));

  const empty = crdkit(['audit', 'review', '--config', config, '--since', at(60).toISOString()]);
  assert.equal(empty.status, 0, empty.stderr);
  assert.match(empty.stdout, /no FHIR access was recorded in this window: nothing to review/);

  const emptyJson = crdkit([
    'audit',
    'review',
    '-c',
    config,
    '--json',
    '--since',
    at(60).toISOString(),
  ]);
  assert.equal(emptyJson.status, 0, emptyJson.stderr);
  assert.equal((JSON.parse(emptyJson.stdout) as ReviewReport).accesses, 0);
  assert.match(emptyJson.stderr, /no FHIR access was recorded in this window/);

  const usage = crdkit(['audit', 'review', '--config', config, '--max-per-token', 'many']);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--max-per-token: not a whole number of at least 1: many/);
  const unknown = crdkit(['audit', 'review', '--config', config, '--bogus']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
});
