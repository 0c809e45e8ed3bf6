/**
 * A persistent session's QoS 1 queue is bounded for the cluster, not per node: the queues are Redis', and the
 * nodes count them there. A device that subscribes through one node, leaves, and publishes through another cannot
 * grow its queue past maxQueuedMessagesPerSession; and a connected session whose queue is full still gets its
 * messages live without its acknowledgements eating into other sessions' queued copies.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { tempDir } from '../helpers.js';
import { connect, enroll, subscribeAndLeave, waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';
import { connectPacket, rawClient } from '../hardening/raw-mqtt.js';
import { node } from './helpers.js';

t.test('session queues are bounded across nodes; a full queue never costs another session its messages', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const db = new Redis(redis.url);
  t.teardown(() => db.disconnect());
  const dir = tempDir(t);
  const limits = { maxQueuedMessagesPerSession: 5 };
  const a = await node(t, dir, redis.url, 'node-a', { limits });
  const b = await node(t, dir, redis.url, 'node-b', { limits });
  const creds = tempDir(t);

  // The attack: subscribe through node A with a second client id, leave, publish to its own topic through node B,
  // without waiting for acknowledgements (Aedes acknowledges a QoS 1 publish before it queues it).
  const hoarder = await enroll(a, creds, 'hoarder');
  await subscribeAndLeave(a, hoarder, 'hoarder:away', 'devices/hoarder/#');
  const pubA = await connect(a, { ...hoarder, id: 'hoarder:pub-a' });
  t.teardown(() => pubA.end(true));
  const pubB = await connect(b, { ...hoarder, id: 'hoarder:pub-b' });
  t.teardown(() => pubB.end(true));
  const refused = async () => {
    let n = 0;
    for (const node of [a, b]) n += Number(/action="queue_full"\} (\d+)/.exec(String(await node.metrics.getSingleMetricAsString('wott_mqtt_slow_consumers_total')))?.[1] ?? 0);
    return n;
  };
  const settled = async (want: number) => {
    for (let i = 0; i < 200 && (await refused()) < want; i++) await new Promise((r) => setTimeout(r, 50));
  };
  // Ten through node B: 5 queued, 5 refused. (Nodes that race admit up to the limit each: docs/broker.md.)
  await Promise.all(Array.from({ length: 10 }, (_, i) => pubB.publishAsync('devices/hoarder/x', `b${i}`, { qos: 1 })));
  await settled(5);
  // Ten more through node A, which counts what node B queued: all refused.
  await Promise.all(Array.from({ length: 10 }, (_, i) => pubA.publishAsync('devices/hoarder/x', `a${i}`, { qos: 1 })));
  await settled(15);
  t.equal(await refused(), 15, '15 of the 20 refused, by the two nodes together');
  t.equal(await db.llen('outgoing:hoarder%3Aaway'), 5, 'its queue in Redis holds 5');

  // A witness, away, and a connected session that acknowledges nothing until its queue is full, both on weather/q.
  const witness = await enroll(a, creds, 'witness');
  await subscribeAndLeave(a, witness, 'witness:p', 'weather/q/#');
  const lazyCreds = await enroll(a, creds, 'lazy');
  const lazy = await rawClient(a.mqttPort, lazyCreds);
  t.teardown(() => lazy.socket.destroy());
  lazy.send(connectPacket('lazy:p', { clean: false }));
  t.match(await lazy.next('connack'), { returnCode: 0 });
  lazy.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'weather/#', qos: 1 }] });
  t.match(await lazy.next('suback'), { granted: [1] });
  const sender = await connect(b, await enroll(a, creds, 'sender'));
  t.teardown(() => sender.end(true));
  const publishes = () => lazy.packets.filter((p) => p.cmd === 'publish') as Array<{ topic: string; messageId: number }>;
  for (let i = 0; i < 5; i++) await sender.publishAsync('weather/fill', `f${i}`, { qos: 1 });
  await waitFor(() => publishes().length >= 5, 'the 5 fills, unacknowledged: lazy:p is full');
  for (let i = 0; i < 3; i++) await sender.publishAsync('weather/q/x', `q${i}`, { qos: 1 });
  await waitFor(() => publishes().length >= 8, 'the 3 on weather/q, live all the same');
  for (const p of publishes().filter((p) => p.topic === 'weather/q/x')) lazy.send({ cmd: 'puback', messageId: p.messageId });
  t.equal(await db.llen('outgoing:lazy%3Ap'), 5, 'lazy:p keeps the 5 it has not acknowledged, and only those');

  // The witness comes back through node B: all three are there (its copies were not counted down by lazy's acks).
  const got: string[] = [];
  const back = await connect(b, { ...witness, id: 'witness:p' }, { clean: false });
  t.teardown(() => back.end(true));
  back.on('message', (_topic, payload) => got.push(payload.toString()));
  await waitFor(() => got.length >= 3, 'the witness gets its 3');
  t.same(got.sort(), ['q0', 'q1', 'q2']);
  // And the hoarder's 5 come back, through node B.
  const hoarded: string[] = [];
  const awayBack = await connect(b, { ...hoarder, id: 'hoarder:away' }, { clean: false });
  t.teardown(() => awayBack.end(true));
  awayBack.on('message', (_topic, payload) => hoarded.push(payload.toString()));
  await waitFor(() => hoarded.length >= 5, 'the hoarder gets its 5');
  await new Promise((r) => setTimeout(r, 300)); // anything beyond the 5 would have followed them
  t.equal(hoarded.length, 5, 'and no more');
});
