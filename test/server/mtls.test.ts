/**
 * Mutual TLS (sec-2) and the binding of a client's token to its certificate (HRex sec-12,
 * RFC 8705 style): a throw-away CA and client certificates are generated at test time.
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { generateClientKeyPair, signCdsJwt, type ClientKeyPair } from '../../src/auth/sign.js';
import { certificateAuthority, clientCertificate, type PemPair } from '../../src/tls/certs.js';
import { startTestServer, TEST_ISS, type TestServer } from '../helpers/server.js';

const ISS_B = 'https://ehr-b.test/cds-client';
const DISCOVERY = '/cds-services';

let ca: PemPair;
let clientA: PemPair;
let clientB: PemPair;
let rogue: PemPair;
let pairB: ClientKeyPair;
before(async () => {
  ca = await certificateAuthority('crdkit test CA');
  const otherCa = await certificateAuthority('crdkit test CA');
  clientA = await clientCertificate(ca, [
    ['CN', 'client-a'],
    ['O', 'Hospital A'],
  ]);
  clientB = await clientCertificate(ca, [['CN', 'client-b']]);
  // Same names as client A, issued by another CA with the same name.
  rogue = await clientCertificate(otherCa, [
    ['CN', 'client-a'],
    ['O', 'Hospital A'],
  ]);
  pairB = await generateClientKeyPair('ES384');
});

const portOf = (s: TestServer) => Number(new URL(s.base).port);

interface Attempt {
  /** The error the connection ended with, if any. */
  error?: string;
  /** Everything the server sent back. */
  received: string;
  /** Whether the handshake completed on the client's side. */
  secure: boolean;
}

/** Connects, and if the handshake completes on our side, sends a plain HTTP request. */
function attempt(s: TestServer, opts: { client?: PemPair; maxVersion?: 'TLSv1.2' }) {
  return new Promise<Attempt>((resolve) => {
    let error: string | undefined;
    let received = '';
    let secure = false;
    const socket = connect(
      {
        host: '127.0.0.1',
        port: portOf(s),
        servername: 'localhost',
        ca: s.ca,
        ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}),
        ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
      },
      () => {
        secure = true;
        // With TLS 1.3 the client finishes first: the server's verdict on the client
        // certificate arrives after this point, as an alert.
        socket.write(`GET ${DISCOVERY} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      },
    );
    socket.setTimeout(5000, () => {
      error ??= 'timeout';
      socket.destroy();
    });
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
    socket.on('close', () => resolve({ ...(error ? { error } : {}), received, secure }));
  });
}

interface Res {
  status: number;
  json: any;
}

/** GET with a client certificate and a bearer token. */
function get(s: TestServer, path: string, client: PemPair | undefined, token: string) {
  return new Promise<Res>((resolve, reject) => {
    const req = request(`${s.base}${path}`, {
      ca: s.ca,
      servername: 'localhost',
      agent: false,
      ...(client ? { cert: client.cert, key: client.key } : {}),
      headers: { authorization: `Bearer ${token}` },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
      });
    });
    req.end();
  });
}

const tokenB = (s: TestServer, path: string) =>
  signCdsJwt({ privateJwk: pairB.privateJwk, iss: ISS_B, aud: `${s.base}${path}` });

describe('sec-2: mutual TLS (tls.requestCert with tls.ca)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ mutualTls: { ca: ca.cert } });
  });
  after(async () => server.close());

  const requestLines = () => server.logs.filter((l) => l.includes('"msg":"request"')).length;
  const settle = () => new Promise((r) => setTimeout(r, 200));

  it('sec-2: a client without a certificate fails the handshake: an alert, no HTTP', async () => {
    const before = requestLines();
    for (const maxVersion of [undefined, 'TLSv1.2'] as const) {
      const r = await attempt(server, maxVersion ? { maxVersion } : {});
      const v = maxVersion ?? 'TLSv1.3';
      // TLS 1.3: "certificate required" alert; TLS 1.2: "handshake failure" alert.
      assert.match(r.error ?? 'none', /ALERT_(CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE)/, v);
      assert.equal(r.received, '', `${v}: no HTTP answer`);
    }
    await settle();
    assert.equal(requestLines(), before, 'the server never read a request');
  });

  it('sec-2: a client certificate from another CA fails the handshake: the connection is dropped, no HTTP', async () => {
    const before = requestLines();
    // Node checks the chain when OpenSSL's handshake is done and then drops the connection
    // without an alert: with TLS 1.2 the client's handshake never completes (reset); with
    // TLS 1.3 the client has finished its side and sees the connection closed, unanswered.
    const r12 = await attempt(server, { client: rogue, maxVersion: 'TLSv1.2' });
    assert.equal(r12.secure, false, 'TLSv1.2: handshake not completed');
    assert.ok(r12.error && r12.error !== 'timeout', `TLSv1.2: ${r12.error}`);
    assert.equal(r12.received, '');
    const r13 = await attempt(server, { client: rogue });
    assert.notEqual(r13.error, 'timeout');
    assert.equal(r13.received, '', 'TLSv1.3: no HTTP answer');
    await settle();
    assert.equal(requestLines(), before, 'the server never read a request');
  });

  it('sec-2: with a certificate from the CA the connection is served (401 without a token)', async () => {
    const before = requestLines();
    const r = await attempt(server, { client: clientA });
    assert.match(r.received, /^HTTP\/1\.1 401 /);
    await settle();
    assert.equal(requestLines(), before + 1, 'the access log counts requests read');
  });

  it('sec-2: a CA-issued client certificate and a valid JWT get 200', async () => {
    const res = await get(server, DISCOVERY, clientA, await server.token(DISCOVERY));
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.json.services));
  });
});

describe('HRex sec-12: a token is bound to its client certificate', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      mutualTls: { ca: ca.cert },
      extraClients: [{ iss: ISS_B, publicJwk: pairB.publicJwk }],
      certificates: {
        // A by subject (common name), B by thumbprint.
        [TEST_ISS]: { subject: 'client-a' },
        [ISS_B]: { sha256: new X509Certificate(clientB.cert).fingerprint256.toLowerCase() },
      },
    });
  });
  after(async () => server.close());

  it("HRex sec-12: A's token over A's connection gets 200", async () => {
    const res = await get(server, DISCOVERY, clientA, await server.token(DISCOVERY));
    assert.equal(res.status, 200);
  });

  it("HRex sec-12: A's token over B's connection is a 401 ERR_CLIENT_CERTIFICATE that echoes no certificate data", async () => {
    const res = await get(server, DISCOVERY, clientB, await server.token(DISCOVERY));
    assert.equal(res.status, 401);
    assert.equal(res.json.resourceType, 'OperationOutcome');
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_CLIENT_CERTIFICATE');
    assert.equal(res.json.issue[0].code, 'security');
    const text = JSON.stringify(res.json);
    const fp = new X509Certificate(clientB.cert).fingerprint256;
    for (const secret of ['client-b', 'client-a', fp, fp.replace(/:/g, '')]) {
      assert.ok(!text.toLowerCase().includes(secret.toLowerCase()), secret);
    }
  });

  it("HRex sec-12: B's token over B's connection gets 200; over A's connection, 401", async () => {
    assert.equal(
      (await get(server, DISCOVERY, clientB, await tokenB(server, DISCOVERY))).status,
      200,
    );
    const res = await get(server, DISCOVERY, clientA, await tokenB(server, DISCOVERY));
    assert.equal(res.status, 401);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_CLIENT_CERTIFICATE');
  });

  it('HRex sec-12: the binding applies to hook calls too', async () => {
    const path = '/cds-services/order-sign-crd';
    const post = (client: PemPair, token: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${server.base}${path}`, {
          method: 'POST',
          ca: server.ca,
          servername: 'localhost',
          agent: false,
          cert: client.cert,
          key: client.key,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        });
        req.on('error', reject);
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.end('{}');
      });
    assert.equal(await post(clientB, await server.token(path)), 401);
    // Over its own connection the token passes authentication (then {} is a 400).
    assert.equal(await post(clientA, await server.token(path)), 400);
  });

  it('sec-2: the access log names the refusal code and no certificate data', async () => {
    const requests = () => server.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    const sleep = () => new Promise((r) => setTimeout(r, 20));
    // Access lines are written after the response is sent: let earlier ones land first.
    let before = requests().length;
    for (let i = 0; i < 10; i++, await sleep()) before = requests().length;
    await get(server, DISCOVERY, clientB, await server.token(DISCOVERY));
    for (let i = 0; i < 100 && requests().length === before; i++) await sleep();
    const added = requests().slice(before);
    assert.equal(added.length, 1);
    const line = added[0];
    assert.equal(line.status, 401);
    assert.equal(line.code, 'ERR_CLIENT_CERTIFICATE');
    const all = server.logs.join('\n');
    assert.ok(!all.includes('client-b') && !all.includes('BEGIN CERTIFICATE'));
  });
});

describe('HRex sec-12: a bound client without mutual TLS is refused, not let through', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ certificates: { [TEST_ISS]: { subject: 'client-a' } } });
  });
  after(async () => server.close());

  it('HRex sec-12: no verified client certificate on the connection → 401 ERR_CLIENT_CERTIFICATE', async () => {
    // The server does not ask for a certificate: the one offered is never verified.
    const res = await get(server, DISCOVERY, clientA, await server.token(DISCOVERY));
    assert.equal(res.status, 401);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_CLIENT_CERTIFICATE');
  });
});
