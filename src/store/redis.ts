/**
 * The Redis connection (node-redis v5) shared by the parts of crdkit that keep state across
 * instances (the `jti` replay store). Start-up fails fast with a configuration error naming
 * the key; once connected, the client reconnects forever in the background while callers fail
 * closed (commands are never queued while disconnected). No password is ever printed.
 */
import { createClient } from 'redis';
import { ConfigError } from '../config/load.js';

/** A connected node-redis client. */
export type RedisClient = ReturnType<typeof createClient>;

/** The logger calls made about the connection (a pino logger fits). */
export interface RedisConnectionLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Options of {@link connectRedis}. */
export interface RedisConnectOptions {
  /** The configuration key named in errors (default `replay`). */
  configKey?: string;
  /** Deadline of one TCP/TLS connection attempt, in ms (default 3000). */
  connectTimeoutMs?: number;
  /** Further attempts at start-up before giving up (default 2, 200 ms apart). */
  startupRetries?: number;
  /** Longest wait of a command to be sent, in ms (default 2000). */
  commandTimeoutMs?: number;
  /** Most commands queued or awaiting a reply; beyond it commands fail (default 10 000). */
  maxQueued?: number;
  /** Told when the connection is lost and when it is back (one line per change). */
  logger?: RedisConnectionLogger;
}

/** The URL fit to print: password replaced by `***`, query and fragment dropped. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** `text` with the URL's password (raw and decoded) removed. */
function scrub(text: string, url: string): string {
  let out = text;
  try {
    const { password } = new URL(url);
    for (const secret of new Set([password, safeDecode(password)])) {
      if (secret) out = out.split(secret).join('***');
    }
  } catch {
    // unparseable: nothing to scrub beyond what the caller already withheld
  }
  return out;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Reconnection delay once connected: 100 ms doubling to 2 s, plus up to 100 ms jitter. */
const backoff = (retries: number): number =>
  Math.min(100 * 2 ** Math.min(retries, 5), 2000) + Math.floor(Math.random() * 100);

/**
 * Connects to the Redis server at `url` (`redis://` or `rediss://`, credentials and database
 * number as node-redis reads them). Throws a {@link ConfigError} naming `configKey` when the
 * URL is unusable or the server cannot be reached (or refuses the credentials) at start-up.
 */
export async function connectRedis(
  url: string,
  opts: RedisConnectOptions = {},
): Promise<RedisClient> {
  const key = opts.configKey ?? 'replay';
  const where = redactRedisUrl(url);
  const startupRetries = opts.startupRetries ?? 2;
  const commandTimeoutMs = opts.commandTimeoutMs ?? 2000;
  let ready = false;
  let down = false;
  let client: RedisClient;
  try {
    if (!/^rediss?:\/\/./.test(url)) throw new TypeError('not a redis:// or rediss:// URL');
    client = createClient({
      url,
      socket: {
        connectTimeout: opts.connectTimeoutMs ?? 3000,
        // At start-up a few quick attempts, then give up (connect() rejects); once connected,
        // retry forever with a capped backoff while callers get errors, never queued commands.
        reconnectStrategy: (retries) =>
          ready ? backoff(retries) : retries < startupRetries && 200,
      },
      disableOfflineQueue: true,
      commandsQueueMaxLength: opts.maxQueued ?? 10_000,
      commandOptions: { timeout: commandTimeoutMs },
    });
  } catch (err) {
    throw new ConfigError(key, `not a usable Redis URL (${scrub((err as Error).message, url)})`);
  }
  // Without an 'error' listener node-redis errors would crash the process.
  client.on('error', (err: Error) => {
    if (!ready || down) return;
    down = true;
    opts.logger?.warn(
      {
        err: {
          name: err.name,
          code: (err as { code?: string }).code,
          message: scrub(err.message, url),
        },
      },
      `Redis connection lost (${where}); calls needing it are refused until it is back`,
    );
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    opts.logger?.info({}, `Redis connection restored (${where})`);
  });
  try {
    await client.connect();
    ready = true;
    return client;
  } catch (err) {
    try {
      if (client.isOpen) client.destroy();
    } catch {
      // already closed
    }
    const e = err as Error & { code?: string };
    const reason = scrub(e.message || e.code || e.name || 'unknown error', url);
    throw new ConfigError(key, `cannot connect to Redis at ${where}: ${reason}`);
  }
}
