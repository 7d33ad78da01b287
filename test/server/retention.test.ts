/**
 * sec-5/sec-6 at the server: after many hook calls carrying unique markers, nothing the server
 * wrote (its data folder: SQLite database, WAL, shared memory) or logged holds any of them.
 * The audit trail of a later issue will be the one permitted store.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  bundle,
  coverage,
  orderRequest,
  patient,
  serviceRequest,
  CPT,
} from '../helpers/requests.js';
import { startTestServer } from '../helpers/server.js';

const filesUnder = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });

describe('no retention (sec-5, sec-6)', () => {
  it('sec-6: no request data is kept in the data folder or the logs', async () => {
    const server = await startTestServer({ sqlite: true });
    const markers: string[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const m = `MARKER${i}X${Math.random().toString(36).slice(2, 10)}`;
        markers.push(m);
        const pat = { ...patient(), name: [{ family: `${m}fam`, given: [`${m}given`] }] };
        const cov = coverage({ subscriberId: `${m}sub`, identifier: [{ value: `${m}mbr` }] });
        const order = { ...serviceRequest(`sr-${i}`, CPT, '15823'), note: [{ text: `${m}note` }] };
        const res = await server.post(
          '/cds-services/order-sign-crd',
          orderRequest({
            orders: [order],
            accessToken: `${m}token`,
            prefetch: { patient: pat, coverage: bundle([cov]) },
          }),
        );
        assert.equal(res.status, 200);
      }
    } finally {
      await server.close();
    }
    const written = filesUnder(server.dataDir).map((f) => readFileSync(f).toString('latin1'));
    assert.ok(written.length > 0);
    const logs = server.logs.join('\n');
    for (const m of markers) {
      for (const content of [...written, logs]) assert.ok(!content.includes(m), m);
    }
  });
});
