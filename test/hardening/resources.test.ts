/**
 * Attacks on the gateway's resources, performed over real TLS against a real gateway: huge packets, idle and
 * half-open connections, connection floods and reconnect loops, retained-message floods, reconnect storms that
 * used to leak sessions, protocol violations, log floods. Each shows the attack fails and that other devices keep
 * working (their messages delivered).
 */
import t from 'tap';
import { get as httpGet } from 'node:http';
import { connect as netConnect } from 'node:net';
import { memoryLogger, requireCommand, startGatewayProcess, tempDir } from '../helpers.js';
import { connect, connectError, enroll, eventWatcher, inbox, mosquittoSub, serviceCredentials, setScore, subscribeGrants, testGateway, tryConnect, waitFor } from '../mqtt-helpers.js';
import { connectPacket, idleSocket, rawClient } from './raw-mqtt.js';

const generous = {
  sourceConnectRate: { max: 100_000 },
  identityConnectRate: { max: 100_000 },
  maxConnectionsPerIdentity: 10_000,
};

t.test('a 250 MB publish is refused from its header; the sender is cut off before it can send much', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { maxPacketBytes: 1024 * 1024 } });
  const dir = tempDir(t);
  const attacker = await enroll(gw, dir, 'bulky');
  const watcher = await connect(gw, await enroll(gw, dir, 'watcher'));
  t.teardown(() => watcher.end(true));
  const seen = inbox(watcher);
  await watcher.subscribeAsync('weather/#', { qos: 1 });

  const raw = await rawClient(gw.mqttPort, attacker);
  raw.send(connectPacket('bulky'));
  t.match(await raw.next('connack'), { returnCode: 0 });
  // A PUBLISH header declaring 250 MB, then the body in 64 KB pieces for as long as the broker reads.
  const header = Buffer.from([0x30, 0x80, 0x80, 0x80, 0x77 /* 249,561,088 */]);
  raw.socket.write(Buffer.concat([header, Buffer.from([0, 9]), Buffer.from('weather/x')]));
  const piece = Buffer.alloc(64 * 1024);
  let sent = 0;
  while (!raw.socket.destroyed && sent < 250 * 1024 * 1024) {
    if (!raw.socket.write(piece)) await new Promise((r) => raw.socket.once('drain', r).once('close', r));
    sent += piece.length;
  }
  await raw.closed;
  t.ok(sent < 16 * 1024 * 1024, `closed after ${(sent / 1048576).toFixed(1)} MB of 250 MB had been sent`);
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_protocol_violations_total'), /reason="packet_size"\} 1/);

  // A legitimate 900 KB message is delivered.
  const sender = await connect(gw, await enroll(gw, dir, 'camera'));
  await sender.publishAsync('weather/picture', Buffer.alloc(900 * 1024, 7), { qos: 1 });
  await waitFor(() => seen.some((m) => m.topic === 'weather/picture' && m.payload.length === 900 * 1024), 'the 900 KB message');
  sender.end(true);
});

t.test('idle TCP connections and silent TLS sessions are closed; caps per source, identity and in all hold', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, {
    limits: { handshakeTimeoutMs: 500, connectTimeoutMs: 500, maxConnectionsPerSource: 20, maxConnectionsPerIdentity: 3, maxConnections: 60 },
  });
  const dir = tempDir(t);
  const device = await enroll(gw, dir, 'steady');

  // 50 TCP connections that never start TLS, from 127.0.0.70..: all closed by the handshake timeout.
  const idle = await Promise.all(Array.from({ length: 50 }, (_, i) => idleSocket(gw.mqttPort, `127.0.0.${70 + (i % 5)}`)));
  // TLS done, but no CONNECT: closed by the connect timeout.
  const silent = await rawClient(gw.mqttPort, device);
  await Promise.all(idle.map((s) => s.closed));
  await silent.closed;
  t.pass('50 idle TCP connections and a TLS session without CONNECT were closed');

  // Per source: 20 open connections from one address; the 21st is refused, while the 20 stay.
  const slow = await testGateway(t, { limits: { maxConnectionsPerSource: 20, maxConnectionsPerIdentity: 3, maxConnections: 30 } });
  const slowDevice = await enroll(slow, dir, 'steady2');
  const held = await Promise.all(Array.from({ length: 20 }, () => idleSocket(slow.mqttPort, '127.0.0.81')));
  const extra = await idleSocket(slow.mqttPort, '127.0.0.81');
  await extra.closed;
  t.ok(held.every((s) => !s.socket.destroyed), 'the 21st from one source is refused; the first 20 are kept');
  const fine = await connect(slow, slowDevice);
  t.ok(fine.connected, 'a device from another address connects meanwhile');
  // Per identity: three sessions (client ids steady2:a, :b ...) and no more.
  const sessions = [fine, await connect(slow, { ...slowDevice, id: 'steady2:b' }), await connect(slow, { ...slowDevice, id: 'steady2:c' })];
  t.ok(await connectError(slow, { ...slowDevice, id: 'steady2:d' }), 'a fourth connection with one certificate is refused');
  // In all: 20 + 3 held; seven more from other sources fill the 30, the next is dropped.
  const more = await Promise.all(Array.from({ length: 7 }, (_, i) => idleSocket(slow.mqttPort, `127.0.0.${90 + i}`)));
  await waitFor(() => more.every((s) => !s.socket.destroyed), 'seven more held');
  const overTotal = netConnect({ host: '127.0.0.1', port: slow.mqttPort, localAddress: '127.0.0.99' });
  overTotal.on('error', () => {});
  await new Promise((r) => overTotal.once('close', r));
  t.pass('the connection over the total cap is dropped');
  for (const s of [...held, ...more]) s.socket.destroy();
  for (const s of sessions) s.end(true);
  t.match(await slow.metrics.getSingleMetricAsString('wott_mqtt_refused_connections_total'), /reason="source_connections"\} [1-9]/);
  t.match(await slow.metrics.getSingleMetricAsString('wott_mqtt_refused_connections_total'), /reason="identity_connections"\} [1-9]/);
});

t.test('the HTTPS (EST) port: idle connections time out, one source cannot hold it, others still enroll', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { httpsLimits: { handshakeTimeoutMs: 500, maxConnectionsPerSource: 5 } });
  const idle = await Promise.all(Array.from({ length: 5 }, () => idleSocket(gw.httpsPort, '127.0.0.44')));
  const sixth = await idleSocket(gw.httpsPort, '127.0.0.44');
  await sixth.closed;
  t.ok(idle.every((s) => !s.socket.destroyed), 'the sixth connection from one source is refused while five are held');
  const dir = tempDir(t);
  const device = await enroll(gw, dir, 'enrolls-meanwhile');
  t.ok(device.cert, 'a device from another address enrolls meanwhile');
  await Promise.all(idle.map((s) => s.closed));
  t.pass('the idle connections were closed by the handshake timeout');
});

t.test('a device reconnecting in a tight loop is banned for a while; others are not', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  // The broker's clock is the test's: the ban runs out when the test says so, however slowly the 30 connects go.
  let skewMs = 0;
  const gw = await testGateway(t, { limits: { identityConnectRate: { max: 5, windowMs: 60_000, banMs: 1500 } }, now: () => new Date(Date.now() + skewMs) });
  const dir = tempDir(t);
  const flapper = await enroll(gw, dir, 'flapper');
  const calm = await enroll(gw, dir, 'calm');
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 30; i++) {
    const c = await tryConnect(gw, flapper);
    if (c) accepted++;
    else refused++;
    c?.end(true);
  }
  t.equal(accepted, 5, 'five connects per window');
  t.equal(refused, 25, 'then refused');
  const c = await connect(gw, calm);
  t.ok(c.connected, 'another device connects');
  c.end(true);
  skewMs += 60_000; // the ban (1.5 s here) and the window run out
  const back = await tryConnect(gw, flapper);
  t.ok(back?.connected, 'after the ban the device connects again');
  back?.end(true);
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_refused_connections_total'), /reason="identity_rate"\} 25/);
});

t.test('retained messages are bounded per device and in all', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { retained: { perDevice: 5, bytesPerDevice: 4096, total: 8, totalBytes: 1024 * 1024 } } });
  const dir = tempDir(t);
  const a = await enroll(gw, dir, 'hoarder');
  const b = await enroll(gw, dir, 'neighbour');
  const ca = await connect(gw, a);
  for (let i = 1; i <= 5; i++) await ca.publishAsync(`weather/a/${i}`, `a${i}`, { qos: 1, retain: true });
  await ca.publishAsync('weather/a/5', 'a5 again', { qos: 1, retain: true });
  t.ok(ca.connected, 'five retained messages (and replacing one of them) are accepted');
  let closed = new Promise((r) => ca.once('close', r));
  ca.publish('weather/a/6', 'a6', { qos: 1, retain: true });
  await closed;
  t.pass('the sixth is refused');
  ca.end(true);
  const ca2 = await connect(gw, { ...a, id: 'hoarder:2' });
  await ca2.publishAsync('weather/a/1', '', { qos: 1, retain: true }); // deletes a retained message
  await ca2.publishAsync('weather/a/6', 'a6', { qos: 1, retain: true });
  t.ok(ca2.connected, 'after deleting one, there is room again');
  closed = new Promise((r) => ca2.once('close', r));
  ca2.publish('weather/a/7', Buffer.alloc(5000), { qos: 1, retain: true });
  await closed;
  t.pass('a retained message over the per-device bytes is refused');
  ca2.end(true);
  t.same(await gw.plugin.retained.held('hoarder'), { count: 5, bytes: (await gw.plugin.retained.held('hoarder')).bytes });

  const cb = await connect(gw, b);
  for (let i = 1; i <= 3; i++) await cb.publishAsync(`weather/b/${i}`, `b${i}`, { qos: 1, retain: true });
  closed = new Promise((r) => cb.once('close', r));
  cb.publish('weather/b/4', 'b4', { qos: 1, retain: true });
  await closed;
  t.pass('the broker-wide total (8) holds too');
  cb.end(true);

  const reader = await connect(gw, await enroll(gw, dir, 'reader'));
  const got = inbox(reader);
  await reader.subscribeAsync('weather/#', { qos: 1 });
  await waitFor(() => got.length >= 8, 'retained replay');
  await new Promise((r) => setTimeout(r, 200));
  t.same(got.map((m) => m.topic).sort(), ['weather/a/2', 'weather/a/3', 'weather/a/4', 'weather/a/5', 'weather/a/6', 'weather/b/1', 'weather/b/2', 'weather/b/3']);
  reader.end(true);
});

t.test('topic filters per connection are bounded; refused filters are never stored in a persistent session', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: { maxSubscriptionsPerConnection: 5 } });
  const dir = tempDir(t);
  const watcher = await connect(gw, await enroll(gw, dir, 'watcher'));
  t.teardown(() => watcher.end(true));
  const seen = inbox(watcher);
  await watcher.subscribeAsync('weather/#', { qos: 1 });
  const hoarder = await enroll(gw, dir, 'hoarder');

  // One SUBSCRIBE with 8 filters: Aedes authorizes them all before it adds any, and still only 5 are granted.
  const a = await connect(gw, hoarder);
  t.same(await subscribeGrants(a, Array.from({ length: 8 }, (_, i) => `weather/h${i}`)), [1, 1, 1, 1, 1, 128, 128, 128]);
  t.same(await subscribeGrants(a, ['weather/more']), [128], 'a further filter in another SUBSCRIBE is refused');
  t.same(await subscribeGrants(a, ['weather/h2']), [1], 'a filter it holds may be subscribed again');
  await a.unsubscribeAsync('weather/h2');
  t.same(await subscribeGrants(a, ['weather/more']), [1], 'an UNSUBSCRIBE frees room');
  // A flood of SUBSCRIBEs of fresh filters gets 0x80 each; the session stays up and keeps its filters.
  for (let round = 0; round < 20; round++) t.same(await subscribeGrants(a, Array.from({ length: 50 }, (_, i) => `weather/f${round}/${i}`), 0), Array(50).fill(128));
  t.ok(a.connected, 'the session is still up');
  const sender = await connect(gw, await enroll(gw, dir, 'sender'));
  t.teardown(() => sender.end(true));
  const mine = inbox(a);
  await sender.publishAsync('weather/h0', 'to-hoarder', { qos: 1 });
  await waitFor(() => mine.some((m) => m.payload === 'to-hoarder'), 'a granted filter still delivers');
  await waitFor(() => seen.some((m) => m.payload === 'to-hoarder'), 'other devices are unaffected');
  a.end(true);
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_denials_total'), /action="subscribe",reason="limit"\} 1004(?!\d)/);

  // A persistent session: a granted filter with a refused one (payments/# needs 0.9) and three over the limit.
  // Aedes would store all five with the granted one; only the granted one is stored, and nothing is queued for
  // the refused filters while the device is away.
  type Persistence = { subscriptionsByClient(c: { id: string }): Promise<Array<{ topic: string }>>; outgoingStream(c: { id: string }): AsyncIterable<{ topic: string }> };
  const persistence = (gw.broker as unknown as { persistence: Persistence }).persistence;
  const b = await connect(gw, { ...hoarder, id: 'hoarder:p' }, { clean: false });
  t.same(await subscribeGrants(b, ['weather/p0', 'payments/#']), [1, 128]);
  t.same(await subscribeGrants(b, ['weather/p1', 'weather/p2', 'weather/p3', 'weather/p4', 'weather/p5', 'weather/p6']), [1, 1, 1, 1, 128, 128]);
  const stored = async () => (await persistence.subscriptionsByClient({ id: 'hoarder:p' })).map((s) => s.topic).sort();
  t.same(await stored(), ['weather/p0', 'weather/p1', 'weather/p2', 'weather/p3', 'weather/p4']);
  b.end(true);
  await waitFor(() => !gw.plugin.sessionsOf('hoarder').length, 'the session closed');
  const payer = await enroll(gw, dir, 'payer');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'payer', 0.95);
  const p = await connect(gw, payer);
  t.teardown(() => p.end(true));
  await p.publishAsync('payments/invoice', 'secret', { qos: 1 });
  await p.publishAsync('weather/p0', 'queued', { qos: 1 });
  const queued: string[] = [];
  for await (const packet of persistence.outgoingStream({ id: 'hoarder:p' })) queued.push(packet.topic);
  t.same(queued, ['weather/p0'], 'only the granted filter queued a message for the absent device');
  // Back again: the restored session holds its five filters, and no more fit.
  const back = await connect(gw, { ...hoarder, id: 'hoarder:p' }, { clean: false });
  t.teardown(() => back.end(true));
  t.same(await subscribeGrants(back, ['weather/p7']), [128], 'restored filters count toward the limit');
});

t.test('reconnect storms with takeovers and aborted connects leave no session behind', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { limits: generous });
  const dir = tempDir(t);
  const events = await eventWatcher(t, gw, dir);
  const device = await enroll(gw, dir, 'leaky');
  const stable = await connect(gw, await enroll(gw, dir, 'stable'));
  t.teardown(() => stable.end(true));

  let attempt = 0;
  const worker = async () => {
    while (attempt < 400) {
      const n = attempt++;
      const raw = await rawClient(gw.mqttPort, device).catch(() => undefined);
      if (!raw) continue;
      // The same client id every time (takeovers), and the connection dropped at a different moment each time.
      raw.send(connectPacket(n % 3 === 0 ? 'leaky' : `leaky:${n % 5}`));
      if (n % 4 === 0) await raw.next('connack');
      else if (n % 4 === 1) await new Promise((r) => setImmediate(r));
      else if (n % 4 === 2) await new Promise((r) => setTimeout(r, n % 3));
      raw.socket.destroy();
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  await waitFor(() => gw.plugin.sessionCount('leaky') === 0, 'no session left for the stormed device');
  await waitFor(
    () => events.filter((e) => e.device === 'leaky' && e.type === 'connect').length === events.filter((e) => e.device === 'leaky' && e.type === 'disconnect').length,
    'as many disconnect events as connect events',
  );
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_connections'), /^wott_mqtt_connections 2$/m, 'the gauge counts the two live clients only');
  const connects = events.filter((e) => e.device === 'leaky' && e.type === 'connect').length;
  t.ok(connects > 0, `${connects} sessions came and went`);
  t.equal(gw.plugin.sessionCount('stable'), 1, 'the bystander keeps its session');
});

t.test('an empty client id with CleanSession = 0 gets CONNACK 0x02 (MQTT 3.1.1 §3.1.3-8)', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const device = await enroll(gw, dir, 'anon');
  const persistent = await rawClient(gw.mqttPort, device);
  // MQTT.js and mqtt-packet refuse to send this, so the bytes are written out: CONNECT, MQTT 3.1.1, flags 0 (no
  // CleanSession), keep-alive 60, client id of length 0.
  persistent.send(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 60, 0, 0]));
  t.match(await persistent.next('connack'), { returnCode: 2 });
  await persistent.closed;
  const clean = await rawClient(gw.mqttPort, device);
  clean.send(connectPacket('', { clean: true }));
  t.match(await clean.next('connack'), { returnCode: 0 }, 'with CleanSession = 1 an empty id is fine');
  clean.socket.destroy();
});

t.test('topics with ill-formed UTF-8 or NUL close the sender; mosquitto_sub subscribers are unaffected', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireCommand(t, 'mosquitto_sub', 'mosquitto-clients')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const listener = await enroll(gw, dir, 'listener');
  const sub = mosquittoSub(['-h', 'localhost', '-p', String(gw.mqttPort), '--cafile', listener.caPath, '--cert', listener.certPath, '--key', listener.keyPath, '-i', 'listener', '-t', 'weather/#', '-v']);
  t.teardown(() => sub.stop());
  await waitFor(() => gw.plugin.sessionCount('listener') === 1, 'mosquitto_sub connected');
  const evil = await enroll(gw, dir, 'evil');
  const bad: Buffer[] = [Buffer.from([0x77, 0x65, 0x61, 0x74, 0x68, 0x65, 0x72, 0x2f, 0xff]), Buffer.from('weather/\u0000x'), Buffer.from([0x77, 0x65, 0x61, 0x74, 0x68, 0x65, 0x72, 0x2f, 0xed, 0xa0, 0x80])];
  for (const topic of bad) {
    const raw = await rawClient(gw.mqttPort, evil);
    raw.send(connectPacket('evil'));
    await raw.next('connack');
    const body = Buffer.concat([Buffer.from([0, topic.length]), topic, Buffer.from('boom')]);
    raw.send(Buffer.concat([Buffer.from([0x30, body.length]), body]));
    await raw.closed;
  }
  t.pass('each connection was closed');
  const good = await connect(gw, await enroll(gw, dir, 'good'));
  await good.publishAsync('weather/ok', 'fine', { qos: 1 });
  await waitFor(() => sub.lines.some((l) => l === 'weather/ok fine'), 'mosquitto_sub receives the good message');
  good.end(true);
  t.same(sub.lines, ['weather/ok fine'], 'and nothing else');
  t.equal(gw.plugin.sessionCount('listener'), 1, 'mosquitto_sub never dropped');
  t.match(await gw.metrics.getSingleMetricAsString('wott_mqtt_protocol_violations_total'), /reason="malformed"\} 3/);
  // The subscription side: a filter with ill-formed UTF-8 closes the subscriber, too.
  const raw = await rawClient(gw.mqttPort, evil);
  raw.send(connectPacket('evil'));
  await raw.next('connack');
  raw.send(Buffer.from([0x82, 8, 0, 1, 0, 3, 0x61, 0x2f, 0xc3, 0]));
  await raw.closed;
  t.pass('SUBSCRIBE with an ill-formed filter closed');
});

t.test('a flood of refused handshakes becomes a few log lines and a summary', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const log = memoryLogger();
  const gw = await testGateway(t, { log, limits: { sourceConnectRate: { max: 100_000 } } });
  for (let i = 0; i < 200; i++) {
    const c = await rawClient(gw.mqttPort, { ca: gw.caPem }, '127.0.0.33').catch(() => undefined);
    await c?.closed;
  }
  const refused = () => log.lines.filter((l: { msg?: string }) => l.msg?.startsWith('TLS client refused'));
  t.ok(refused().length <= 5, `${refused().length} lines for 200 refusals while they happen`);
  await gw.close();
  const summary = refused().find((l: { obj: { repeated?: number } }) => l.obj.repeated);
  t.match(summary, { obj: { remote: '127.0.0.33', repeated: 195 }, msg: 'TLS client refused (repeated)' }, 'one summary with the count');
});

t.test('metrics on a loopback listener; every listener binds where it is told', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { metricsPort: 0, bind: { https: '127.0.0.1', mqtt: '127.0.0.1' } });
  const fetch = (host: string, path = '/metrics') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpGet({ host, port: gw.metricsPort, path }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      }).on('error', reject);
    });
  const ok = await fetch('127.0.0.1');
  t.equal(ok.status, 200);
  t.match(ok.body, /wott_mqtt_connections/);
  t.equal((await fetch('127.0.0.1', '/other')).status, 404);
  const refusedAt = async (host: string, port: number) =>
    new Promise<string>((resolve) => {
      const s = netConnect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
  // 127.0.0.2 is this machine too, but not the address the listeners are bound to.
  t.equal(await refusedAt('127.0.0.2', gw.metricsPort!), 'ECONNREFUSED', 'metrics: loopback 127.0.0.1 only');
  t.equal(await refusedAt('127.0.0.2', gw.mqttPort), 'ECONNREFUSED', 'MQTT bound to 127.0.0.1');
  t.equal(await refusedAt('127.0.0.2', gw.httpsPort), 'ECONNREFUSED', 'HTTPS bound to 127.0.0.1');
  t.equal(await refusedAt('127.0.0.1', gw.mqttPort), 'connected');

  // The same through the command line.
  const { child, log } = await startGatewayProcess(tempDir(t), ['--bind', '127.0.0.1', '--metrics-bind', '127.0.0.1']);
  t.teardown(() => child.kill('SIGTERM'));
  const listening = log.find((l) => l.includes('gateway listening'))!;
  t.match(JSON.parse(listening), { bind: { https: '127.0.0.1', mqtt: '127.0.0.1', metrics: '127.0.0.1' } });
  const mqttPort = (JSON.parse(listening) as { mqtt: number }).mqtt;
  t.equal(await refusedAt('127.0.0.2', mqttPort), 'ECONNREFUSED');
});

t.test('config: limits and listeners from wott.yaml', async (t) => {
  const { parseConfig, brokerLimitsFromConfig, httpsLimitsFromConfig } = await import('../../cli/config.js');
  const config = parseConfig(
    'gateway:\n  bind: 127.0.0.1\n  metricsPort: false\n  httpsLimits: { maxConnectionsPerSource: 10, requestTimeout: 5s }\nbroker:\n  limits:\n    maxPacketSize: 65536\n    identityConnectRate: { max: 3, window: 10s }\n    retained: { perDevice: 7 }\n    maxSubscriptionsPerConnection: 20\n    maxBufferedBytesPerConnection: 65536\n    drainTimeout: 5s\n',
  );
  t.equal(config.gateway.bind, '127.0.0.1');
  t.equal(config.gateway.metricsPort, false);
  t.same(brokerLimitsFromConfig(config), { maxPacketBytes: 65536, identityConnectRate: { max: 3, windowMs: 10_000 }, retained: { perDevice: 7 }, maxSubscriptionsPerConnection: 20, maxBufferedBytesPerConnection: 65536, drainTimeoutMs: 5000 });
  t.same(httpsLimitsFromConfig(config), { maxConnectionsPerSource: 10, requestTimeoutMs: 5000 });
  t.throws(() => parseConfig('broker:\n  limits:\n    maxPacketSize: 10\n'), /broker.limits.maxPacketSize/);
  t.throws(() => parseConfig('gateway:\n  bind: example.com\n'), /gateway.bind/);
  t.throws(() => parseConfig('broker:\n  limits:\n    retained: { perDevise: 1 }\n'), /unknown field/);
});
