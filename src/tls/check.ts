/** Start-up check of the server's certificate and key, with errors that name the key. */
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { serverTlsOptions } from './options.js';

/** Throws a {@link ConfigError} naming `tls.cert`, `tls.key` or `tls.ca` when one is unusable. */
export function checkServerTls(config: Config): void {
  const options = serverTlsOptions(config.tls);
  const attempt = (key: string, build: () => unknown) => {
    try {
      build();
    } catch (err) {
      const reason = (err as Error).message.replace(/^error:[0-9A-F]+:/, '');
      throw new ConfigError(key, `not a usable PEM file (${reason})`);
    }
  };
  attempt('tls.cert', () => createSecureContext({ cert: options.cert }));
  if (options.ca) attempt('tls.ca', () => createSecureContext({ ca: options.ca }));
  try {
    createSecureContext({ cert: options.cert, key: options.key });
  } catch (err) {
    const message = (err as Error).message;
    throw new ConfigError(
      'tls.key',
      /mismatch/i.test(message)
        ? 'does not match the certificate in tls.cert'
        : 'not a usable PEM private key',
    );
  }
}
