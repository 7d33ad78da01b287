/**
 * `npm run bench`: order-sign throughput of crdkit against a minimal "floor" HTTPS + JWT server,
 * both in child processes on 127.0.0.1, same load, same token scheme. Writes docs/benchmarks.md.
 *
 * Options (flag, or environment variable): --requests (BENCH_REQUESTS, 20000, per server),
 * --warmup (BENCH_WARMUP, 2000), --connections (BENCH_CONNECTIONS, 32), --rounds (BENCH_ROUNDS,
 * 4: the measured requests alternate between the servers in this many rounds), --max-seconds
 * (BENCH_MAX_SECONDS, 120: time limit of each server's measured requests, all rounds together),
 * --log-level (BENCH_LOG_LEVEL, warn), --signers (BENCH_SIGNERS, CPU count),
 * --only crdkit|floor, --cpu-prof, --replace, --dry-run. Details: docs/benchmarks.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:https';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateClientKeyPair } from '../src/auth/sign.js';
import { PACKAGE_ROOT } from '../src/config/demo.js';
import type { ConfigFile } from '../src/config/schema.js';
import { selfSignedCertificate } from '../src/tls/certs.js';
import { CPT, deviceRequest, orderRequest, serviceRequest } from '../test/helpers/requests.js';
import { vmHwm, type ChildStats, type FromChild, type ToChild } from './child.js';
import { compileForBench } from './compile.js';
import { combine, runLoad, type LoadResult } from './load.js';
import { describeMachine, summary, writeDoc, type BenchRun, type ServerRun } from './report.js';
import { signTokens } from './tokens.js';

const ISS = 'https://ehr.bench/cds-client';
const SERVICE = '/cds-services/order-sign-crd';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/** The server and signing children, transpiled to JavaScript at start (see compile.ts). */
const CHILD_FILES = ['child.ts', 'crdkit-server.ts', 'floor-server.ts', 'sign-child.ts'];

/** `env` with the thread pool `crdkit` gives itself (bin/thread-pool.cjs; a set size wins). */
function withCrdkitThreadPool(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const pool = createRequire(import.meta.url)('../bin/thread-pool.cjs') as {
    sizeThreadPool(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  };
  return pool.sizeThreadPool({ ...env });
}

// ---------------------------------------------------------------------------------------------
// Options

const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    'max-seconds': { type: 'string' },
    rounds: { type: 'string' },
    'log-level': { type: 'string' },
    signers: { type: 'string' },
    only: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    replace: { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(
    'usage: npm run bench -- [--requests N] [--warmup N] [--connections N] [--rounds N] [--max-seconds S]\n' +
      '       [--log-level warn] [--signers N] [--only crdkit|floor] [--cpu-prof] [--replace] [--dry-run]\n' +
      'See docs/benchmarks.md.\n',
  );
  process.exit(0);
}

function intOption(
  flag: string | undefined,
  env: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = flag ?? process.env[env];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(
      `${env.toLowerCase().replace('bench_', '--').replace(/_/g, '-')} must be an integer in ${min}..${max}, not ${raw}`,
    );
  }
  return value;
}

const opts = {
  requests: intOption(flags.requests, 'BENCH_REQUESTS', 20_000, 100, 200_000),
  warmup: intOption(flags.warmup, 'BENCH_WARMUP', 2_000, 0, 50_000),
  connections: intOption(flags.connections, 'BENCH_CONNECTIONS', 32, 1, 1_000),
  maxSeconds: intOption(flags['max-seconds'], 'BENCH_MAX_SECONDS', 120, 5, 240),
  rounds: intOption(flags.rounds, 'BENCH_ROUNDS', 4, 1, 20),
  signers: intOption(flags.signers, 'BENCH_SIGNERS', availableParallelism(), 1, 64),
  logLevel: flags['log-level'] ?? process.env.BENCH_LOG_LEVEL ?? 'warn',
  only: flags.only ?? process.env.BENCH_ONLY,
  cpuProf: flags['cpu-prof'],
  replace: flags.replace,
  dryRun: flags['dry-run'],
};
if (!LOG_LEVELS.includes(opts.logLevel))
  throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
if (opts.only !== undefined && opts.only !== 'crdkit' && opts.only !== 'floor') {
  throw new Error('--only must be crdkit or floor');
}
if (
  opts.connections > Math.floor(opts.requests / opts.rounds) ||
  (opts.warmup > 0 && opts.connections > opts.warmup)
) {
  throw new Error(
    '--connections must not exceed --warmup or the requests of one round (--requests / --rounds)',
  );
}

const say = (line = '') => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------
// Children

/** A free loopback port (bound once and released), as in test/helpers/server.ts. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

interface ServerChild {
  child: ChildProcess;
  port: number;
  stats(): Promise<ChildStats>;
  stop(): Promise<void>;
}

/** Forks a compiled server child (plain `node`, as in production) and waits until it listens. */
function startChild(
  file: string,
  args: string[],
  logPath: string,
  profDir: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ServerChild> {
  const logFd = openSync(logPath, 'a');
  const child = fork(file, args, {
    execArgv: profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    stdio: ['ignore', logFd, 'inherit', 'ipc'],
    env,
  });
  closeSync(logFd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const sendTo = (m: ToChild) => child.send(m);
  const handle = (port: number): ServerChild => ({
    child,
    port,
    stats: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('a server child did not answer "stats"')),
          10_000,
        );
        const onMessage = (m: FromChild) => {
          if (m.type !== 'stats') return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve(m.stats);
        };
        child.on('message', onMessage);
        sendTo({ type: 'stats' });
      }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) sendTo({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not start within 60 s`));
    }, 60_000);
    child.on('message', (m: FromChild) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve(handle(m.port));
      } else if (m.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${file} failed to start: ${m.message}`));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited during start-up (${signal ?? `code ${code}`})`));
    });
  });
}

/** One request with the certificate checked: proves the server answers 200 before loading it. */
function preflight(
  port: number,
  ca: string,
  body: Buffer,
  token: string,
): Promise<{ status: number; json: any; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: SERVICE,
        method: 'POST',
        ca,
        servername: 'localhost',
        agent: false,
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
          'content-length': body.length,
        },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, bytes: text.length });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('pre-flight request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// One server: start, sign, check, warm up, measure, stop

interface Setup {
  dir: string;
  cert: string;
  certPath: string;
  keyPath: string;
  jwkPath: string;
  privateJwk: import('jose').JWK;
  publicJwk: import('jose').JWK;
  body: Buffer;
  /** The folder holding the compiled children (bench/*.js). */
  build: string;
  profDir?: string;
}

async function startCrdkit(s: Setup, logPath: string): Promise<ServerChild> {
  const port = await freePort();
  const baseUrl = `https://localhost:${port}`;
  const config: ConfigFile = {
    baseUrl,
    listen: { host: '127.0.0.1', port },
    tls: { cert: s.certPath, key: s.keyPath },
    clients: [
      { iss: ISS, name: 'benchmark EHR', jwks: { keys: [s.publicJwk as { kty: string }] } },
    ],
    rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
    dataDir: join(s.dir, 'crdkit-data'),
    // One issuer sends every request here: its rate limit is lifted, not measured.
    limits: { requestsPerMinute: 1_000_000 },
    log: { level: opts.logLevel as 'warn' },
  };
  const configPath = join(s.dir, 'crdkit.config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  // The thread pool `crdkit` sizes for itself (bin/thread-pool.cjs); the floor keeps Node's
  // default of 4, which measured faster for it than one thread per core.
  const env = withCrdkitThreadPool(process.env);
  const file = join(s.build, 'bench', 'crdkit-server.js');
  return startChild(file, [configPath], logPath, s.profDir, env);
}

function startFloor(s: Setup, logPath: string): Promise<ServerChild> {
  return startChild(
    join(s.build, 'bench', 'floor-server.js'),
    [s.certPath, s.keyPath, s.jwkPath],
    logPath,
    s.profDir,
  );
}

function countLines(path: string): number {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

/** Busy and total CPU time of the whole machine so far (/proc/stat, in clock ticks). */
function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

function checkLoad(name: string, phase: string, r: LoadResult, problems: string[]): void {
  const other = Object.entries(r.statuses).filter(([code]) => code !== '200');
  if (other.length)
    problems.push(
      `${name} ${phase}: non-200 answers ${other.map(([c, n]) => `${c}×${n}`).join(', ')}`,
    );
  if (r.errors)
    problems.push(`${name} ${phase}: ${r.errors} connection errors (${r.timeouts} timeouts)`);
  if (r.tokensMissing)
    problems.push(`${name} ${phase}: the token pool ran out (${r.tokensMissing} requests)`);
  if (r.stoppedByDeadline) problems.push(`${name} ${phase}: stopped by the time limit`);
  if (r.completed < r.amount)
    problems.push(`${name} ${phase}: ${r.completed} of ${r.amount} answered`);
}

/** One server under test, with its token pool and what its measured rounds added up to. */
interface Target {
  name: 'crdkit' | 'floor';
  server: ServerChild;
  logPath: string;
  url: string;
  tokens: string[];
  /** The next unused token. */
  cursor: number;
  body: Buffer;
  /** When its first token was signed (performance.now()): tokens live 300 s. */
  signedFrom: number;
  idle: ChildStats;
  rounds: LoadResult[];
  serverMicros: number;
  loopActiveMs: number;
  loopIdleMs: number;
  clientMicros: number;
  machineBusy: number;
  machineTotal: number;
}

/** Starts a server, signs its tokens and checks it answers 200 to one request. */
async function prepare(name: Target['name'], s: Setup): Promise<Target> {
  say(`[${name}] starting the server process…`);
  const logPath = join(s.dir, `${name}.log`);
  const server = name === 'crdkit' ? await startCrdkit(s, logPath) : await startFloor(s, logPath);
  try {
    const idle = await server.stats();
    // The aud crdkit checks; the floor checks no claims, its tokens are made the same way.
    const aud = `https://localhost:${server.port}${SERVICE}`;
    const count = 1 + opts.warmup + opts.requests + opts.connections * 4;
    say(
      `[${name}] signing ${count.toLocaleString('en-US')} ES384 tokens with ${opts.signers} processes…`,
    );
    const signedFrom = performance.now();
    const tokens = await signTokens({
      privateJwk: s.privateJwk,
      iss: ISS,
      aud,
      count,
      processes: opts.signers,
      script: join(s.build, 'bench', 'sign-child.js'),
    });
    say(`[${name}] signed in ${((performance.now() - signedFrom) / 1000).toFixed(1)} s`);
    const first = await preflight(server.port, s.cert, s.body, tokens[0]!);
    if (first.status !== 200) {
      throw new Error(
        `${name}: the pre-flight request got ${first.status}: ${JSON.stringify(first.json)}`,
      );
    }
    if (name === 'crdkit') {
      const cards = Array.isArray(first.json?.cards) ? first.json.cards.length : 0;
      const actions = Array.isArray(first.json?.systemActions)
        ? first.json.systemActions.length
        : 0;
      if (cards === 0) throw new Error('crdkit: the pre-flight answer has no cards');
      say(
        `[crdkit] pre-flight: 200, ${cards} cards, ${actions} system actions, ${first.bytes} bytes`,
      );
    }
    return {
      name,
      server,
      logPath,
      url: `https://127.0.0.1:${server.port}${SERVICE}`,
      body: s.body,
      tokens,
      cursor: 1,
      signedFrom,
      idle,
      rounds: [],
      serverMicros: 0,
      loopActiveMs: 0,
      loopIdleMs: 0,
      clientMicros: 0,
      machineBusy: 0,
      machineTotal: 0,
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** One bounded autocannon run against `t`, taking its tokens from the pool. */
async function load(t: Target, amount: number, maxSeconds: number): Promise<LoadResult> {
  const r = await runLoad({
    url: t.url,
    body: t.body,
    tokens: t.tokens.slice(t.cursor),
    amount,
    connections: opts.connections,
    maxSeconds,
  });
  t.cursor += r.tokensUsed;
  return r;
}

/** A measured round: the load plus the server's, this process's and the machine's CPU meanwhile. */
async function measure(t: Target, amount: number, maxSeconds: number): Promise<void> {
  const before = await t.server.stats();
  const client = process.cpuUsage();
  const machine = machineCpu();
  const r = await load(t, amount, maxSeconds);
  const clientCpu = process.cpuUsage(client);
  const machineAfter = machineCpu();
  const after = await t.server.stats();
  t.rounds.push(r);
  t.serverMicros += after.cpuMicros - before.cpuMicros;
  t.loopActiveMs += after.loopActiveMs - before.loopActiveMs;
  t.loopIdleMs += after.loopIdleMs - before.loopIdleMs;
  t.clientMicros += clientCpu.user + clientCpu.system;
  if (machine && machineAfter) {
    t.machineBusy += machineAfter.busy - machine.busy;
    t.machineTotal += machineAfter.total - machine.total;
  }
}

/** Stops the server and sums up its rounds. */
async function finish(t: Target, problems: string[]): Promise<ServerRun> {
  const after = await t.server.stats();
  const peakRss = vmHwm(t.server.child.pid!) ?? after.peakRss;
  await t.server.stop();
  const total = combine(t.rounds);
  checkLoad(t.name, 'measured run', total, problems);
  // The first tokens were signed at signedFrom; crdkit accepts them for 300 s (+ clock skew).
  if ((performance.now() - t.signedFrom) / 1000 > 300) {
    problems.push(`${t.name}: some tokens were older than their 300 s lifetime`);
  }
  const wall = total.seconds;
  const serverCores = t.serverMicros / 1e6 / wall;
  const clientCores = t.clientMicros / 1e6 / wall;
  const answered = Math.max(1, total.completed);
  return {
    name: t.name,
    load: total,
    peakRss,
    rssIdle: t.idle.rss,
    heapUsedMax: after.heapUsedMax,
    cpuMsPerRequest: t.serverMicros / 1000 / answered,
    loopMsPerRequest: t.loopActiveMs / answered,
    loopBusy: t.loopActiveMs / Math.max(1, t.loopActiveMs + t.loopIdleMs),
    serverCores,
    clientCores,
    // Everything else the machine did meanwhile (other users' processes): the noise indicator.
    ...(t.machineTotal > 0
      ? {
          otherCores: Math.max(
            0,
            (t.machineBusy / t.machineTotal) * availableParallelism() - serverCores - clientCores,
          ),
        }
      : {}),
    logLines: countLines(t.logPath),
  };
}

/**
 * Both servers stay up; the measured requests are split into rounds that alternate between them
 * (crdkit, floor, floor, crdkit, …), so a burst of other work on the machine hits both alike.
 */
async function benchmark(
  s: Setup,
  problems: string[],
): Promise<{ crdkit?: ServerRun; floor?: ServerRun }> {
  const names = (['crdkit', 'floor'] as const).filter(
    (n) => opts.only === undefined || opts.only === n,
  );
  const targets: Target[] = [];
  try {
    for (const name of names) {
      say('');
      targets.push(await prepare(name, s));
    }
    say('');
    for (const t of targets) {
      if (!opts.warmup) break;
      say(`[${t.name}] warm-up: ${opts.warmup.toLocaleString('en-US')} requests…`);
      checkLoad(t.name, 'warm-up', await load(t, opts.warmup, opts.maxSeconds), problems);
    }
    const perRound = Math.floor(opts.requests / opts.rounds);
    const maxSeconds = Math.max(5, Math.ceil(opts.maxSeconds / opts.rounds));
    for (let round = 0; round < opts.rounds; round++) {
      const amount =
        round === opts.rounds - 1 ? opts.requests - perRound * (opts.rounds - 1) : perRound;
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        say(
          `[${t.name}] measured round ${round + 1}/${opts.rounds}: ${amount.toLocaleString('en-US')} requests, ` +
            `${opts.connections} connections…`,
        );
        await measure(t, amount, maxSeconds);
      }
    }
    const out: { crdkit?: ServerRun; floor?: ServerRun } = {};
    for (const t of targets) out[t.name] = await finish(t, problems);
    return out;
  } finally {
    for (const t of targets) await t.server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const machine = describeMachine();
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-bench-'));
  let keep = false;
  try {
    const pem = await selfSignedCertificate('localhost');
    const certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    writeFileSync(certPath, pem.cert);
    writeFileSync(keyPath, pem.key, { mode: 0o600 });
    const pair = await generateClientKeyPair('ES384');
    const jwkPath = join(dir, 'client-public.jwk.json');
    writeFileSync(jwkPath, JSON.stringify(pair.publicJwk));
    const body = Buffer.from(
      JSON.stringify(
        orderRequest({
          orders: [deviceRequest('dr-1', 'E0431'), serviceRequest('sr-1', CPT, '15823')],
        }),
      ),
    );
    const profDir = opts.cpuProf ? join(dir, 'profiles') : undefined;
    say('transpiling the server code to JavaScript…');
    const build = compileForBench(PACKAGE_ROOT, join(dir, 'build'), CHILD_FILES);
    const setup: Setup = {
      dir,
      build,
      cert: pem.cert,
      certPath,
      keyPath,
      jwkPath,
      body,
      privateJwk: pair.privateJwk,
      publicJwk: pair.publicJwk,
      ...(profDir ? { profDir } : {}),
    };
    say(`crdkit order-sign benchmark (request body ${body.length} bytes, work folder ${dir})`);

    const problems: string[] = [];
    const run: BenchRun = {
      machine,
      connections: opts.connections,
      requests: opts.requests,
      warmup: opts.warmup,
      logLevel: opts.logLevel,
      problems,
    };
    Object.assign(run, await benchmark(setup, problems));
    if (run.crdkit && run.floor) {
      run.ratio = run.crdkit.load.rps / run.floor.load.rps;
      run.cpuRatio = run.floor.cpuMsPerRequest / run.crdkit.cpuMsPerRequest;
    }

    process.stdout.write(summary(run));
    if (profDir) {
      keep = true;
      say(`\nCPU profiles (open in Chrome DevTools or speedscope): ${profDir}`);
    }
    if (opts.dryRun) {
      say('--dry-run: docs/benchmarks.md left unchanged');
    } else {
      writeDoc(join(PACKAGE_ROOT, 'docs', 'benchmarks.md'), run, opts.replace);
      say('results written to docs/benchmarks.md');
    }
    if (problems.length) process.exitCode = 1;
  } finally {
    if (!keep) {
      // The build's node_modules is a symlink to the project's: remove the link itself first.
      const link = join(dir, 'build', 'node_modules');
      if (existsSync(link) && lstatSync(link).isSymbolicLink()) unlinkSync(link);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

main().catch((err: unknown) => {
  say(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
