/**
 * The Redis `jti` replay store: one atomic SET NX per pair, hashed keys that expire with the
 * token, and fail-closed behaviour (503) whenever Redis cannot answer. Needs the Redis of
 * `CRDKIT_TEST_REDIS` (CI provides it); those tests skip with a message without it. Every key
 * this file creates carries a per-run prefix and is deleted at the end.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
import { ReplayUnavailableError, RedisReplayStore } from '../../src/auth/replay-redis.js';
import { PACKAGE_ROOT } from '../../src/config/demo.js';
import { ConfigError, resolveConfig } from '../../src/config/load.js';
import { connectRedis, redactRedisUrl, type RedisClient } from '../../src/store/redis.js';
import { openReplayStore } from '../../src/store/replay.js';
import { freePort } from '../helpers/server.js';

const ID = 'sec-1 (CDS Hooks JWT)';
const REDIS = process.env.CRDKIT_TEST_REDIS;
const needsRedis = REDIS ? {} : { skip: 'CRDKIT_TEST_REDIS is not set: no Redis to test against' };
const RUN = randomUUID();
const PREFIX = `crdkit-test:${RUN}:jti:`;
const ISS = `https://ehr.test/replay-redis/${RUN}`;
const nowSec = () => Math.floor(Date.now() / 1000);
const newJti = () => randomBytes(32).toString('hex');

/** Every key of this run, as [key, value] pairs (SCAN, bounded). */
async function keysOfRun(client: RedisClient): Promise<Array<[string, string | null]>> {
  const found: Array<[string, string | null]> = [];
  for await (const batch of client.scanIterator({ MATCH: `${PREFIX}*`, COUNT: 1000 })) {
    for (const key of batch) found.push([key, await client.get(key)]);
    if (found.length > 100_000) throw new Error('too many keys: runaway test');
  }
  return found;
}

/** A TCP relay to Redis the tests can cut (`close`) or stall (`stall`). */
interface Relay {
  port: number;
  /** Stop relaying bytes (the server seems alive but never answers). */
  stall(): void;
  /** Close the listener and every connection: the port becomes closed. */
  close(): Promise<void>;
  /** Listen again on the same port. */
  reopen(): Promise<void>;
}

async function startRelay(target: URL): Promise<Relay> {
  const sockets = new Set<Socket>();
  let stalled = false;
  const make = (): Server =>
    createServer((inbound) => {
      const outbound = connect(Number(target.port || 6379), target.hostname);
      sockets.add(inbound).add(outbound);
      inbound.on('data', (d) => {
        if (!stalled) outbound.write(d);
      });
      outbound.on('data', (d) => {
        if (!stalled) inbound.write(d);
      });
      const end = () => {
        inbound.destroy();
        outbound.destroy();
        sockets.delete(inbound);
        sockets.delete(outbound);
      };
      inbound.on('error', end).on('close', end);
      outbound.on('error', end).on('close', end);
    });
  let server = make();
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  const port = await freePort();
  await listen(port);
  return {
    port,
    stall() {
      stalled = true;
    },
    async close() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      await new Promise((resolve) => server.close(resolve));
    },
    async reopen() {
      stalled = false;
      server = make();
      await listen(port);
    },
  };
}

describe('RedisReplayStore against Redis', needsRedis, () => {
  let client: RedisClient;
  let store: RedisReplayStore;

  before(async () => {
    client = await connectRedis(REDIS!);
    store = new RedisReplayStore(client, { keyPrefix: PREFIX, ownsClient: false });
  });

  after(async () => {
    if (!client) return;
    const keys = (await keysOfRun(client)).map(([k]) => k);
    if (keys.length) await client.del(keys);
    await client.close();
  });

  test(`${ID}: a pair is spent once; the same jti from another issuer is another pair`, async () => {
    const jti = newJti();
    const exp = nowSec() + 300;
    assert.equal(await store.spend(ISS, jti, exp), true);
    assert.equal(await store.spend(ISS, jti, exp), false);
    assert.equal(await store.spend(ISS, jti, exp + 100), false);
    assert.equal(await store.spend(`${ISS}/other`, jti, exp), true);
    assert.equal(await store.spend(`${ISS}/other`, jti, exp), false);
  });

  test(`${ID}: concurrent spends of one pair from two connections: exactly one wins`, async () => {
    const second = await connectRedis(REDIS!);
    try {
      const other = new RedisReplayStore(second, { keyPrefix: PREFIX, ownsClient: false });
      const jti = newJti();
      const exp = nowSec() + 300;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? store : other).spend(ISS, jti, exp)),
      );
      assert.equal(results.filter(Boolean).length, 1);
    } finally {
      await second.close();
    }
  });

  test(`${ID}: keys are the hex SHA-256 of (iss, jti); no raw jti or iss in any key or value`, async () => {
    const jtis = [newJti(), 'plain-jti-marker-1', randomUUID()];
    for (const jti of jtis) assert.equal(await store.spend(ISS, jti, nowSec() + 300), true);
    const entries = await keysOfRun(client);
    assert.ok(entries.length >= jtis.length);
    for (const jti of jtis) assert.ok(entries.some(([k]) => k === store.key(ISS, jti)));
    for (const [key, value] of entries) {
      assert.match(key, new RegExp(`^${PREFIX}[0-9a-f]{64}$`));
      assert.equal(value, '1');
      for (const secret of [...jtis, ISS, 'plain-jti-marker']) {
        assert.ok(!key.includes(secret), 'a key holds a raw value');
      }
    }
    // The default prefix is the documented one.
    const plain = new RedisReplayStore(client, { ownsClient: false });
    assert.match(plain.key(ISS, jtis[0]!), /^crdkit:jti:[0-9a-f]{64}$/);
  });

  test(`${ID}: an entry lives until its token expires (by this clock), then the pair is free`, async () => {
    const jti = newJti();
    const exp = nowSec() + 300;
    assert.equal(await store.spend(ISS, jti, exp), true);
    const ttl = await client.pTTL(store.key(ISS, jti));
    // Until the end of second `exp`: 300 to 301 s from now.
    assert.ok(ttl > 299_000 && ttl <= 301_000, `pTTL ${ttl}`);

    const short = newJti();
    const soon = nowSec() + 1;
    assert.equal(await store.spend(ISS, short, soon), true);
    const shortTtl = await client.pTTL(store.key(ISS, short));
    assert.ok(shortTtl > 0 && shortTtl <= 2000, `pTTL ${shortTtl}`);
    assert.equal(await store.spend(ISS, short, soon), false);
    // Bounded wait for Redis to expire the key (at most ~2 s after the spend).
    for (let i = 0; i < 40 && (await client.exists(store.key(ISS, short))); i += 1) {
      await sleep(100);
    }
    assert.equal(await client.exists(store.key(ISS, short)), 0, 'the key did not expire');
    assert.equal(await store.spend(ISS, short, nowSec() + 60), true);
  });

  test(`${ID}: a token already expired by this clock still gets a short-lived entry`, async () => {
    const jti = newJti();
    assert.equal(await store.spend(ISS, jti, nowSec() - 600), true);
    const ttl = await client.pTTL(store.key(ISS, jti));
    assert.ok(ttl > 0 && ttl <= 1000, `pTTL ${ttl}`);
    assert.equal(await store.spend(ISS, jti, nowSec() - 600), false);
  });

  test(`${ID}: Redis gone after start-up (port closed): spend fails closed with 503, then recovers`, async () => {
    const relay = await startRelay(new URL(REDIS!));
    const target = new URL(REDIS!);
    target.hostname = '127.0.0.1';
    target.port = String(relay.port);
    const viaRelay = await connectRedis(target.toString());
    const cut = new RedisReplayStore(viaRelay, { keyPrefix: PREFIX, timeoutMs: 500 });
    try {
      assert.equal(await cut.spend(ISS, newJti(), nowSec() + 300), true);
      await relay.close();
      const jti = newJti();
      const started = Date.now();
      await assert.rejects(cut.spend(ISS, jti, nowSec() + 300), (err: unknown) => {
        assert.ok(err instanceof ReplayUnavailableError);
        assert.equal(err.status, 503);
        assert.equal(err.code, 'ERR_REPLAY_UNAVAILABLE');
        assert.equal(err.message, 'the replay store is unavailable; retry later');
        assert.equal(err.toOutcome().issue[0]!.code, 'transient');
        return true;
      });
      assert.ok(Date.now() - started < 1500, 'fail-closed took too long');
      // Nothing was recorded: the pair is still free once Redis is back.
      await relay.reopen();
      let spent: boolean | undefined;
      for (let i = 0; i < 50 && spent === undefined; i += 1) {
        spent = await cut.spend(ISS, jti, nowSec() + 300).catch(() => undefined);
        if (spent === undefined) await sleep(200);
      }
      assert.equal(spent, true, 'the store did not recover after Redis came back');
    } finally {
      await cut.close();
      await relay.close();
    }
  });

  test(`${ID}: Redis that stops answering: spend fails closed with 503 within its deadline`, async () => {
    const relay = await startRelay(new URL(REDIS!));
    const target = new URL(REDIS!);
    target.hostname = '127.0.0.1';
    target.port = String(relay.port);
    const viaRelay = await connectRedis(target.toString());
    const stalled = new RedisReplayStore(viaRelay, { keyPrefix: PREFIX, timeoutMs: 300 });
    try {
      assert.equal(await stalled.spend(ISS, newJti(), nowSec() + 300), true);
      relay.stall();
      const started = Date.now();
      await assert.rejects(stalled.spend(ISS, newJti(), nowSec() + 300), ReplayUnavailableError);
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 1500, `took ${took} ms`);
    } finally {
      await stalled.close();
      await relay.close();
    }
  });
});

describe('RedisReplayStore without Redis', () => {
  test(`${ID}: a client that cannot reach Redis (closed loopback port) makes spend fail closed (503)`, async () => {
    const port = await freePort();
    const client = createClient({
      url: `redis://127.0.0.1:${port}`,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: false, connectTimeout: 500 },
    });
    client.on('error', () => undefined);
    await client.connect().catch(() => undefined);
    const store = new RedisReplayStore(client, { keyPrefix: PREFIX, timeoutMs: 500 });
    await assert.rejects(store.spend(ISS, newJti(), nowSec() + 300), (err: unknown) => {
      assert.ok(err instanceof ReplayUnavailableError);
      assert.equal(err.status, 503);
      assert.equal(err.code, 'ERR_REPLAY_UNAVAILABLE');
      return true;
    });
    await store.close();
    // A closed store refuses too.
    await assert.rejects(store.spend(ISS, newJti(), nowSec() + 300), ReplayUnavailableError);
  });

  test(`${ID}: Redis unreachable at start-up is a configuration error naming "replay", without the password`, async () => {
    const port = await freePort();
    const url = `redis://crd:S3cret-Pa55@127.0.0.1:${port}/0`;
    await assert.rejects(connectRedis(url, { connectTimeoutMs: 500 }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, 'replay');
      assert.match(
        err.message,
        /^replay: cannot connect to Redis at redis:\/\/crd:\*\*\*@127\.0\.0\.1:/,
      );
      assert.ok(!err.message.includes('S3cret'), err.message);
      return true;
    });
    assert.equal(
      redactRedisUrl('rediss://u:p%40ss@redis.example:6380/2?x=y'),
      'rediss://u:***@redis.example:6380/2',
    );
  });

  test(`${ID}: openReplayStore picks sqlite, memory or Redis from "replay"`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crdkit-replay-open-'));
    try {
      writeFileSync(join(dir, 'c.pem'), 'x');
      const config = (replay?: string) =>
        resolveConfig(
          {
            baseUrl: 'https://localhost:1',
            tls: { cert: 'c.pem', key: 'c.pem' },
            clients: [{ iss: ISS, jwks: { keys: [{ kty: 'EC' }] } }],
            rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
            dataDir: join(dir, 'data'),
            ...(replay ? { replay } : {}),
          },
          dir,
        );
      const sqlite = await openReplayStore(config());
      assert.equal(sqlite.constructor.name, 'ThreadedSqliteReplayStore');
      assert.equal(await sqlite.spend(ISS, 'j', nowSec() + 60), true);
      assert.equal(await sqlite.spend(ISS, 'j', nowSec() + 60), false);
      await sqlite.close?.();
      const memory = await openReplayStore(config('memory'));
      assert.equal(memory.constructor.name, 'MemoryReplayStore');
      await memory.close?.();
      const port = await freePort();
      await assert.rejects(
        openReplayStore(config(`redis://:hunter2@127.0.0.1:${port}`)),
        (err: unknown) =>
          err instanceof ConfigError && err.key === 'replay' && !err.message.includes('hunter2'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${ID}: openReplayStore connects to the configured Redis`, needsRedis, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crdkit-replay-open-'));
    try {
      writeFileSync(join(dir, 'c.pem'), 'x');
      const config = resolveConfig(
        {
          baseUrl: 'https://localhost:1',
          tls: { cert: 'c.pem', key: 'c.pem' },
          clients: [{ iss: ISS, jwks: { keys: [{ kty: 'EC' }] } }],
          rules: join(PACKAGE_ROOT, 'rules', 'sample-rules.yaml'),
          dataDir: join(dir, 'data'),
          replay: REDIS!,
        },
        dir,
      );
      const store = await openReplayStore(config);
      assert.ok(store instanceof RedisReplayStore);
      const jti = newJti();
      const iss = `${ISS}/factory`;
      try {
        assert.equal(await store.spend(iss, jti, nowSec() + 5), true);
        assert.equal(await store.spend(iss, jti, nowSec() + 5), false);
      } finally {
        const cleanup = await connectRedis(REDIS!);
        await cleanup.del(store.key(iss, jti));
        await cleanup.close();
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
