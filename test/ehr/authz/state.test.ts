/**
 * The oidc-provider Adapter contract on the three state backends (SQLite always; PostgreSQL and
 * Redis when `CRDKIT_TEST_PG` / `CRDKIT_TEST_REDIS` are set): upsert, find, findByUid,
 * findByUserCode, consume (once), destroy, revokeByGrantId, expiry, atomic insert-if-absent, and
 * no bearer secret stored as a key or in a payload.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { createClient } from 'redis';
import { adapterFactory, stateKey, type StateBackend } from '../../../src/ehr/authz/state/index.js';
import { PgStateBackend } from '../../../src/ehr/authz/state/postgres.js';
import { RedisStateBackend } from '../../../src/ehr/authz/state/redis.js';
import { SqliteStateBackend } from '../../../src/ehr/authz/state/sqlite.js';
import { dropRedisPrefix, needsPg, needsRedis, pgSchema, REDIS_URL } from './helpers.js';

/** A backend under test with a clock the test moves, and a dump of everything stored. */
interface Subject {
  backend: StateBackend;
  clock: { ms: number };
  dump(): Promise<string>;
  cleanup(): Promise<void>;
}

async function sqlite(): Promise<Subject> {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-authz-state-'));
  const clock = { ms: Date.now() };
  const backend = new SqliteStateBackend(join(dir, 'state.db'), () => clock.ms);
  return {
    backend,
    clock,
    async dump() {
      const db = new BetterSqlite3(join(dir, 'state.db'), { readonly: true });
      try {
        return JSON.stringify(db.prepare('SELECT * FROM authz_state').all());
      } finally {
        db.close();
      }
    },
    async cleanup() {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgres(): Promise<Subject> {
  const { url, drop } = await pgSchema();
  const clock = { ms: Date.now() };
  const backend = await PgStateBackend.open(url, () => clock.ms);
  return {
    backend,
    clock,
    async dump() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return JSON.stringify((await c.query('SELECT * FROM authz_state')).rows);
      } finally {
        await c.end();
      }
    },
    async cleanup() {
      await backend.close();
      await drop();
    },
  };
}

async function redis(): Promise<Subject> {
  const prefix = `crdkit-test:${randomBytes(6).toString('hex')}:`;
  // Redis expires keys by its own clock: this backend's clock only sets TTLs, so it stays real.
  const clock = { ms: Date.now() };
  const backend = await RedisStateBackend.open(REDIS_URL!, prefix);
  return {
    backend,
    clock,
    async dump() {
      const c = createClient({ url: REDIS_URL });
      await c.connect();
      try {
        const out: string[] = [];
        for await (const batch of c.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) {
          for (const key of batch) {
            const type = await c.type(key);
            out.push(
              key,
              type === 'hash'
                ? JSON.stringify(await c.hGetAll(key))
                : type === 'set'
                  ? JSON.stringify(await c.sMembers(key))
                  : String(await c.get(key)),
            );
          }
        }
        return out.join('\n');
      } finally {
        await c.close();
      }
    },
    async cleanup() {
      await backend.close();
      await dropRedisPrefix(prefix);
    },
  };
}

const BACKENDS = [
  { name: 'sqlite', make: sqlite, options: {} },
  { name: 'postgres', make: postgres, options: needsPg },
  { name: 'redis', make: redis, options: needsRedis },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const { name, make, options } of BACKENDS) {
  describe(`oauth: state adapter on ${name}`, options, () => {
    test('oauth: upsert/find round-trips a payload; destroy removes it', async () => {
      const s = await make();
      try {
        const adapter = adapterFactory(s.backend)('Grant');
        const payload = {
          kind: 'Grant',
          jti: 'g-1',
          accountId: 'u1',
          clientId: 'app',
          exp: 9,
          openid: { scope: 'openid' },
        };
        await adapter.upsert('g-1', payload, 60);
        assert.deepEqual(await adapter.find('g-1'), payload);
        await adapter.upsert('g-1', { ...payload, accountId: 'u2' }, 60);
        assert.equal((await adapter.find('g-1'))?.accountId, 'u2');
        await adapter.destroy('g-1');
        assert.equal(await adapter.find('g-1'), undefined);
        assert.equal(await adapter.find('never-stored'), undefined);
      } finally {
        await s.cleanup();
      }
    });

    test('oauth: a bearer token is stored neither as a key nor in its payload', async () => {
      const s = await make();
      try {
        const adapter = adapterFactory(s.backend)('AccessToken');
        const token = randomBytes(32).toString('base64url');
        await adapter.upsert(
          token,
          { kind: 'AccessToken', jti: token, clientId: 'app', grantId: 'g-9' },
          60,
        );
        assert.equal((await adapter.find(token))?.jti, token, 'jti is restored on lookup');
        const stored = await s.dump();
        assert.ok(!stored.includes(token), 'the token value is not stored');
        assert.ok(stored.includes(stateKey(token)), 'its SHA-256 is the key');
      } finally {
        await s.cleanup();
      }
    });

    test('oauth: findByUid and findByUserCode follow their indexes', async () => {
      const s = await make();
      try {
        const factory = adapterFactory(s.backend);
        await factory('Session').upsert(
          'sess-1',
          { kind: 'Session', jti: 'sess-1', uid: 'uid-1', accountId: 'u1' },
          60,
        );
        assert.equal((await factory('Session').findByUid('uid-1'))?.jti, 'sess-1');
        assert.equal(await factory('Session').findByUid('uid-2'), undefined);
        await factory('DeviceCode').upsert(
          'dc-1',
          { kind: 'DeviceCode', jti: 'dc-1', userCode: 'ABCD-EFGH', clientId: 'app' },
          60,
        );
        assert.equal((await factory('DeviceCode').findByUserCode('ABCD-EFGH'))?.clientId, 'app');
        assert.equal(await factory('DeviceCode').findByUserCode('ZZZZ-ZZZZ'), undefined);
      } finally {
        await s.cleanup();
      }
    });

    test('oauth: consume marks a record consumed once; a second consume is invalid_grant', async () => {
      const s = await make();
      try {
        const adapter = adapterFactory(s.backend)('AuthorizationCode');
        await adapter.upsert(
          'code-1',
          { kind: 'AuthorizationCode', jti: 'code-1', clientId: 'app' },
          60,
        );
        await adapter.consume('code-1');
        assert.equal(typeof (await adapter.find('code-1'))?.consumed, 'number');
        await assert.rejects(
          adapter.consume('code-1'),
          (err: Error & { error?: string; error_detail?: string }) => {
            assert.equal(err.error, 'invalid_grant');
            assert.equal(err.error_detail, 'authorization code already consumed');
            return true;
          },
        );
        // Two instances racing for the same code: exactly one wins.
        await adapter.upsert(
          'code-2',
          { kind: 'AuthorizationCode', jti: 'code-2', clientId: 'app' },
          60,
        );
        const results = await Promise.allSettled(
          Array.from({ length: 5 }, () => adapter.consume('code-2')),
        );
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      } finally {
        await s.cleanup();
      }
    });

    test('oauth: revokeByGrantId removes every record of the grant for that model only', async () => {
      const s = await make();
      try {
        const factory = adapterFactory(s.backend);
        const at = factory('AccessToken');
        const rt = factory('RefreshToken');
        await at.upsert('at-1', { kind: 'AccessToken', jti: 'at-1', grantId: 'g-1' }, 60);
        await at.upsert('at-2', { kind: 'AccessToken', jti: 'at-2', grantId: 'g-1' }, 60);
        await at.upsert('at-3', { kind: 'AccessToken', jti: 'at-3', grantId: 'g-2' }, 60);
        await rt.upsert('rt-1', { kind: 'RefreshToken', jti: 'rt-1', grantId: 'g-1' }, 60);
        await at.revokeByGrantId('g-1');
        assert.equal(await at.find('at-1'), undefined);
        assert.equal(await at.find('at-2'), undefined);
        assert.ok(await at.find('at-3'));
        assert.ok(await rt.find('rt-1'));
      } finally {
        await s.cleanup();
      }
    });

    test('oauth: an expired record is not found, and its id can be inserted again', async () => {
      const s = await make();
      try {
        const adapter = adapterFactory(s.backend, () => s.clock.ms)('ReplayDetection');
        assert.equal(
          await adapter.insertIfAbsent('r-1', { kind: 'ReplayDetection', iss: 'c' }, 1),
          true,
        );
        assert.equal(
          await adapter.insertIfAbsent('r-1', { kind: 'ReplayDetection', iss: 'c' }, 1),
          false,
        );
        const racing = await Promise.all(
          Array.from({ length: 5 }, () => adapter.insertIfAbsent('r-2', { iss: 'c' }, 60)),
        );
        assert.equal(racing.filter(Boolean).length, 1, 'one of five concurrent inserts wins');
        if (name === 'redis') await sleep(1100);
        else s.clock.ms += 1001;
        assert.equal(await adapter.find('r-1'), undefined);
        assert.equal(
          await adapter.insertIfAbsent('r-1', { kind: 'ReplayDetection', iss: 'c' }, 60),
          true,
        );
      } finally {
        await s.cleanup();
      }
    });
  });
}
