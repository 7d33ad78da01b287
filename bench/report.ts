/** The machine description and the console and Markdown reports of the benchmark. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import type { LoadResult } from './load.js';

export interface Machine {
  date: string;
  cpus: number;
  cpuModel: string;
  memory: string;
  node: string;
  os: string;
}

/** One server's figures. */
export interface ServerRun {
  name: 'crdkit' | 'floor';
  load: LoadResult;
  /** Peak RSS of the server child over its whole life (start-up, warm-up, run), bytes. */
  peakRss: number;
  /** RSS of the server child right after start-up, before any request, bytes. */
  rssIdle: number;
  /** Largest V8 heap used in the child, bytes. */
  heapUsedMax: number;
  /** Server CPU time (all threads) per measured request, milliseconds. */
  cpuMsPerRequest: number;
  /** Busy time of the server's JavaScript thread (event loop) per measured request, milliseconds. */
  loopMsPerRequest: number;
  /** Share of the measured run the server's event loop was busy (0..1). */
  loopBusy: number;
  /** Server CPU use during the measured run, in cores (1.0 = one core busy). */
  serverCores: number;
  /** Load generator (the benchmark process) CPU use during the measured run, in cores. */
  clientCores: number;
  /** CPU used by all other processes of the machine during the measured run, in cores. */
  otherCores?: number;
  /** Lines the server wrote to its log over its whole life. */
  logLines: number;
}

export interface BenchRun {
  machine: Machine;
  connections: number;
  requests: number;
  warmup: number;
  logLevel: string;
  crdkit?: ServerRun;
  floor?: ServerRun;
  /** crdkit req/s ÷ floor req/s, when both ran. */
  ratio?: number;
  /** floor CPU per request ÷ crdkit CPU per request: the same comparison in CPU time. */
  cpuRatio?: number;
  /** Why the run does not count (errors, non-200 answers, deadline); empty when valid. */
  problems: string[];
}

/** Above this much CPU used by other processes during a measured run, the run is "disturbed". */
export const DISTURBED_CORES = 0.2;

function run(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5_000 }).trim();
  } catch {
    return undefined;
  }
}

export function describeMachine(): Machine {
  let cpuModel = 'unknown CPU';
  try {
    cpuModel =
      /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
      cpuModel;
  } catch {
    // not Linux: keep the placeholder
  }
  return {
    date: run('date', []) ?? new Date().toString(),
    cpus: Number(run('nproc', [])) || availableParallelism(),
    cpuModel,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    os: run('uname', ['-sr']) ?? process.platform,
  };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const ms = (v: number) => `${v.toFixed(2)} ms`;
const int = (v: number) => Math.round(v).toLocaleString('en-US');
const cores = (v: number | undefined) => (v === undefined ? '?' : v.toFixed(2));
const pct = (v: number) => `${(v * 100).toFixed(0)} %`;
const servers = (r: BenchRun) => [r.crdkit, r.floor].filter((s): s is ServerRun => s !== undefined);
const disturbed = (r: BenchRun) => servers(r).some((s) => (s.otherCores ?? 0) > DISTURBED_CORES);
const verdict = (ratio: number) => (ratio >= 0.6 ? 'met' : 'NOT met');

/** The console summary. */
export function summary(r: BenchRun): string {
  const m = r.machine;
  const lines = [
    '',
    `order-sign benchmark: ${int(r.requests)} requests after ${int(r.warmup)} warm-up, ` +
      `${r.connections} connections, crdkit log level ${r.logLevel}`,
    `${m.date}; ${m.cpus} × ${m.cpuModel}, ${m.memory}, Node ${m.node}`,
    '',
    'server      req/s        p50        p99   peak RSS    CPU/req  JS thread/req  loop busy  non-200',
  ];
  for (const s of servers(r)) {
    lines.push(
      [
        s.name.padEnd(7),
        int(s.load.rps).padStart(9),
        ms(s.load.p50).padStart(10),
        ms(s.load.p99).padStart(10),
        mib(s.peakRss).padStart(10),
        ms(s.cpuMsPerRequest).padStart(10),
        ms(s.loopMsPerRequest).padStart(14),
        pct(s.loopBusy).padStart(10),
        String(s.load.non200 + s.load.errors).padStart(8),
      ].join(' '),
    );
  }
  if (r.ratio !== undefined && r.cpuRatio !== undefined) {
    lines.push(
      '',
      `crdkit / floor throughput: ${r.ratio.toFixed(2)} (target ≥ 0.60: ${verdict(r.ratio)}); ` +
        `in CPU time per request: ${r.cpuRatio.toFixed(2)}`,
    );
  }
  lines.push(
    `load generator CPU during the runs: ${servers(r)
      .map((s) => `${s.name} ${cores(s.clientCores)}`)
      .join(', ')} cores`,
  );
  lines.push(
    `CPU of other processes during the runs: ${servers(r)
      .map((s) => `${s.name} ${cores(s.otherCores)}`)
      .join(', ')} ` + `cores${disturbed(r) ? ' (disturbed: compare with care)' : ''}`,
  );
  if (r.problems.length) lines.push('', 'INVALID RUN:', ...r.problems.map((p) => `  - ${p}`));
  return `${lines.join('\n')}\n`;
}

const RESULTS_MARKER = '<!-- bench:results (written by `npm run bench`, oldest first) -->';

const INTRO = `# Benchmarks

How fast does crdkit answer an \`order-sign\` hook call, and how close is that to the least any
HTTPS + JWT server could do on the same machine? \`npm run bench\` measures it and adds its
figures to the end of this page. The text above "Results" is rewritten by each run.

## What is measured

Two servers get exactly the same load:

- **crdkit**: the real server, assembled as \`crdkit serve\` does it (configuration file, rules
  \`rules/sample-rules.yaml\`, SQLite replay store and audit trail in a temporary folder, on
  crdkit's SQLite thread, Fastify over HTTPS), with a self-signed certificate and a client key
  pair generated for the run, and the thread pool \`crdkit\` gives itself: one thread per core,
  at least 2 (\`bin/thread-pool.cjs\`; an explicit \`UV_THREADPOOL_SIZE\` wins).
- **floor**: a minimal Node \`https\` server with the same TLS settings (\`serverTlsOptions\`) that
  only reads the body, \`JSON.parse\`s it, verifies the JWT signature against the same ES384
  public key with the same check crdkit uses (\`verifyJwsSignature\`, Node's crypto on the thread
  pool) and answers \`{"cards":[]}\`. It checks no claims, keeps no replay store and
  evaluates no rules: it is the cost of TLS + HTTP + JSON + one ES384 signature check. It keeps
  Node's default pool of 4 threads, which measured faster for it than one per core on the 2-core
  development machine (about 2,330 against 2,210 req/s); crdkit, with its event loop and SQLite
  thread to feed as well, was faster with one per core (about 1,460 against 1,340).

Each server runs in its own child process on 127.0.0.1, so its memory is measured on its own.
The load is \`POST /cds-services/order-sign-crd\` with a realistic CRD body: two draft orders (a
DeviceRequest for HCPCS E0431, home oxygen, and a ServiceRequest for CPT 15823, blepharoplasty),
with the patient and coverage prefetched, so crdkit makes no FHIR queries; it answers with
three cards and two coverage-information system actions (about 5 KB). Every request carries its
own bearer JWT (ES384, unique \`jti\`, signed before the run with \`signCdsJwt\`): crdkit refuses
a reused \`jti\`, as in production. autocannon drives a fixed number of requests at a fixed
concurrency over TLS with keep-alive, after a warm-up with its own tokens. Both servers stay up
and the measured requests alternate between them in rounds (crdkit, floor, floor, crdkit, …), so
a burst of other work on the machine hits both alike. A run counts only if every response is a
200.

Main table, per server:

| column | meaning |
| --- | --- |
| req/s | 200 responses per second over the measured run (from its start to the last response) |
| p50, p99 | latency of one request as seen by the load generator |
| peak RSS | the server process's peak resident memory (\`VmHWM\`), start-up and warm-up included |
| ratio | crdkit req/s ÷ floor req/s; the target is **≥ 0.6** |
| ratio in CPU time | floor CPU/req ÷ crdkit CPU/req: about the best req/s ratio possible once the CPU is the limit |

Diagnostics table (to see *why*):

| column | meaning |
| --- | --- |
| CPU/req | the server's CPU time per request, all threads (signature checks run on libuv's pool, SQLite on crdkit's SQLite thread) |
| JS thread/req | busy time of the server's one JavaScript thread (event loop) per request |
| loop busy | share of the run that thread was busy; near 100 % it, not the machine, is the limit |
| server, load generator, other | cores used by the server, by autocannon, and by every other process |
| response | mean bytes per response, headers included |
| idle RSS | memory right after start-up, before the first request |

## Running it

\`\`\`sh
npm run bench                                   # defaults: 20 000 requests, 32 connections
npm run bench -- --requests 5000 --dry-run      # a quick look, this page left unchanged
npm run bench -- --only crdkit --cpu-prof       # V8 CPU profile of the crdkit process
\`\`\`

Options (flag or environment variable): \`--requests\` per server (\`BENCH_REQUESTS\`, default
20000), \`--warmup\` (\`BENCH_WARMUP\`, 2000), \`--connections\` (\`BENCH_CONNECTIONS\`, 32),
\`--rounds\` (\`BENCH_ROUNDS\`, 4), \`--max-seconds\`, the time limit of one server's measured
requests (\`BENCH_MAX_SECONDS\`, 120), \`--log-level\` of crdkit
(\`BENCH_LOG_LEVEL\`, \`warn\`), \`--signers\` (processes signing tokens, default: CPU count),
\`--only crdkit|floor\`, \`--cpu-prof\` (writes V8 CPU profiles of the server processes and prints
where; open them in Chrome DevTools or speedscope), \`--replace\` (drop earlier results from this
page), \`--dry-run\` (leave this page unchanged). The exit code is 1 when the run is invalid.

The whole run takes about 1.5 minutes on two cores. About 50 s of it is signing the 44 000
tokens (roughly two ES384 signatures' worth of CPU each: \`signCdsJwt\` imports the private key
on every call); the measured requests take about 16 s for crdkit and 7 s for the floor.

## Reading the figures

- The load generator runs on the same machine and competes with the server for the CPU.
  Compare figures from the same machine only, and compare runs, not single numbers.
- Each run records how much CPU *other* processes used during the measured runs (from
  \`/proc/stat\`). On a shared machine that explains most of the noise; a run where it is above
  ${DISTURBED_CORES} cores is marked as disturbed. CPU/req and JS thread/req move much less than req/s.
- crdkit logs at \`warn\` here, so the per-request \`info\` lines (access log, "hook answered")
  are not written; production runs at \`info\` by default. \`--log-level info\` measures that
  (the lines go to a file in the temporary folder).
- The server processes run compiled JavaScript with plain \`node\`, as in production: the
  benchmark first transpiles \`src/\` into its temporary folder. (Loaded through \`tsx\`, every
  RSS figure would grow by 20–35 MiB.)
- autocannon does not check the server certificate (it cannot be told to); the benchmark talks
  only to the servers it started on 127.0.0.1, and its pre-flight request does check it.

## Results

${RESULTS_MARKER}
`;

/** One run as a Markdown section. */
export function markdownRun(r: BenchRun): string {
  const m = r.machine;
  const list = servers(r);
  const ratio =
    r.ratio === undefined
      ? 'not measured (only one server ran)'
      : `**${r.ratio.toFixed(2)}** (target ≥ 0.60: ${verdict(r.ratio)})`;
  return [
    `### ${m.date}`,
    '',
    `- Machine: ${m.cpus} × ${m.cpuModel}, ${m.memory} RAM, ${m.os}, Node ${m.node}`,
    `- Load: ${int(r.requests)} requests after ${int(r.warmup)} warm-up requests, ` +
      `${r.connections} connections, TLS with keep-alive; crdkit log level \`${r.logLevel}\``,
    `- Throughput ratio crdkit / floor: ${ratio}` +
      (r.cpuRatio !== undefined ? `; in CPU time per request: ${r.cpuRatio.toFixed(2)}` : ''),
    `- Other work on the machine: other processes used ` +
      `${list.map((s) => `${cores(s.otherCores)} cores during the ${s.name} run`).join(', ')}` +
      (disturbed(r) ? ' (**disturbed**: compare with care)' : ''),
    ...(r.problems.length ? [`- **Invalid run**: ${r.problems.join('; ')}`] : []),
    '',
    '| server | req/s | p50 | p99 | peak RSS | non-200 + errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...list.map(
      (s) =>
        `| ${s.name} | ${int(s.load.rps)} | ${ms(s.load.p50)} | ${ms(s.load.p99)} ` +
        `| ${mib(s.peakRss)} | ${int(s.load.non200 + s.load.errors)} |`,
    ),
    '',
    '<details><summary>Diagnostics</summary>',
    '',
    '| server | CPU/req | JS thread/req | loop busy | server cores | load generator cores | other cores | response | idle RSS | max V8 heap | log lines |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...list.map(
      (s) =>
        `| ${s.name} | ${ms(s.cpuMsPerRequest)} | ${ms(s.loopMsPerRequest)} | ${pct(s.loopBusy)} ` +
        `| ${cores(s.serverCores)} | ${cores(s.clientCores)} | ${cores(s.otherCores)} ` +
        `| ${int(s.load.responseBytes)} B | ${mib(s.rssIdle)} | ${mib(s.heapUsedMax)} | ${int(s.logLines)} |`,
    ),
    '',
    '</details>',
    '',
  ].join('\n');
}

/** Writes the page: the current intro, then the earlier runs (unless `replace`), then this run. */
export function writeDoc(path: string, r: BenchRun, replace: boolean): void {
  let earlier = '';
  if (!replace && existsSync(path)) {
    const text = readFileSync(path, 'utf8');
    const at = text.indexOf(RESULTS_MARKER);
    if (at >= 0) earlier = text.slice(at + RESULTS_MARKER.length).trim();
  }
  writeFileSync(path, `${INTRO}\n${earlier ? `${earlier}\n\n` : ''}${markdownRun(r)}`);
}
