/**
 * Lateral movement in a cluster: two gateway nodes on one real redis-server, scoring on the lease holder only. The
 * attacker and its neighbours are connected to the other node (and one neighbour to the leader); the notice the
 * leader's scoring publishes on wott/v1/lateral/{device} reaches the fleet events of both nodes, so every node's
 * /events/stream and dashboard show "dev-x tried to log in to dev-y and dev-z 240 times".
 */
import type { MqttClient } from 'mqtt';
import t from 'tap';
import { topics, type FleetEvent } from '../../protocol/index.js';
import { loadModel } from '../../scoring/index.js';
import { tempDir } from '../helpers.js';
import { connect, enroll, waitFor } from '../mqtt-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';
import { startRedis } from '../redis-helpers.js';
import { node, type Node } from '../cluster/helpers.js';

const scoring = { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 };

async function connectFrom(t: Tap.Test, gw: Node, dir: string, id: string, localAddress: string): Promise<MqttClient> {
  const creds = await enroll(gw, dir, id);
  const client = await connect(gw, creds, { host: '127.0.0.1', servername: 'localhost', localAddress } as object);
  t.teardown(() => void client.end(true));
  return client;
}

let reportId = 0;
function report(device: string, sources: Array<{ address: string; failedLogins: number }> = []): string {
  const telemetry = fixtureTelemetry('debian12-hardened', device, ++reportId, Date.now());
  if (sources.length === 0) return JSON.stringify(telemetry);
  return JSON.stringify({ ...telemetry, intrusions: { windowSeconds: 60, sources: sources.map((s) => ({ dropped: 0, services: ['ssh'], ...s })) } });
}

t.test('a lateral-movement notice of the leader reaches the fleet events of every node', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  const a = await node(t, dir, redis.url, 'node-a', { scoring });
  const b = await node(t, dir, redis.url, 'node-b', { scoring });
  await waitFor(() => Boolean(a.scoring || b.scoring), 'a scoring leader');
  const leader = a.scoring ? a : b;
  const follower = leader === a ? b : a;
  t.notOk(follower.scoring, 'scoring runs on one node');

  const certs = tempDir(t);
  const x = await connectFrom(t, follower, certs, 'dev-x', '127.0.0.2');
  const y = await connectFrom(t, leader, certs, 'dev-y', '127.0.0.3');
  const z = await connectFrom(t, follower, certs, 'dev-z', '127.0.0.4');
  for (const [c, id] of [[x, 'dev-x'], [y, 'dev-y'], [z, 'dev-z']] as const) await c.publishAsync(topics.telemetry(id), report(id), { qos: 1 });
  await waitFor(() => ['dev-x', 'dev-y', 'dev-z'].every((d) => follower.plugin.effectiveScore(d) >= 0.9 && leader.plugin.effectiveScore(d) >= 0.9), 'hardened scores on both nodes');

  // The leader's scoring learnt dev-x's address from the follower's connect event (over the Redis bus).
  await y.publishAsync(topics.telemetry('dev-y'), report('dev-y', [{ address: '127.0.0.2', failedLogins: 120 }]), { qos: 1 });
  await z.publishAsync(topics.telemetry('dev-z'), report('dev-z', [{ address: '127.0.0.2', failedLogins: 120 }]), { qos: 1 });

  const text = 'dev-x tried to log in to dev-y and dev-z 240 times';
  const shown = (gw: Node, device: string) => gw.events.recent(1000).some((e: FleetEvent) => e.type === 'lateral_movement' && e.device === device && e.text === text);
  for (const [name, gw] of [['follower', follower], ['leader', leader]] as const) {
    await waitFor(() => ['dev-x', 'dev-y', 'dev-z'].every((d) => shown(gw, d)), `the event on dev-x, dev-y and dev-z on the ${name}`);
    t.pass(`the ${name}'s fleet events say "${text}" on all three devices`);
  }
  // Each node says it once per device, not once per notice path (the leader hears its own notice over the bus only).
  const count = (gw: Node) => gw.events.recent(1000).filter((e) => e.type === 'lateral_movement' && e.device === 'dev-x' && e.text === text).length;
  t.equal(count(leader), 1, 'the leader: one event on dev-x');
  t.equal(count(follower), 1, 'the follower: one event on dev-x');
});

