/**
 * sec-5/sec-6 end to end: real `crdkit serve` processes answer hundreds of hook calls whose
 * patients, coverages and orders carry unique markers (names, identifiers, free-text notes,
 * birth dates, the EHR access token). Afterwards no marker may appear in plain text anywhere the
 * server wrote: every file of the test folder (SQLite databases, their write-ahead logs and
 * shared-memory files, the server's stdout/stderr log, its TMPDIR), every row of the
 * PostgreSQL schema and every Redis key and value it used. With payload encryption on, the
 * audit trail does hold the payloads (encrypted, and they decrypt to the markers); with it off,
 * no payload is kept at all.
 *
 * PostgreSQL and Redis run when `CRDKIT_TEST_PG` and `CRDKIT_TEST_REDIS` are set; the server
 * then uses a schema of its own and Redis logical database {@link REDIS_DB} (flushed before and
 * after: the replay keys are hashed, so only a dedicated database can be searched completely).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { openAuditStore } from '../../src/audit/index.js';
import { generateClientKeyPair, signCdsJwt, type ClientKeyPair } from '../../src/auth/sign.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { connectRedis } from '../../src/store/redis.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { send } from '../helpers/https.js';
import {
  bundle,
  coverage,
  CPT,
  deviceRequest,
  orderRequest,
  serviceRequest,
} from '../helpers/requests.js';
import { freePort } from '../helpers/server.js';

const PG_URL = process.env.CRDKIT_TEST_PG;
const REDIS_URL = process.env.CRDKIT_TEST_REDIS;
const needsPgAndRedis =
  PG_URL && REDIS_URL
    ? {}
    : { skip: 'CRDKIT_TEST_PG or CRDKIT_TEST_REDIS is not set: no PostgreSQL/Redis to search' };
/** The Redis logical database the server's replay store uses here (flushed before and after). */
const REDIS_DB = 7;

const TSX = import.meta.resolve('tsx');
const MAIN = join(PACKAGE_ROOT, 'src', 'cli', 'main.ts');
const SIGN = '/cds-services/order-sign-crd';
const ISS = 'https://ehr.test/no-retention-client';
const REQUESTS = 200;
const IN_FLIGHT = 8;
/** The longest the calls of one scenario may take. */
const LOAD_MS = 20_000;
const START_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `redis://host:port` with its database number replaced by `db`. */
function redisDbUrl(url: string, db: number): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** `url` with the first schema of its search_path set to `schema`. */
function pgSchemaUrl(url: string, schema: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`;
}

/** Every regular file under `dir` (symbolic links are not followed). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isDirectory()) return filesUnder(path);
    return stat.isFile() ? [path] : [];
  });
}

interface Marked {
  body: object;
  hookInstance: string;
}

/** The marker prefix of one run: every marker string starts with it. */
const prefixOf = (run: string) => `MKR${run}`;

/** A unique birth date per call (1850-01-01 plus 37 days per call). */
const birthDate = (i: number) =>
  new Date(Date.UTC(1850, 0, 1) + i * 37 * 86_400_000).toISOString().slice(0, 10);

/** An order-sign call whose patient, coverage and orders carry the markers of call `i`. */
function markedRequest(run: string, i: number): Marked {
  const m = `${prefixOf(run)}${i}`;
  const patient = {
    resourceType: 'Patient',
    id: 'pat-1',
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.4.1', value: `${m}ssn` }],
    name: [{ family: `${m}family`, given: [`${m}given`], text: `${m}fullname` }],
    telecom: [{ system: 'phone', value: `${m}phone` }],
    address: [{ line: [`${m}street`], city: `${m}city` }],
    birthDate: birthDate(i),
  };
  const cov = coverage({
    identifier: [{ system: 'urn:acme:member', value: `${m}member` }],
    subscriberId: `${m}subscriber`,
    subscriber: { display: `${m}subscribername` },
  });
  const device = {
    ...deviceRequest('dr-1', 'E0431'),
    identifier: [{ system: 'urn:ehr:order', value: `${m}deviceorder` }],
    note: [{ text: `${m}devicenote free text about the patient` }],
  };
  const service = {
    ...serviceRequest('sr-1', CPT, '15823'),
    identifier: [{ system: 'urn:ehr:order', value: `${m}serviceorder` }],
    note: [{ text: `${m}servicenote free text about the patient` }],
    reasonCode: [{ text: `${m}reason` }],
  };
  const body = orderRequest({
    orders: [device, service],
    accessToken: `${m}accesstoken`,
    prefetch: { patient, coverage: bundle([cov], 'searchset') },
  });
  return { hookInstance: body.hookInstance, body };
}

/** The markers of a run that cannot be found by the prefix (the birth dates). */
const dateMarkers = (count: number) => Array.from({ length: count }, (_, i) => birthDate(i));

/**
 * Where a marker of `run` appears in `haystacks` (name → text), or undefined. Only the name and
 * the marker are reported, never the surrounding content.
 */
function findMarker(
  run: string,
  count: number,
  haystacks: Array<[string, string]>,
): string | undefined {
  const dates = dateMarkers(count);
  for (const [where, text] of haystacks) {
    const at = text.indexOf(prefixOf(run));
    if (at >= 0) return `${where}: ${text.slice(at, at + 40).split(/[^\w]/)[0]}`;
    const date = dates.find((d) => text.includes(d));
    if (date) return `${where}: birth date ${date}`;
  }
  return undefined;
}

/** Every file under `dir`, read raw as latin1 (so any byte sequence is searchable). */
const fileContents = (dir: string): Array<[string, string]> =>
  filesUnder(dir).map((f) => [relative(dir, f), readFileSync(f).toString('latin1')]);

/** A value of a database row as searchable text (bytea read raw, not as hex). */
const asText = (value: unknown): string =>
  Buffer.isBuffer(value)
    ? value.toString('latin1')
    : value !== null && typeof value === 'object'
      ? JSON.stringify(value)
      : String(value);

interface Serve {
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

/**
 * Starts `crdkit serve --config` with stdout and stderr going to `logFile` and TMPDIR set to
 * `tmp`; resolves once it listens.
 */
async function startServe(cwd: string, config: string, logFile: string, tmp: string) {
  const fd = openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', '--config', config], {
      cwd,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, NODE_OPTIONS: '', TMPDIR: tmp, TMP: tmp, TEMP: tmp },
    });
  } finally {
    closeSync(fd);
  }
  let gone = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      gone = true;
      resolve(code);
    }),
  );
  const serve: Serve = { child, logFile, exited };
  const until = Date.now() + START_MS;
  while (!readFileSync(logFile, 'utf8').includes('crdkit: CRD server listening on')) {
    if (gone || Date.now() > until) {
      if (!gone) child.kill('SIGKILL');
      throw new Error(`crdkit serve did not start:\n${readFileSync(logFile, 'utf8')}`);
    }
    await sleep(50);
  }
  return serve;
}

/** SIGTERM, SIGKILL after 10 s; resolves with the exit code (null when killed). */
async function stopServe(serve: Serve): Promise<number | null> {
  const { child } = serve;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  child.kill('SIGTERM');
  const code = await serve.exited;
  clearTimeout(timer);
  return code;
}

interface Scenario {
  name: string;
  /** `sqlite`, or `postgres` (a fresh schema of CRDKIT_TEST_PG). */
  audit: 'sqlite' | 'postgres';
  /** `sqlite`, or `redis` (database REDIS_DB of CRDKIT_TEST_REDIS). */
  replay: 'sqlite' | 'redis';
  encrypt: boolean;
}

/** What one scenario left behind, for the assertions. */
interface RunResult {
  run: string;
  count: number;
  dir: string;
  /** Files read while the server was still running (WAL and SHM present), then after it stopped. */
  filesRunning: Array<[string, string]>;
  filesStopped: Array<[string, string]>;
  pgRows: Array<[string, string]>;
  redisEntries: Array<[string, string]>;
  /** Hook records: how many, how many with a payload key, ciphertext or key id present. */
  hookRecords: number;
  withPayload: number;
  anyPayloadColumn: number;
  /** One decrypted request payload (encryption on), as the store returns it. */
  decrypted?: string;
  exitCode: number | null;
}

async function runScenario(s: Scenario): Promise<RunResult> {
  const run = randomBytes(6).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-noret-'));
  const dataDir = join(dir, 'data');
  const tmp = join(dir, 'tmp');
  mkdirSync(dataDir, { mode: 0o700 });
  mkdirSync(tmp, { mode: 0o700 });
  const schema = `crdkit_noret_${run}`;
  const pgUrl = s.audit === 'postgres' ? pgSchemaUrl(PG_URL!, schema) : undefined;
  const redisUrl = s.replay === 'redis' ? redisDbUrl(REDIS_URL!, REDIS_DB) : undefined;
  const admin = pgUrl ? new pg.Client({ connectionString: PG_URL }) : undefined;
  const redis = redisUrl ? await connectRedis(redisUrl) : undefined;
  let serve: Serve | undefined;
  try {
    if (admin) {
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
    }
    await redis?.flushDb();

    const pem = await selfSignedCertificate('localhost');
    writeFileSync(join(dir, 'cert.pem'), pem.cert);
    writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
    const pair: ClientKeyPair = await generateClientKeyPair('ES384');
    const port = await freePort();
    const base = `https://localhost:${port}`;
    const key = randomBytes(32).toString('base64');
    const config: ConfigFile = {
      baseUrl: base,
      listen: { host: '127.0.0.1', port },
      tls: { cert: 'cert.pem', key: 'key.pem' },
      clients: [
        { iss: ISS, name: 'no-retention EHR', jwks: { keys: [pair.publicJwk as { kty: string }] } },
      ],
      rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
      dataDir: 'data',
      replay: redisUrl ?? 'sqlite',
      audit: {
        store: pgUrl ?? 'sqlite',
        instance: `no-retention-${run}`,
        ...(s.encrypt ? { payloadKeys: { k1: key }, currentKey: 'k1' } : {}),
        retentionDays: 30,
      },
      log: { level: 'info' },
    };
    writeFileSync(join(dir, 'crdkit.json'), JSON.stringify(config, null, 2), { mode: 0o600 });
    serve = await startServe(dir, join(dir, 'crdkit.json'), join(dataDir, 'serve.log'), tmp);

    // ≥ 200 calls, IN_FLIGHT at a time, within LOAD_MS.
    const deadline = Date.now() + LOAD_MS;
    let next = 0;
    const statuses: number[] = [];
    const worker = async () => {
      while (next < REQUESTS) {
        assert.ok(Date.now() < deadline, `the ${REQUESTS} calls took longer than ${LOAD_MS} ms`);
        const i = next++;
        const { body } = markedRequest(run, i);
        const token = await signCdsJwt({ privateJwk: pair.privateJwk, iss: ISS, aud: base + SIGN });
        const res = await send(`${base}${SIGN}`, {
          method: 'POST',
          ca: pem.cert,
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        });
        assert.equal(res.status, 200, `call ${i}: ${res.status}`);
        statuses.push(res.status);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    assert.equal(statuses.length, REQUESTS);

    // While the server still runs, its SQLite files have their -wal and -shm companions.
    const filesRunning = fileContents(dir);

    let hookRecords = 0;
    let withPayload = 0;
    let anyPayloadColumn = 0;
    let firstHookId: string | undefined;
    const pgRows: Array<[string, string]> = [];
    const counts = `SELECT count(*) AS n,
        count(*) FILTER (WHERE payload_key_id IS NOT NULL AND request_ct IS NOT NULL
                           AND response_ct IS NOT NULL) AS n_full,
        count(*) FILTER (WHERE payload_key_id IS NOT NULL OR request_ct IS NOT NULL
                           OR response_ct IS NOT NULL) AS n_any
      FROM audit_records WHERE kind = 'hook'`;
    if (admin) {
      const tables = await admin.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = $1`,
        [schema],
      );
      assert.ok(tables.rows.length >= 2, 'the audit tables are in the schema');
      for (const { table_name: table } of tables.rows) {
        const rows = await admin.query(
          `SELECT t.*, t::text AS "(row)" FROM ${schema}."${table}" t`,
        );
        rows.rows.forEach((row, n) =>
          pgRows.push([
            `PostgreSQL ${table} row ${n + 1}`,
            Object.values(row as Record<string, unknown>)
              .map(asText)
              .join('\u0000'),
          ]),
        );
      }
      const c = await admin.query(counts.replaceAll('audit_records', `${schema}.audit_records`));
      const row = c.rows[0] as { n: string; n_full: string; n_any: string };
      [hookRecords, withPayload, anyPayloadColumn] = [row.n, row.n_full, row.n_any].map(Number) as [
        number,
        number,
        number,
      ];
      const first = await admin.query(
        `SELECT id FROM ${schema}.audit_records WHERE kind = 'hook' ORDER BY seq LIMIT 1`,
      );
      firstHookId = first.rows[0]?.id as string | undefined;
    } else {
      const db = new BetterSqlite3(join(dataDir, 'audit.db'), { readonly: true });
      try {
        const row = db.prepare(counts).get() as { n: number; n_full: number; n_any: number };
        [hookRecords, withPayload, anyPayloadColumn] = [row.n, row.n_full, row.n_any];
        const first = db
          .prepare(`SELECT id FROM audit_records WHERE kind = 'hook' ORDER BY seq LIMIT 1`)
          .get() as { id: string } | undefined;
        firstHookId = first?.id;
      } finally {
        db.close();
      }
    }

    const redisEntries: Array<[string, string]> = [];
    if (redis) {
      let cursor = '0';
      for (let rounds = 0; rounds < 10_000; rounds++) {
        const page = await redis.scan(cursor, { COUNT: 500 });
        for (const k of page.keys) {
          const type = await redis.type(k);
          const value = type === 'string' ? ((await redis.get(k)) ?? '') : `(${type})`;
          redisEntries.push([`Redis key ${k.slice(0, 24)}…`, `${k}\u0000${value}`]);
        }
        cursor = String(page.cursor);
        if (cursor === '0') break;
      }
    }

    const exitCode = await stopServe(serve);
    const filesStopped = fileContents(dir);

    let decrypted: string | undefined;
    if (s.encrypt && firstHookId) {
      const store = await openAuditStore({
        url: pgUrl ?? 'sqlite',
        dataDir,
        instance: 'no-retention-reader',
        encryption: { keys: { k1: key }, current: 'k1' },
      });
      try {
        decrypted = (await store.readPayloads(firstHookId, 'no-retention test'))?.request?.toString(
          'utf8',
        );
      } finally {
        await store.close();
      }
    }

    return {
      run,
      count: REQUESTS,
      dir,
      filesRunning,
      filesStopped,
      pgRows,
      redisEntries,
      hookRecords,
      withPayload,
      anyPayloadColumn,
      ...(decrypted !== undefined ? { decrypted } : {}),
      exitCode,
    };
  } finally {
    if (serve && serve.child.exitCode === null && serve.child.signalCode === null) {
      serve.child.kill('SIGKILL');
      await Promise.race([serve.exited, sleep(2_000)]);
    }
    if (redis) {
      await redis.flushDb().catch(() => undefined);
      await redis.close();
    }
    if (admin) {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.end();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The assertions every scenario shares. */
function checkNoMarkers(s: Scenario, r: RunResult): void {
  assert.equal(r.exitCode, 0, 'the server stopped cleanly');
  const names = r.filesRunning.map(([name]) => name);
  // Not vacuous: the files that matter were there to be searched.
  assert.ok(names.includes(join('data', 'serve.log')), 'the log file was searched');
  const log = r.filesRunning.find(([name]) => name === join('data', 'serve.log'))![1];
  assert.match(log, /"status":200/, 'the log holds the access lines of the calls');
  if (s.audit === 'sqlite') {
    assert.ok(names.includes(join('data', 'audit.db')), names.join(', '));
    assert.ok(names.includes(join('data', 'audit.db-wal')), 'audit.db-wal searched');
    assert.ok(names.includes(join('data', 'audit.db-shm')), 'audit.db-shm searched');
  }
  if (s.replay === 'sqlite') {
    assert.ok(names.includes(join('data', 'crdkit.db')), names.join(', '));
    assert.ok(names.includes(join('data', 'crdkit.db-wal')), 'crdkit.db-wal searched');
  }
  if (s.audit === 'postgres') assert.ok(r.pgRows.length > r.count, 'PostgreSQL rows searched');
  if (s.replay === 'redis') {
    assert.ok(r.redisEntries.length >= r.count, `${r.redisEntries.length} Redis keys searched`);
  }
  // The search finds a marker where there is one (in a request body of this run).
  const probe = JSON.stringify(markedRequest(r.run, r.count - 1).body);
  assert.ok(findMarker(r.run, r.count, [['probe', probe]]), 'the marker search works');
  assert.ok(findMarker(r.run, r.count, [['probe', birthDate(r.count - 1)]]), 'dates are searched');
  const leak = findMarker(r.run, r.count, [
    ...r.filesRunning.map(([n, t]): [string, string] => [`${n} (server running)`, t]),
    ...r.filesStopped.map(([n, t]): [string, string] => [`${n} (server stopped)`, t]),
    ...r.pgRows,
    ...r.redisEntries,
  ]);
  assert.equal(leak, undefined, `a marker was found in plain text: ${leak}`);
}

const SCENARIOS: Array<Scenario & { skip?: string }> = [
  { name: 'SQLite audit + SQLite replay', audit: 'sqlite', replay: 'sqlite', encrypt: true },
  { name: 'SQLite audit + SQLite replay', audit: 'sqlite', replay: 'sqlite', encrypt: false },
  {
    name: 'PostgreSQL audit + Redis replay',
    audit: 'postgres',
    replay: 'redis',
    encrypt: true,
    ...needsPgAndRedis,
  },
  {
    name: 'PostgreSQL audit + Redis replay',
    audit: 'postgres',
    replay: 'redis',
    encrypt: false,
    ...needsPgAndRedis,
  },
];

describe('no retention of received data by crdkit serve (sec-5, sec-6)', () => {
  for (const scenario of SCENARIOS) {
    const { skip, ...s } = scenario;
    const how = s.encrypt ? 'payload encryption on' : 'payload keeping off';
    const options = skip ? { skip } : {};
    if (s.encrypt) {
      test(
        `sec-6: ${s.name}, ${how}: ${REQUESTS} marked calls leave no marker in plain text in any file (database, WAL, SHM, log, TMPDIR)${s.audit === 'postgres' ? ', PostgreSQL row or Redis key' : ''}; the payloads are kept encrypted`,
        options,
        async () => {
          const r = await runScenario(s);
          checkNoMarkers(s, r);
          // Not vacuous: every call's request and response are in the trail, encrypted…
          assert.equal(r.hookRecords, r.count);
          assert.equal(r.withPayload, r.count, 'every hook record holds its encrypted payloads');
          // …and they are the calls' bodies: the key opens them and the markers are inside.
          assert.ok(r.decrypted, 'the first payload decrypts');
          assert.ok(r.decrypted.includes(prefixOf(r.run)), 'the decrypted request holds markers');
        },
      );
    } else {
      test(
        `sec-6: ${s.name}, ${how}: ${REQUESTS} marked calls leave no marker anywhere, encrypted or not: no payload column is set${s.audit === 'postgres' ? ', no marker in PostgreSQL or Redis' : ''}`,
        options,
        async () => {
          const r = await runScenario(s);
          checkNoMarkers(s, r);
          assert.equal(r.hookRecords, r.count, 'every call has its audit record');
          assert.equal(r.anyPayloadColumn, 0, 'no payload key id or ciphertext is stored');
          assert.equal(r.decrypted, undefined);
        },
      );
    }
  }
});
