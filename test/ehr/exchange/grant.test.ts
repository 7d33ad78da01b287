/**
 * sec-9, server side: the RFC 8693 grant at the EHR's authorization server, proven with real
 * HTTPS requests to an oidc-provider 9 token endpoint on loopback. Delegate tokens only for
 * services of the payer or of its business associates, never wider or longer-lived than the
 * subject token, with the actor chain, and every exchange audited (fail closed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { registerTokenExchange } from '../../../src/ehr/authz/token-exchange.js';
import { send, type TestResponse } from '../../helpers/https.js';
import {
  AUDIENCES,
  basicAuth,
  FHIR_BASE,
  PAYER_A,
  PAYER_B,
  SECRETS,
  startExchangeServer,
  type ExchangeServer,
} from './harness.js';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const DTR = AUDIENCES[0]!.audience;
const VENDOR = AUDIENCES[1]!.audience;
const VENDOR_ACTOR = AUDIENCES[1]!.actor!;
const B_SERVICE = AUDIENCES[2]!.audience;

let srv: ExchangeServer;
before(async () => {
  srv = await startExchangeServer();
});
after(async () => {
  await srv.close();
});

function exchange(
  params: Record<string, string | string[]>,
  client: keyof typeof SECRETS = 'crd-payer-a',
  server: ExchangeServer = srv,
  authorization = basicAuth(client),
): Promise<TestResponse> {
  const form = new URLSearchParams();
  form.set('grant_type', GRANT);
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) form.append(k, one);
  }
  return send(server.tokenEndpoint, {
    method: 'POST',
    ca: server.ca,
    headers: {
      Authorization: authorization,
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    body: form.toString(),
  });
}

const subjectParams = (token: string, audience = DTR): Record<string, string> => ({
  subject_token: token,
  subject_token_type: AT,
  audience,
});

/** The OAuth error shape, with a fixed description that never quotes a token. */
function assertOAuthError(res: TestResponse, status: number, error: string, ...secrets: string[]) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.json.error, error);
  assert.equal(typeof res.json.error_description, 'string');
  assert.deepEqual(Object.keys(res.json).sort(), ['error', 'error_description']);
  assert.equal(res.headers['cache-control'], 'no-store');
  for (const s of secrets) assert.ok(!res.text.includes(s), 'the error quotes a token');
}

/** The records added while `fn` ran. */
async function recorded(fn: () => Promise<void>, server = srv) {
  const start = server.records.length;
  await fn();
  await server.settle();
  return server.records.slice(start);
}

describe('sec-9: token exchange, granted', () => {
  test('sec-9: a granted exchange narrows scope, caps lifetime, sets actors and is audited', async () => {
    const { token, grant } = srv.mint({ expiresAt: new Date(Date.now() + 20_000) });
    let res!: TestResponse;
    const records = await recorded(async () => {
      res = await exchange({
        ...subjectParams(token),
        scope: 'patient/Coverage.r patient/Patient.rs',
        requested_token_type: AT,
      });
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.json;
    assert.deepEqual(Object.keys(body).sort(), [
      'access_token',
      'expires_in',
      'issued_token_type',
      'scope',
      'token_type',
    ]);
    assert.equal(body.issued_token_type, AT);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.scope, 'patient/Coverage.r patient/Patient.rs');
    assert.ok(body.expires_in > 0 && body.expires_in <= 20, `expires_in ${body.expires_in}`);
    assert.notEqual(body.access_token, token);

    // What the FHIR API will see through TokenResolver.resolve.
    const issued = srv.tokens.get(body.access_token)!;
    assert.ok(issued, 'the delegate token is stored');
    assert.equal(issued.clientId, 'crd-payer-a');
    assert.deepEqual(issued.scopes, ['patient/Coverage.r', 'patient/Patient.rs']);
    assert.equal(issued.patient, grant.patient);
    assert.equal(issued.hookInstance, grant.hookInstance);
    assert.equal(issued.service, grant.service);
    assert.deepEqual(issued.declaredTypes, grant.declaredTypes);
    assert.equal(issued.payer, PAYER_A);
    assert.equal(issued.audience, FHIR_BASE);
    assert.deepEqual(issued.actors, [DTR]);
    assert.ok(issued.expiresAt.getTime() <= grant.expiresAt.getTime(), 'lifetime capped');

    assert.equal(records.length, 1);
    const r = records[0]!;
    assert.equal(r.event, 'exchanged');
    assert.deepEqual(r.client, { id: 'crd-payer-a' });
    assert.equal(r.grantType, GRANT);
    assert.deepEqual(r.scopes, ['patient/Coverage.r', 'patient/Patient.rs']);
    assert.equal(r.patient, 'Patient/p-123');
    assert.equal(r.hookInstance, grant.hookInstance);
    assert.equal(r.audience, DTR);
    assert.deepEqual(r.actors, [DTR]);
    assert.equal(r.tokenId, issued.tokenId);
    assert.equal(r.subjectTokenId, grant.tokenId);
    assert.deepEqual(r.expiresAt, issued.expiresAt);
    assert.equal(r.errorCode, undefined);
    const text = JSON.stringify(records);
    assert.ok(!text.includes(token) && !text.includes(body.access_token), 'no token audited');
    assert.equal((await srv.audit.verify()).ok, true);
  });

  test('sec-9: without scope the delegate token keeps the subject scopes; resource may name the FHIR base', async () => {
    const { token, grant } = srv.mint();
    const res = await exchange({ ...subjectParams(token), resource: `${FHIR_BASE}/` });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.scope, grant.scopes.join(' '));
  });

  test('sec-9: the lifetime is also capped at maxLifetimeSeconds (300 s)', async () => {
    const { token } = srv.mint({ expiresAt: new Date(Date.now() + 3_600_000) });
    const res = await exchange(subjectParams(token));
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json.expires_in <= 300 && res.json.expires_in >= 298);
  });

  test('sec-9: a business associate of the payer may receive a delegate token', async () => {
    const { token } = srv.mint();
    const res = await exchange(subjectParams(token, VENDOR));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(srv.tokens.get(res.json.access_token)!.actors, [VENDOR_ACTOR]);
  });

  test('sec-9: a wildcard or v1 subject scope covers a narrower request; v1 is answered in v2 form', async () => {
    const { token } = srv.mint({ scopes: ['patient/*.rs'] });
    const res = await exchange({ ...subjectParams(token), scope: 'patient/Coverage.read' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.scope, 'patient/Coverage.rs');
  });
});

describe('sec-9: token exchange, refused', () => {
  const refusedOnce = async (
    params: Record<string, string | string[]>,
    status: number,
    error: string,
    client: keyof typeof SECRETS = 'crd-payer-a',
    secrets: string[] = [],
  ) => {
    let res!: TestResponse;
    const records = await recorded(async () => {
      res = await exchange(params, client);
    });
    assertOAuthError(res, status, error, ...secrets);
    assert.equal(records.length, 1, 'one audit record');
    assert.equal(records[0]!.event, 'refused');
    assert.equal(records[0]!.errorCode, error);
    assert.equal(records[0]!.client.id, client);
    for (const s of secrets) assert.ok(!JSON.stringify(records).includes(s), 'no token audited');
    return { res, record: records[0]! };
  };

  test('sec-9: an unknown subject token is refused with invalid_grant', async () => {
    const fake = 'not-a-token-0123456789';
    await refusedOnce(subjectParams(fake), 400, 'invalid_grant', 'crd-payer-a', [fake]);
  });

  test('sec-9: an expired subject token is refused with invalid_grant', async () => {
    const { token } = srv.mint({ expiresAt: new Date(Date.now() - 1000) });
    await refusedOnce(subjectParams(token), 400, 'invalid_grant', 'crd-payer-a', [token]);
  });

  test('sec-9: a subject token about to expire (under 1 s left) is refused with invalid_grant', async () => {
    const { token } = srv.mint({ expiresAt: new Date(Date.now() + 500) });
    await refusedOnce(subjectParams(token), 400, 'invalid_grant', 'crd-payer-a', [token]);
  });

  test('sec-9: a revoked subject token is refused with invalid_grant', async () => {
    const { token, grant } = srv.mint();
    srv.revoked.add(grant.tokenId);
    await refusedOnce(subjectParams(token), 400, 'invalid_grant', 'crd-payer-a', [token]);
  });

  test("sec-9: a payer cannot exchange another payer's token (invalid_grant)", async () => {
    const { token, grant } = srv.mint();
    const { record } = await refusedOnce(
      subjectParams(token),
      400,
      'invalid_grant',
      'crd-payer-b',
      [token],
    );
    assert.equal(record.subjectTokenId, grant.tokenId);
    assert.equal(srv.tokens.size > 0, true);
  });

  test('sec-9: a subject token for another resource server is refused with invalid_grant', async () => {
    const { token } = srv.mint({ audience: 'https://other.example/fhir' });
    await refusedOnce(subjectParams(token), 400, 'invalid_grant');
  });

  test('sec-9: a token of an EHR app (no payer) may not be exchanged (unauthorized_client)', async () => {
    const { token } = srv.mint({ payer: undefined });
    await refusedOnce(subjectParams(token), 400, 'unauthorized_client');
  });

  test('sec-9: an unregistered audience is refused with invalid_target', async () => {
    const { token } = srv.mint();
    const { record } = await refusedOnce(
      subjectParams(token, 'https://unknown.example/api'),
      400,
      'invalid_target',
    );
    assert.equal(record.audience, 'https://unknown.example/api');
  });

  test("sec-9: another organisation's service without a BAA with the payer is refused (invalid_target)", async () => {
    const { token } = srv.mint();
    await refusedOnce(subjectParams(token, B_SERVICE), 400, 'invalid_target');
    // The vendor's BAA is with payer A only.
    const b = srv.mint({ clientId: 'crd-payer-b', payer: PAYER_B });
    await refusedOnce(subjectParams(b.token, VENDOR), 400, 'invalid_target', 'crd-payer-b');
  });

  test('sec-9: a resource other than the FHIR base is refused with invalid_target', async () => {
    const { token } = srv.mint();
    await refusedOnce(
      { ...subjectParams(token), resource: 'https://other.example/fhir' },
      400,
      'invalid_target',
    );
  });

  test('sec-9: a scope wider than the subject token is refused with invalid_scope', async () => {
    const { token } = srv.mint();
    for (const scope of [
      'patient/Coverage.cruds',
      'patient/Observation.rs',
      'user/Coverage.rs',
      'patient/*.r',
      'patient/Coverage.rs launch',
    ]) {
      const { record } = await refusedOnce(
        { ...subjectParams(token), scope },
        400,
        'invalid_scope',
      );
      assert.deepEqual(record.scopes, scope.split(' '), 'the scopes asked for are recorded');
    }
    const q = srv.mint({ scopes: ['patient/Condition.rs?category=problem-list-item'] });
    await refusedOnce(
      { ...subjectParams(q.token), scope: 'patient/Condition.rs' },
      400,
      'invalid_scope',
    );
  });

  test('sec-9: a subject_token_type other than access_token is refused with invalid_request', async () => {
    const { token } = srv.mint();
    for (const type of [
      'urn:ietf:params:oauth:token-type:jwt',
      'urn:ietf:params:oauth:token-type:refresh_token',
    ]) {
      await refusedOnce(
        { ...subjectParams(token), subject_token_type: type },
        400,
        'invalid_request',
      );
    }
    await refusedOnce({ subject_token: token, audience: DTR }, 400, 'invalid_request');
  });

  test('sec-9: missing audience or subject_token is refused with invalid_request', async () => {
    const { token } = srv.mint();
    await refusedOnce({ subject_token: token, subject_token_type: AT }, 400, 'invalid_request');
    await refusedOnce({ subject_token_type: AT, audience: DTR }, 400, 'invalid_request');
  });

  test('sec-9: other requested_token_type values and actor_token are refused with invalid_request', async () => {
    const { token } = srv.mint();
    await refusedOnce(
      {
        ...subjectParams(token),
        requested_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      },
      400,
      'invalid_request',
    );
    await refusedOnce(
      { ...subjectParams(token), actor_token: 'x', actor_token_type: AT },
      400,
      'invalid_request',
    );
  });

  test('sec-9: a repeated audience is refused by oidc-provider and still audited', async () => {
    const { token } = srv.mint();
    const { record } = await refusedOnce(
      { ...subjectParams(token), audience: [DTR, VENDOR] },
      400,
      'invalid_request',
    );
    assert.equal(record.audience, undefined);
  });

  test('sec-9: a client not registered for the grant type is refused and audited', async () => {
    const { token } = srv.mint({ clientId: 'no-exchange' });
    await refusedOnce(subjectParams(token), 400, 'invalid_request', 'no-exchange');
  });

  test('sec-9: a client that fails authentication gets invalid_client (audited by the AS, not here)', async () => {
    const { token } = srv.mint();
    let res!: TestResponse;
    const records = await recorded(async () => {
      res = await exchange(
        subjectParams(token),
        'crd-payer-a',
        srv,
        'Basic Y3JkLXBheWVyLWE6d3Jvbmc=',
      );
    });
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'invalid_client');
    assert.equal(records.length, 0);
  });
});

describe('sec-9: delegate chains', () => {
  test('sec-9: a registered downstream service can exchange its delegate token again (nested actors)', async () => {
    const { token, grant } = srv.mint({ expiresAt: new Date(Date.now() + 25_000) });
    const first = await exchange({
      ...subjectParams(token),
      scope: 'patient/Coverage.rs patient/Patient.rs',
    });
    assert.equal(first.status, 200, first.text);
    const delegate = first.json.access_token as string;

    let second!: TestResponse;
    const records = await recorded(async () => {
      second = await exchange(
        { ...subjectParams(delegate, VENDOR), scope: 'patient/Coverage.r' },
        'dtr-a',
      );
    });
    assert.equal(second.status, 200, second.text);
    const issued = srv.tokens.get(second.json.access_token)!;
    assert.deepEqual(issued.actors, [VENDOR_ACTOR, DTR]);
    assert.equal(issued.clientId, 'dtr-a');
    assert.equal(issued.payer, PAYER_A);
    assert.equal(issued.patient, grant.patient);
    assert.deepEqual(issued.scopes, ['patient/Coverage.r']);
    assert.ok(issued.expiresAt.getTime() <= srv.tokens.get(delegate)!.expiresAt.getTime());
    assert.equal(records[0]!.event, 'exchanged');
    assert.deepEqual(records[0]!.actors, [VENDOR_ACTOR, DTR]);
    assert.equal(records[0]!.subjectTokenId, srv.tokens.get(delegate)!.tokenId);

    // The chain is at its default limit (2 actors): nobody extends it, not even a known service.
    // The vendor has no client here; dtr-a no longer holds the token's current actor.
    const third = await exchange(subjectParams(second.json.access_token, DTR), 'dtr-a');
    assertOAuthError(third, 400, 'invalid_grant');
  });

  test('sec-9: the client that exchanged cannot exchange the delegate token itself', async () => {
    const { token } = srv.mint();
    const first = await exchange(subjectParams(token));
    const again = await exchange(subjectParams(first.json.access_token, VENDOR));
    assertOAuthError(again, 400, 'invalid_grant', first.json.access_token);
  });

  test('sec-9: an audience already in the actor chain is refused (invalid_target)', async () => {
    const { token } = srv.mint();
    const first = await exchange(subjectParams(token));
    const loop = await exchange(subjectParams(first.json.access_token, DTR), 'dtr-a');
    assertOAuthError(loop, 400, 'invalid_target');
  });

  test('sec-9: with maxChainLength 1 the chain stops after the first exchange (invalid_grant)', async () => {
    const one = await startExchangeServer({ maxChainLength: 1 });
    try {
      const { token } = one.mint();
      const first = await exchange(subjectParams(token), 'crd-payer-a', one);
      assert.equal(first.status, 200, first.text);
      const second = await exchange(subjectParams(first.json.access_token, VENDOR), 'dtr-a', one);
      assertOAuthError(second, 400, 'invalid_grant');
    } finally {
      await one.close();
    }
  });
});

describe('sec-9: audit fails closed', () => {
  test('sec-9: when the audit record cannot be written no token is returned and the issued one is revoked', async () => {
    const { token } = srv.mint();
    const before = srv.tokens.size;
    srv.setAuditFailing(true);
    let res: TestResponse;
    try {
      res = await exchange(subjectParams(token));
    } finally {
      srv.setAuditFailing(false);
    }
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json.error, 'temporarily_unavailable');
    assert.equal(res.json.access_token, undefined);
    assert.equal(srv.tokens.size, before + 1, 'issue ran');
    const id = srv.revokedIds.at(-1)!;
    const issued = [...srv.tokens.entries()].find(([, g]) => g.tokenId === id);
    assert.ok(issued, 'the revoked id is the token just issued');
    assert.ok(srv.revoked.has(id));
    // The subject token itself is still usable afterwards.
    const ok = await exchange(subjectParams(token));
    assert.equal(ok.status, 200, ok.text);
  });
});

describe('sec-9: registration', () => {
  test('sec-9: registerTokenExchange refuses a bad configuration', () => {
    const base = {
      fhirBaseUrl: FHIR_BASE,
      resolveSubject: async () => undefined,
      issue: async () => ({ access_token: 'x', expires_in: 1, tokenId: 'y' }),
      audiences: AUDIENCES,
      instance: 'i',
    };
    const provider = srv.provider;
    assert.throws(
      () => registerTokenExchange(provider, { ...base, fhirBaseUrl: 'http://x/fhir' }),
      TypeError,
    );
    assert.throws(
      () => registerTokenExchange(provider, { ...base, audiences: [AUDIENCES[0]!, AUDIENCES[0]!] }),
      TypeError,
    );
    assert.throws(() => registerTokenExchange(provider, { ...base, maxChainLength: 0 }), TypeError);
    assert.throws(() => registerTokenExchange(provider, base), /already registered/);
  });
});
