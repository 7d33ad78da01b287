/**
 * No secrets in logs, proven: during normal calls and during refusals of every kind, the log
 * lines hold no JWT, no signature, no key material, no fhirAuthorization value and no patient
 * data.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FhirStub } from '../helpers/fhir-stub.js';
import { send } from '../helpers/https.js';
import { bundle, coverage, orderRequest, patient } from '../helpers/requests.js';
import { startServerWithStub, type TestServer } from '../helpers/server.js';

let server: TestServer;
let stub: FhirStub;
let close: () => Promise<void>;
before(async () => {
  ({ server, stub, close } = await startServerWithStub([patient(), coverage()]));
});
after(() => close());

const SIGN = '/cds-services/order-sign-crd';
const SECRET_TOKEN = 'fhir-access-token-SECRET-7731';
const MARK = 'Zyxwvut';

/** A request carrying the secret access token and marked patient data. */
const marked = () =>
  orderRequest({
    accessToken: SECRET_TOKEN,
    fhirServer: stub.base,
    prefetch: {
      patient: { ...patient(), name: [{ family: `${MARK}family`, given: [`${MARK}given`] }] },
      coverage: bundle([coverage({ subscriberId: `${MARK}sub` })]),
    },
  });

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
}

function assertClean(lines: string[], jwt: string): void {
  const text = lines.join('\n');
  const [h = '', p = '', s = ''] = jwt.split('.');
  const forbidden = [jwt, h, p, s, SECRET_TOKEN, MARK, '"d":', 'PRIVATE KEY', 'eyJ'];
  for (const f of forbidden.filter((x) => x.length > 3)) {
    assert.ok(!text.includes(f), `log contains ${f.slice(0, 12)}…`);
  }
  const privateD = String((server.privateJwk as { d?: string }).d);
  assert.ok(!text.includes(privateD));
}

describe('no secrets in logs (sec-6, CDS Hooks security)', () => {
  it('sec-6: a normal call logs one access line without token or patient data', async () => {
    const before = server.logs.length;
    const jwt = await server.token(SIGN);
    const res = await send(`${server.base}${SIGN}`, {
      method: 'POST',
      ca: server.ca,
      body: JSON.stringify(marked()),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}` },
    });
    assert.equal(res.status, 200);
    await settle();
    const lines = server.logs.slice(before);
    assert.ok(lines.some((l) => l.includes('"status":200')));
    assertClean(lines, jwt);
  });

  const refusals: Array<[string, (jwt: string) => { auth: string; body: string; ct?: string }]> = [
    ['a tampered signature', (jwt) => ({ auth: `Bearer ${jwt.slice(0, -4)}AAAA`, body: '{}' })],
    ['a token for another audience', (jwt) => ({ auth: `Bearer ${jwt}`, body: '{}' })],
    ['a malformed body', (jwt) => ({ auth: `Bearer ${jwt}`, body: '{"hook": ' })],
    ['a wrong content type', (jwt) => ({ auth: `Bearer ${jwt}`, body: 'x', ct: 'text/plain' })],
    [
      'an invalid request carrying fhirAuthorization',
      (jwt) => ({
        auth: `Bearer ${jwt}`,
        body: JSON.stringify({ ...marked(), hookInstance: 'x' }),
      }),
    ],
    [
      'a request with unhandled coverage',
      (jwt) => {
        const body = marked();
        body.prefetch.coverage = bundle([coverage({ payor: [{ reference: 'Organization/z' }] })]);
        return { auth: `Bearer ${jwt}`, body: JSON.stringify(body) };
      },
    ],
  ];
  for (const [what, build] of refusals) {
    it(`sec-1 (CDS Hooks JWT): refusing ${what} logs no secret`, async () => {
      const before = server.logs.length;
      const aud = what.includes('audience') ? `${server.base}/cds-services/other` : undefined;
      const jwt = await server.token(SIGN, aud ? { aud } : {});
      const { auth, body, ct } = build(jwt);
      const res = await send(`${server.base}${SIGN}`, {
        method: 'POST',
        ca: server.ca,
        body,
        headers: { 'content-type': ct ?? 'application/json', authorization: auth },
      });
      assert.ok(res.status >= 400 && res.status < 500, String(res.status));
      assert.ok(!res.text.includes(jwt) && !res.text.includes(SECRET_TOKEN));
      await settle();
      assertClean(server.logs.slice(before), jwt);
    });
  }

  it('sec-9: a failing EHR FHIR call logs the error code, not the token or URL query', async () => {
    const before = server.logs.length;
    stub.failWith = 500;
    try {
      const jwt = await server.token(SIGN);
      const body = { ...marked(), prefetch: undefined };
      const res = await send(`${server.base}${SIGN}`, {
        method: 'POST',
        ca: server.ca,
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}` },
      });
      assert.ok(res.status === 200 || res.status === 400);
      await settle();
      assertClean(server.logs.slice(before), jwt);
    } finally {
      delete stub.failWith;
    }
  });
});
