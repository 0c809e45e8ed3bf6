/**
 * The retained-message ledger of a cluster, in Redis: the per-device and broker-wide retained limits hold for the
 * cluster, not per node (a device spreading retained publishes over three nodes would otherwise hold three times its
 * share). One Lua script checks and records a publish atomically, with the same rules as RetainedLedger (limits.ts):
 * a retained publish replaces the topic's message, an empty one deletes it. The ledger lives in the Redis that holds
 * the retained messages themselves (aedes-persistence-redis), so both survive and vanish together.
 */
import { Redis } from 'ioredis';
import { retainedRefusal, type RetainedAdmission, type RetainedLimits } from './limits.js';

const KEYS = ['wott:retained:topics', 'wott:retained:devices', 'wott:retained:totals'] as const;

// KEYS: topic → "bytes|device"; per device "count:ID" and "bytes:ID"; totals "bytes". ARGV: device, topic, payload
// bytes (0 deletes), perDevice, bytesPerDevice, total, totalBytes. Returns 0 (admitted) or the broken limit (1–4).
const ADMIT = `
local topics, devices, totals = KEYS[1], KEYS[2], KEYS[3]
local device, topic, payload = ARGV[1], ARGV[2], tonumber(ARGV[3])
local prev = redis.call('HGET', topics, topic)
local pdev, pbytes = nil, 0
if prev then
  local i = string.find(prev, '|', 1, true)
  pbytes = tonumber(string.sub(prev, 1, i - 1))
  pdev = string.sub(prev, i + 1)
end
local function remove()
  redis.call('HDEL', topics, topic)
  redis.call('HINCRBY', totals, 'bytes', -pbytes)
  if redis.call('HINCRBY', devices, 'count:' .. pdev, -1) <= 0 then
    redis.call('HDEL', devices, 'count:' .. pdev, 'bytes:' .. pdev)
  else
    redis.call('HINCRBY', devices, 'bytes:' .. pdev, -pbytes)
  end
end
if payload == 0 then
  if prev then remove() end
  return 0
end
local bytes = string.len(topic) + payload
local own = prev ~= false and prev ~= nil and pdev == device
local count = tonumber(redis.call('HGET', devices, 'count:' .. device) or '0')
local dbytes = tonumber(redis.call('HGET', devices, 'bytes:' .. device) or '0') + bytes
if own then dbytes = dbytes - pbytes else count = count + 1 end
if count > tonumber(ARGV[4]) then return 1 end
if dbytes > tonumber(ARGV[5]) then return 2 end
local n = redis.call('HLEN', topics)
if not prev then n = n + 1 end
if n > tonumber(ARGV[6]) then return 3 end
if tonumber(redis.call('HGET', totals, 'bytes') or '0') + bytes - pbytes > tonumber(ARGV[7]) then return 4 end
if prev then remove() end
redis.call('HSET', topics, topic, bytes .. '|' .. device)
redis.call('HINCRBY', devices, 'count:' .. device, 1)
redis.call('HINCRBY', devices, 'bytes:' .. device, bytes)
redis.call('HINCRBY', totals, 'bytes', bytes)
return 0
`;

const REFUSALS = [undefined, retainedRefusal.perDevice, retainedRefusal.bytesPerDevice, retainedRefusal.total, retainedRefusal.totalBytes] as const;

export class RedisRetainedLedger implements RetainedAdmission {
  private readonly redis: Redis;

  constructor(
    connection: Record<string, unknown>,
    private readonly limits: RetainedLimits,
  ) {
    // A publish waits for this answer: bounded, and an unanswered check refuses (closed by default).
    this.redis = new Redis({ ...connection, maxRetriesPerRequest: 1, commandTimeout: 2000 });
    this.redis.on('error', () => undefined); // ioredis reconnects; a check meanwhile fails and refuses
  }

  async admit(device: string, topic: string, payloadBytes: number): Promise<string | undefined> {
    const l = this.limits;
    let code: number;
    try {
      code = Number(await this.redis.eval(ADMIT, KEYS.length, ...KEYS, device, topic, payloadBytes, l.perDevice, l.bytesPerDevice, l.total, l.totalBytes));
    } catch {
      return 'retained message limit: cannot check the cluster ledger now (Redis unreachable)';
    }
    return REFUSALS[code]?.(l);
  }

  async held(device?: string): Promise<{ count: number; bytes: number }> {
    if (device === undefined) {
      const [count, bytes] = await Promise.all([this.redis.hlen(KEYS[0]), this.redis.hget(KEYS[2], 'bytes')]);
      return { count, bytes: Number(bytes ?? 0) };
    }
    const [count, bytes] = await this.redis.hmget(KEYS[1], `count:${device}`, `bytes:${device}`);
    return { count: Number(count ?? 0), bytes: Number(bytes ?? 0) };
  }

  close(): void {
    this.redis.disconnect();
  }
}
