/**
 * The FHIR API's rate limit per OAuth client: past it, a 429 OperationOutcome with Retry-After,
 * recorded in the audit trail like every refusal; another client is not affected.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestEhr, type TestEhr } from './helpers.js';

let ehr: TestEhr;
before(async () => {
  ehr = await startTestEhr({ api: { requestsPerMinute: 2 } });
});
after(() => ehr.close());

test('fhir: a client past its rate gets 429 with Retry-After; another client does not', async () => {
  const token = ehr.token('busy', { clientId: 'busy-payer' });
  const other = ehr.token('calm', { clientId: 'calm-payer' });
  const get = (t: string) =>
    ehr.request('GET', `Coverage?patient=${ehr.opaque('patient-avery')}&status=active`, {
      headers: { authorization: `Bearer ${t}` },
    });
  assert.equal((await get(token)).status, 200);
  assert.equal((await get(token)).status, 200);
  const third = await get(token);
  assert.equal(third.status, 429);
  assert.ok(Number(third.headers['retry-after']) >= 1);
  assert.equal(third.json.issue[0].code, 'throttled');
  assert.equal((await get(other)).status, 200);
});
