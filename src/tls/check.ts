/** Start-up and reload checks of the server's certificate and key; errors name the key. */
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { serverTlsOptions, type ServerTlsFiles } from './options.js';

type ServerTlsOptions = ReturnType<typeof serverTlsOptions>;

/**
 * Reads the PEM files once and checks them; returns the options built from exactly the bytes
 * checked (so a reload never installs files that changed between check and use). Throws a
 * {@link ConfigError} naming `tls.cert`, `tls.key` or `tls.ca` when one is missing or unusable.
 */
export function loadServerTls(files: ServerTlsFiles): ServerTlsOptions {
  let options: ServerTlsOptions;
  try {
    options = serverTlsOptions(files);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const key =
      e.path === files.key ? 'tls.key' : e.path === files.ca && files.ca ? 'tls.ca' : 'tls.cert';
    throw new ConfigError(key, `cannot read the file (${e.code ?? e.message})`);
  }
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
  return options;
}

/**
 * Throws a {@link ConfigError} naming `tls.cert`, `tls.key` or `tls.ca` when one is unusable,
 * and naming the key when mutual TLS settings cannot work together: `tls.requestCert` needs
 * `tls.ca` (otherwise any certificate from the system roots would pass), and a client
 * certificate binding (`clients[i].certificate`) needs `tls.requestCert` and at least one of
 * `subject` and `sha256`.
 */
export function checkServerTls(config: Config): void {
  loadServerTls(config.tls);
  if (config.tls.requestCert && !config.tls.ca) {
    throw new ConfigError(
      'tls.ca',
      'required with tls.requestCert: client certificates are checked against it',
    );
  }
  (config.clients ?? []).forEach((client, i) => {
    const binding = client.certificate;
    if (!binding) return;
    const key = `clients[${i}].certificate`;
    if (!config.tls.requestCert) {
      throw new ConfigError(
        key,
        'needs tls.requestCert (and tls.ca): no client certificate is asked for',
      );
    }
    if (binding.subject === undefined && binding.sha256 === undefined) {
      throw new ConfigError(key, 'give "subject", "sha256" or both');
    }
  });
}
