/** The OAuth endpoints are limited per remote address before any client is authenticated. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestEhr, type TestEhr } from '../../helpers/ehr.js';
import { send } from '../../helpers/https.js';

let ehr: TestEhr;
before(async () => {
  ehr = await startTestEhr({ limits: { oauthRequestsPerMinute: 3 } });
});
after(() => ehr?.close());

test('oauth: past the per-address rate, a 429 temporarily_unavailable with Retry-After', async () => {
  const url = `${ehr.fhirBase}/.well-known/smart-configuration`;
  for (let i = 0; i < 3; i += 1) assert.equal((await send(url, { ca: ehr.ca })).status, 200);
  const refused = await send(`${ehr.base}/oauth/token`, {
    ca: ehr.ca,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  assert.equal(refused.status, 429);
  assert.equal(refused.json.error, 'temporarily_unavailable');
  assert.ok(Number(refused.headers['retry-after']) >= 1);
  assert.equal(refused.headers['cache-control'], 'no-store');
  // The FHIR API is limited per client instead, after authentication.
  assert.equal((await send(`${ehr.fhirBase}/metadata`, { ca: ehr.ca })).status, 200);
});
