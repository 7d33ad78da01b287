/**
 * `npx tsx bench/token-exchange.ts`: what one RFC 8693 exchange (sec-9) adds to a hook call as
 * the CRD server sees it. Starts oidc-provider 9 with the exchange grant on loopback HTTPS (the
 * test harness of test/ehr/exchange: tokens in a Map, audit in SQLite in memory), then times N
 * sequential `exchangeToken` calls per client authentication method after a warm-up, each with a
 * fresh subject token, on keep-alive connections. Client and server share this process (and its
 * event loop); the calls are sequential, so they do not compete with each other.
 *
 * Options: --requests N (BENCH_REQUESTS, 1000), --warmup N (BENCH_WARMUP, 100).
 * Prints a Markdown table plus machine, date and command lines; writes no file.
 */
import { cpus, release, totalmem, type as osType } from 'node:os';
import { parseArgs } from 'node:util';
import { exchangeToken, type DelegateClient } from '../src/fhir/delegate.js';
import {
  AUDIENCES,
  JWT_CLIENT,
  SECRETS,
  startExchangeServer,
  type ExchangeServer,
} from '../test/ehr/exchange/harness.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: process.env.BENCH_REQUESTS ?? '1000' },
    warmup: { type: 'string', default: process.env.BENCH_WARMUP ?? '100' },
  },
});
const N = Number(values.requests);
const WARMUP = Number(values.warmup);
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(WARMUP) || WARMUP < 0) {
  throw new Error('--requests must be a positive integer and --warmup a non-negative one');
}

const AUDIENCE = AUDIENCES[0]!.audience;

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

async function run(srv: ExchangeServer, client: DelegateClient, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const { token } = srv.mint({ clientId: client.clientId });
    const t0 = process.hrtime.bigint();
    await exchangeToken({
      tokenEndpoint: srv.tokenEndpoint,
      subjectToken: token,
      audience: AUDIENCE,
      scope: 'patient/Coverage.rs',
      client,
      ca: srv.ca,
    });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times;
}

const srv = await startExchangeServer();
try {
  const methods: Array<[string, DelegateClient]> = [
    ['private_key_jwt (ES384)', { clientId: JWT_CLIENT, privateJwk: srv.jwtClientKey }],
    ['client_secret_basic', { clientId: 'crd-payer-a', clientSecret: SECRETS['crd-payer-a'] }],
  ];
  const rows: string[] = [];
  for (const [name, client] of methods) {
    await run(srv, client, WARMUP);
    const started = Date.now();
    const times = (await run(srv, client, N)).sort((a, b) => a - b);
    const seconds = (Date.now() - started) / 1000;
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const f = (ms: number): string => ms.toFixed(2);
    rows.push(
      `| ${name} | ${N} | ${f(percentile(times, 50))} | ${f(percentile(times, 99))} | ${f(mean)} | ${f(times.at(-1)!)} | ${(N / seconds).toFixed(0)} |`,
    );
  }
  const audit = await srv.audit.verify();
  const cpu = cpus();
  console.log(
    '| client authentication | exchanges | p50 ms | p99 ms | mean ms | max ms | exchanges/s |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
  console.log('');
  console.log(
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${osType()} ${release()}, Node ${process.version}`,
  );
  console.log(`Date: ${new Date().toISOString()}`);
  console.log(`Command: npx tsx bench/token-exchange.ts --requests ${N} --warmup ${WARMUP}`);
  console.log(
    `Setup: oidc-provider 9 on https://127.0.0.1 (TLS 1.3), same process; TLS handshakes: ${srv.handshakes()} for ${2 * (N + WARMUP)} exchanges; audit records written: ${audit.ok ? audit.records : 'CHAIN BROKEN'}`,
  );
} finally {
  await srv.close();
}
