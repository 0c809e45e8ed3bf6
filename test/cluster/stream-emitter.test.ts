/**
 * The cluster bus on a Redis Stream (broker/stream-emitter.ts) against a real redis-server: delivery between two
 * emitters with topic matching, own messages delivered once, the emit callback only after Redis stored the entry,
 * nothing lost across a Redis stop/start, a stream Redis lost (read again from its start), and the MAXLEN bound.
 * Devices' QoS 0 messages cross over pub/sub instead: in order, never in the stream, their publishers not held
 * until Redis answers unless too many are on their way, and never sent back to the node that published them (each
 * node listens to every node's channel but its own: the patterns are checked against Redis' own glob matching).
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { compareIds, decodeEntry, decodeMessage, encodeEntry, encodeMessage, messageInstance, type BusPacket } from '../../broker/bus-entry.js';
import { redisConnectionOptions } from '../../broker/cluster.js';
import { isLightPacket, otherNodesPatterns, StreamEmitter } from '../../broker/stream-emitter.js';
import { startRedis } from '../redis-helpers.js';
import { waitFor } from '../mqtt-helpers.js';

t.test('entries: encode and decode round-trip; malformed ones are errors; ids order as Redis orders them', async (t) => {
  const packet = { cmd: 'publish', topic: 'a/b', payload: Buffer.from([0, 1, 255]), qos: 1, retain: false, brokerId: 'n1', brokerCounter: 7, messageId: undefined, properties: { correlationData: Buffer.from('xy') } };
  const fields = encodeEntry('inst', [packet, { topic: 'c', payload: Buffer.from('second') }]).map((f) => Buffer.from(f));
  const back = decodeEntry(fields);
  if (back instanceof Error) throw back;
  t.equal(back.instance, 'inst');
  t.equal(back.packets.length, 2, 'packets published together share an entry');
  const [first, second] = back.packets as [BusPacket, BusPacket];
  t.same(first.payload, Buffer.from([0, 1, 255]));
  t.ok(Buffer.isBuffer(first.payload), 'payload comes back a Buffer');
  t.ok(Buffer.isBuffer((first.properties as { correlationData: unknown }).correlationData), 'a Buffer inside the packet too');
  t.same({ ...first, payload: undefined, properties: undefined }, { cmd: 'publish', topic: 'a/b', qos: 1, retain: false, brokerId: 'n1', brokerCounter: 7, payload: undefined, properties: undefined });
  t.same([second.topic, String(second.payload)], ['c', 'second'], 'in order');
  const str = decodeEntry(encodeEntry('i', [{ topic: 't', payload: 'hello' }]).map((f) => Buffer.from(f)));
  t.equal((str as { packets: BusPacket[] }).packets[0]!.payload, 'hello', 'a string payload stays a string');
  t.match(decodeEntry([Buffer.from('n'), Buffer.from('x')]), Error);
  t.match(decodeEntry(['n', 'x', 'h', '{"topic":"a"}', 'p', '', 'h', '{"topic":"b"}'].map((f) => Buffer.from(f))), Error, 'a header without its payload');
  t.match(decodeEntry(['n', 'x', 'h', '{not json', 'p', ''].map((f) => Buffer.from(f))), Error);
  t.match(decodeEntry(['n', 'x', 'h', '{"qos":1}', 'p', ''].map((f) => Buffer.from(f))), Error);
  t.ok(compareIds('9-0', '10-0') < 0, 'by number, not text');
  t.ok(compareIds('10-2', '10-10') < 0);
  t.equal(compareIds('5-1', '5-1'), 0);
  t.ok(compareIds('1700000000001-0', '1700000000000-99') > 0);

  const message = encodeMessage('inst', [packet, { topic: 'c', payload: 'text' }]);
  t.equal(messageInstance(message), 'inst', 'the instance is read without decoding the packets');
  const fromMessage = decodeMessage(message);
  if (fromMessage instanceof Error) throw fromMessage;
  t.same(fromMessage, { instance: 'inst', packets: [first, { topic: 'c', payload: 'text' }] }, 'a pub/sub message carries what an entry carries');
  t.match(decodeMessage(message.subarray(0, message.length - 1)), Error, 'a message cut short');
  t.equal(messageInstance(Buffer.from('nonsense')), undefined);
  for (let n = 0; n < message.length; n++) if (!(decodeMessage(message.subarray(0, n)) instanceof Error)) t.fail(`cut to ${n} bytes: decoded`);
  t.match(decodeMessage(Buffer.concat([message, Buffer.from([0])])), { message: /bytes after its last packet/ }, 'trailing bytes');
  t.match(decodeMessage(Buffer.from([1, ...message.subarray(1)])), { message: /another format/ }, 'another format (an older node)');
  const light = encodeMessage('i', [{ cmd: 'publish', topic: 'w/t', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, brokerId: 'b', brokerCounter: 1 }]);
  const flagsAt = 1 + 1 + 1 + 2;
  const unknown = Buffer.from(light);
  unknown.writeUInt16BE(unknown.readUInt16BE(flagsAt) | 0x8000, flagsAt);
  t.match(decodeMessage(unknown), { message: /unknown packet flags/ });
  const qos3 = Buffer.from(light);
  qos3.writeUInt16BE(qos3.readUInt16BE(flagsAt) | (3 << 2), flagsAt);
  t.match(decodeMessage(qos3), { message: /QoS 3/ });
  const proto = encodeMessage('i', [{ topic: 't', payload: Buffer.alloc(0), extra: 1 }]);
  const polluted = Buffer.from(proto.toString('latin1').replace('{"extra":1}', '{"__proto__":{"x":1}}'), 'latin1');
  polluted.writeUInt32BE(21, polluted.length - 25);
  const fromPolluted = decodeMessage(polluted);
  if (fromPolluted instanceof Error) throw fromPolluted;
  t.equal(Object.getPrototypeOf(fromPolluted.packets[0]), Object.prototype, '"__proto__" in the extra fields sets no prototype');
  t.equal(({} as { x?: number }).x, undefined, 'and pollutes nothing');
  t.same(decodeMessage(encodeMessage('i', [{ topic: 't', payload: 'p', qos: 7, cmd: 'pubrel', retain: 'yes', messageId: 70000 }])), { instance: 'i', packets: [{ topic: 't', payload: 'p', qos: 7, cmd: 'pubrel', retain: 'yes', messageId: 70000 }] }, 'values of unexpected types come back as they were (as JSON)');
  t.ok(isLightPacket({ topic: 'weather/x', qos: 0 }), "a device's QoS 0 message goes over pub/sub");
  t.notOk(isLightPacket({ topic: 'weather/x', qos: 1 }), 'QoS 1 stays on the stream');
  t.notOk(isLightPacket({ topic: 'weather/x' }), 'a packet that does not say QoS 0 stays on the stream');
  t.notOk(isLightPacket({ topic: '$SYS/b1/new/clients', qos: 0 }), 'takeover notices stay on the stream');
  t.notOk(isLightPacket({ topic: 'wott/v1/scores/dev-1', qos: 0, retain: true }), "the gateway's own topics stay on the stream");
});

t.test("the other nodes' channels: every other id once, never one's own, under Redis' own glob matching", async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const connection = redisConnectionOptions(redis.url);
  const listener = new Redis(connection);
  const publisher = new Redis(connection);
  t.teardown(() => void (listener.disconnect(), publisher.disconnect()));
  // Glob metacharacters in the key and every character an instance id can hold (base64url: - and _ among them).
  const prefix = 'odd*key?[x]\\^-:qos0:';
  const own = 'Ab-_09zZ-_x^';
  await listener.psubscribe(...otherNodesPatterns(prefix, own));
  t.equal(await publisher.publish(`${prefix}${own}`, 'm'), 0, 'its own channel: no listener');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_^*?[]\\';
  const others = new Set<string>();
  // Differing at each single position, with each kind of character, and at random.
  for (let i = 0; i < own.length; i++) for (const c of '-_a*[\\') if (own[i] !== c) others.add(own.slice(0, i) + c + own.slice(i + 1));
  for (let n = 0; n < 300; n++) others.add(Array.from({ length: own.length }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join(''));
  others.delete(own);
  const counts = await Promise.all([...others].map(async (id) => [id, await publisher.publish(`${prefix}${id}`, 'm')] as const));
  t.same(counts.filter(([, n]) => n !== 1), [], `each of ${others.size} other ids reaches the listener exactly once`);
  t.equal(await publisher.publish(`odd*key?[x]\\^-:qos1:${own.slice(0, -1)}Q`, 'm'), 0, 'another prefix: no listener');
  t.equal(await publisher.publish(`${prefix}${own}x`, 'm'), 0, 'its own id with more after it: no listener');
});

t.test('two emitters on one Redis', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const connection = redisConnectionOptions(redis.url);
  const errors: string[] = [];
  const make = (maxLength?: number) => {
    const bus = new StreamEmitter({ connection, onError: (err) => errors.push(err.message), ...(maxLength ? { maxLength } : {}) });
    t.teardown(() => new Promise<void>((resolve) => bus.close(resolve)));
    return bus;
  };
  const a = make();
  const b = make();
  await Promise.all([a.ready, b.ready]);
  const raw = new Redis(connection);
  t.teardown(() => void raw.disconnect());
  const atA: BusPacket[] = [];
  const atB: BusPacket[] = [];
  await new Promise<void>((resolve) => a.on('weather/#', (p, done) => (atA.push(p), done()), resolve));
  await new Promise<void>((resolve) => b.on('weather/+/temp', (p, done) => (atB.push(p), done()), resolve));
  const emit = (bus: StreamEmitter, packet: BusPacket) => new Promise<void>((resolve, reject) => bus.emit(packet, (err) => (err ? reject(err) : resolve())));

  await t.test('delivery across emitters, topic matching, own messages once', async (t) => {
    await emit(a, { topic: 'weather/x/temp', payload: Buffer.from('one'), qos: 1 });
    await emit(a, { topic: 'weather/x/wind', payload: Buffer.from('two'), qos: 0 });
    await emit(b, { topic: 'weather/y/temp', payload: Buffer.from('three'), qos: 1 });
    await waitFor(() => atA.length >= 3 && atB.length >= 2, 'both sides received');
    // One more round trip through the stream on both readers, so a duplicate would have arrived by now.
    await emit(a, { topic: 'weather/z/temp', payload: Buffer.from('four') });
    await waitFor(() => atA.length >= 4 && atB.length >= 3, 'the marker arrived on both');
    t.same(atA.map((p) => String(p.payload)), ['one', 'two', 'three', 'four'], 'A: its own messages once, at publish, and B\'s');
    t.same(atB.map((p) => String(p.payload)), ['one', 'three', 'four'], 'B: only what its filter matches, its own once');
    t.ok(Buffer.isBuffer(atB[0]!.payload));
  });

  await t.test('emit calls back once Redis has stored the entry', async (t) => {
    const before = await raw.xlen('wott:bus');
    await emit(b, { topic: 'weather/q/temp', payload: Buffer.from('stored') });
    const last = (await raw.xrevrange('wott:bus', '+', '-', 'COUNT', 1))[0]!;
    t.equal(await raw.xlen('wott:bus'), before + 1);
    t.match(last[1], ['n', b.instance, 'h', /"topic":"weather\/q\/temp"/, 'p', 'stored']);
  });

  await t.test('Redis stops and starts again: what was emitted meanwhile arrives, after the callback waited for it', async (t) => {
    atB.length = 0;
    await redis.stop();
    let acked = 0;
    const pending = Array.from({ length: 50 }, (_, i) => emit(a, { topic: `weather/o${i}/temp`, payload: Buffer.from(`o${i}`), qos: 1 }).then(() => void acked++));
    t.equal(acked, 0, 'no callback while Redis is down');
    await redis.restart();
    await Promise.all(pending);
    await waitFor(() => atB.length >= 50, 'B received every message emitted during the outage', 30_000);
    t.same(atB.map((p) => String(p.payload)), Array.from({ length: 50 }, (_, i) => `o${i}`), 'all of them, in order, once');
  });

  await t.test('Redis lost the stream: the reader reads the new one from its start, even ids sorting before its own', async (t) => {
    atB.length = 0;
    const gone = errors.length;
    await raw.del('wott:bus');
    await raw.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await waitFor(() => errors.slice(gone).filter((m) => /stream is gone/.test(m)).length >= 2, 'both readers noticed the stream is gone');
    // An entry from another node, with an id from a clock far behind the ids B has read.
    await raw.xadd('wott:bus', '5-0', ...encodeEntry('elsewhere', [{ topic: 'weather/late/temp', payload: Buffer.from('late') }]));
    await waitFor(() => atB.some((p) => String(p.payload) === 'late'), 'B delivered the entry of the new stream');
  });

  await t.test('packets published together share one entry', async (t) => {
    const before = await raw.xlen('wott:bus');
    await Promise.all(Array.from({ length: 250 }, (_, i) => emit(a, { topic: 'weather/many/temp', payload: Buffer.from(`p${i}`) })));
    t.equal(await raw.xlen('wott:bus'), before + 3, '250 packets in one turn: 3 entries of at most 100');
  });

  await t.test('the stream stays bounded by maxLength (approximately, as XADD MAXLEN ~ trims)', async (t) => {
    const small = make(100);
    await small.ready;
    // One at a time: each its own entry.
    for (let i = 0; i < 400; i++) await emit(small, { topic: 'other', payload: Buffer.alloc(10) });
    const length = await raw.xlen('wott:bus');
    t.ok(length >= 100 && length < 300, `${length} entries kept for a limit of 100`);
    await new Promise<void>((resolve) => small.close(resolve)); // A and B are the only nodes again
  });

  await t.test('QoS 0 of devices: over pub/sub, in order, once, never in the stream', async (t) => {
    atA.length = 0;
    atB.length = 0;
    const before = await raw.xlen('wott:bus');
    for (let i = 0; i < 300; i++) a.emit({ topic: 'weather/fast/temp', payload: Buffer.from(`f${i}`), qos: 0 });
    await waitFor(() => atB.length >= 300, 'B received the QoS 0 messages');
    t.same(atB.map((p) => String(p.payload)), Array.from({ length: 300 }, (_, i) => `f${i}`), 'all, in order');
    t.same(atA.map((p) => String(p.payload)), Array.from({ length: 300 }, (_, i) => `f${i}`), 'A: its own, once, at publish');
    t.equal(await raw.xlen('wott:bus'), before, 'nothing appended to the stream');
    // A marker on the stream from A after B's pub/sub messages: a duplicate of those would have arrived by then.
    await emit(a, { topic: 'weather/fast/temp', payload: Buffer.from('marker'), qos: 1 });
    await waitFor(() => atB.length >= 301, 'the marker arrived');
    t.equal(atB.length, 301, 'nothing twice');
    // Redis itself sends A's channel to B only: A's own messages do not come back to it to be dropped.
    atA.length = 0;
    atB.length = 0;
    const receivers = await raw.publish(a.channel, encodeMessage('a-third-node', [{ topic: 'weather/fast/temp', payload: Buffer.from('routed'), qos: 0 }]));
    t.equal(receivers, 1, "a message on A's channel goes to one listener (B's), not back to A");
    await waitFor(() => atB.length === 1, 'B received it');
    t.equal(atA.length, 0, 'A did not');
    t.equal(await raw.publish(b.channel, encodeMessage('a-third-node', [{ topic: 'weather/fast/temp', payload: Buffer.from('back'), qos: 0 }])), 1, "B's channel goes to A only");
    await waitFor(() => atA.length === 1, 'A received it');
  });

  await t.test('QoS 0 publishers are not held until Redis answers, up to a bound', async (t) => {
    const bounded = new StreamEmitter({ connection, onError: () => undefined, qos0InFlight: 20 });
    t.teardown(() => new Promise<void>((resolve) => bounded.close(resolve)));
    await bounded.ready;
    await redis.stop();
    let calledBack = 0;
    let qos1CalledBack = 0;
    for (let i = 0; i < 10; i++) bounded.emit({ topic: 'weather/held/temp', payload: Buffer.from(`h${i}`), qos: 0 }, () => void calledBack++);
    bounded.emit({ topic: 'weather/held/temp', payload: Buffer.from('q1'), qos: 1 }, () => void qos1CalledBack++);
    await waitFor(() => calledBack === 10, 'the QoS 0 publisher carries on while Redis is down');
    for (let i = 0; i < 30; i++) bounded.emit({ topic: 'weather/held/temp', payload: Buffer.from(`g${i}`), qos: 0 }, () => void calledBack++);
    // The flush of those 30 runs in the next turn; two turns later they are on their way and 40 > 20 are unanswered.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(calledBack, 10, 'past the bound, QoS 0 publishers wait for Redis');
    t.equal(qos1CalledBack, 0, 'the QoS 1 publisher waits for Redis as before');
    await redis.restart();
    await waitFor(() => calledBack === 40 && qos1CalledBack === 1, 'Redis back: every publisher carries on');
  });
});

t.test('close completes while Redis is down and the reader is reconnecting', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const bus = new StreamEmitter({ connection: redisConnectionOptions(redis.url), onError: () => undefined });
  await bus.ready;
  await redis.stop();
  // Long enough for the read loop to have queued its next command on the reconnecting connection.
  await new Promise((resolve) => setTimeout(resolve, 500));
  let closed = false;
  bus.close(() => (closed = true));
  await waitFor(() => closed, 'close called back', 10_000);
  t.ok(closed);
});
