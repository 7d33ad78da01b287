/**
 * Replay protection across instances: two real `crdkit serve` processes share one Redis
 * (`replay` = `CRDKIT_TEST_REDIS`). A token accepted by one is refused by the other. Both
 * configurations name the same base URL (different listen ports), so one JWT addressed to
 * `{baseUrl}/cds-services/order-sign-crd` is valid at either. Skips without Redis.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { replayKey } from '../../src/auth/replay.js';
import { REDIS_REPLAY_PREFIX } from '../../src/auth/replay-redis.js';
import { generateClientKeyPair, signCdsJwt, type ClientKeyPair } from '../../src/auth/sign.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import { connectRedis } from '../../src/store/redis.js';
import { selfSignedCertificate } from '../../src/tls/certs.js';
import { send, type TestResponse } from '../helpers/https.js';
import { orderRequest } from '../helpers/requests.js';
import { freePort } from '../helpers/server.js';

const ID = 'sec-1 (CDS Hooks JWT)';
const REDIS = process.env.CRDKIT_TEST_REDIS;
const needsRedis = REDIS ? {} : { skip: 'CRDKIT_TEST_REDIS is not set: no Redis to share' };
const SIGN = '/cds-services/order-sign-crd';
/** tsx, resolved from here: `--import tsx` would be resolved from the child's cwd. */
const TSX = import.meta.resolve('tsx');
const MAIN = join(PACKAGE_ROOT, 'src', 'cli', 'main.ts');
const START_TIMEOUT_MS = 30_000;

interface Instance {
  name: string;
  port: number;
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
}

/** Starts `crdkit serve --config file` and resolves once it prints its listening line. */
function startInstance(name: string, port: number, cwd: string, config: string): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', '--config', config], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  const instance: Instance = { name, port, child, stdout: [], stderr: [] };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => instance.stdout.push(d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start in time:\n${instance.stderr.join('')}`));
    }, START_TIMEOUT_MS);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      instance.stderr.push(d);
      if (instance.stderr.join('').includes('crdkit: CRD server listening on')) {
        clearTimeout(timer);
        resolve(instance);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}):\n${instance.stderr.join('')}`));
    });
  });
}

/** SIGTERM, then SIGKILL after 10 s; resolves with the exit code (null when killed). */
function stopInstance(instance: Instance): Promise<number | null> {
  const { child } = instance;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

describe('replay store shared by two server processes through Redis', needsRedis, () => {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-replay-shared-'));
  const iss = `https://ehr.test/replay-shared/${randomUUID()}`;
  const instances: Instance[] = [];
  const tokens: string[] = [];
  let ca: string;
  let pair: ClientKeyPair;
  let base: string;
  let a: Instance;
  let b: Instance;

  before(async () => {
    const pem = await selfSignedCertificate('localhost');
    ca = pem.cert;
    writeFileSync(join(dir, 'cert.pem'), pem.cert);
    writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
    pair = await generateClientKeyPair('ES384');
    const [portA, portB] = [await freePort(), await freePort()];
    base = `https://localhost:${portA}`;
    const config = (port: number, data: string) => ({
      baseUrl: base,
      listen: { host: '127.0.0.1', port },
      tls: { cert: 'cert.pem', key: 'key.pem' },
      clients: [{ iss, name: 'shared test EHR', jwks: { keys: [pair.publicJwk] } }],
      rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
      dataDir: data,
      replay: REDIS,
      log: { level: 'info' },
    });
    for (const [name, port] of [
      ['a', portA],
      ['b', portB],
    ] as const) {
      mkdirSync(join(dir, name), { mode: 0o700 });
      writeFileSync(join(dir, `${name}.json`), JSON.stringify(config(port, name)));
    }
    [a, b] = await Promise.all([
      startInstance('A', portA, dir, join(dir, 'a.json')),
      startInstance('B', portB, dir, join(dir, 'b.json')),
    ]);
    instances.push(a, b);
  });

  after(async () => {
    const codes = await Promise.all(instances.map(stopInstance));
    if (REDIS && tokens.length) {
      const client = await connectRedis(REDIS);
      try {
        await client.del(tokens.map((t) => keyOf(t)));
      } finally {
        await client.close();
      }
    }
    rmSync(dir, { recursive: true, force: true });
    // A clean stop (SIGTERM: close the server, quit Redis) exits 0.
    assert.deepEqual(
      codes,
      instances.map(() => 0),
    );
  });

  const keyOf = (token: string) =>
    REDIS_REPLAY_PREFIX + replayKey(iss, String(decodeJwt(token).jti)).toString('hex');

  const newToken = async () => {
    const token = await signCdsJwt({ privateJwk: pair.privateJwk, iss, aud: `${base}${SIGN}` });
    tokens.push(token);
    return token;
  };

  const post = (instance: Instance, token: string, body: string): Promise<TestResponse> =>
    send(`https://localhost:${instance.port}${SIGN}`, {
      method: 'POST',
      ca,
      body,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    });

  const refusedAsReplay = (res: TestResponse) => {
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json.issue[0].details.coding[0].code, 'ERR_JWT_REPLAY');
    assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
  };

  test(`${ID}: a token accepted by instance A is refused (ERR_JWT_REPLAY) by instance B`, async () => {
    const token = await newToken();
    const body = JSON.stringify(orderRequest());
    const first = await post(a, token, body);
    assert.equal(first.status, 200, first.text);
    assert.ok(Array.isArray(first.json.cards));
    refusedAsReplay(await post(b, token, body));
    refusedAsReplay(await post(a, token, body));
  });

  test(`${ID}: and the other way round: accepted by B, then refused by A`, async () => {
    const token = await newToken();
    const body = JSON.stringify(orderRequest());
    const first = await post(b, token, body);
    assert.equal(first.status, 200, first.text);
    refusedAsReplay(await post(a, token, body));
    refusedAsReplay(await post(b, token, body));
  });

  test(`${ID}: the same token sent to both at once is accepted exactly once`, async () => {
    const token = await newToken();
    const body = JSON.stringify(orderRequest());
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => post(i % 2 ? a : b, token, body)),
    );
    assert.equal(answers.filter((r) => r.status === 200).length, 1);
    for (const res of answers.filter((r) => r.status !== 200)) refusedAsReplay(res);
  });

  test(`${ID}: Redis holds only hashed keys that expire; no token or jti reaches Redis or the logs`, async () => {
    const client = await connectRedis(REDIS!);
    try {
      for (const token of tokens) {
        const jti = String(decodeJwt(token).jti);
        const key = keyOf(token);
        assert.equal(await client.get(key), '1');
        const ttl = await client.pTTL(key);
        // exp (5 min) plus the 60 s clock skew, by the instances' clock.
        assert.ok(ttl > 0 && ttl <= 362_000, `pTTL ${ttl}`);
        assert.equal(await client.exists(`${REDIS_REPLAY_PREFIX}${jti}`), 0);
        for (const instance of instances) {
          const output = instance.stdout.join('') + instance.stderr.join('');
          assert.ok(!output.includes(jti), `${instance.name} logged a jti`);
          assert.ok(!output.includes(token.split('.')[2]!), `${instance.name} logged a token`);
        }
      }
    } finally {
      await client.close();
    }
  });
});
