/**
 * Aedes on Redis: the message bus (a Redis Stream, stream-emitter.ts) and the persistence (aedes-persistence-redis)
 * that let several brokers act as one. A device connects to any node; publishes, retained messages, persistent
 * sessions, offline QoS 1 queues and client-id takeover (Aedes' `$SYS/+/new/clients`) travel through Redis.
 *
 * The persistence is the maintainers' own (moscajs). Their bus, mqemitter-redis, is Redis pub/sub, which keeps
 * nothing: a QoS 1 message acknowledged while Redis restarted could be lost between nodes, so the bus is ours, on a
 * stream. What the trackers say matters here: wills of a dead node are published by the survivors after 3 missed
 * heartbeats (Aedes' heartbeatInterval), and QoS 2 is not offered by wott's devices (QoS 2 leftovers are a known
 * weak spot).
 */
import type { AedesOptions } from 'aedes';
import { createRequire } from 'node:module';
import { Redis, type RedisOptions } from 'ioredis';
import { StreamEmitter } from './stream-emitter.js';

// CommonJS with `module.exports = fn`: loaded through require to keep its own typing loose.
const require = createRequire(import.meta.url);

export interface RedisClusterOptions {
  /** redis://[:password@]host:port[/db] or rediss:// for TLS. */
  url: string;
  /** Offline QoS 1 messages delivered to one client on connect (aedes-persistence-redis' maxSessionDelivery). */
  maxSessionDelivery?: number;
  /** About how many messages the bus stream keeps (XADD MAXLEN ~; default 100,000): bounds Redis' memory. */
  busMaxLength?: number;
  /** Devices' QoS 0 messages handed to Redis pub/sub and not answered, past which their publishers wait (default 10,000). */
  qos0InFlight?: number;
  /** Told of connection errors (Redis down or restarting; the clients reconnect by themselves) and bus anomalies. */
  onError?: (err: Error) => void;
}

export interface ClusterBrokerParts {
  mq: NonNullable<AedesOptions['mq']>;
  persistence: NonNullable<AedesOptions['persistence']>;
  /** Resolves once the bus knows where its stream ends (it delivers what is appended after). */
  ready: Promise<void>;
  /** Closes the persistence's Redis connections: Aedes' close() ends the bus but leaves the persistence open. */
  close(): Promise<void>;
}

/** Connection options ioredis takes, from a redis:// URL (ioredis' own URL parsing is only in its constructor). */
export function redisConnectionOptions(url: string): Record<string, unknown> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error("cluster.redis: not a URL (it is not repeated here: it may hold a password)");
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new Error('cluster.redis: expected redis:// or rediss://');
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw new Error('cluster.redis: the path must be a database number (redis://host:6379/0)');
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    // Keep retrying through a Redis restart (ioredis' default); commands queue meanwhile.
    maxRetriesPerRequest: null,
  };
}

/** The bus and persistence for `Aedes.createBroker({ mq, persistence })` on one Redis. */
export function clusterBrokerParts(options: RedisClusterOptions): ClusterBrokerParts {
  const connection = redisConnectionOptions(options.url);
  const persistenceRedis = require('aedes-persistence-redis') as (opts: Record<string, unknown>) => ClusterBrokerParts['persistence'];
  const onError = options.onError ?? (() => undefined);
  // Our own connection for the persistence, so that its errors reach onError (ioredis would print them to stderr).
  const conn = new Redis(connection as RedisOptions);
  conn.on('error', onError);
  const persistence = persistenceRedis({ conn, maxSessionDelivery: options.maxSessionDelivery ?? 1000 }) as ClusterBrokerParts['persistence'] & {
    destroy(): Promise<void>;
    queuedMessages(clientIds: string[]): Promise<number[]>;
    outgoingUpdate(client: { id: string }, packet: { cmd?: string; brokerId?: string; brokerCounter?: number }): Promise<void>;
  };
  // The sessions' queues are shared by the nodes: the broker plugin bounds them (maxQueuedMessagesPerSession) with
  // their lengths in Redis, one round trip for all of a message's subscribers. The keys are aedes-persistence-redis'
  // own ("outgoing:" + the encoded client id; "packet:" + broker id + counter).
  const queueKey = (clientId: string) => `outgoing:${encodeURIComponent(clientId)}`;
  persistence.queuedMessages = async (clientIds: string[]) => {
    const pipeline = conn.pipeline();
    for (const id of clientIds) pipeline.llen(queueKey(id));
    const replies = (await pipeline.exec()) ?? [];
    return clientIds.map((_: string, i: number) => Number(replies[i]?.[1] ?? 0));
  };
  // A message the plugin left out of a full queue still reaches a connected session live. aedes-persistence-redis
  // would record that delivery as if it were queued, and its PUBACK would count down the message's reference count
  // for the sessions that do hold it (which then lose it early). Such a delivery is not recorded: at most once.
  const update = persistence.outgoingUpdate.bind(persistence);
  persistence.outgoingUpdate = async (client: { id: string }, packet: { cmd?: string; brokerId?: string; brokerCounter?: number }) => {
    if (packet.cmd === 'publish' && packet.brokerId !== undefined && packet.brokerCounter !== undefined) {
      const queued = await conn.lpos(queueKey(client.id), `packet:${packet.brokerId}:${packet.brokerCounter}`);
      if (queued === null) return;
    }
    return update(client, packet);
  };
  const bus = new StreamEmitter({ connection: connection as RedisOptions, onError, ...(options.busMaxLength ? { maxLength: options.busMaxLength } : {}), ...(options.qos0InFlight ? { qos0InFlight: options.qos0InFlight } : {}) });
  let closed: Promise<void> | undefined;
  return {
    mq: bus as unknown as ClusterBrokerParts['mq'],
    ready: bus.ready,
    persistence,
    // Without a callback: the callback form waits for a 'ready' event that Aedes 1.2's async setup never emits.
    close: () => (closed ??= persistence.destroy().catch(() => undefined).then(() => void conn.disconnect())),
  };
}
