/**
 * The demo configuration of `crdkit serve` without `--config`: a development certificate and an
 * ES384 demo client key pair generated once into the data folder, the bundled sample rules and
 * SQLite storage. Private files are written with mode 0600 in a 0700 folder.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateClientKeyPair } from '../auth/sign.js';
import { selfSignedCertificate } from '../tls/certs.js';
import { resolveConfig } from './load.js';
import { DEFAULTS, type Config, type ConfigFile } from './schema.js';

/** The demo EHR's base URL (`crdkit ehr` on its default port). */
export const DEMO_EHR_BASE = 'https://localhost:9443';

/** The demo client's issuer. */
export const DEMO_ISSUER = 'urn:crdkit:demo-client';

/** The package root (holds `rules/` and `examples/`), from src/ or dist/. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface DemoFiles {
  folder: string;
  cert: string;
  key: string;
  clientPrivateKey: string;
  clientJwks: string;
}

function writePrivate(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Creates the demo credentials once; later calls reuse them. Returns their paths. */
export async function ensureDemoFiles(
  dataDir: string,
): Promise<{ files: DemoFiles; created: boolean }> {
  const folder = join(dataDir, 'demo');
  const files: DemoFiles = {
    folder,
    cert: join(folder, 'server-cert.pem'),
    key: join(folder, 'server-key.pem'),
    clientPrivateKey: join(folder, 'client-private.jwk.json'),
    clientJwks: join(folder, 'client-jwks.json'),
  };
  if (Object.values(files).every((p) => existsSync(p))) return { files, created: false };
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const pem = await selfSignedCertificate('localhost');
  writeFileSync(files.cert, pem.cert);
  writePrivate(files.key, pem.key);
  const pair = await generateClientKeyPair('ES384');
  writePrivate(files.clientPrivateKey, `${JSON.stringify(pair.privateJwk, null, 2)}\n`);
  writeFileSync(files.clientJwks, `${JSON.stringify({ keys: [pair.publicJwk] }, null, 2)}\n`);
  return { files, created: true };
}

/** The demo configuration for a port (the base URL follows the port). */
export async function demoConfig(
  dataDir: string = DEFAULTS.dataDir,
  port: number = DEFAULTS.port,
): Promise<{ config: Config; files: DemoFiles; created: boolean }> {
  const absData = resolve(dataDir);
  const { files, created } = await ensureDemoFiles(absData);
  const file: ConfigFile = {
    baseUrl: `https://localhost:${port}`,
    listen: { host: DEFAULTS.host, port },
    tls: { cert: files.cert, key: files.key },
    clients: [
      {
        iss: DEMO_ISSUER,
        name: 'crdkit demo client',
        jwks: JSON.parse(readFileSync(files.clientJwks, 'utf8')) as {
          keys: Array<{ kty: string }>;
        },
      },
      {
        // The demo EHR (`crdkit ehr`, port 9443): its CRD client signs with the rotating keys it
        // publishes at this URL, and payers may read its FHIR API.
        iss: 'urn:crdkit:demo-ehr',
        name: 'crdkit demo EHR',
        jwksUri: `${DEMO_EHR_BASE}/.well-known/jwks.json`,
        fhirServers: [DEMO_EHR_BASE],
      },
    ],
    rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
    dataDir: absData,
    fhir: { ca: files.cert },
  };
  return { config: resolveConfig(file, absData, true), files, created };
}
