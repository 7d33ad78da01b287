/**
 * sec-4: a card's SMART link is launched only for a registered confidential app allowed to be
 * launched; the URL carries the FHIR base (`iss`) and a fresh single-use `launch` value.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { EhrClient } from '../../../src/ehr/authz/index.js';
import { launchFromCard } from '../../../src/ehr/launch-link.js';
import { startTestEhr, type TestEhr } from '../../helpers/ehr.js';

const APP: EhrClient = {
  clientId: 'dtr-app',
  kind: 'confidential-symmetric',
  clientSecret: 'a-secret-of-at-least-thirty-two-characters',
  redirectUris: ['https://dtr.app.test/callback'],
  grantTypes: ['authorization_code'],
  scope: 'launch openid fhirUser patient/*.rs',
  launchable: true,
};
const PUBLIC_APP: EhrClient = {
  clientId: 'public-app',
  kind: 'public',
  redirectUris: ['https://public.app.test/callback'],
  grantTypes: ['authorization_code'],
  scope: 'launch patient/*.rs',
};

describe('launching a card SMART link', () => {
  let ehr: TestEhr;
  before(async () => {
    ehr = await startTestEhr({ clients: [APP, PUBLIC_APP] as never });
  });
  after(() => ehr?.close());

  const patient = () => ehr.side.demo!['patient-avery'].split('/')[1]!;

  test('sec-4: a registered confidential app is opened with iss and a fresh launch value', async () => {
    const link = { url: 'https://dtr.app.test/launch', type: 'smart', appContext: '{"q":"1"}' };
    const a = await launchFromCard(ehr.side.authz, [APP, PUBLIC_APP], ehr.fhirBase, link, {
      patient: patient(),
    });
    const b = await launchFromCard(ehr.side.authz, [APP, PUBLIC_APP], ehr.fhirBase, link, {
      patient: patient(),
    });
    assert.equal(a.clientId, 'dtr-app');
    const url = new URL(a.url);
    assert.equal(url.origin + url.pathname, 'https://dtr.app.test/launch');
    assert.equal(url.searchParams.get('iss'), ehr.fhirBase);
    assert.ok(url.searchParams.get('launch'));
    assert.notEqual(url.searchParams.get('launch'), new URL(b.url).searchParams.get('launch'));
  });

  test('sec-4: an unknown app, a public app or an absolute link is never given a launch', async () => {
    for (const link of [
      { url: 'https://unknown.app.test/launch', type: 'smart' },
      { url: 'https://public.app.test/launch', type: 'smart' },
      { url: 'https://dtr.app.test/launch', type: 'absolute' },
    ]) {
      await assert.rejects(
        launchFromCard(ehr.side.authz, [APP, PUBLIC_APP], ehr.fhirBase, link, {
          patient: patient(),
        }),
        (err: { code?: string; status?: number }) =>
          err.code === 'ERR_LAUNCH_NOT_ALLOWED' && err.status === 403,
      );
    }
  });
});
