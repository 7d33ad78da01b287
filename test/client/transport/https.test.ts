/**
 * postHook and getJson against loopback HTTPS servers started here with certificates made at
 * test time: https only (sec-2), certificate checks, TLS 1.2 minimum (HRex sec-9), size cap,
 * JSON only, mutual TLS, and errors that never carry the token.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerOptions } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import {
  getJson,
  HookCallError,
  postHook,
  type HookCallErrorCode,
} from '../../../src/client/transport/index.js';
import {
  certificateAuthority,
  clientCertificate,
  selfSignedCertificate,
  type PemPair,
} from '../../../src/tls/certs.js';
import { serverTlsOptions } from '../../../src/tls/options.js';

const JWT = 'eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ0ZXN0In0.c2lnbmF0dXJlLXNlY3JldC12YWx1ZQ';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  clientCn?: string;
}
type Handler = (seen: Seen, res: ServerResponse) => void;

interface Stub {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

let dir: string;
let pem: PemPair;
let files: { cert: string; key: string };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crdkit-posthook-'));
  pem = await selfSignedCertificate();
  files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  writeFileSync(files.cert, pem.cert);
  writeFileSync(files.key, pem.key, { mode: 0o600 });
});

/** A loopback HTTPS server (crdkit's server TLS options unless `tls` replaces them). */
async function stub(handler: Handler, tls?: ServerOptions): Promise<Stub> {
  const seen: Seen[] = [];
  const server: Server = createServer(tls ?? serverTlsOptions(files), (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const peer = (req.socket as TLSSocket).getPeerCertificate?.();
      const s: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        ...(peer?.subject?.CN ? { clientCn: String(peer.subject.CN) } : {}),
      };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/cds-services/order-sign-crd`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const json =
  (status: number, body: unknown, type = 'application/json'): Handler =>
  (_s, res) => {
    res.writeHead(status, { 'Content-Type': type });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };

const signal = () => new AbortController().signal;

/** Awaits a HookCallError with `code` that holds no token. */
async function rejectsWith(p: Promise<unknown>, code: HookCallErrorCode): Promise<HookCallError> {
  const err = await p.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof HookCallError, String(err));
  assert.equal(err.code, code);
  assert.ok(!err.message.includes(JWT) && !String(err.stack).includes(JWT));
  assert.ok(!JSON.stringify(err).includes(JWT));
  return err;
}

describe('postHook', () => {
  test('sec-2: posts compact JSON with the bearer JWT and returns the parsed answer', async () => {
    const s = await stub(json(200, { cards: [] }));
    try {
      const body = { hook: 'order-sign', context: { patientId: '123' } };
      const out = await postHook(s.url, body, { jwt: JWT, ca: pem.cert, signal: signal() });
      assert.deepEqual(out, { status: 200, body: { cards: [] } });
      const seen = s.seen[0]!;
      assert.equal(seen.method, 'POST');
      assert.equal(seen.url, '/cds-services/order-sign-crd');
      assert.equal(seen.headers.authorization, `Bearer ${JWT}`);
      assert.equal(seen.headers['content-type'], 'application/json');
      assert.equal(seen.body, JSON.stringify(body));
    } finally {
      await s.close();
    }
  });

  test('sec-2: discovery GET carries the JWT too', async () => {
    const s = await stub(json(200, { services: [] }));
    try {
      const out = await getJson(s.url, { jwt: JWT, ca: pem.cert, signal: signal() });
      assert.deepEqual(out, { status: 200, body: { services: [] } });
      assert.equal(s.seen[0]?.method, 'GET');
      assert.equal(s.seen[0]?.headers.authorization, `Bearer ${JWT}`);
    } finally {
      await s.close();
    }
  });

  test('sec-2: http:// and other schemes are refused before anything is sent', async () => {
    for (const url of ['http://127.0.0.1:1/cds-services/x', 'ftp://127.0.0.1/x', 'nope']) {
      await rejectsWith(postHook(url, {}, { jwt: JWT, signal: signal() }), 'ERR_HOOK_URL');
    }
    await rejectsWith(
      postHook('https://u:p@127.0.0.1:1/x', {}, { jwt: JWT, signal: signal() }),
      'ERR_HOOK_URL',
    );
  });

  test('sec-2: a malformed token or half a client certificate is refused before sending', async () => {
    const s = await stub(json(200, { cards: [] }));
    try {
      await rejectsWith(
        postHook(s.url, {}, { jwt: `${JWT}\r\nX-Evil: 1`, ca: pem.cert, signal: signal() }),
        'ERR_HOOK_INPUT',
      );
      await rejectsWith(
        postHook(s.url, {}, { jwt: JWT, ca: pem.cert, cert: pem.cert, signal: signal() }),
        'ERR_HOOK_INPUT',
      );
      assert.equal(s.seen.length, 0);
    } finally {
      await s.close();
    }
  });

  test('HRex sec-9: a server with an untrusted certificate is refused; the token is not sent', async () => {
    const s = await stub(json(200, { cards: [] }));
    try {
      const err = await rejectsWith(
        postHook(s.url, {}, { jwt: JWT, signal: signal() }),
        'ERR_HOOK_TLS',
      );
      assert.equal(err.message, 'the TLS handshake with the service failed');
      // Another CA's certificate is no better.
      const other = await selfSignedCertificate();
      await rejectsWith(
        postHook(s.url, {}, { jwt: JWT, ca: other.cert, signal: signal() }),
        'ERR_HOOK_TLS',
      );
      assert.equal(s.seen.length, 0);
    } finally {
      await s.close();
    }
  });

  test('HRex sec-9: a certificate for another host name is refused', async () => {
    const other = await selfSignedCertificate('other.example');
    const s = await stub(json(200, { cards: [] }), { cert: other.cert, key: other.key });
    try {
      // The certificate also names 127.0.0.1, so ask for it by the name "localhost".
      const url = s.url.replace('127.0.0.1', 'localhost');
      await rejectsWith(
        postHook(url, {}, { jwt: JWT, ca: other.cert, signal: signal() }),
        'ERR_HOOK_TLS',
      );
    } finally {
      await s.close();
    }
  });

  test('HRex sec-9: a server limited to TLS 1.1 is refused (TLS 1.2 minimum)', async () => {
    const old = {
      cert: pem.cert,
      key: pem.key,
      minVersion: 'TLSv1' as const,
      maxVersion: 'TLSv1.1' as const,
      ciphers: 'DEFAULT:@SECLEVEL=0',
    };
    const s = await stub(json(200, { cards: [] }), old);
    try {
      // Control: this Node/OpenSSL build does speak TLS 1.1 when a client allows it.
      const port = Number(new URL(s.url).port);
      const version = await new Promise<string>((resolve) => {
        const socket = connect({
          host: '127.0.0.1',
          port,
          ca: pem.cert,
          minVersion: 'TLSv1',
          maxVersion: 'TLSv1.1',
          ciphers: 'DEFAULT:@SECLEVEL=0',
        });
        socket.on('secureConnect', () => {
          resolve(socket.getProtocol() ?? '');
          socket.destroy();
        });
        socket.on('error', () => resolve('unavailable'));
      });
      assert.equal(version, 'TLSv1.1', 'the TLS 1.1 control handshake must succeed');
      await rejectsWith(
        postHook(s.url, {}, { jwt: JWT, ca: pem.cert, signal: signal() }),
        'ERR_HOOK_TLS',
      );
      assert.equal(s.seen.length, 0);
    } finally {
      await s.close();
    }
  });

  test('sec-2: responses over the size cap are refused (declared or streamed)', async () => {
    const big = { cards: [{ detail: 'x'.repeat(5000) }] };
    const declared = await stub(json(200, big));
    const streamed = await stub((_s, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"cards":[');
      res.write(`"${'y'.repeat(5000)}"`);
      res.end(']}');
    });
    try {
      for (const s of [declared, streamed]) {
        await rejectsWith(
          postHook(s.url, {}, { jwt: JWT, ca: pem.cert, signal: signal(), maxResponseBytes: 1024 }),
          'ERR_HOOK_TOO_LARGE',
        );
      }
      const ok = await postHook(declared.url, {}, { jwt: JWT, ca: pem.cert, signal: signal() });
      assert.equal(ok.status, 200);
    } finally {
      await declared.close();
      await streamed.close();
    }
  });

  test('CDS Hooks: JSON only; errors come back with their status and OperationOutcome', async () => {
    const html = await stub(json(200, `<html>${JWT}</html>`, 'text/html'));
    const broken = await stub(json(200, '{"cards":', 'application/json'));
    const outcome = {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'invalid' }],
    };
    const refused = await stub(json(400, outcome, 'application/fhir+json'));
    const down = await stub(json(503, 'busy', 'text/plain'));
    try {
      const opts = { jwt: JWT, ca: pem.cert, signal: signal() };
      const e1 = await rejectsWith(postHook(html.url, {}, opts), 'ERR_HOOK_BODY');
      assert.equal(e1.status, 200);
      await rejectsWith(postHook(broken.url, {}, opts), 'ERR_HOOK_BODY');
      assert.deepEqual(await postHook(refused.url, {}, opts), { status: 400, body: outcome });
      assert.deepEqual(await postHook(down.url, {}, opts), { status: 503, body: null });
    } finally {
      await Promise.all([html.close(), broken.close(), refused.close(), down.close()]);
    }
  });

  test('CDS Hooks: a deeply nested answer is refused', async () => {
    const s = await stub(json(200, `${'['.repeat(200)}${']'.repeat(200)}`));
    try {
      await rejectsWith(
        postHook(s.url, {}, { jwt: JWT, ca: pem.cert, signal: signal() }),
        'ERR_HOOK_BODY',
      );
    } finally {
      await s.close();
    }
  });

  test('found-3: the deadline signal aborts a call that hangs', async () => {
    const s = await stub(() => undefined);
    try {
      const controller = new AbortController();
      const pending = postHook(s.url, {}, { jwt: JWT, ca: pem.cert, signal: controller.signal });
      while (s.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
      controller.abort();
      await rejectsWith(pending, 'ERR_HOOK_ABORTED');
    } finally {
      await s.close();
    }
  });

  test('sec-2: an unreachable service is ERR_HOOK_NETWORK', async () => {
    const s = await stub(json(200, {}));
    const url = s.url;
    await s.close();
    await rejectsWith(
      postHook(url, {}, { jwt: JWT, ca: pem.cert, signal: signal() }),
      'ERR_HOOK_NETWORK',
    );
  });
});

describe('postHook: mutual TLS', () => {
  let ca: PemPair;
  let client: PemPair;
  let mtls: Stub;

  before(async () => {
    ca = await certificateAuthority();
    client = await clientCertificate(ca, [['CN', 'ehr-crd-client']]);
    const caFile = join(dir, 'client-ca.pem');
    writeFileSync(caFile, ca.cert);
    mtls = await stub(
      json(200, { cards: [] }),
      serverTlsOptions({ ...files, ca: caFile, requestCert: true }),
    );
  });
  after(() => mtls.close());

  test('sec-2: with a client certificate from the trusted CA the call goes through', async () => {
    const out = await postHook(
      mtls.url,
      {},
      {
        jwt: JWT,
        ca: pem.cert,
        cert: client.cert,
        key: client.key,
        signal: signal(),
      },
    );
    assert.equal(out.status, 200);
    assert.equal(mtls.seen.at(-1)?.clientCn, 'ehr-crd-client');
  });

  test('sec-2: without a client certificate the server refuses the connection', async () => {
    const before = mtls.seen.length;
    const err = await postHook(mtls.url, {}, { jwt: JWT, ca: pem.cert, signal: signal() }).then(
      () => assert.fail('accepted without a client certificate'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HookCallError);
    assert.ok(['ERR_HOOK_TLS', 'ERR_HOOK_NETWORK'].includes(err.code), err.code);
    assert.equal(mtls.seen.length, before);
  });
});
