/**
 * The authorization server's state in Redis, shared by every instance on the same server. A
 * record is a hash (`payload`, `consumed`) under `<prefix><model>:<key>` with a TTL; a grant's
 * records are listed in a set `<prefix>grant:<model>:<grantId>`, a session's uid and a user code
 * point at their record from `<prefix>uid:…` / `<prefix>userCode:…`. Every write that must be
 * atomic (upsert with its indexes, consume, insert-if-absent) is one Lua script.
 */
import type { AdapterPayload } from 'oidc-provider';
import { connectRedis, type RedisClient } from '../../../store/redis.js';
import type { StateBackend, StoredRecord } from './backend.js';

export const REDIS_STATE_PREFIX = 'crdkit:oauth:';

/**
 * KEYS: record, grant set, uid index, user code index. ARGV: payload, TTL in ms (0 = none),
 * consumed ('' = not), then '1'/'0' for whether each index applies.
 */
const UPSERT = `
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'payload', ARGV[1], 'consumed', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'payload', ARGV[1])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
if ARGV[4] == '1' then
  local existed = redis.call('EXISTS', KEYS[2])
  redis.call('SADD', KEYS[2], KEYS[1])
  local current = redis.call('PTTL', KEYS[2])
  if ttl == 0 then
    redis.call('PERSIST', KEYS[2])
  elseif existed == 0 or (current >= 0 and current < ttl) then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
for i = 3, 4 do
  if ARGV[i + 2] == '1' then
    if ttl > 0 then
      redis.call('SET', KEYS[i], KEYS[1], 'PX', ttl)
    else
      redis.call('SET', KEYS[i], KEYS[1])
    end
  end
end
return 1`;

/** KEYS: record. ARGV: time. 1 = consumed now, 0 = already consumed, -1 = absent. */
const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1])`;

/** KEYS: record. ARGV: payload, TTL in ms. 1 = stored, 0 = a record exists. */
const INSERT_IF_ABSENT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'payload', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

function toPayload(hash: Record<string, string>): AdapterPayload | undefined {
  if (!hash.payload) return undefined;
  const payload = JSON.parse(hash.payload) as AdapterPayload;
  return hash.consumed ? { ...payload, consumed: Number(hash.consumed) } : payload;
}

/** The Redis backend. */
export class RedisStateBackend implements StateBackend {
  readonly kind = 'redis';

  private constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly now: () => number,
  ) {}

  /** Connects to `url` (errors name the configuration key `authz.store`). */
  static async open(
    url: string,
    prefix = REDIS_STATE_PREFIX,
    now: () => number = Date.now,
  ): Promise<RedisStateBackend> {
    const client = await connectRedis(url, { configKey: 'authz.store' });
    return new RedisStateBackend(client, prefix, now);
  }

  #record(model: string, key: string): string {
    return `${this.prefix}${model}:${key}`;
  }

  #index(kind: 'grant' | 'uid' | 'userCode', model: string, value: string): string {
    return `${this.prefix}${kind}:${model}:${value}`;
  }

  #ttl(record: StoredRecord): number {
    if (record.expiresAt === undefined) return 0;
    return Math.max(1, record.expiresAt - this.now());
  }

  async upsert(model: string, key: string, record: StoredRecord): Promise<void> {
    const recordKey = this.#record(model, key);
    await this.client.eval(UPSERT, {
      keys: [
        recordKey,
        this.#index('grant', model, record.grantId ?? ''),
        this.#index('uid', model, record.uid ?? ''),
        this.#index('userCode', model, record.userCode ?? ''),
      ],
      arguments: [
        JSON.stringify(record.payload),
        String(this.#ttl(record)),
        record.consumed === undefined ? '' : String(record.consumed),
        record.grantId ? '1' : '0',
        record.uid ? '1' : '0',
        record.userCode ? '1' : '0',
      ],
    });
  }

  async #findKey(recordKey: string): Promise<AdapterPayload | undefined> {
    return toPayload(await this.client.hGetAll(recordKey));
  }

  async find(model: string, key: string): Promise<AdapterPayload | undefined> {
    return this.#findKey(this.#record(model, key));
  }

  async findBy(
    model: string,
    index: 'uid' | 'userCode',
    value: string,
  ): Promise<AdapterPayload | undefined> {
    const recordKey = await this.client.get(this.#index(index, model, value));
    return recordKey ? this.#findKey(recordKey) : undefined;
  }

  async consume(model: string, key: string, at: number): Promise<boolean> {
    const result = await this.client.eval(CONSUME, {
      keys: [this.#record(model, key)],
      arguments: [String(at)],
    });
    return result === 1;
  }

  async destroy(model: string, key: string): Promise<void> {
    await this.client.del(this.#record(model, key));
  }

  async revokeByGrantId(model: string, grantId: string): Promise<void> {
    const setKey = this.#index('grant', model, grantId);
    const members = await this.client.sMembers(setKey);
    await this.client.del([...members, setKey]);
  }

  async insertIfAbsent(model: string, key: string, record: StoredRecord): Promise<boolean> {
    const result = await this.client.eval(INSERT_IF_ABSENT, {
      keys: [this.#record(model, key)],
      arguments: [JSON.stringify(record.payload), String(this.#ttl(record) || 1)],
    });
    return result === 1;
  }

  async close(): Promise<void> {
    if (this.client.isOpen) await this.client.close();
  }
}
