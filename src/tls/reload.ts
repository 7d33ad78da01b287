/**
 * Certificate and key reload without dropping connections: on SIGHUP or when a file changes,
 * the PEM files are read and checked again, and only a good set replaces the server's secure
 * context (`tls.Server#setSecureContext`). Open connections keep the context they were
 * established with; new handshakes use the new one.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Server } from 'node:tls';
import { ConfigError } from '../config/load.js';
import { loadServerTls } from './check.js';
import type { ServerTlsFiles } from './options.js';

/** What reload logs (a pino logger fits). */
export interface ReloadLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WatchOptions {
  /** The signal that forces a reload; `false` for none. Default `SIGHUP`. */
  signal?: NodeJS.Signals | false;
  /** Quiet time after the last file event before reloading (ms). Default 500. */
  debounceMs?: number;
  /** Watch the files' folders. Default true. */
  watchFiles?: boolean;
}

/** Why a reload happened. */
export type ReloadReason = 'signal' | 'file change' | 'request';

/** Digest of the loaded PEM bytes: a file event that changed nothing is not a reload. */
function digest(options: { cert: Buffer; key: Buffer; ca?: Buffer }): string {
  const h = createHash('sha256');
  for (const part of [options.cert, options.key, options.ca ?? Buffer.alloc(0)]) {
    h.update(String(part.length)).update(':').update(part);
  }
  return h.digest('hex');
}

/**
 * Re-reads and checks the files, then installs them on `server`. Returns true when the new
 * context is in use; on a bad file it logs an error naming the key (`tls.cert`, `tls.key`,
 * `tls.ca`) and the previous context stays.
 */
export function reloadServerTls(
  server: Pick<Server, 'setSecureContext'>,
  files: ServerTlsFiles,
  log: ReloadLog,
  reason: ReloadReason = 'request',
): boolean {
  return reloadIfChanged(server, files, log, reason, undefined) !== undefined;
}

/** Reloads unless the bytes equal `previous`; returns the digest installed, else undefined. */
function reloadIfChanged(
  server: Pick<Server, 'setSecureContext'>,
  files: ServerTlsFiles,
  log: ReloadLog,
  reason: ReloadReason,
  previous: string | undefined,
): string | undefined {
  let options;
  try {
    options = loadServerTls(files);
  } catch (err) {
    const setting = err instanceof ConfigError ? err.key : undefined;
    const message = err instanceof ConfigError ? err.message : 'unexpected error';
    log.error(
      { setting, reason },
      `TLS reload refused: ${message}; the previous certificate stays in use`,
    );
    return undefined;
  }
  const now = digest(options as { cert: Buffer; key: Buffer; ca?: Buffer });
  if (previous !== undefined && now === previous) return previous;
  try {
    server.setSecureContext(options);
  } catch (err) {
    log.error(
      { reason, code: (err as NodeJS.ErrnoException).code },
      'TLS reload refused: the new context could not be built; the previous certificate stays in use',
    );
    return undefined;
  }
  log.info({ reason }, 'TLS certificate and key reloaded (open connections kept)');
  return now;
}

/**
 * Reloads the server's certificate and key on `SIGHUP` and when the files change (their folders
 * are watched, so atomic replacement by rename and symlink swaps are seen; events are debounced
 * and a reload happens only when the bytes differ). Returns a function that stops watching;
 * closing the server stops it too.
 */
export function watchServerTls(
  server: Pick<Server, 'setSecureContext' | 'once' | 'off'>,
  files: ServerTlsFiles,
  log: ReloadLog,
  opts: WatchOptions = {},
): () => void {
  const signal = opts.signal ?? 'SIGHUP';
  const debounceMs = opts.debounceMs ?? 500;
  // The bytes in use now: the server was built from these files a moment ago.
  let current: string | undefined;
  try {
    current = digest(loadServerTls(files) as { cert: Buffer; key: Buffer; ca?: Buffer });
  } catch {
    current = undefined;
  }
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const run = (reason: ReloadReason, force: boolean) => {
    if (stopped) return;
    const next = reloadIfChanged(server, files, log, reason, force ? undefined : current);
    if (next !== undefined) current = next;
  };
  const onSignal = () => run('signal', true);
  const onChange = () => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      run('file change', false);
    }, debounceMs);
    timer.unref();
  };

  const watchers: FSWatcher[] = [];
  if (opts.watchFiles !== false) {
    const paths = [files.cert, files.key, ...(files.ca ? [files.ca] : [])];
    const folders = new Map<string, Set<string>>();
    for (const p of paths) {
      const set = folders.get(dirname(p)) ?? new Set<string>();
      set.add(basename(p));
      folders.set(dirname(p), set);
    }
    for (const [folder, names] of folders) {
      try {
        const w = watch(folder, { persistent: false }, (_event, name) => {
          // Only the watched files, or a Kubernetes-style `..data` symlink swap, or unknown.
          const n = name?.toString();
          if (!n || names.has(n) || n.startsWith('..')) onChange();
        });
        w.on('error', (err) => {
          log.warn(
            { folder, code: (err as NodeJS.ErrnoException).code },
            'TLS file watch stopped; SIGHUP still reloads',
          );
          w.close();
        });
        watchers.push(w);
      } catch (err) {
        log.warn(
          { folder, code: (err as NodeJS.ErrnoException).code },
          'cannot watch the TLS files; SIGHUP still reloads',
        );
      }
    }
  }
  if (signal) process.on(signal, onSignal);

  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
    if (signal) process.off(signal, onSignal);
    server.off('close', stop);
  };
  server.once('close', stop);
  return stop;
}
