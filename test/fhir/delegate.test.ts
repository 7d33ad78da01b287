/**
 * sec-9, client side: the CRD server exchanges the EHR's token for a delegate token at the EHR's
 * token endpoint (RFC 8693) instead of forwarding it. Proven against the oidc-provider grant of
 * test/ehr/exchange and against HTTPS stubs on loopback that record what they receive.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { generateClientKeyPair } from '../../src/auth/sign.js';
import {
  ACCESS_TOKEN_TYPE,
  DelegateError,
  exchangeToken,
  type ExchangeTokenOptions,
} from '../../src/fhir/delegate.js';
import { selfSignedCertificate, type PemPair } from '../../src/tls/certs.js';
import { BASE_TLS } from '../../src/tls/options.js';
import {
  AUDIENCES,
  JWT_CLIENT,
  SECRETS,
  startExchangeServer,
  type ExchangeServer,
} from '../ehr/exchange/harness.js';

const DTR = AUDIENCES[0]!.audience;

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** An HTTPS stub on loopback: records each request, answers with `handler`. */
async function stub(
  pem: PemPair,
  handler: (seen: Seen, res: ServerResponse) => void,
  tls: Record<string, unknown> = {},
): Promise<{ url: string; seen: Seen[]; server: Server; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer({ ...BASE_TLS, cert: pem.cert, key: pem.key, ...tls }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/token`,
    seen,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const json = (status: number, body: unknown) => (_: Seen, res: ServerResponse) => {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

const GOOD = {
  access_token: 'delegate-token-value',
  issued_token_type: ACCESS_TOKEN_TYPE,
  token_type: 'Bearer',
  expires_in: 25,
  scope: 'patient/Coverage.rs',
};

const SUBJECT = 'subject-token-must-not-leak-0123456789';

let pem: PemPair;
let as: ExchangeServer;
before(async () => {
  pem = await selfSignedCertificate('localhost', 2);
  as = await startExchangeServer();
});
after(async () => {
  await as.close();
});

/** Asserts a DelegateError with `code`, whose message and fields carry no secret. */
async function rejectsWith(
  p: Promise<unknown>,
  code: string,
  secrets: string[] = [SUBJECT],
): Promise<DelegateError> {
  const err = await p.then(
    () => assert.fail('expected a DelegateError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof DelegateError, String(err));
  assert.equal(err.code, code, err.message);
  const text = `${err.message} ${JSON.stringify(err)} ${err.stack}`;
  for (const s of secrets) assert.ok(!text.includes(s), `the error quotes ${s.slice(0, 8)}…`);
  return err;
}

describe('sec-9: exchangeToken against the EHR authorization server', () => {
  test('sec-9: private_key_jwt exchange returns a delegate token for the audience', async () => {
    const { token, grant } = as.mint({ clientId: JWT_CLIENT });
    const out = await exchangeToken({
      tokenEndpoint: as.tokenEndpoint,
      subjectToken: token,
      audience: DTR,
      scope: 'patient/Coverage.rs',
      client: { clientId: JWT_CLIENT, privateJwk: as.jwtClientKey },
      ca: as.ca,
    });
    assert.equal(out.issuedTokenType, ACCESS_TOKEN_TYPE);
    assert.equal(out.scope, 'patient/Coverage.rs');
    assert.ok(out.expiresIn > 0 && out.expiresIn <= 30);
    const issued = as.tokens.get(out.accessToken)!;
    assert.deepEqual(issued.actors, [DTR]);
    assert.equal(issued.clientId, JWT_CLIENT);
    assert.equal(issued.clientName, 'Payer A CRD server');
    assert.equal(issued.patient, grant.patient);
  });

  test('sec-9: client_secret_basic exchange returns a delegate token', async () => {
    const { token } = as.mint();
    const out = await exchangeToken({
      tokenEndpoint: as.tokenEndpoint,
      subjectToken: token,
      audience: DTR,
      client: { clientId: 'crd-payer-a', clientSecret: SECRETS['crd-payer-a'] },
      ca: as.ca,
    });
    assert.deepEqual(as.tokens.get(out.accessToken)!.actors, [DTR]);
  });

  test('sec-9: a refusal becomes ERR_DELEGATE_REFUSED with the OAuth code only', async () => {
    const { token } = as.mint();
    const err = await rejectsWith(
      exchangeToken({
        tokenEndpoint: as.tokenEndpoint,
        subjectToken: token,
        audience: 'https://unknown.example/api',
        client: { clientId: 'crd-payer-a', clientSecret: SECRETS['crd-payer-a'] },
        ca: as.ca,
      }),
      'ERR_DELEGATE_REFUSED',
      [token, SECRETS['crd-payer-a']],
    );
    assert.equal(err.oauthError, 'invalid_target');
    assert.equal(err.status, 400);
    assert.ok(!err.message.includes('registered'), 'error_description is not copied');
  });

  test('sec-9: a client assertion signed with an unregistered key is refused (invalid_client)', async () => {
    const { token } = as.mint({ clientId: JWT_CLIENT });
    const other = await generateClientKeyPair('ES384');
    const err = await rejectsWith(
      exchangeToken({
        tokenEndpoint: as.tokenEndpoint,
        subjectToken: token,
        audience: DTR,
        client: { clientId: JWT_CLIENT, privateJwk: other.privateJwk },
        ca: as.ca,
      }),
      'ERR_DELEGATE_REFUSED',
      [token],
    );
    assert.equal(err.oauthError, 'invalid_client');
  });
});

describe('sec-9: exchangeToken on the wire', () => {
  test('sec-9: the subject token goes to the token endpoint only, in the form body, with a SMART client assertion', async () => {
    const { privateJwk, publicJwk } = await generateClientKeyPair('RS384');
    const s = await stub(pem, json(200, GOOD));
    try {
      const t0 = Math.floor(Date.now() / 1000);
      const out = await exchangeToken({
        tokenEndpoint: s.url,
        subjectToken: SUBJECT,
        audience: DTR,
        resource: 'https://ehr.example.org/fhir',
        client: { clientId: 'crd-payer-a', privateJwk },
        ca: pem.cert,
      });
      assert.deepEqual(out, {
        accessToken: GOOD.access_token,
        expiresIn: 25,
        scope: GOOD.scope,
        issuedTokenType: ACCESS_TOKEN_TYPE,
      });
      assert.equal(s.seen.length, 1);
      const req = s.seen[0]!;
      assert.equal(req.method, 'POST');
      assert.equal(req.url, '/token');
      assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.equal(req.headers.authorization, undefined);
      const form = new URLSearchParams(req.body);
      assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:token-exchange');
      assert.equal(form.get('subject_token'), SUBJECT);
      assert.equal(form.get('subject_token_type'), ACCESS_TOKEN_TYPE);
      assert.equal(form.get('requested_token_type'), ACCESS_TOKEN_TYPE);
      assert.equal(form.get('audience'), DTR);
      assert.equal(form.get('resource'), 'https://ehr.example.org/fhir');
      assert.equal(form.get('client_id'), 'crd-payer-a');
      assert.equal(
        form.get('client_assertion_type'),
        'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      );
      const assertion = form.get('client_assertion')!;
      assert.deepEqual(decodeProtectedHeader(assertion), {
        alg: 'RS384',
        typ: 'JWT',
        kid: publicJwk.kid,
      });
      const claims = decodeJwt(assertion);
      assert.equal(claims.iss, 'crd-payer-a');
      assert.equal(claims.sub, 'crd-payer-a');
      assert.equal(claims.aud, s.url);
      assert.ok(claims.exp! - t0 <= 300 && claims.exp! > t0);
      assert.match(String(claims.jti), /^[0-9a-f]{64}$/);
    } finally {
      await s.close();
    }
  });

  test('sec-9: client_secret_basic sends form-encoded credentials in Authorization', async () => {
    const s = await stub(pem, json(200, GOOD));
    try {
      await exchangeToken({
        tokenEndpoint: s.url,
        subjectToken: SUBJECT,
        audience: DTR,
        client: { clientId: 'crd a', clientSecret: 's:e/c' },
        ca: pem.cert,
      });
      const auth = s.seen[0]!.headers.authorization!;
      assert.equal(Buffer.from(auth.slice(6), 'base64').toString(), 'crd+a:s%3Ae%2Fc');
      assert.equal(new URLSearchParams(s.seen[0]!.body).get('client_assertion'), null);
    } finally {
      await s.close();
    }
  });

  test('sec-9: a redirect is not followed: the token never reaches the other host', async () => {
    const trap = await stub(pem, json(200, GOOD));
    const s = await stub(pem, (_, res) => {
      res.writeHead(307, { Location: trap.url });
      res.end();
    });
    try {
      const err = await rejectsWith(
        exchangeToken({
          tokenEndpoint: s.url,
          subjectToken: SUBJECT,
          audience: DTR,
          client: { clientId: 'c', clientSecret: 's' },
          ca: pem.cert,
        }),
        'ERR_DELEGATE_STATUS',
      );
      assert.equal(err.status, 307);
      assert.equal(trap.seen.length, 0);
    } finally {
      await s.close();
      await trap.close();
    }
  });

  test('sec-9: http:// and malformed token endpoints are refused before anything is sent', async () => {
    const seen: string[] = [];
    const plain = createHttpServer((req, res) => {
      seen.push(req.url ?? '');
      res.end();
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const { port } = plain.address() as AddressInfo;
    try {
      const base: Omit<ExchangeTokenOptions, 'tokenEndpoint'> = {
        subjectToken: SUBJECT,
        audience: DTR,
        client: { clientId: 'c', clientSecret: 's' },
      };
      for (const tokenEndpoint of [
        `http://127.0.0.1:${port}/token`,
        'not a url',
        `https://user:pw@127.0.0.1:${port}/token`,
        `https://127.0.0.1:${port}/token#frag`,
      ]) {
        await rejectsWith(exchangeToken({ ...base, tokenEndpoint }), 'ERR_DELEGATE_ENDPOINT');
      }
      assert.deepEqual(seen, []);
    } finally {
      plain.close();
    }
  });

  test('sec-9: missing inputs and unusable keys are ERR_DELEGATE_INPUT', async () => {
    const { publicJwk } = await generateClientKeyPair('ES384');
    const base = {
      tokenEndpoint: 'https://127.0.0.1:1/token',
      subjectToken: SUBJECT,
      audience: DTR,
      client: { clientId: 'c', clientSecret: 's' },
    };
    await rejectsWith(exchangeToken({ ...base, subjectToken: '' }), 'ERR_DELEGATE_INPUT');
    await rejectsWith(exchangeToken({ ...base, audience: '' }), 'ERR_DELEGATE_INPUT');
    await rejectsWith(
      exchangeToken({ ...base, client: { clientId: 'c', privateJwk: publicJwk } }),
      'ERR_DELEGATE_INPUT',
    );
  });

  test('sec-9: an untrusted certificate is ERR_DELEGATE_TLS and the token is not sent', async () => {
    const s = await stub(pem, json(200, GOOD));
    try {
      await rejectsWith(
        exchangeToken({
          tokenEndpoint: s.url,
          subjectToken: SUBJECT,
          audience: DTR,
          client: { clientId: 'c', clientSecret: 's' },
        }),
        'ERR_DELEGATE_TLS',
      );
      assert.equal(s.seen.length, 0);
    } finally {
      await s.close();
    }
  });

  test('sec-9: a token endpoint limited to TLS 1.1 is refused (TLS 1.2 minimum)', async () => {
    const s = await stub(pem, json(200, GOOD), {
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT:@SECLEVEL=0',
    });
    try {
      const err = await exchangeToken({
        tokenEndpoint: s.url,
        subjectToken: SUBJECT,
        audience: DTR,
        client: { clientId: 'c', clientSecret: 's' },
        ca: pem.cert,
      }).then(
        () => assert.fail('a TLS 1.1 endpoint was accepted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof DelegateError);
      assert.equal(err.code, 'ERR_DELEGATE_TLS');
      assert.equal(err.message, 'TLS handshake with the token endpoint failed');
      assert.equal(s.seen.length, 0);
    } finally {
      await s.close();
    }
  });

  test('sec-9: errors are mapped to codes without the token or the response body', async () => {
    const cases: Array<[string, (seen: Seen, res: ServerResponse) => void, string]> = [
      [
        'refusal quoting the token',
        json(400, { error: 'invalid_grant', error_description: `bad token ${SUBJECT}` }),
        'ERR_DELEGATE_REFUSED',
      ],
      ['refusal with a strange code', json(400, { error: `x ${SUBJECT}` }), 'ERR_DELEGATE_STATUS'],
      ['server error', json(500, { error: 'server_error' }), 'ERR_DELEGATE_STATUS'],
      ['not JSON', json(200, `<html>${SUBJECT}</html>`), 'ERR_DELEGATE_RESPONSE'],
      [
        'wrong issued_token_type',
        json(200, { ...GOOD, issued_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
        'ERR_DELEGATE_RESPONSE',
      ],
      ['not Bearer', json(200, { ...GOOD, token_type: 'N_A' }), 'ERR_DELEGATE_RESPONSE'],
      ['no expires_in', json(200, { ...GOOD, expires_in: undefined }), 'ERR_DELEGATE_RESPONSE'],
      ['too large', json(200, { ...GOOD, pad: 'x'.repeat(70_000) }), 'ERR_DELEGATE_RESPONSE'],
    ];
    for (const [name, handler, code] of cases) {
      const s = await stub(pem, handler);
      try {
        const err = await rejectsWith(
          exchangeToken({
            tokenEndpoint: s.url,
            subjectToken: SUBJECT,
            audience: DTR,
            client: { clientId: 'c', clientSecret: 'secret-value-xyz' },
            ca: pem.cert,
          }),
          code,
          [SUBJECT, 'secret-value-xyz', '<html>', 'pad'],
        );
        if (name === 'refusal quoting the token') assert.equal(err.oauthError, 'invalid_grant');
        if (name === 'refusal with a strange code') assert.equal(err.oauthError, undefined);
      } finally {
        await s.close();
      }
    }
  });

  test('sec-9: a silent endpoint times out (ERR_DELEGATE_TIMEOUT), and an abort signal stops the exchange', async () => {
    const s = await stub(pem, () => undefined);
    try {
      const t0 = Date.now();
      await rejectsWith(
        exchangeToken({
          tokenEndpoint: s.url,
          subjectToken: SUBJECT,
          audience: DTR,
          client: { clientId: 'c', clientSecret: 's' },
          ca: pem.cert,
          timeoutMs: 200,
        }),
        'ERR_DELEGATE_TIMEOUT',
      );
      assert.ok(Date.now() - t0 < 2000);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      await rejectsWith(
        exchangeToken({
          tokenEndpoint: s.url,
          subjectToken: SUBJECT,
          audience: DTR,
          client: { clientId: 'c', clientSecret: 's' },
          ca: pem.cert,
          signal: ac.signal,
        }),
        'ERR_DELEGATE_TIMEOUT',
      );
    } finally {
      await s.close();
    }
  });

  test('sec-9: an endpoint that is not listening is ERR_DELEGATE_NETWORK', async () => {
    const s = await stub(pem, json(200, GOOD));
    const url = s.url;
    await s.close();
    await rejectsWith(
      exchangeToken({
        tokenEndpoint: url,
        subjectToken: SUBJECT,
        audience: DTR,
        client: { clientId: 'c', clientSecret: 's' },
        ca: pem.cert,
      }),
      'ERR_DELEGATE_NETWORK',
    );
  });
});
