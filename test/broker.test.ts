/**
 * The broker over real mTLS with real clients (MQTT.js and Debian's mosquitto_pub / mosquitto_sub), devices enrolled
 * through the gateway's own EST endpoint, scores published by a scoring identity exactly as the scoring service will.
 */
import t from 'tap';
import { join } from 'node:path';
import { request } from 'node:https';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { CertificateAuthority, normalizeSerial } from '../ca/index.js';
import { staticTrustSource, WottPlugin } from '../broker/index.js';
import { behaviourEventSchema, parseTopic, topicFilters, topics, TOPIC_ROOT, type BehaviourEvent } from '../protocol/index.js';
import { CLI, makeCsr, makeKey, openssl, requireCommand, tempDir, writeTemp } from './helpers.js';
import {
  barrier,
  connect,
  connectError,
  enroll,
  eventWatcher,
  inbox,
  mosquittoSub,
  POLICIES,
  run,
  serviceCredentials,
  setScore,
  subscribeGrant,
  testGateway,
  waitFor,
} from './mqtt-helpers.js';

t.test('policies over mTLS with MQTT.js and mosquitto clients', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireCommand(t, 'mosquitto_pub', 'mosquitto-clients')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const scorerCreds = await serviceCredentials(gw, dir, 'scoring', 'test');
  const scorer = await connect(gw, { ...scorerCreds, id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  const events: BehaviourEvent[] = [];
  scorer.on('message', (topic, payload) => {
    if (parseTopic(topic)?.kind === 'events') events.push(behaviourEventSchema.parse(JSON.parse(payload.toString())));
  });
  await scorer.subscribeAsync(topicFilters.events);

  const alice = await enroll(gw, dir, 'alice'); // the subscriber whose score we move
  const bob = await enroll(gw, dir, 'bob'); // a trusted publisher
  await setScore(gw, scorer, 'bob', 0.95);
  const bobClient = await connect(gw, bob);
  t.teardown(() => bobClient.end(true));
  const aliceClient = await connect(gw, alice);
  t.teardown(() => aliceClient.end(true));
  let aliceClosed = 0;
  aliceClient.on('close', () => aliceClosed++);
  const got = inbox(aliceClient);

  await t.test('mosquitto_pub publishes at a sufficient score; the subscriber receives', async (t) => {
    await aliceClient.subscribeAsync('weather/#', { qos: 1 });
    const pub = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(gw.mqttPort), '--cafile', bob.caPath, '--cert', bob.certPath, '--key', bob.keyPath, '-i', 'bob:cli', '-q', '1', '-t', 'weather/berlin', '-m', '21C']);
    t.equal(pub.code, 0, pub.stderr);
    await waitFor(() => got.some((m) => m.topic === 'weather/berlin' && m.payload === '21C'), 'weather message');
    t.pass('delivered');
  });

  await t.test('subscribe below the threshold is denied (MQTT.js and mosquitto_sub)', async (t) => {
    const grant = await subscribeGrant(aliceClient, 'payments/#');
    t.equal(grant, 128, 'SUBACK failure for payments/# at 0.5');
    const sub = await run('mosquitto_sub', ['-h', 'localhost', '-p', String(gw.mqttPort), '--cafile', alice.caPath, '--cert', alice.certPath, '--key', alice.keyPath, '-i', 'alice:sub', '-t', 'payments/#', '-C', '1', '-W', '3']);
    t.match(sub.stderr + sub.stdout, /All subscription requests were denied/, 'mosquitto_sub reports the denial');
    await waitFor(() => events.some((e) => e.device === 'alice' && e.type === 'subscribe_denied' && e.topic === 'payments/#'), 'subscribe_denied event');
  });

  await t.test("a '#' subscription never delivers a topic whose threshold the subscriber misses", async (t) => {
    const grant = await subscribeGrant(aliceClient, '#');
    t.equal(grant, 1, '# is granted: weather/# is readable at 0.5');
    const hashSub = mosquittoSub(['-h', 'localhost', '-p', String(gw.mqttPort), '--cafile', alice.caPath, '--cert', alice.certPath, '--key', alice.keyPath, '-i', 'alice:hash', '-t', '#', '-v']);
    t.teardown(() => hashSub.stop());
    await new Promise((r) => setTimeout(r, 300)); // let mosquitto_sub subscribe
    await bobClient.publishAsync('payments/card', 'secret-1', { qos: 1 });
    await bobClient.publishAsync(topics.telemetry('bob'), '{"not":"for alice"}', { qos: 1 });
    await bobClient.publishAsync('weather/paris', '18C', { qos: 1 });
    await waitFor(() => hashSub.lines.some((l) => l.startsWith('weather/paris')), 'mosquitto_sub sees weather');
    await barrier(bobClient, got, 'weather');
    t.notOk(got.some((m) => m.topic.startsWith('payments/')), 'MQTT.js # subscriber got no payments');
    t.notOk(hashSub.lines.some((l) => l.startsWith('payments/')), 'mosquitto_sub # subscriber got no payments');
    t.notOk(got.some((m) => m.topic === topics.telemetry('bob')), "no other device's telemetry");
    await aliceClient.unsubscribeAsync('#');
  });

  await t.test('a live subscriber stops receiving when its score drops and receives again when restored', async (t) => {
    got.length = 0;
    await bobClient.publishAsync('weather/rome', 'before', { qos: 1 });
    await waitFor(() => got.some((m) => m.payload === 'before'), 'before');
    await setScore(gw, scorer, 'alice', 0.2);
    await bobClient.publishAsync('weather/rome', 'during', { qos: 1 });
    await setScore(gw, scorer, 'alice', 0.6);
    await bobClient.publishAsync('weather/rome', 'after', { qos: 1 });
    await waitFor(() => got.some((m) => m.payload === 'after'), 'after');
    t.notOk(got.some((m) => m.payload === 'during'), 'nothing delivered while below the threshold');
    t.equal(aliceClosed, 0, 'no reconnect was needed');
    t.ok(aliceClient.connected);
  });

  await t.test('wott/ namespace: no telemetry for another device, no scores, no events', async (t) => {
    const telemetry: string[] = [];
    scorer.on('message', (topic) => parseTopic(topic)?.kind === 'telemetry' && telemetry.push(topic));
    await scorer.subscribeAsync(topicFilters.telemetry, { qos: 1 });
    const mallory = await enroll(gw, dir, 'mallory');
    for (const topic of [topics.telemetry('bob'), topics.scores('mallory'), topics.events('bob'), `${TOPIC_ROOT}/unknown/x`]) {
      const client = await connect(gw, mallory);
      const closed = new Promise((r) => client.once('close', r));
      client.publish(topic, '{"score":1}', { qos: 1 });
      await closed; // Aedes closes the connection on any publish denial
      t.pass(`publish to ${topic} refused`);
    }
    // A mosquitto_pub of a forged score is refused the same way.
    const forged = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(gw.mqttPort), '--cafile', mallory.caPath, '--cert', mallory.certPath, '--key', mallory.keyPath, '-i', 'mallory', '-q', '1', '-t', topics.scores('mallory'), '-m', JSON.stringify({ device: 'mallory', score: 1, factors: [], modelVersion: 'x', time: new Date().toISOString() })]);
    t.not(forged.code, 0, 'mosquitto_pub sees the connection dropped');
    t.equal(gw.plugin.effectiveScore('mallory'), 0.5, 'forged scores never reach the cache');
    const own = await connect(gw, mallory);
    await own.publishAsync(topics.telemetry('mallory'), '{}', { qos: 1 });
    await waitFor(() => telemetry.includes(topics.telemetry('mallory')), 'own telemetry');
    t.notOk(telemetry.includes(topics.telemetry('bob')), 'forged telemetry never delivered');
    const grant = await subscribeGrant(own, topics.telemetry('bob'));
    t.equal(grant, 128, "cannot subscribe to another device's telemetry");
    await own.endAsync();
    await waitFor(() => events.some((e) => e.device === 'mallory' && e.type === 'publish_denied'), 'publish_denied event');
  });

  await t.test("a client id other than the certificate's identity is refused (no session takeover)", async (t) => {
    const err = await connectError(gw, { ...bob, id: 'alice' });
    t.match(err.message, /Identifier rejected|client id/i);
    t.ok(aliceClient.connected, "alice's session survives");
    const prefixed = await connectError(gw, { ...bob, id: 'bobby' });
    t.match(prefixed.message, /Identifier rejected/i, 'a mere prefix of the id is not enough');
    const generated = await connect(gw, bob, { clientId: '', clean: true });
    t.ok(generated.connected, 'an empty client id (broker-generated) is fine');
    await generated.endAsync();
  });

  await t.test('counters and connect events reach the events stream', async (t) => {
    await waitFor(() => events.some((e) => e.device === 'bob' && e.type === 'counters' && (e.counters?.messagesIn ?? 0) > 0), 'counters');
    t.ok(events.some((e) => e.device === 'alice' && e.type === 'connect' && e.verified));
  });

  await t.test('/metrics exposes connections, denials, messages and score cache size to services only', async (t) => {
    const get = (creds?: { key: string; cert: string }) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request(`https://localhost:${gw.httpsPort}/metrics`, { ca: gw.caPem, ...creds }, (res) => {
          let data = '';
          res.on('data', (c) => (data += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: data }));
        }).on('error', reject).end();
      });
    // On the port devices use, metrics answer a service certificate and nobody else.
    const anonymous = await get();
    t.equal(anonymous.status, 401, 'no certificate: refused');
    t.notMatch(anonymous.body, /wott_/);
    t.equal((await get(alice)).status, 401, 'a device certificate: refused');
    const { status, body } = await get(scorerCreds);
    t.equal(status, 200, 'a service certificate: served');
    t.match(body, /wott_mqtt_connections \d+/);
    t.match(body, /wott_mqtt_denials_total\{action="publish",reason="namespace"\} \d+/);
    t.match(body, /wott_mqtt_messages_total\{direction="in"\} \d+/);
    t.match(body, /wott_score_cache_size [1-9]/);
    t.match(body, /wott_mqtt_handshake_failures_total/);
  });
});

t.test('revocation, quarantine, wills and certificate checks at the handshake', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireCommand(t, 'mosquitto_pub', 'mosquitto-clients')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const events = await eventWatcher(t, gw, dir);
  const pubCreds = await enroll(gw, dir, 'publisher');
  const publisher = await connect(gw, pubCreds);
  t.teardown(() => publisher.end(true));

  await t.test("a revoked device's live session is closed, and it cannot reconnect", async (t) => {
    const victim = await enroll(gw, dir, 'stolen');
    const client = await connect(gw, victim);
    const closed = new Promise((r) => client.once('close', r));
    // Revoke through the CLI, as an operator would, in a separate process.
    const out = await run(process.execPath, [CLI, 'ca', 'revoke', '--device', 'stolen', '--data', gw.dir]);
    t.equal(out.code, 0, out.stderr);
    await closed;
    t.pass('session closed');
    const err = await connectError(gw, victim);
    t.ok(err, `reconnect refused: ${err.message}`);
    const pub = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(gw.mqttPort), '--cafile', victim.caPath, '--cert', victim.certPath, '--key', victim.keyPath, '-i', 'stolen', '-t', 'weather/x', '-m', 'x']);
    t.not(pub.code, 0, 'mosquitto_pub with the revoked certificate fails');
    await waitFor(() => events.some((e) => e.device === 'stolen' && e.type === 'auth_failure' && e.verified), 'auth_failure event for the revoked cert');
  });

  await t.test('a persistent session resumed while quarantined gets its subscriptions back after the release', async (t) => {
    const creds = await enroll(gw, dir, 'roamer');
    const first = await connect(gw, creds, { clean: false });
    await first.subscribeAsync('weather/#', { qos: 1 });
    await gw.fleet.quarantine('roamer');
    await waitFor(() => gw.plugin.effectiveScore('roamer') === 0, 'quarantine reaches the broker');
    await first.endAsync();
    // Reconnects while quarantined: the stored subscription is refused at the restore (a quarantined device reads
    // only its own score), though the session is present.
    const second = await connect(gw, creds, { clean: false });
    t.teardown(() => second.end(true));
    const closed = new Promise((r) => second.once('close', r));
    await gw.fleet.release('roamer');
    await waitFor(() => gw.plugin.effectiveScore('roamer') > 0, 'release reaches the broker');
    await closed;
    t.pass('the session opened while quarantined was closed at the release');
    // The device reconnects (as any client does) and, without subscribing again, hears the group's messages.
    const third = await connect(gw, creds, { clean: false });
    t.teardown(() => third.end(true));
    const got = inbox(third);
    await publisher.publishAsync('weather/r', 'after release', { qos: 1 });
    await waitFor(() => got.some((m) => m.payload === 'after release'), 'a delivery on the stored subscription after the release');
  });

  await t.test('quarantine cuts a live session; release restores it; a quarantined will is dropped', async (t) => {
    const dev = await enroll(gw, dir, 'sensor');
    const watcher = await connect(gw, await enroll(gw, dir, 'watcher'));
    t.teardown(() => watcher.end(true));
    const seen = inbox(watcher);
    await watcher.subscribeAsync('weather/#', { qos: 1 });
    const client = await connect(gw, dev, { will: { topic: 'weather/will', payload: Buffer.from('sensor died'), qos: 1, retain: false } });
    const got = inbox(client);
    await client.subscribeAsync('weather/#', { qos: 1 });
    await publisher.publishAsync('weather/a', 'one', { qos: 1 });
    await waitFor(() => got.some((m) => m.payload === 'one'), 'one');

    const q = await run(process.execPath, [CLI, 'device', 'quarantine', 'sensor', '--data', gw.dir]);
    t.match(q.stdout, /sensor is now quarantined/);
    await waitFor(() => gw.plugin.effectiveScore('sensor') === 0, 'quarantine reaches the broker');
    await publisher.publishAsync('weather/a', 'two', { qos: 1 });
    await barrier(publisher, seen, 'weather');
    t.notOk(got.some((m) => m.payload === 'two'), 'no deliveries while quarantined');

    const r = await run(process.execPath, [CLI, 'device', 'release', 'sensor', '--data', gw.dir]);
    t.match(r.stdout, /sensor is now active/);
    await waitFor(() => gw.plugin.effectiveScore('sensor') === 0.5, 'release reaches the broker');
    await publisher.publishAsync('weather/a', 'three', { qos: 1 });
    await waitFor(() => got.some((m) => m.payload === 'three'), 'three');

    // Quarantine again, then kill the connection abruptly: the will must not be published.
    await run(process.execPath, [CLI, 'device', 'quarantine', 'sensor', '--data', gw.dir]);
    await waitFor(() => gw.plugin.effectiveScore('sensor') === 0, 'quarantine again');
    (client as unknown as { stream: { destroy(): void } }).stream.destroy();
    await waitFor(() => gw.plugin.sessionCount('sensor') === 0, 'session gone');
    await barrier(publisher, seen, 'weather');
    t.notOk(seen.some((m) => m.topic === 'weather/will'), "the quarantined device's will was dropped");
    client.end(true);

    // Control: an active device's will is delivered.
    const other = await connect(gw, await enroll(gw, dir, 'healthy'), { will: { topic: 'weather/will', payload: Buffer.from('healthy died'), qos: 1, retain: false } });
    (other as unknown as { stream: { destroy(): void } }).stream.destroy();
    await waitFor(() => seen.some((m) => m.payload === 'healthy died'), 'will of an active device');
    other.end(true);
  });

  await t.test('self-signed with a valid CN, another CA, expired, and no certificate are all refused', async (t) => {
    const known = await enroll(gw, dir, 'known');
    // Self-signed certificate claiming a valid device's identity (CN and SAN).
    const key = makeKey(dir);
    const cnf = writeTemp(dir, 'ss.cnf', '[req]\ndistinguished_name=dn\nx509_extensions=ext\n[dn]\n[ext]\nsubjectAltName=URI:urn:wott:device:known\nextendedKeyUsage=clientAuth\n');
    const selfSigned = openssl(['req', '-x509', '-new', '-key', key, '-subj', '/CN=known', '-days', '1', '-config', cnf]).toString();
    const keyPem = openssl(['pkey', '-in', key]).toString();
    const e1 = await connectError(gw, { id: 'known', key: keyPem, cert: selfSigned, ca: gw.caPem });
    t.ok(e1, `self-signed refused: ${e1.message}`);
    // Anyone can make that certificate: it proves nothing about "known", so no event about "known" is published
    // (its score cannot move). A connect of the real "known" afterwards is the barrier for the events stream.
    const real = await connect(gw, known);
    await waitFor(() => events.some((e) => e.device === 'known' && e.type === 'connect'), 'connect event of the real device');
    real.end(true);
    t.notOk(events.some((e) => e.device === 'known' && e.type === 'auth_failure'), 'no auth_failure charged to the device a forged certificate names');

    // A certificate from another wott CA for the same device id.
    const other = await CertificateAuthority.open({ dataDir: tempDir(t) });
    const { der, keyPath } = makeCsr(dir, '/CN=known');
    const foreign = await other.enrollWithToken('known', (await other.createToken('known')).token, der);
    await other.close();
    const e2 = await connectError(gw, { id: 'known', key: openssl(['pkey', '-in', keyPath]).toString(), cert: foreign.pem, ca: gw.caPem });
    t.ok(e2, `other CA refused: ${e2.message}`);
    const foreignPath = writeTemp(dir, 'foreign.crt', foreign.pem);
    const ms = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(gw.mqttPort), '--cafile', known.caPath, '--cert', foreignPath, '--key', keyPath, '-i', 'known', '-t', 'weather/x', '-m', 'x']);
    t.not(ms.code, 0, 'mosquitto_pub with another CA cert fails');

    // An expired certificate from our own CA (issued with the clock set back).
    const past = await CertificateAuthority.open({ dataDir: gw.dir, now: () => new Date(Date.now() - 3 * 86_400_000), certLifetimeMs: 86_400_000 });
    const csr2 = makeCsr(dir, '/CN=old-device');
    const expired = await past.enrollWithToken('old-device', (await past.createToken('old-device')).token, csr2.der);
    await past.close();
    const e3 = await connectError(gw, { id: 'old-device', key: openssl(['pkey', '-in', csr2.keyPath]).toString(), cert: expired.pem, ca: gw.caPem });
    t.ok(e3, `expired refused: ${e3.message}`);

    // No client certificate at all.
    const e4 = await connectError(gw, { id: 'nobody', key: undefined as unknown as string, cert: undefined as unknown as string, ca: gw.caPem });
    t.ok(e4, `no certificate refused: ${e4.message}`);
    t.ok(await gw.metrics.getSingleMetricAsString('wott_mqtt_handshake_failures_total').then((s) => /untrusted/.test(s) && /no_certificate/.test(s)));
  });
});

t.test('onDowngrade: disconnect closes the session when the score drops', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { onDowngrade: 'disconnect' });
  const dir = tempDir(t);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  const client = await connect(gw, await enroll(gw, dir, 'dev1'));
  const closed = new Promise((r) => client.once('close', r));
  await setScore(gw, scorer, 'dev1', 0.1);
  await closed;
  t.pass('closed on downgrade');
});

t.test('wott policy explain reads the live score from the running gateway', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const config = writeTemp(dir, 'wott.yaml', 'policies:\n' + POLICIES.map((p) => `  - topic: "${p.topic}"\n    publish: ${p.publish}\n    subscribe: ${p.subscribe}\n`).join(''));
  const gw = await testGateway(t);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  await enroll(gw, dir, 'dev1');
  await setScore(gw, scorer, 'dev1', 0.7);
  const explain = (topic: string, action: string) =>
    run(process.execPath, [CLI, 'policy', 'explain', '--device', 'dev1', '--topic', topic, '--action', action, '--data', gw.dir, '--config', config, '--mqtt-port', String(gw.mqttPort), '--json']);
  const pay = JSON.parse((await explain('payments/card', 'publish')).stdout);
  t.match(pay, { device: 'dev1', score: 0.7, scoreSource: /live score/, rule: 'payments/#', threshold: 0.9, allowed: false, reason: /below/ });
  const weather = JSON.parse((await explain('weather/x', 'subscribe')).stdout);
  t.match(weather, { allowed: true, rule: 'weather/#' });
  const none = JSON.parse((await explain('random/topic', 'publish')).stdout);
  t.match(none, { allowed: false, reason: /no policy rule matches/ });
  const own = JSON.parse((await explain('devices/dev1/led', 'publish')).stdout);
  t.match(own, { allowed: true, rule: 'devices/{device}/#' });
  await gw.fleet.quarantine('dev1');
  const text = await run(process.execPath, [CLI, 'policy', 'explain', '--device', 'dev1', '--topic', 'weather/x', '--action', 'publish', '--data', gw.dir, '--config', config, '--mqtt-port', String(gw.mqttPort)]);
  t.match(text.stdout, /device:\s+dev1 \(quarantined\)\nscore:\s+0 \(live score from the gateway; capped at 0 because the device is quarantined\)\nrule:\s+weather\/# needs 0.4\ndecision: DENY publish weather\/x/);
});

t.test('the plugin works mounted on a plain Aedes instance the test creates itself', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: join(dir, 'ca') });
  t.teardown(() => ca.close());
  const server = await ca.issueServer();
  const caPem = ca.caCertificates().map((c) => c.toString()).join('');
  const broker = await Aedes.createBroker();
  const plugin = new WottPlugin({ policies: [{ topic: 'weather/#', publish: 0.4, subscribe: 0.4 }], trust: staticTrustSource({ lowly: 'quarantined' }) });
  await plugin.attach(broker);
  const tls = createTlsServer({ key: server.keyPem, cert: server.pem + ca.material.intermediate.toString(), ca: caPem, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    if (plugin.acceptTls(socket)) broker.handle(socket);
  });
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    await new Promise((r) => tls.close(r));
    await new Promise((r) => broker.close(r as () => void));
    plugin.close();
  });
  const port = (tls.address() as AddressInfo).port;
  const creds = async (id: string) => {
    const { der, keyPath } = makeCsr(dir, `/CN=${id}`);
    const issued = await ca.enrollWithToken(id, (await ca.createToken(id)).token, der);
    return { id, key: openssl(['pkey', '-in', keyPath]).toString(), cert: issued.pem, ca: caPem };
  };
  const a = await connect({ mqttPort: port }, await creds('alpha'));
  const b = await connect({ mqttPort: port }, await creds('lowly'));
  t.teardown(() => {
    a.end(true);
    b.end(true);
  });
  const got = inbox(a);
  t.equal(await subscribeGrant(a, 'weather/#', 0), 0);
  t.equal(await subscribeGrant(b, 'weather/#', 0), 128, 'a quarantined device (score ceiling 0) is denied');
  t.equal(await subscribeGrant(a, 'secret/#', 0), 128, 'unmatched topics are denied');
  await a.publishAsync('weather/x', 'hello', { qos: 1 });
  await waitFor(() => got.some((m) => m.payload === 'hello'), 'delivery');
  t.pass('published and delivered through the plugin');
});

t.test('a certificate revoked between the TLS handshake and CONNECT is refused at CONNECT', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: join(dir, 'ca') });
  t.teardown(() => ca.close());
  const server = await ca.issueServer();
  const caPem = ca.caCertificates().map((c) => c.toString()).join('');
  const broker = await Aedes.createBroker();
  // The plugin parses a socket's certificate once (acceptTls) and reuses it at CONNECT: the trust checks must
  // still run again then. A trust source whose revocations the test changes between the two.
  const revoked = new Set<string>();
  const trust = { ...staticTrustSource(), isRevoked: (serial: string) => revoked.has(serial) };
  const plugin = new WottPlugin({ policies: [], trust });
  await plugin.attach(broker);
  const accepted: TLSSocket[] = [];
  const tls = createTlsServer({ key: server.keyPem, cert: server.pem + ca.material.intermediate.toString(), ca: caPem, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    if (plugin.acceptTls(socket)) (accepted.push(socket), broker.handle(socket));
  });
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    await new Promise((r) => tls.close(r));
    await new Promise((r) => broker.close(r as () => void));
    plugin.close();
  });
  const port = (tls.address() as AddressInfo).port;

  /** Handshake, then (after `between`) CONNECT on the same socket: the CONNACK's return code, or undefined if none came. */
  const handshakeThenConnect = async (id: string, between: (serial: string) => void): Promise<number | undefined> => {
    const { der, keyPath } = makeCsr(dir, `/CN=${id}`);
    const issued = await ca.enrollWithToken(id, (await ca.createToken(id)).token, der);
    const before = accepted.length;
    const socket = tlsConnect({ port, host: '127.0.0.1', key: openssl(['pkey', '-in', keyPath]).toString(), cert: issued.pem, ca: caPem, servername: 'localhost', checkServerIdentity: () => undefined });
    t.teardown(() => socket.destroy());
    let connack: number | undefined;
    let closed = false;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => p.cmd === 'connack' && (connack = p.returnCode));
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    await waitFor(() => accepted.length > before, 'the gateway side to accept the TLS connection');
    between(normalizeSerial(issued.serial));
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 30 }));
    await waitFor(() => connack !== undefined || closed, 'a CONNACK or the socket closed');
    return connack;
  };
  t.equal(await handshakeThenConnect('steady', () => undefined), 0, 'nothing changed: CONNECT accepted');
  const code = await handshakeThenConnect('stolen', (serial) => revoked.add(serial));
  t.not(code, 0, `revoked after the handshake: CONNECT refused (CONNACK ${code ?? 'none, closed'})`);
});

t.test('a revoked certificate closes its own sessions only: a device keeping its identity, a service, bystanders untouched', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  // Two certificates of one device (a second enrollment supersedes the first, so enroll two devices instead) and a
  // service: each revoked by serial, as `wott ca revoke --serial` does; the device's state stays active.
  const creds = await Promise.all(['cert-a', 'cert-b', 'bystander'].map((id) => enroll(gw, dir, id)));
  const service = { ...(await serviceCredentials(gw, dir, 'scoring', 'cert-test')), id: 'scoring:cert-test' };
  const clients = await Promise.all([...creds.map((c) => connect(gw, c)), connect(gw, service)]);
  t.teardown(() => clients.forEach((c) => c.end(true)));
  const closed = clients.map((c) => new Promise<void>((r) => c.once('close', () => r())));
  const open = clients.map(() => true);
  closed.forEach((p, i) => void p.then(() => (open[i] = false)));

  await gw.ca.revoke({ serial: creds[0]!.serial }, 'keyCompromise');
  await closed[0];
  t.pass("cert-a's session closed when its certificate (not its device) was revoked");
  t.equal((await gw.ca.inventory.device('cert-a'))?.state, 'active', 'the device itself is still active');
  await gw.ca.revoke({ serial: normalizeSerial(service.serial) }, 'keyCompromise');
  await closed[3];
  t.pass("the service's session closed when its certificate was revoked");
  await new Promise((r) => setTimeout(r, 200));
  t.same(open, [false, true, true, false], 'cert-b and the bystander stay connected');
  const got = inbox(clients[2]!);
  await clients[2]!.subscribeAsync('devices/bystander/#', { qos: 1 });
  await clients[2]!.publishAsync('devices/bystander/x', 'still here', { qos: 1 });
  await waitFor(() => got.some((m) => m.payload === 'still here'), 'the bystander still publishes and receives');
});
