/**
 * Graceful shutdown of `crdkit serve` as a real child process: on SIGTERM the request in flight
 * (held up by a slow FHIR server) still gets its 200, new connections are refused (or get a 503),
 * and the process exits 0 within a few seconds.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { generateClientKeyPair, signCdsJwt } from '../../src/auth/sign.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { startFhirStub, type FhirStub } from '../helpers/fhir-stub.js';
import { send, type TestResponse } from '../helpers/https.js';
import { coverage, orderRequest, patient } from '../helpers/requests.js';
import { freePort } from '../helpers/server.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const ISS = 'https://ehr.test/shutdown-client';
const SIGN = '/cds-services/order-sign-crd';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `ok` every 20 ms until it is true or `ms` have passed. */
async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('graceful shutdown of crdkit serve', () => {
  let dir: string;
  let stub: FhirStub;
  let child: ChildProcess;
  let output = '';
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  let base: string;
  let cert: string;
  let privateJwk: Awaited<ReturnType<typeof generateClientKeyPair>>['privateJwk'];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'crdkit-shutdown-'));
    stub = await startFhirStub([patient(), coverage()]);
    const pem = await selfSignedCertificate('localhost');
    cert = pem.cert;
    writeFileSync(join(dir, 'cert.pem'), pem.cert);
    writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
    writeFileSync(join(dir, 'fhir-ca.pem'), stub.cert);
    const pair = await generateClientKeyPair('ES384');
    privateJwk = pair.privateJwk;
    const port = await freePort();
    base = `https://localhost:${port}`;
    const config: ConfigFile = {
      baseUrl: base,
      listen: { host: '127.0.0.1', port },
      tls: { cert: 'cert.pem', key: 'key.pem' },
      clients: [
        {
          iss: ISS,
          name: 'shutdown test EHR',
          jwks: { keys: [pair.publicJwk as { kty: string }] },
          fhirServers: [stub.origin],
        },
      ],
      rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
      dataDir: join(dir, 'data'),
      replay: 'memory',
      fhir: { ca: 'fhir-ca.pem', timeoutMs: 10_000 },
      log: { level: 'info' },
    };
    writeFileSync(join(dir, 'crdkit.json'), JSON.stringify(config, null, 2));

    child = spawn(
      process.execPath,
      ['--import', TSX, MAIN, 'serve', '--config', join(dir, 'crdkit.json')],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString('utf8')));
    exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    const quit = exited.then(() => true);
    let gone = false;
    void quit.then(() => (gone = true));
    await waitFor(() => gone || output.includes('listening on'), 30_000, 'the server to listen');
    assert.ok(!gone, `the server stopped at start-up:\n${output}`);
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await Promise.race([exited, sleep(2_000)]);
    }
    await stub?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const post = async (body: unknown): Promise<TestResponse> =>
    send(`${base}${SIGN}`, {
      method: 'POST',
      ca: cert,
      body: JSON.stringify(body),
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await signCdsJwt({ privateJwk, iss: ISS, aud: `${base}${SIGN}` })}`,
      },
    });

  it('SIGTERM: the request in flight completes with 200, new connections are refused, exit 0', async () => {
    // Warm-up, fast: the server answers from the stub.
    const warm = await post(orderRequest({ prefetch: undefined, fhirServer: stub.base }));
    assert.equal(warm.status, 200, warm.text);

    // Each FHIR answer now takes 1 s: the hook call needs at least one round trip.
    stub.delayMs = 1_000;
    const seen = stub.requests.length;
    let doneAt = 0;
    const inFlight = post(orderRequest({ prefetch: undefined, fhirServer: stub.base })).then(
      (res) => {
        doneAt = Date.now();
        return res;
      },
    );
    await waitFor(() => stub.requests.length > seen, 5_000, 'the FHIR query');
    const signalledAt = Date.now();
    assert.ok(child.kill('SIGTERM'));

    // A new connection after SIGTERM: refused, or answered 503 while closing.
    await sleep(200);
    const late = await post(orderRequest()).then(
      (res) => String(res.status),
      (err: NodeJS.ErrnoException) => err.code ?? 'error',
    );
    assert.ok(['ECONNREFUSED', 'ECONNRESET', '503'].includes(late), `new request got ${late}`);
    assert.equal(doneAt, 0, 'the slow request was still in flight when the new one was refused');

    const res = await inFlight;
    assert.equal(res.status, 200, res.text);
    assert.ok(doneAt > signalledAt + 500, 'answered after SIGTERM');
    assert.equal(res.json.systemActions.length, 1);

    const exit = await Promise.race([exited, sleep(5_000).then(() => undefined)]);
    assert.ok(exit, `the server did not exit within 5 s after the last answer:\n${output}`);
    assert.equal(exit.code, 0, output);
    assert.ok(exit.at - signalledAt < 6_000, `exited ${exit.at - signalledAt} ms after SIGTERM`);
    assert.match(output, /shutting down: finishing requests in flight/);
  });
});
