/**
 * Fencing of scores in a cluster: a scorer that was deposed but still runs (a paused process, a partition) publishes
 * and commits with its older lease epoch. Every node ignores its score, the store refuses its commit, the leader
 * restores the retained copy (so a node started later enforces the leader's score), and the lease's next epoch is
 * always above every epoch seen, even when Redis lost its counter.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Lease } from '../../gateway/leader.js';
import { redisConnectionOptions } from '../../broker/index.js';
import { ScoreFence } from '../../policy/index.js';
import { topics, type ScoreMessage } from '../../protocol/index.js';
import { aedesBus, loadModel, scoringPaths, startScoring, type ScoringBus } from '../../scoring/index.js';
import { openSqliteScoreStore, type StaleEpochError } from '../../store/index.js';
import { tempDir } from '../helpers.js';
import { connect, enroll, waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';
import { event, fixtureTelemetry } from '../scoring-fixtures.js';
import { node, type Node } from './helpers.js';

t.test('ScoreFence: per device, an older epoch is stale; scores without one are never fenced', async (t) => {
  const fence = new ScoreFence();
  t.ok(fence.admit('a', 3));
  t.ok(fence.admit('a', 3), 'the same epoch again: the leader scoring on');
  t.ok(fence.admit('a', 4));
  t.notOk(fence.admit('a', 3), 'an older epoch for the same device is stale');
  t.equal(fence.epochOf('a'), 4, 'and did not move the device epoch');
  t.ok(fence.admit('b', 2), 'another device has its own epoch (a new leader publishes every device it knows at start)');
  t.ok(fence.admit('a', undefined), 'no epoch (one node without a lease) is never fenced');
  t.equal(fence.highest, 4);
  fence.forget('a');
  t.ok(fence.admit('a', 1), 'a cleared score may be set by any epoch');
});

const SCORING = { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 };

t.test("a deposed scorer's late score is ignored on every node and in the store; the leader restores the retained copy", async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  const creds = tempDir(t);
  // Node X does not score: it is where the old scorer ran.
  const x = await node(t, dir, redis.url, 'node-x');
  const device = await enroll(x, creds, 'sensor-1');

  // The old leader, epoch 5. Its bus publishes through node X but no longer receives anything (a partition or a
  // pause: it will not hear of the new leader).
  const xBus = aedesBus(x.broker);
  const deafBus: ScoringBus = { subscribe: async () => undefined, publish: (topic, payload, retain) => xBus.publish(topic, payload, retain), close: () => xBus.close() };
  const deposedErrors: StaleEpochError[] = [];
  const oldScores: ScoreMessage[] = [];
  const old = await startScoring({ dataDir: dir, bus: deafBus, ...SCORING, epoch: 5, onDeposed: (err) => deposedErrors.push(err), onScore: (m) => oldScores.push(m) });
  t.teardown(() => old.close());
  old.onMessage(topics.telemetry('sensor-1'), Buffer.from(JSON.stringify(fixtureTelemetry('debian12-hardened', 'sensor-1', 1, Date.now()))));
  await waitFor(() => oldScores.some((m) => m.device === 'sensor-1' && m.score >= 0.9), 'the old leader scored the hardened report');
  t.equal(oldScores.at(-1)!.epoch, 5, 'scores carry the scorer epoch');
  await waitFor(() => x.plugin.scoreFence.epochOf('sensor-1') === 5, 'node X took the epoch-5 score');
  await old.persist();

  // Two scoring nodes start; one takes the lease. Redis' token counter starts from nothing here, yet the new epoch
  // must be above 5: the nodes saw epoch 5 in the retained score (the lease's floor).
  const logs: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  const a = await node(t, dir, redis.url, 'node-a', { scoring: SCORING, log });
  const b = await node(t, dir, redis.url, 'node-b', { scoring: SCORING, log });
  // Node X (scoring off) competes for the lease too (it leads the CRL refresh): out of the race, so that A or B scores.
  await x.lease!.close();
  await waitFor(() => a.scoring !== undefined || b.scoring !== undefined, 'a scoring leader');
  const leader = a.scoring ? a : b;
  const follower = leader === a ? b : a;
  const epoch = leader.scoring!.epoch!;
  t.ok(epoch > 5, `the new leader's epoch (${epoch}) is above the old one, though Redis counted from 0`);
  const nodes: Node[] = [x, a, b];
  const stale = new Map<Node, ScoreMessage[]>(nodes.map((n) => [n, []]));
  for (const n of nodes) n.plugin.onStaleScore((m) => stale.get(n)!.push(m));
  const leaderScores: ScoreMessage[] = [];
  leader.scoring!.onScore((m) => leaderScores.push(m));

  // The device reports its factory state through the follower: the new leader scores it low.
  const client = await connect(follower, device);
  t.teardown(() => client.end(true));
  await client.publishAsync(topics.telemetry('sensor-1'), JSON.stringify(fixtureTelemetry('rpi-factory', 'sensor-1', 2, Date.now())), { qos: 1 });
  await waitFor(() => leaderScores.some((m) => m.device === 'sensor-1' && m.score < 0.9), 'the new leader scored the factory report');
  const current = leaderScores.filter((m) => m.device === 'sensor-1').at(-1)!;
  t.equal(current.epoch, epoch);
  await waitFor(() => nodes.every((n) => n.plugin.effectiveScore('sensor-1') === current.score), 'every node enforces the new leader score');
  await leader.scoring!.persist();

  // The old scorer wakes up with an event it had not scored yet (a denial): it publishes a new, still high score and
  // commits it. (A new score: republishing an unchanged one commits no history row.)
  const published = leaderScores.length;
  old.onMessage(topics.events('sensor-1'), Buffer.from(event('sensor-1', 'publish_denied', { topic: 'payments/x' })));
  const late = old.recompute('sensor-1', true)!;
  t.ok(late.score >= 0.9 && late.epoch === 5, 'the deposed scorer published a high score with its old epoch');
  t.ok(late.score < oldScores.filter((m) => m.device === 'sensor-1').at(-2)!.score, 'a new score, below its last');
  await old.persist();
  t.equal(deposedErrors.length, 1, 'the store refused the deposed scorer commit');
  t.match(deposedErrors[0], { epoch: 5, fence: epoch });

  await waitFor(() => nodes.every((n) => stale.get(n)!.some((m) => m.device === 'sensor-1' && m.epoch === 5)), 'every node saw the late score');
  for (const n of nodes) t.equal(n.plugin.effectiveScore('sensor-1'), current.score, `${n === x ? 'node X' : n === a ? 'node A' : 'node B'} still enforces the leader score`);
  t.ok(
    logs.some((l) => l.includes('ignored a score from a deposed scorer')),
    'the nodes say why they ignored it',
  );

  // The store kept the leader's score; nothing of the late one reached the history.
  const store = await openSqliteScoreStore(scoringPaths(dir).store);
  t.teardown(() => store.close());
  t.match((await store.latest('sensor-1'))?.message, { score: current.score, epoch });
  t.notOk(
    (await store.history('sensor-1')).some((row) => row.time === Date.parse(late.time) && row.score === late.score),
    'no history row from the stale commit',
  );

  // The late publish overwrote the retained copy in Redis; the leader, seeing it stale, published its own again.
  await waitFor(() => leaderScores.slice(published).some((m) => m.device === 'sensor-1' && m.score === current.score), 'the leader republished the score');
  const d = await node(t, dir, redis.url, 'node-d');
  t.equal(d.plugin.effectiveScore('sensor-1'), current.score, 'a node started later enforces the leader score from the retained copy');
  t.equal(d.plugin.scoreFence.epochOf('sensor-1'), epoch);
  t.equal(follower.scoring, undefined, 'the follower never scored');
});

t.test('the lease token is above the floor; a resigned leader takes the lease again with a higher token', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const acquired: number[] = [];
  let lost = 0;
  const lease = new Lease({
    redis: redisConnectionOptions(redis.url),
    name: 'fence-test',
    nodeId: 'n1',
    ttlMs: 600,
    floor: () => 41,
    onAcquire: (token) => void acquired.push(token),
    onLose: () => void lost++,
  });
  t.teardown(() => lease.close());
  lease.start();
  await waitFor(() => acquired.length === 1, 'acquired');
  t.equal(acquired[0], 42, 'a fresh Redis counts from the floor');
  const watcher = new Redis(redis.port, '127.0.0.1');
  t.teardown(() => watcher.disconnect());
  t.equal(await watcher.get('wott:lease:fence-test'), 'n1#42');
  lease.resign('test');
  await waitFor(() => lost === 1 && acquired.length === 2, 'resigned and acquired again');
  t.equal(acquired[1], 43, 'the next token is one more');
  t.ok(lease.leading);
});
