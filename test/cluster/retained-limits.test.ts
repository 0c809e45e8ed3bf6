/**
 * Retained-message limits hold for the cluster, not per node: the ledger is in Redis. A device that spreads its
 * retained publishes over two nodes gets its per-device share once, the broker-wide total counts every node's, and
 * deleting a retained message on one node makes room on the other.
 */
import t from 'tap';
import type { MqttClient } from 'mqtt';
import { tempDir } from '../helpers.js';
import { connect, enroll, inbox, waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';
import { node } from './helpers.js';

/** Publishes a retained QoS 1 message the broker refuses: the plugin refuses it by closing the connection. */
async function refused(client: MqttClient, topic: string, payload: string | Buffer): Promise<void> {
  const closed = new Promise((r) => client.once('close', r));
  client.publish(topic, payload, { qos: 1, retain: true });
  await closed;
}

t.test('per-device and broker-wide retained limits are counted across nodes', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  const limits = { retained: { perDevice: 4, bytesPerDevice: 4096, total: 6, totalBytes: 1024 * 1024 } };
  const a = await node(t, dir, redis.url, 'node-a', { limits });
  const b = await node(t, dir, redis.url, 'node-b', { limits });
  const creds = tempDir(t);
  const hoarder = await enroll(a, creds, 'hoarder');
  const onA = await connect(a, hoarder, { clientId: 'hoarder:a' });
  t.teardown(() => onA.end(true));
  const onB = await connect(b, hoarder, { clientId: 'hoarder:b' });
  t.teardown(() => onB.end(true));

  // Two on each node: four in all, the device's whole share (each node alone would allow four more).
  for (const i of [1, 2]) await onA.publishAsync(`weather/h/${i}`, `a${i}`, { qos: 1, retain: true });
  for (const i of [3, 4]) await onB.publishAsync(`weather/h/${i}`, `b${i}`, { qos: 1, retain: true });
  await onB.publishAsync('weather/h/1', 'replaced on B', { qos: 1, retain: true });
  t.ok(onA.connected && onB.connected, 'four retained messages, and replacing one from the other node, are accepted');
  t.same(await a.plugin.retained.held('hoarder'), { count: 4, bytes: (await b.plugin.retained.held('hoarder')).bytes }, 'both nodes see the same ledger');
  await refused(onA, 'weather/h/5', 'a5');
  t.pass("a fifth on node A is refused: the limit is the device's across the cluster");

  // A deletion through node B makes room for a new one on node A.
  await onB.publishAsync('weather/h/2', '', { qos: 1, retain: true });
  const again = await connect(a, hoarder, { clientId: 'hoarder:a2' });
  t.teardown(() => again.end(true));
  await again.publishAsync('weather/h/5', 'a5', { qos: 1, retain: true });
  t.ok(again.connected, 'after a deletion on B, node A admits one more');
  await refused(again, 'weather/h/6', Buffer.alloc(10)); // 4 held again
  t.pass('and then no more');

  // The broker-wide total (6): another device fills the rest through node B, and its third on node A is refused.
  const other = await enroll(a, creds, 'other');
  const otherB = await connect(b, other);
  t.teardown(() => otherB.end(true));
  for (const i of [1, 2]) await otherB.publishAsync(`weather/o/${i}`, `o${i}`, { qos: 1, retain: true });
  t.same(await a.plugin.retained.held(), { count: 6, bytes: (await b.plugin.retained.held()).bytes });
  const otherA = await connect(a, other, { clientId: 'other:a' });
  t.teardown(() => otherA.end(true));
  await refused(otherA, 'weather/o/3', 'o3');
  t.pass('the total holds for the cluster');

  // What a reader gets is exactly what the ledger admitted.
  const reader = await connect(b, await enroll(a, creds, 'reader'));
  t.teardown(() => reader.end(true));
  const got = inbox(reader);
  await reader.subscribeAsync('weather/#', { qos: 1 });
  await waitFor(() => got.length >= 6, 'retained replay');
  t.same(got.map((m) => m.topic).sort(), ['weather/h/1', 'weather/h/3', 'weather/h/4', 'weather/h/5', 'weather/o/1', 'weather/o/2']);
});
