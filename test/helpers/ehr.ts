/**
 * Starts a real EHR side (`crdkit ehr` as assembled by buildEhr) on loopback for a test: a
 * temporary data folder, a self-signed certificate, the synthetic demo patients and the demo
 * payer's CRD server registered as an asymmetric client. Everything is removed by `close`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { JWK } from 'jose';
import { generateClientKeyPair } from '../../src/auth/sign.js';
import { resolveEhrConfig, type EhrClientEntry, type EhrConfigFile } from '../../src/ehr/config.js';
import { DEMO_CRD_SERVER_CLIENT, DEMO_PAYER } from '../../src/ehr/demo.js';
import { buildEhr, type EhrSide } from '../../src/ehr/server.js';
import { createLogger } from '../../src/log.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { freePort } from './server.js';

export interface TestEhr {
  side: EhrSide;
  /** `https://localhost:<port>`, the EHR's base URL; the FHIR API is at `${base}/fhir`. */
  base: string;
  fhirBase: string;
  ca: string;
  /** The CRD server client's private key (private_key_jwt at the token endpoint). */
  crdServerKey: JWK;
  logs: string[];
  close(): Promise<void>;
}

export interface TestEhrOptions {
  clients?: EhrClientEntry[];
  delegation?: EhrConfigFile['delegation'];
  limits?: EhrConfigFile['limits'];
}

export async function startTestEhr(opts: TestEhrOptions = {}): Promise<TestEhr> {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-ehr-test-'));
  const pem = await selfSignedCertificate('localhost');
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  const pair = await generateClientKeyPair('ES384');
  const port = await freePort();
  const base = `https://localhost:${port}`;
  const file: EhrConfigFile = {
    baseUrl: base,
    listen: { host: '127.0.0.1', port },
    tls: { cert: 'cert.pem', key: 'key.pem' },
    dataDir: 'data',
    clients: [
      {
        clientId: DEMO_CRD_SERVER_CLIENT,
        name: 'Example Health Plan CRD server',
        kind: 'confidential-asymmetric',
        jwks: { keys: [pair.publicJwk as { kty: string }] },
        grantTypes: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
        scope: 'patient/*.rs',
        payer: DEMO_PAYER,
      },
      ...(opts.clients ?? []),
    ],
    ...(opts.delegation ? { delegation: opts.delegation } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    seed: true,
    log: { level: 'info' },
  };
  const config = resolveEhrConfig(file, dir);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const side = await buildEhr({ config, logger: createLogger('info', sink) });
  await side.app.listen({ host: '127.0.0.1', port });
  return {
    side,
    base,
    fhirBase: `${base}/fhir`,
    ca: pem.cert,
    crdServerKey: pair.privateJwk,
    logs,
    async close() {
      await side.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
