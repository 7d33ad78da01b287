/**
 * found-37 under a crash: a real `crdkit serve` is killed with SIGKILL while calls are in
 * flight. Every call that received a 200 must have its audit record (the record is written
 * before the answer is sent), and the chain must verify when the store is opened again. SQLite
 * always; PostgreSQL (a schema of its own) when `CRDKIT_TEST_PG` is set.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { CRDKIT_AUDIT_SYSTEMS, openAuditStore } from '../../src/audit/index.js';
import { generateClientKeyPair, signCdsJwt } from '../../src/auth/sign.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { send } from '../helpers/https.js';
import { orderRequest } from '../helpers/requests.js';
import { freePort } from '../helpers/server.js';

const PG_URL = process.env.CRDKIT_TEST_PG;
const needsPg = PG_URL ? {} : { skip: 'CRDKIT_TEST_PG is not set: no PostgreSQL to test against' };
const TSX = import.meta.resolve('tsx');
const MAIN = join(PACKAGE_ROOT, 'src', 'cli', 'main.ts');
const SIGN = '/cds-services/order-sign-crd';
const ISS = 'https://ehr.test/crash-safety-client';
const IN_FLIGHT = 8;
/** Answers to wait for before the kill. */
const BEFORE_KILL = 60;
/** The whole load, kill included, is bounded by this. */
const LOAD_MS = 5_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Serve {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `crdkit serve --config` and resolves once it listens. */
async function startServe(cwd: string, config: string): Promise<Serve> {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', '--config', config], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  let gone = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      gone = true;
      resolve({ code, signal });
    }),
  );
  const until = Date.now() + 30_000;
  while (!out.includes('crdkit: CRD server listening on')) {
    if (gone || Date.now() > until) {
      if (!gone) child.kill('SIGKILL');
      throw new Error(`crdkit serve did not start:\n${out}`);
    }
    await sleep(50);
  }
  return { child, output: () => out, exited };
}

/** The hookInstance identifiers of the hook call AuditEvents among `events`. */
function hookInstances(events: Array<{ entity?: Array<Record<string, any>> }>): Set<string> {
  const found = new Set<string>();
  for (const event of events) {
    for (const entity of event.entity ?? []) {
      const id = entity.what?.identifier;
      if (id?.system === CRDKIT_AUDIT_SYSTEMS.hookInstance) found.add(String(id.value));
    }
  }
  return found;
}

async function crashUnderLoad(store: 'sqlite' | 'postgres'): Promise<void> {
  const run = randomBytes(6).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-crash-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const schema = `crdkit_crash_${run}`;
  const admin = store === 'postgres' ? new pg.Client({ connectionString: PG_URL }) : undefined;
  const url =
    store === 'postgres'
      ? `${PG_URL}${PG_URL!.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`
      : 'sqlite';
  let serve: Serve | undefined;
  try {
    if (admin) {
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
    }
    const pem = await selfSignedCertificate('localhost');
    writeFileSync(join(dir, 'cert.pem'), pem.cert);
    writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
    const pair = await generateClientKeyPair('ES384');
    const port = await freePort();
    const base = `https://localhost:${port}`;
    const config: ConfigFile = {
      baseUrl: base,
      listen: { host: '127.0.0.1', port },
      tls: { cert: 'cert.pem', key: 'key.pem' },
      clients: [
        { iss: ISS, name: 'crash test EHR', jwks: { keys: [pair.publicJwk as { kty: string }] } },
      ],
      rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
      dataDir: 'data',
      replay: 'memory',
      audit: { store: url, instance: `crash-${run}` },
      log: { level: 'warn' },
    };
    writeFileSync(join(dir, 'crdkit.json'), JSON.stringify(config), { mode: 0o600 });
    serve = await startServe(dir, join(dir, 'crdkit.json'));
    const child = serve.child;

    const answered: string[] = [];
    const otherStatuses: number[] = [];
    const failures: string[] = [];
    let inFlight = 0;
    let inFlightAtKill = -1;
    let killed = false;
    const deadline = Date.now() + LOAD_MS;
    const worker = async () => {
      // Bounded: stops at the first failed call (the server is gone) or at the deadline.
      while (Date.now() < deadline) {
        const body = orderRequest();
        const token = await signCdsJwt({ privateJwk: pair.privateJwk, iss: ISS, aud: base + SIGN });
        inFlight += 1;
        try {
          const res = await send(`${base}${SIGN}`, {
            method: 'POST',
            ca: pem.cert,
            body: JSON.stringify(body),
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          });
          if (res.status === 200) answered.push(body.hookInstance as string);
          else otherStatuses.push(res.status);
        } catch (err) {
          failures.push((err as NodeJS.ErrnoException).code ?? String(err));
          return;
        } finally {
          inFlight -= 1;
        }
      }
    };
    const killer = async () => {
      while (answered.length < BEFORE_KILL && Date.now() < deadline) await sleep(5);
      // Mid-load: wait (briefly) for a moment with calls in flight, then kill.
      while (inFlight < IN_FLIGHT / 2 && Date.now() < deadline) await sleep(1);
      inFlightAtKill = inFlight;
      killed = child.kill('SIGKILL');
    };
    await Promise.all([killer(), ...Array.from({ length: IN_FLIGHT }, worker)]);
    const exit = await Promise.race([serve.exited, sleep(5_000).then(() => undefined)]);
    assert.ok(killed, 'the server was killed');
    assert.equal(exit?.signal, 'SIGKILL', serve.output());
    assert.ok(
      answered.length >= BEFORE_KILL,
      `only ${answered.length} calls answered before the kill`,
    );
    assert.ok(inFlightAtKill > 0, 'calls were in flight when the server was killed');
    assert.ok(failures.length > 0, 'calls failed when the server died');
    assert.deepEqual(otherStatuses, [], 'every answer before the kill was a 200');

    // The store, opened again after the crash: intact, and every 200 has its record.
    const audit = await openAuditStore({ url, dataDir, instance: 'crash-check' });
    try {
      const verified = await audit.verify();
      assert.deepEqual(verified.ok, true, JSON.stringify(verified));
      assert.ok(verified.ok && verified.records >= answered.length, JSON.stringify(verified));
      const events = [];
      for await (const event of audit.export({ reader: 'crash-safety test' })) events.push(event);
      const recorded = hookInstances(events);
      const missing = answered.filter((h) => !recorded.has(h));
      assert.deepEqual(missing, [], `${missing.length} of ${answered.length} 200s have no record`);
      // Calls cut off by the kill may or may not have been recorded; none is recorded twice.
      assert.ok(recorded.size <= answered.length + IN_FLIGHT, `${recorded.size} hook records`);
      // The store keeps working after the crash: the export's own record chains on.
      const after = await audit.verify();
      assert.ok(after.ok && after.records === verified.records + 1, JSON.stringify(after));
    } finally {
      await audit.close();
    }
  } finally {
    if (serve && serve.child.exitCode === null && serve.child.signalCode === null) {
      serve.child.kill('SIGKILL');
      await Promise.race([serve.exited, sleep(2_000)]);
    }
    if (admin) {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.end();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the audit trail survives a killed server (found-37)', () => {
  test('found-37: SQLite: SIGKILL under load; every call answered 200 has its audit record and the chain verifies', () =>
    crashUnderLoad('sqlite'));

  test(
    'found-37: PostgreSQL: SIGKILL under load; every call answered 200 has its audit record and the chain verifies',
    needsPg,
    () => crashUnderLoad('postgres'),
  );
});
