/**
 * The parent ↔ server-child protocol of the benchmark (Node IPC over `fork`). A server child
 * says `ready` once it listens, answers `stats` with its CPU time and memory, and on `stop` closes
 * its server and exits (so `--cpu-prof` gets written). It also exits if the parent goes away.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Messages from the parent to a server child. */
export type ToChild = { type: 'stats' } | { type: 'stop' };

/** The resource figures a child reports. */
export interface ChildStats {
  /** CPU time used so far (user + system), in microseconds. */
  cpuMicros: number;
  /** Current resident set size, bytes. */
  rss: number;
  /** Largest RSS seen by the 50 ms sampler, bytes. */
  rssSampledMax: number;
  /** Peak RSS according to the kernel (`VmHWM`, else getrusage `ru_maxrss`), bytes. */
  peakRss: number;
  /** Largest V8 heap used seen by the sampler, bytes. */
  heapUsedMax: number;
  /** Event-loop time so far, milliseconds: busy (`active`) and waiting (`idle`). */
  loopActiveMs: number;
  loopIdleMs: number;
}

/** Messages from a server child to the parent. */
export type FromChild =
  | { type: 'ready'; port: number }
  | { type: 'stats'; stats: ChildStats }
  | { type: 'failed'; message: string };

/** `VmHWM` (peak RSS) of a process in bytes, from /proc; undefined where /proc is unavailable. */
export function vmHwm(pid: number | 'self'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Sends a message; resolves once it is handed to the channel (before an exit). */
function send(message: FromChild): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/**
 * Runs a server child: `start` returns the listening port and a close function. Handles the
 * protocol above; any start-up failure is reported to the parent and ends the process.
 */
export function runChild(start: () => Promise<{ port: number; close: () => Promise<void> }>): void {
  if (!process.send) {
    process.stderr.write('this file is a benchmark child: run `npm run bench` instead\n');
    process.exit(2);
  }
  let rssSampledMax = 0;
  let heapUsedMax = 0;
  const sample = () => {
    const mem = process.memoryUsage();
    rssSampledMax = Math.max(rssSampledMax, mem.rss);
    heapUsedMax = Math.max(heapUsedMax, mem.heapUsed);
  };
  sample();
  const sampler = setInterval(sample, 50);
  sampler.unref();

  const stats = (): ChildStats => {
    sample();
    const cpu = process.cpuUsage();
    const loop = performance.eventLoopUtilization();
    return {
      loopActiveMs: loop.active,
      loopIdleMs: loop.idle,
      cpuMicros: cpu.user + cpu.system,
      rss: process.memoryUsage().rss,
      rssSampledMax,
      peakRss: vmHwm('self') ?? process.resourceUsage().maxRSS * 1024,
      heapUsedMax,
    };
  };

  let close: (() => Promise<void>) | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    clearInterval(sampler);
    const timer = setTimeout(() => process.exit(code), 5_000);
    timer.unref();
    try {
      await close?.();
    } finally {
      process.exit(code);
    }
  };
  // A child never outlives the benchmark that started it.
  process.on('disconnect', () => void stop(0));
  process.on('message', (message: ToChild) => {
    if (message.type === 'stats') void send({ type: 'stats', stats: stats() });
    else if (message.type === 'stop') void stop(0);
  });

  start().then(
    (server) => {
      close = server.close;
      void send({ type: 'ready', port: server.port });
    },
    async (err: unknown) => {
      await send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
      await stop(1);
    },
  );
}
