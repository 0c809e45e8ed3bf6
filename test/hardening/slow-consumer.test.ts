/**
 * Subscribers that stop reading their socket (a frozen app, a slow link, or an attacker with a good score): the
 * broker must neither buffer for them without end nor hold up everyone else's deliveries waiting for them to drain.
 * Aedes alone did the latter: its bus waited for the frozen socket, and every delivery in the broker stopped until
 * its drain timeout. The drain timeout is an hour here, so waiting for it would fail the test by its own timeout.
 * Performed over real TLS against a real gateway.
 */
import t from 'tap';
import type { TLSSocket } from 'node:tls';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, inbox, subscribeAndLeave, testGateway, waitFor } from '../mqtt-helpers.js';
import { connectPacket, rawClient, type RawClient } from './raw-mqtt.js';

const LIMIT = 256 * 1024;
const PACKET = 64 * 1024;

t.test('subscribers that stop reading: QoS 0 to them is dropped, QoS 1 closes them; other devices keep receiving', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { maxBufferedBytesPerConnection: LIMIT, maxPacketBytes: PACKET, drainTimeoutMs: 3_600_000 } });
  const dir = tempDir(t);
  const watcher = await connect(gw, await enroll(gw, dir, 'watcher'));
  t.teardown(() => watcher.end(true));
  const seen = inbox(watcher);
  await watcher.subscribeAsync('weather/#', { qos: 1 });

  /** A device that subscribes, then reads nothing more: the kernel's buffers fill, then the broker's. */
  const frozen = async (id: string, qos: 0 | 1): Promise<RawClient> => {
    const raw = await rawClient(gw.mqttPort, await enroll(gw, dir, id));
    raw.send(connectPacket(id));
    t.match(await raw.next('connack'), { returnCode: 0 });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'weather/#', qos }] });
    t.match(await raw.next('suback'), { granted: [qos] });
    raw.socket.pause();
    t.teardown(() => raw.socket.destroy());
    return raw;
  };
  await frozen('frozen0', 0);
  await frozen('frozen1', 1);

  // 24 MB, well past what the kernel buffers on loopback; one message in ten at QoS 1.
  const sender = await connect(gw, await enroll(gw, dir, 'sender'));
  t.teardown(() => sender.end(true));
  const payload = Buffer.alloc(4096, 1);
  for (let i = 0; i < 6000; i++) {
    sender.publish('weather/flood', payload, { qos: i % 10 === 0 ? 1 : 0 });
    if (i % 200 === 0) await new Promise((r) => setImmediate(r));
  }
  await sender.publishAsync('weather/last', 'marker', { qos: 1 });
  await waitFor(() => seen.some((m) => m.topic === 'weather/last'), 'the watcher receives the last message');
  t.equal(seen.filter((m) => m.topic === 'weather/flood').length, 6000, 'the watcher received every message of the flood');

  // The QoS 1 subscriber was closed; the QoS 0 one is still connected, with at most the limit and one packet held.
  await waitFor(() => gw.plugin.sessionsOf('frozen1').length === 0, 'frozen1 closed');
  t.equal(gw.plugin.sessionsOf('frozen0').length, 1, 'the QoS 0 subscriber keeps its session');
  const clients = (gw.broker as unknown as { clients: Record<string, { conn: TLSSocket }> }).clients;
  const held = clients.frozen0!.conn.writableLength;
  t.ok(held <= LIMIT + PACKET, `the broker holds ${held} bytes for frozen0 (limit ${LIMIT} + one packet)`);
  const slow = await gw.metrics.getSingleMetricAsString('wott_mqtt_slow_consumers_total');
  t.match(slow, /action="drop"\} [1-9]/);
  t.match(slow, /action="close"\} [1-9]/);
});

t.test('a client that never reads its PINGRESPs is closed at the limit; others are unaffected', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { maxBufferedBytesPerConnection: 16 * 1024, maxPacketBytes: 16 * 1024, drainTimeoutMs: 3_600_000 } });
  const dir = tempDir(t);
  const watcher = await connect(gw, await enroll(gw, dir, 'watcher'));
  t.teardown(() => watcher.end(true));
  const seen = inbox(watcher);
  await watcher.subscribeAsync('weather/#', { qos: 1 });

  const raw = await rawClient(gw.mqttPort, await enroll(gw, dir, 'deaf'));
  raw.send(connectPacket('deaf'));
  t.match(await raw.next('connack'), { returnCode: 0 });
  raw.socket.pause();
  // Every PINGREQ (2 bytes) is answered with a PINGRESP (2 bytes) that nobody reads: without a bound, the broker
  // buffers them for as long as the client sends. 64 MB of them at most; the kernel's buffers hold a few MB.
  const pings = Buffer.alloc(256 * 1024);
  for (let i = 0; i < pings.length; i += 2) pings[i] = 0xc0;
  let sent = 0;
  while (!raw.socket.destroyed && gw.plugin.sessionsOf('deaf').length > 0 && sent < 256) {
    if (!raw.socket.write(pings)) await new Promise((r) => raw.socket.once('drain', r).once('close', r));
    sent++;
  }
  await waitFor(() => gw.plugin.sessionsOf('deaf').length === 0, 'the deaf client closed');
  t.ok(sent < 256, `closed after ${sent / 4} MB of PINGREQs`);
  const sender = await connect(gw, await enroll(gw, dir, 'sender'));
  t.teardown(() => sender.end(true));
  await sender.publishAsync('weather/after', 'fine', { qos: 1 });
  await waitFor(() => seen.some((m) => m.topic === 'weather/after'), 'a message after it');
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_slow_consumers_total'), /action="close"\} 1/);
});

t.test('a subscriber whose buffered bytes do not drain within drainTimeout is closed', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { drainTimeoutMs: 300 } });
  const dir = tempDir(t);
  const raw = await rawClient(gw.mqttPort, await enroll(gw, dir, 'stuck'));
  raw.send(connectPacket('stuck'));
  t.match(await raw.next('connack'), { returnCode: 0 });
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'weather/#', qos: 0 }] });
  t.match(await raw.next('suback'), { granted: [0] });
  raw.socket.pause();
  // Under the 1 MiB default limit, so nothing is dropped, but more than the kernel takes: the socket stays full.
  const sender = await connect(gw, await enroll(gw, dir, 'sender'));
  t.teardown(() => sender.end(true));
  const payload = Buffer.alloc(4096, 1);
  for (let i = 0; gw.plugin.sessionsOf('stuck').length > 0 && i < 20_000; i++) {
    sender.publish('weather/flood', payload, { qos: 0 });
    if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  await waitFor(() => gw.plugin.sessionsOf('stuck').length === 0, 'the stuck subscriber closed');
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_slow_consumers_total'), /action="close"\} 1/);
  raw.socket.destroy();
});

t.test('a persistent session with an offline queue far over the limit gets all of it on reconnect', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { maxBufferedBytesPerConnection: LIMIT, maxPacketBytes: PACKET, drainTimeoutMs: 3_600_000, maxQueuedMessagesPerSession: 5000 } });
  const dir = tempDir(t);
  const creds = await enroll(gw, dir, 'reader');
  await subscribeAndLeave(gw, creds, 'reader:p', 'weather/queued');
  // 12 MB queued while it is away: 47 times the limit.
  const sender = await connect(gw, await enroll(gw, dir, 'sender'));
  t.teardown(() => sender.end(true));
  const payload = Buffer.alloc(4096, 2);
  for (let i = 0; i < 3000; i += 100) await Promise.all(Array.from({ length: 100 }, () => sender.publishAsync('weather/queued', payload, { qos: 1 })));
  // Back, over a raw connection that reads nothing for a second: the broker must pace the queue, not write 12 MB
  // into the socket at once (and then close the session as a slow consumer, every time it came back).
  const back = await rawClient(gw.mqttPort, creds);
  t.teardown(() => back.socket.destroy());
  back.socket.pause();
  back.send(connectPacket('reader:p', { clean: false }));
  await new Promise((r) => setTimeout(r, 1000));
  back.socket.resume();
  t.match(await back.next('connack'), { returnCode: 0, sessionPresent: true });
  await waitFor(() => back.packets.filter((p) => p.cmd === 'publish').length >= 3000 || back.socket.destroyed, 'the whole queue');
  t.equal(back.packets.filter((p) => p.cmd === 'publish').length, 3000, 'every queued message');
  t.notOk(back.socket.destroyed, 'never closed as a slow consumer');
  t.notMatch(await gw.metrics.getSingleMetricAsString('wott_mqtt_slow_consumers_total'), /action="close"\}/);
});

t.test("a persistent session's queue is bounded: a device cannot queue without end for a session it left", async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { maxQueuedMessagesPerSession: 50 } });
  const dir = tempDir(t);
  // The attack: subscribe with a second client id, leave, and publish to its own topic (allowed at any score).
  const hoarder = await enroll(gw, dir, 'hoarder');
  await subscribeAndLeave(gw, hoarder, 'hoarder:away', 'devices/hoarder/#');
  // A legitimate persistent subscriber, also away.
  const reader = await enroll(gw, dir, 'reader');
  await subscribeAndLeave(gw, reader, 'reader:p', 'weather/#');

  const publisher = await connect(gw, { ...hoarder, id: 'hoarder:pub' });
  t.teardown(() => publisher.end(true));
  for (let i = 0; i < 200; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => publisher.publishAsync('devices/hoarder/x', String(i + k), { qos: 1 })));
  const sender = await connect(gw, await enroll(gw, dir, 'sender'));
  t.teardown(() => sender.end(true));
  for (let i = 0; i < 30; i++) await sender.publishAsync('weather/x', `w${i}`, { qos: 1 });

  // Back: the hoarder's session holds the first 50; the reader's has all 30 of its messages.
  const collect = async (creds: typeof hoarder, id: string, want: number) => {
    const got: string[] = [];
    const c = await connect(gw, { ...creds, id }, { clean: false });
    t.teardown(() => c.end(true));
    c.on('message', (_topic, payload) => got.push(payload.toString()));
    await waitFor(() => got.length >= want, `${want} messages for ${id}`);
    return { got, c };
  };
  const back = await collect(hoarder, 'hoarder:away', 50);
  await new Promise((r) => setTimeout(r, 300)); // anything beyond the 50 would have followed them
  t.same(back.got, Array.from({ length: 50 }, (_, i) => String(i)), 'the first 50, and no more');
  const readerBack = await collect(reader, 'reader:p', 30);
  t.equal(readerBack.got.length, 30, 'the other persistent session got every message');
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_slow_consumers_total'), /action="queue_full"\} 150/);
  // Taken, the queue has room again.
  back.c.end(true);
  await waitFor(() => gw.plugin.sessionsOf('hoarder').length === 1, 'hoarder:away gone');
  await publisher.publishAsync('devices/hoarder/x', 'later', { qos: 1 });
  const again = await collect(hoarder, 'hoarder:away', 1);
  t.same(again.got, ['later']);
});

t.test('a connected persistent session that does not acknowledge: deliveries go on, only the first ones are kept for a reconnect', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { maxQueuedMessagesPerSession: 20 } });
  const dir = tempDir(t);
  const creds = await enroll(gw, dir, 'lazy');
  const raw = await rawClient(gw.mqttPort, creds);
  raw.send(connectPacket('lazy:p', { clean: false }));
  t.match(await raw.next('connack'), { returnCode: 0 });
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'weather/#', qos: 1 }] });
  t.match(await raw.next('suback'), { granted: [1] });
  const sender = await connect(gw, await enroll(gw, dir, 'sender'));
  t.teardown(() => sender.end(true));
  for (let i = 0; i < 60; i++) await sender.publishAsync('weather/x', `m${i}`, { qos: 1 });
  const publishes = () => raw.packets.filter((p) => p.cmd === 'publish') as Array<{ payload: Buffer }>;
  await waitFor(() => publishes().length >= 60, 'all 60 delivered live');
  t.notOk(raw.socket.destroyed, 'the session stays up');
  raw.socket.destroy(); // never acknowledged any
  await waitFor(() => gw.plugin.sessionsOf('lazy').length === 0, 'gone');
  const again = await rawClient(gw.mqttPort, creds);
  t.teardown(() => again.socket.destroy());
  again.send(connectPacket('lazy:p', { clean: false }));
  t.match(await again.next('connack'), { returnCode: 0, sessionPresent: true });
  await waitFor(() => again.packets.filter((p) => p.cmd === 'publish').length >= 20, 'the kept ones again');
  await sender.publishAsync('weather/x', 'after', { qos: 1 }); // behind the resent ones
  await waitFor(() => again.packets.some((p) => p.cmd === 'publish' && String((p as { payload: Buffer }).payload) === 'after'), 'a new one');
  const resent = again.packets.filter((p) => p.cmd === 'publish').map((p) => String((p as { payload: Buffer }).payload));
  t.same(resent.slice(0, 20), Array.from({ length: 20 }, (_, i) => `m${i}`), 'the first 20, kept while unacknowledged');
  t.notOk(resent.includes('m20'), 'none beyond the limit');
});

t.test('retained messages answering a SUBSCRIBE wait for the socket: a slow subscriber gets all of them, far over the limit', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, {
    limits: { maxBufferedBytesPerConnection: 32 * 1024, maxPacketBytes: 16 * 1024, retained: { perDevice: 5000, bytesPerDevice: 64 * 1024 * 1024 } },
  });
  const dir = tempDir(t);
  const station = await connect(gw, await enroll(gw, dir, 'station'));
  t.teardown(() => station.end(true));
  const payload = Buffer.alloc(8192, 3);
  const count = 2000; // 16 MB retained: more than the kernel holds for a reader that pauses
  for (let i = 0; i < count; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => station.publishAsync(`weather/r/${i + k}`, payload, { qos: 1, retain: true })));
  for (const qos of [0, 1] as const) {
    const raw = await rawClient(gw.mqttPort, await enroll(gw, dir, `reader${qos}`));
    t.teardown(() => raw.socket.destroy());
    raw.send(connectPacket(`reader${qos}`));
    t.match(await raw.next('connack'), { returnCode: 0 });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'weather/r/#', qos }] });
    raw.socket.pause(); // a slow reader: nothing for a second, then everything
    await new Promise((r) => setTimeout(r, 1000));
    raw.socket.resume();
    const retained = () => new Set(raw.packets.filter((p) => p.cmd === 'publish').map((p) => (p as { topic: string }).topic)).size;
    await waitFor(() => retained() >= count || raw.socket.destroyed, `${count} retained messages at QoS ${qos}`);
    t.equal(retained(), count, `the QoS ${qos} subscriber got all ${count}`);
    t.notOk(raw.socket.destroyed, 'and stays connected');
  }
  t.notMatch(await gw.metrics.getSingleMetricAsString('wott_mqtt_slow_consumers_total'), /action="(drop|close)"\}/);
});
