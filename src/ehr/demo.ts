/**
 * The demo configuration of `crdkit ehr` without `--config`: the development certificate of
 * `crdkit serve`'s demo (both run on localhost), synthetic patients, and two registered clients:
 * the demo payer's CRD server (`crdkit serve`), which reads what its prefetch lacks with the
 * tokens minted for each hook call and may exchange them for delegate tokens (RFC 8693), and the
 * EHR's own CRD client (`crdkit client`), which reads orders and writes coverage information back.
 */
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateClientKeyPair } from '../auth/sign.js';
import { ensureDemoFiles } from '../config/demo.js';
import { DEFAULTS } from '../config/schema.js';
import { EHR_DEFAULTS, resolveEhrConfig, type EhrConfig, type EhrConfigFile } from './config.js';

/** The demo payer's CRD server, as registered at the demo EHR. */
export const DEMO_CRD_SERVER_CLIENT = 'example-payer-crd';
/** The demo EHR's own CRD client, as registered at its authorization server. */
export const DEMO_EHR_CLIENT = 'crdkit-ehr-client';
/** The demo EHR's CDS Hooks issuer, trusted by `crdkit serve`'s demo through its `jku`. */
export const DEMO_EHR_ISSUER = 'urn:crdkit:demo-ehr';
/** The demo payer (the key of its opaque ids; its Coverage names it `urn:crdkit:payer|…`). */
export const DEMO_PAYER = 'example-payer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** The scopes the EHR's CRD client needs: read everything, update orders, create Tasks. */
const EHR_CLIENT_SCOPE = [
  'system/*.rs',
  ...[
    'DeviceRequest',
    'MedicationRequest',
    'ServiceRequest',
    'NutritionOrder',
    'VisionPrescription',
    'CommunicationRequest',
    'Appointment',
  ].map((t) => `system/${t}.u`),
  'system/Task.c',
].join(' ');

export interface EhrDemoFiles {
  cert: string;
  key: string;
  /** The CRD server's private key for `private_key_jwt` at the EHR's token endpoint. */
  crdServerPrivateKey: string;
  crdServerJwks: string;
  /** The EHR's CDS Hooks signing key (the `urn:crdkit:demo-client` key `crdkit serve` trusts). */
  ehrClientPrivateKey: string;
  ehrClientJwks: string;
}

/** Creates the demo CRD server key pair once (0600), next to `crdkit serve`'s demo files. */
export async function ensureEhrDemoFiles(
  dataDir: string = DEFAULTS.dataDir,
): Promise<EhrDemoFiles> {
  const { files } = await ensureDemoFiles(resolve(dataDir));
  const crdServerPrivateKey = join(files.folder, 'crd-server-private.jwk.json');
  const crdServerJwks = join(files.folder, 'crd-server-jwks.json');
  if (!existsSync(crdServerPrivateKey) || !existsSync(crdServerJwks)) {
    const pair = await generateClientKeyPair('ES384');
    writeFileSync(crdServerPrivateKey, `${JSON.stringify(pair.privateJwk, null, 2)}\n`, {
      mode: 0o600,
    });
    chmodSync(crdServerPrivateKey, 0o600);
    writeFileSync(crdServerJwks, `${JSON.stringify({ keys: [pair.publicJwk] }, null, 2)}\n`);
  }
  return {
    cert: files.cert,
    key: files.key,
    crdServerPrivateKey,
    crdServerJwks,
    ehrClientPrivateKey: files.clientPrivateKey,
    ehrClientJwks: files.clientJwks,
  };
}

/** The demo EHR configuration for a port (the base URL follows the port). */
export async function ehrDemoConfig(
  dataDir: string = DEFAULTS.dataDir,
  port: number = EHR_DEFAULTS.port,
  crdServerBaseUrl = `https://localhost:${DEFAULTS.port}`,
): Promise<{ config: EhrConfig; files: EhrDemoFiles }> {
  const files = await ensureEhrDemoFiles(dataDir);
  const jwks = (path: string) =>
    JSON.parse(readFileSync(path, 'utf8')) as EhrConfigFile['clients'][0]['jwks'];
  const file: EhrConfigFile = {
    baseUrl: `https://localhost:${port}`,
    listen: { host: EHR_DEFAULTS.host, port },
    tls: { cert: files.cert, key: files.key },
    dataDir: join(resolve(dataDir), 'ehr'),
    clients: [
      {
        clientId: DEMO_CRD_SERVER_CLIENT,
        name: 'Example Health Plan CRD server (demo)',
        kind: 'confidential-asymmetric',
        jwks: jwks(files.crdServerJwks),
        grantTypes: ['client_credentials', TOKEN_EXCHANGE],
        scope: 'patient/*.rs',
        payer: DEMO_PAYER,
      },
      {
        clientId: DEMO_EHR_CLIENT,
        name: 'crdkit CRD client of this EHR (demo)',
        kind: 'confidential-asymmetric',
        jwks: jwks(files.ehrClientJwks),
        grantTypes: ['client_credentials'],
        scope: EHR_CLIENT_SCOPE,
      },
    ],
    delegation: {
      audiences: [
        {
          audience: `${crdServerBaseUrl}/dtr`,
          actor: 'example-payer-dtr',
          organization: DEMO_PAYER,
          relationship: 'same-organization',
        },
      ],
    },
    seed: true,
    crdClient: {
      iss: DEMO_EHR_ISSUER,
      clientId: DEMO_EHR_CLIENT,
      privateKey: files.ehrClientPrivateKey,
      payers: [
        {
          id: DEMO_PAYER,
          name: 'Example Health Plan',
          identifiers: [{ system: 'urn:crdkit:payer', value: DEMO_PAYER }],
          cdsBaseUrl: crdServerBaseUrl,
          clientId: DEMO_CRD_SERVER_CLIENT,
          ca: files.cert,
        },
      ],
    },
  };
  return { config: resolveEhrConfig(file, resolve(dataDir), true), files };
}
