/**
 * Certificate and key reload without dropping connections (sec-2): SIGHUP and file changes
 * install a new certificate for new handshakes; open keep-alive connections keep working.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { selfSignedCertificate, type PemPair } from '../../src/tls/certs.js';
import { reloadServerTls, watchServerTls, type ReloadLog } from '../../src/tls/reload.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface Line {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function captureLog(): ReloadLog & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (obj: object, msg: string) =>
    void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

/** Polls `check` every 20 ms for at most `ms`. */
async function waitFor(check: () => boolean, ms = 4000): Promise<void> {
  for (let waited = 0; !check(); waited += 20) {
    if (waited >= ms) assert.fail('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

interface Got {
  status: number;
  reused: boolean;
  socket: TLSSocket;
  fingerprint: string;
}

const DISCOVERY = '/cds-services';

/** GET discovery (valid JWT) through `agent` (keep-alive) or a fresh connection. */
async function get(server: TestServer, ca: string, agent?: Agent): Promise<Got> {
  const token = await server.token(DISCOVERY);
  return new Promise<Got>((resolve, reject) => {
    const req = request(`${server.base}${DISCOVERY}`, {
      ca,
      servername: 'localhost',
      agent: agent ?? false,
      headers: { authorization: `Bearer ${token}` },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const socket = res.socket as TLSSocket;
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          reused: req.reusedSocket,
          socket,
          fingerprint: socket.getPeerCertificate().fingerprint256,
        }),
      );
    });
    req.end();
  });
}

describe('sec-2: certificate and key reload without dropping connections', () => {
  let server: TestServer;
  let files: { cert: string; key: string };
  let oldPem: PemPair;
  let newPem: PemPair;
  let agent: Agent;
  let stop: (() => void) | undefined;
  let closed = false;
  beforeEach(async () => {
    closed = false;
    server = await startTestServer();
    files = { cert: join(server.dataDir, 'cert.pem'), key: join(server.dataDir, 'key.pem') };
    oldPem = { cert: server.ca, key: '' };
    newPem = await selfSignedCertificate('localhost');
    agent = new Agent({ keepAlive: true, maxSockets: 1 });
  });
  afterEach(async () => {
    stop?.();
    stop = undefined;
    agent.destroy();
    if (!closed) await server.close();
  });

  // One trust anchor per request: both certificates are self-signed with the same name, which
  // OpenSSL's chain lookup cannot tell apart. The keep-alive agent always trusts the old one.
  const OLD = () => oldPem.cert;
  const NEW = () => newPem.cert;
  const installNewFiles = () => {
    // Atomic replacement, as deployment tools do: write aside, then rename over.
    writeFileSync(`${files.key}.tmp`, newPem.key, { mode: 0o600 });
    writeFileSync(`${files.cert}.tmp`, newPem.cert);
    renameSync(`${files.key}.tmp`, files.key);
    renameSync(`${files.cert}.tmp`, files.cert);
  };

  /** The common scenario: open a keep-alive connection, reload, check old and new. */
  async function proveReload(trigger: () => void, log: ReturnType<typeof captureLog>) {
    const first = await get(server, OLD(), agent);
    assert.equal(first.status, 200);
    assert.equal(first.fingerprint, fingerprint(oldPem.cert));
    installNewFiles();
    trigger();
    await waitFor(() => log.lines.some((l) => l.msg.includes('reloaded')));
    // The open connection still works, with the certificate it was established with.
    const again = await get(server, OLD(), agent);
    assert.equal(again.status, 200);
    assert.equal(again.reused, true, 'the second request went over the same connection');
    assert.equal(again.socket, first.socket);
    assert.equal(again.fingerprint, fingerprint(oldPem.cert));
    // A new connection sees the new certificate.
    const fresh = await get(server, NEW());
    assert.equal(fresh.status, 200);
    assert.equal(fresh.fingerprint, fingerprint(newPem.cert));
    assert.ok(!log.lines.some((l) => l.level === 'error'), JSON.stringify(log.lines));
  }

  it('sec-2: SIGHUP installs the new certificate; an open keep-alive connection keeps working', async () => {
    const log = captureLog();
    const listeners = process.listenerCount('SIGHUP');
    stop = watchServerTls(server.app.server, files, log, { watchFiles: false });
    assert.equal(process.listenerCount('SIGHUP'), listeners + 1);
    await proveReload(() => process.kill(process.pid, 'SIGHUP'), log);
    assert.equal(log.lines.find((l) => l.msg.includes('reloaded'))?.obj.reason, 'signal');
    stop();
    assert.equal(process.listenerCount('SIGHUP'), listeners, 'stop removes the SIGHUP handler');
  });

  it('sec-2: a change of the files is picked up (debounced) without a signal', async () => {
    const log = captureLog();
    stop = watchServerTls(server.app.server, files, log, { signal: false });
    await proveReload(() => undefined, log);
    const reloads = log.lines.filter((l) => l.msg.includes('reloaded'));
    // Four file events (two writes, two renames) within the quiet time: one reload.
    assert.equal(reloads.length, 1);
    assert.equal(reloads[0]!.obj.reason, 'file change');
  });

  it('sec-2: a bad new pair is refused with an error naming the key; the old certificate stays', async () => {
    const log = captureLog();
    stop = watchServerTls(server.app.server, files, log, { signal: false, watchFiles: false });
    const first = await get(server, OLD(), agent);
    // The new certificate with the old key: they do not match.
    writeFileSync(files.cert, newPem.cert);
    assert.equal(reloadServerTls(server.app.server, files, log), false);
    const refused = log.lines.find((l) => l.level === 'error');
    assert.equal(refused?.obj.setting, 'tls.key');
    assert.match(refused!.msg, /tls\.key: does not match the certificate in tls\.cert/);
    assert.match(refused!.msg, /previous certificate stays in use/);
    // A missing file is refused the same way, naming it.
    rmSync(files.key);
    assert.equal(reloadServerTls(server.app.server, files, log), false);
    assert.equal(log.lines.filter((l) => l.level === 'error')[1]?.obj.setting, 'tls.key');
    // Old connection and new connections alike still get the old certificate.
    const again = await get(server, OLD(), agent);
    assert.equal(again.reused, true);
    assert.equal(again.status, 200);
    const fresh = await get(server, OLD());
    assert.equal(fresh.fingerprint, fingerprint(oldPem.cert));
    // No key material or certificate in the log lines.
    const text = JSON.stringify(log.lines);
    assert.ok(!text.includes('BEGIN'), text);
    // Completing the pair makes the next reload succeed.
    writeFileSync(files.key, newPem.key, { mode: 0o600 });
    assert.equal(reloadServerTls(server.app.server, files, log), true);
    assert.equal((await get(server, NEW())).fingerprint, fingerprint(newPem.cert));
    assert.equal(first.status, 200);
  });

  it('sec-2: file events that change nothing do not reload; closing the server stops watching', async () => {
    const log = captureLog();
    const listeners = process.listenerCount('SIGHUP');
    stop = watchServerTls(server.app.server, files, log, { debounceMs: 50 });
    // Rewrite the same bytes, and touch an unrelated file in the folder.
    writeFileSync(files.cert, server.ca);
    writeFileSync(join(server.dataDir, 'unrelated.txt'), 'x');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(log.lines, []);
    await server.close();
    closed = true;
    assert.equal(process.listenerCount('SIGHUP'), listeners);
  });
});
