/**
 * One bounded load run with autocannon: a fixed number of POSTs at a fixed concurrency over TLS
 * with keep-alive, each carrying the next unused pre-signed bearer token.
 */
import autocannon from 'autocannon';

export interface LoadOptions {
  /** The full URL, e.g. https://127.0.0.1:8443/cds-services/order-sign-crd (loopback only). */
  url: string;
  body: Buffer;
  /** Pre-signed tokens, used in order, one per request; at least `amount` of them. */
  tokens: readonly string[];
  /** Requests in this run. */
  amount: number;
  connections: number;
  /** Hard time limit of the run in seconds; the run is stopped (and marked so) when reached. */
  maxSeconds: number;
}

export interface LoadResult {
  amount: number;
  /** Responses received (any status). */
  completed: number;
  /** Count per HTTP status. */
  statuses: Record<string, number>;
  /** Responses with a status other than 200. */
  non200: number;
  /** Connection errors and timeouts reported by autocannon. */
  errors: number;
  timeouts: number;
  /** Requests that found the token pool empty (sent with an invalid token). */
  tokensMissing: number;
  tokensUsed: number;
  /** Wall time from the start of the run to the last response, seconds. */
  seconds: number;
  /** 200 responses per second over `seconds`. */
  rps: number;
  /** Latency in milliseconds (per response, from autocannon's hrtime measurements). */
  p50: number;
  p99: number;
  mean: number;
  max: number;
  /** Mean response size in bytes, headers included. */
  responseBytes: number;
  /** Every latency measured, ascending, milliseconds. */
  latencies: Float64Array;
  /** True when `maxSeconds` ran out before every request was answered. */
  stoppedByDeadline: boolean;
}

/** The value at quantile q (0..1) of ascending sorted values (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Several runs against one server as if they were one (times, counts and latencies pooled). */
export function combine(runs: readonly LoadResult[]): LoadResult {
  const sum = (f: (r: LoadResult) => number) => runs.reduce((a, r) => a + f(r), 0);
  const latencies = new Float64Array(sum((r) => r.latencies.length));
  let at = 0;
  for (const r of runs) {
    latencies.set(r.latencies, at);
    at += r.latencies.length;
  }
  latencies.sort();
  const statuses: Record<string, number> = {};
  for (const r of runs)
    for (const [code, n] of Object.entries(r.statuses)) statuses[code] = (statuses[code] ?? 0) + n;
  const completed = sum((r) => r.completed);
  const seconds = sum((r) => r.seconds);
  return {
    amount: sum((r) => r.amount),
    completed,
    statuses,
    non200: sum((r) => r.non200),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    tokensMissing: sum((r) => r.tokensMissing),
    tokensUsed: sum((r) => r.tokensUsed),
    seconds,
    rps: (statuses['200'] ?? 0) / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    mean: latencies.reduce((a, b) => a + b, 0) / (latencies.length || 1),
    max: latencies.length ? latencies[latencies.length - 1]! : Number.NaN,
    responseBytes: completed ? sum((r) => r.responseBytes * r.completed) / completed : 0,
    latencies,
    stoppedByDeadline: runs.some((r) => r.stoppedByDeadline),
  };
}

export function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const url = new URL(opts.url);
  if (url.hostname !== '127.0.0.1')
    throw new Error(`load goes to 127.0.0.1 only, not ${url.hostname}`);
  if (opts.tokens.length < opts.amount) throw new Error('fewer tokens than requests');
  if (opts.connections > opts.amount) throw new Error('more connections than requests');

  let next = 0;
  let missing = 0;
  const latencies = new Float64Array(opts.amount + opts.connections * 4);
  let completed = 0;
  let bytes = 0;
  const statuses: Record<string, number> = {};
  let lastResponseAt = 0;
  let stoppedByDeadline = false;

  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        pipelining: 1,
        amount: opts.amount,
        timeout: 10,
        bailout: 50,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: opts.body,
        requests: [
          {
            setupRequest(req) {
              const token = opts.tokens[next];
              next += 1;
              // An exhausted pool sends an unusable token: the 401 makes the run invalid, visibly.
              if (token === undefined) missing += 1;
              req.headers = { ...req.headers, authorization: `Bearer ${token ?? 'exhausted'}` };
              return req;
            },
          },
        ],
      },
      (err, result) => {
        clearTimeout(deadline);
        if (err) return reject(err);
        const seen = latencies.subarray(0, Math.min(completed, latencies.length)).sort();
        const seconds = ((lastResponseAt || performance.now()) - startedAt) / 1000;
        const ok = statuses['200'] ?? 0;
        resolve({
          amount: opts.amount,
          completed,
          statuses,
          non200: completed - ok,
          errors: result.errors,
          timeouts: result.timeouts,
          tokensMissing: missing,
          tokensUsed: Math.min(next, opts.tokens.length),
          seconds,
          rps: ok / seconds,
          p50: quantile(seen, 0.5),
          p99: quantile(seen, 0.99),
          mean: seen.reduce((a, b) => a + b, 0) / (seen.length || 1),
          max: seen.length ? seen[seen.length - 1]! : Number.NaN,
          responseBytes: completed ? bytes / completed : 0,
          latencies: seen,
          stoppedByDeadline,
        });
      },
    );
    instance.on('response', (_client: unknown, status: number, resBytes: number, ms: number) => {
      if (completed < latencies.length) latencies[completed] = ms;
      completed += 1;
      bytes += resBytes;
      statuses[status] = (statuses[status] ?? 0) + 1;
      lastResponseAt = performance.now();
    });
    const deadline = setTimeout(() => {
      stoppedByDeadline = true;
      instance.stop();
    }, opts.maxSeconds * 1000);
  });
}
