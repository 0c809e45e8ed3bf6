/**
 * Routing devices' QoS 0 messages by interest (broker/bus-interest.ts, broker/stream-emitter.ts): the announcement
 * encoding and its hostile inputs, the table of other nodes' filters with MQTT's matching, and, against a real
 * redis-server, that a node sends a QoS 0 message to Redis only when another node subscribes to it, that a
 * subscription made on one node is served from its SUBACK on, that a node started later learns the others' filters,
 * and that a stopped node is forgotten.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { MESSAGE_FORMAT, type BusPacket } from '../../broker/bus-entry.js';
import { decodeInterest, encodeInterest, INTEREST_CACHE_LIMIT, RemoteInterest, routedFilter } from '../../broker/bus-interest.js';
import { redisConnectionOptions } from '../../broker/cluster.js';
import { StreamEmitter } from '../../broker/stream-emitter.js';
import { startRedis } from '../redis-helpers.js';
import { waitFor } from '../mqtt-helpers.js';

t.test('announcements: round trip; cut, bent and oversized ones are errors', async (t) => {
  const filters = ['weather/#', 'a/+/c', '', 'ünïcode/‰', 'x'.repeat(1000)];
  const message = encodeInterest('node-1', 'state', filters);
  t.same(decodeInterest(message), { instance: 'node-1', op: 'state', seq: 0, filters });
  t.same(decodeInterest(encodeInterest('n', 'add', [], 0xffffffff)), { instance: 'n', op: 'add', seq: 0xffffffff, filters: [] });
  t.same(decodeInterest(encodeInterest('n', 'remove', ['a'])), { instance: 'n', op: 'remove', seq: 0, filters: ['a'] });
  t.same(decodeInterest(encodeInterest('n', 'ack', ['other'], 7)), { instance: 'n', op: 'ack', seq: 7, filters: ['other'] });
  for (let n = 0; n < message.length; n++) if (!(decodeInterest(message.subarray(0, n)) instanceof Error)) t.fail(`cut to ${n} bytes: decoded`);
  t.match(decodeInterest(Buffer.concat([message, Buffer.from([1])])), { message: /bytes after/ });
  const badOp = Buffer.from(message);
  badOp[2 + 'node-1'.length] = 9;
  t.match(decodeInterest(badOp), { message: /unknown operation 9/ });
  const huge = Buffer.from(message);
  huge.writeUInt32BE(0xffffffff, 7 + 'node-1'.length);
  t.match(decodeInterest(huge), { message: /cut short/ }, 'a count the message cannot hold, refused before any loop');
  t.match(decodeInterest(Buffer.from([MESSAGE_FORMAT, 1, 65])), Error, 'a packet message is not an announcement');
  t.match(decodeInterest(Buffer.alloc(0)), Error);
  t.throws(() => encodeInterest('n', 'add', ['x'.repeat(70_000)]), RangeError);
});

t.test("the other nodes' filters: MQTT matching, per-node sets, heartbeats replace, silence forgets", async (t) => {
  t.notOk(routedFilter('$SYS/#'), '$ filters never match a device message');
  t.notOk(routedFilter('wott/v1/scores/+'), "the gateway's namespace travels on the stream");
  t.ok(routedFilter('#'));
  t.ok(routedFilter('+/v1/x'));
  const table = new RemoteInterest();
  t.notOk(table.wants('weather/x'), 'nobody: nothing is wanted');
  t.ok(table.apply({ instance: 'b', op: 'add', seq: 1, filters: ['weather/#', '$SYS/+/new/clients', 'wott/v1/#'] }, 1000));
  t.same([...table.nodeFilters], [['b', 1]], 'only the routed filter is kept');
  t.ok(table.wants('weather/x/temp'));
  t.ok(table.wants('weather'), '`a/#` matches `a` too, as mqemitter does');
  t.notOk(table.wants('traffic/x'));
  t.notOk(table.apply({ instance: 'b', op: 'ack', seq: 1, filters: ['x'] }, 1000), 'an ack changes nothing in the table');
  t.ok(table.apply({ instance: 'c', op: 'add', seq: 0, filters: ['a/+/c'] }, 1000));
  t.ok(table.wants('a//c'), '`+` matches an empty level, as mqemitter does');
  t.notOk(table.apply({ instance: 'c', op: 'add', seq: 0, filters: ['weather/#'] }, 1000), 'a second node with the same filter changes no answer');
  t.notOk(table.apply({ instance: 'b', op: 'remove', seq: 0, filters: ['weather/#'] }, 1000), 'C still wants it');
  t.ok(table.wants('weather/x'));
  t.ok(table.apply({ instance: 'c', op: 'state', seq: 0, filters: ['a/+/c'] }, 2000), "C's heartbeat no longer holds weather/#: dropped");
  t.notOk(table.wants('weather/x'));
  t.ok(table.wants('a/b/c'));
  t.same(table.expire(1500), ['b'], 'B, silent since 1000, is forgotten');
  t.same(table.expire(1500), []);
  t.ok(table.wants('a/b/c'), 'C was heard at 2000');
  t.same(table.expire(2500), ['c']);
  t.notOk(table.wants('a/b/c'), 'nobody left');
  table.apply({ instance: 'd', op: 'add', seq: 0, filters: ['#'] }, 3000);
  for (let i = 0; i < INTEREST_CACHE_LIMIT * 2; i++) table.wants(`t/${i}`);
  t.ok(table.wants('t/anything'), 'the answer cache starts over when full, answers stay right');
});

t.test('routing by interest between emitters on a real Redis', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const connection = redisConnectionOptions(redis.url);
  const errors: string[] = [];
  const heartbeat = 150;
  const make = () => {
    const bus = new StreamEmitter({ connection, interestHeartbeatMs: heartbeat, interestAckTimeoutMs: 400, onError: (err) => errors.push(err.message) });
    return bus;
  };
  const closeBus = (bus: StreamEmitter) => new Promise<void>((resolve) => bus.close(resolve));
  // What reaches Redis on the QoS 0 channels: packet messages per channel (announcements left out).
  const observer = new Redis(connection);
  t.teardown(() => void observer.disconnect());
  const seen = new Map<string, number>();
  observer.on('pmessageBuffer', (_p: Buffer, channel: Buffer, message: Buffer) => {
    if (message[0] === MESSAGE_FORMAT) seen.set(channel.toString(), (seen.get(channel.toString()) ?? 0) + 1);
  });
  await observer.psubscribe('wott:bus:qos0:*');
  const a = make();
  const b = make();
  t.teardown(() => Promise.all([closeBus(a), closeBus(b)]));
  await Promise.all([a.ready, b.ready]);
  const subscribe = (bus: StreamEmitter, filter: string, into: BusPacket[]) => {
    const listener = (p: BusPacket, done: () => void) => (into.push(p), done());
    return new Promise<typeof listener>((resolve) => bus.on(filter, listener, () => resolve(listener)));
  };
  const atA: BusPacket[] = [];
  const atB: BusPacket[] = [];
  await subscribe(a, 'local/#', atA);
  // Past the first round of heartbeats: from here on the nodes route by what they heard.
  await new Promise((resolve) => setTimeout(resolve, heartbeat * 2));
  await waitFor(() => a.otherNodesInterest.get(b.instance) !== undefined && b.otherNodesInterest.get(a.instance) === 1, 'each heard the other');

  await t.test('nothing goes to Redis that no other node subscribes to', async (t) => {
    seen.clear();
    for (let i = 0; i < 50; i++) a.emit({ topic: 'local/x', payload: Buffer.from(`l${i}`), qos: 0 });
    await waitFor(() => atA.length >= 50, 'A delivered locally');
    // A marker that B does want, after them: had A sent the others, they would have reached Redis before it.
    const bListener = await subscribe(b, 'marker/#', atB);
    a.emit({ topic: 'marker/1', payload: Buffer.from('m'), qos: 0 });
    await waitFor(() => atB.length === 1, 'B got the marker');
    t.equal(seen.get(a.channel), 1, "only the marker left A's node");
    b.removeListener('marker/#', bListener);
  });

  await t.test('a subscription on B is served from its SUBACK on', async (t) => {
    atB.length = 0;
    // Subscribe on B, and publish on A the moment the subscription is acknowledged, many times over: B's SUBACK waits
    // until A confirmed it applied B's new filter.
    for (let round = 0; round < 20; round++) {
      const filter = `sub/${round}/#`;
      const listener = await subscribe(b, filter, atB);
        a.emit({ topic: `sub/${round}/t`, payload: Buffer.from(`r${round}`), qos: 0 });
      await waitFor(() => atB.length === round + 1, `round ${round} arrived`);
      b.removeListener(filter, listener);
    }
    t.equal(atB.length, 20, 'every first message after the SUBACK arrived');
  });

  await t.test('after the last local subscriber leaves, the others stop sending', async (t) => {
    const listener = await subscribe(b, 'gone/#', atB);
    b.removeListener('gone/#', listener);
    await waitFor(() => a.otherNodesInterest.get(b.instance) === 0, 'A heard the removal');
    seen.clear();
    atA.length = 0;
    await subscribe(a, 'gone/#', atA);
    for (let i = 0; i < 10; i++) a.emit({ topic: 'gone/x', payload: Buffer.from('g'), qos: 0 });
    await waitFor(() => atA.length === 10, 'A delivered locally');
    await new Promise((resolve) => setTimeout(resolve, 50));
    t.notOk(seen.get(a.channel), 'nothing sent to Redis');
  });

  await t.test('a node started later learns what the others want; a stopped node is forgotten', async (t) => {
    await subscribe(b, 'late/#', atB);
    const c = make();
    await c.ready;
    atB.length = 0;
    // In its first round of heartbeats C sends everything (it cannot know yet); afterwards by what it heard.
    await waitFor(() => c.otherNodesInterest.get(b.instance) === 1, "C heard B's filters");
    await new Promise((resolve) => setTimeout(resolve, heartbeat * 2));
    c.emit({ topic: 'late/1', payload: Buffer.from('from C'), qos: 0 });
    await waitFor(() => atB.length === 1, 'B got it');
    await closeBus(c);
    await waitFor(() => !a.otherNodesInterest.has(c.instance) && !b.otherNodesInterest.has(c.instance), 'C forgotten after three silent heartbeats', 5000);
  });

  await t.test('a node that stopped answering delays a SUBACK by the ack timeout at most', async (t) => {
    // A "node" that announced itself and then went silent (killed between heartbeats): nobody acks for it.
    const raw = new Redis(connection);
    t.teardown(() => void raw.disconnect());
    await raw.publish('wott:bus:qos0:ghost-node-1', encodeInterest('ghost-node-1', 'state', ['ghost/#']));
    await waitFor(() => b.otherNodesInterest.has('ghost-node-1'), 'B heard the ghost');
    atB.length = 0;
    let acknowledged = false;
    const listener = (p: BusPacket, done: () => void) => (atB.push(p), done());
    b.on('ghosted/#', listener, () => (acknowledged = true));
    await waitFor(() => acknowledged, 'the subscription completed without the ghost', 5000);
    a.emit({ topic: 'ghosted/1', payload: Buffer.from('g'), qos: 0 });
    await waitFor(() => atB.length === 1, 'A, which did answer, sends to B');
    b.removeListener('ghosted/#', listener);
  });

  await t.test('Redis restarts: routing resumes by itself', async (t) => {
    await redis.restart();
    atB.length = 0;
    await subscribe(b, 'after/#', atB);
    await waitFor(
      () => {
        a.emit({ topic: 'after/restart', payload: Buffer.from('x'), qos: 0 });
        return atB.length > 0;
      },
      'a QoS 0 message from A reaches B again',
      10_000,
    );
    // And past the send-everything round after the reconnect, by interest again.
    await new Promise((resolve) => setTimeout(resolve, heartbeat * 3));
    const before = atB.length;
    a.emit({ topic: 'after/routed', payload: Buffer.from('y'), qos: 0 });
    await waitFor(() => atB.length === before + 1, 'routed by interest after the restart');
  });
  t.same(errors.filter((e) => !/ECONNREFUSED|Connection is closed|ECONNRESET|closed/i.test(e)), [], 'no bus errors but the restart');
});
