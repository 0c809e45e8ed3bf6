/**
 * What each node of a cluster tells the others, and `wott cluster status` reads: every node keeps a short-lived
 * record in Redis (`wott:node:ID`, refreshed every second, gone 5 s after the node stops refreshing it).
 */
import { Redis } from 'ioredis';
import { leaseKey } from './leader.js';

export interface NodeFacts {
  node: string;
  host: string;
  pid: number;
  startedAt: string;
  /** When the record was written. */
  at: string;
  mqttPort: number;
  httpsPort: number;
  /** MQTT clients connected to this node now. */
  connections: number;
  /** How far this node has applied the fleet's change feed. */
  feedPosition: number;
  /** Whether this node runs scoring now. */
  scoring: boolean;
}

export interface ClusterStatus {
  nodes: Array<NodeFacts & { feedLag: number }>;
  /** The scoring lease's holder (`node#token`), if any. */
  scoringLeader: string | null;
}

const NODE_PREFIX = 'wott:node:';
const SCORING_LEASE = leaseKey('scoring');

/** Keeps this node's record fresh until closed. */
export class NodeRecord {
  private readonly redis: Redis;
  private readonly timer: NodeJS.Timeout;

  constructor(
    redisOptions: Record<string, unknown>,
    private readonly facts: () => Omit<NodeFacts, 'at'>,
    private readonly intervalMs = 1000,
  ) {
    this.redis = new Redis({ ...redisOptions, maxRetriesPerRequest: 1 });
    this.redis.on('error', () => undefined); // retried by ioredis; a missed refresh only ages the record
    this.timer = setInterval(() => void this.write(), intervalMs);
    this.timer.unref();
    void this.write();
  }

  private async write(): Promise<void> {
    const facts = this.facts();
    await this.redis
      .set(`${NODE_PREFIX}${facts.node}`, JSON.stringify({ ...facts, at: new Date().toISOString() }), 'PX', this.intervalMs * 5)
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.redis.del(`${NODE_PREFIX}${this.facts().node}`).catch(() => undefined);
    this.redis.disconnect();
  }
}

/** Scans the node records' keys: the ids of the nodes alive now. */
async function nodeIds(redis: Redis): Promise<Set<string>> {
  const ids = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${NODE_PREFIX}*`, 'COUNT', 1000);
    cursor = next;
    for (const key of batch) ids.add(key.slice(NODE_PREFIX.length));
  } while (cursor !== '0');
  return ids;
}

/** The ids of the live nodes, on one connection kept open (scoring asks every second). Rejects while Redis is away. */
export class LiveNodes {
  private readonly redis: Redis;

  constructor(redisOptions: Record<string, unknown>) {
    this.redis = new Redis({ ...redisOptions, maxRetriesPerRequest: 1, lazyConnect: true });
    this.redis.on('error', () => undefined); // a failed lookup rejects; the caller keeps what it had
  }

  ids(): Promise<Set<string>> {
    return nodeIds(this.redis);
  }

  close(): void {
    this.redis.disconnect();
  }
}

/** The nodes alive now (records not expired) and the scoring leader, as Redis holds them. */
export async function readClusterStatus(redisOptions: Record<string, unknown>): Promise<ClusterStatus> {
  const redis = new Redis({ ...redisOptions, maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${NODE_PREFIX}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const values = keys.length ? await redis.mget(keys) : [];
    const nodes = values.flatMap((v) => {
      if (!v) return [];
      try {
        return [JSON.parse(v) as NodeFacts];
      } catch {
        return []; // not ours: skipped rather than trusted
      }
    });
    const head = Math.max(0, ...nodes.map((n) => n.feedPosition));
    return {
      nodes: nodes.sort((a, b) => a.node.localeCompare(b.node)).map((n) => ({ ...n, feedLag: head - n.feedPosition })),
      scoringLeader: await redis.get(SCORING_LEASE),
    };
  } finally {
    redis.disconnect();
  }
}
