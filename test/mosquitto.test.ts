/**
 * wott's trust policies on a real Eclipse Mosquitto 2.0.11 (Debian): `wott mosquitto config` writes the broker's
 * configuration, `mosquitto -c` runs it on a loopback port, devices enroll through the gateway's real EST endpoint,
 * the Dynamic Security sync follows the retained scores a scoring identity publishes to Mosquitto, and MQTT.js and
 * mosquitto_pub / mosquitto_sub clients see the result.
 */
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type mqtt from 'mqtt';
import { aclKey, aclScore, DeviceAclCompiler, deviceRoleName, serverCertificateDue, startMosquittoSync, type MosquittoSync } from '../mosquitto-compat/index.js';
import { parseTopic, topicFilters, topics, type DeviceState } from '../protocol/index.js';
import { FleetView } from '../fleet/index.js';
import { freePort } from '../bench/servers.js';
import { CLI, makeKey, memoryLogger, openssl, requireCommand, startGatewayProcess, tempDir } from './helpers.js';
import {
  barrier,
  connect,
  connectError,
  enroll,
  inbox,
  mosquittoSub,
  POLICIES,
  run,
  serviceCredentials,
  subscribeGrant,
  testGateway,
  waitFor,
  type Credentials,
} from './mqtt-helpers.js';

const execFileP = promisify(execFile);

/** Starts `mosquitto -c conf` and resolves once it says it is running. */
function startMosquitto(conf: string): Promise<{ child: ChildProcess; log: string[]; stop(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const onData = (d: Buffer) => {
      log.push(...d.toString().split('\n').filter(Boolean));
      if (log.some((l) => / running$/.test(l))) resolve({ child, log, stop: async () => void (child.kill('SIGTERM'), await exited) });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`mosquitto exited (${code}) before running:\n${log.join('\n')}`)));
  });
}

t.test('trust policies on a real Mosquitto 2.x with the Dynamic Security sync', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireCommand(t, 'mosquitto', 'mosquitto') || !requireCommand(t, 'mosquitto_pub', 'mosquitto-clients')) return;
  const gw = await testGateway(t); // the CA and EST (its own Aedes broker is not used here)
  const dir = tempDir(t);
  // Mosquitto started as root drops to the `mosquitto` user before reading any file: it must reach the folder.
  chmodSync(dir, 0o755);
  const mqDir = join(dir, 'mosquitto');
  const port = await freePort();
  const broker = { mqttPort: port };
  const compiler = new DeviceAclCompiler(POLICIES);
  const logger = memoryLogger();
  const closers: Array<() => unknown> = [];
  let mosq: Awaited<ReturnType<typeof startMosquitto>> | undefined;
  let sync: MosquittoSync | undefined;
  let view: FleetView | undefined;
  t.teardown(async () => {
    for (const close of closers.reverse()) await close();
    await sync?.close();
    await view?.close();
    await mosq?.stop();
  });
  const track = (client: mqtt.MqttClient) => (closers.push(() => client.end(true)), client);

  await t.test('wott mosquitto config writes a complete broker configuration', async (t) => {
    const { stdout } = await execFileP(process.execPath, [CLI, 'mosquitto', 'config', '--out', mqDir, '--port', String(port), '--bind', '127.0.0.1', '--admin', 'sync', '--data', gw.dir]);
    t.match(stdout, /wrote .*mosquitto\.conf/);
    const conf = readFileSync(join(mqDir, 'mosquitto.conf'), 'utf8').split('\n');
    for (const line of [`listener ${port} 127.0.0.1`, 'require_certificate true', 'use_identity_as_username true', `crlfile ${join(mqDir, 'crl.pem')}`, 'tls_version tlsv1.2']) {
      t.ok(conf.includes(line), line);
    }
    t.ok(conf.some((l) => /^plugin \/.*mosquitto_dynamic_security\.so$/.test(l)), 'the Dynamic Security plugin');
    t.equal(statSync(join(mqDir, 'server.key')).mode & 0o777, 0o600, 'server key 0600');
    t.match(openssl(['crl', '-in', join(mqDir, 'crl.pem'), '-noout', '-issuer']).toString(), /wott Issuing CA|wott/);
    openssl(['verify', '-CAfile', join(mqDir, 'ca.crt'), join(mqDir, 'server.crt')]);
    t.notOk(serverCertificateDue(mqDir), 'a fresh server certificate is not due');
    t.ok(serverCertificateDue(mqDir, Date.now() + 80 * 86_400_000), 'due in its last third (the sync then renews it)');
    const dynsec = JSON.parse(readFileSync(join(mqDir, 'dynamic-security.json'), 'utf8'));
    t.same(dynsec.clients.map((c: { username: string }) => c.username), ['admin:sync']);
  });

  const admin = await serviceCredentials(gw, dir, 'admin', 'sync');
  const scorerCreds = await serviceCredentials(gw, dir, 'scoring', 'scorer'); // issued after config: the sync adds it
  mosq = await startMosquitto(join(mqDir, 'mosquitto.conf'));
  const devices: Record<string, Credentials> = {};
  for (const id of ['alice', 'bob', 'carol', 'dave', 'erin', 'mallory']) devices[id] = await enroll(gw, dir, id);

  view = await FleetView.open(gw.ca.inventory);
  const syncOptions = {
    url: `mqtts://localhost:${port}`,
    key: admin.key,
    cert: admin.cert,
    ca: admin.ca,
    view,
    authority: gw.ca,
    policies: POLICIES,
    initialScore: 0.5,
    mosquittoDir: mqDir,
    log: logger,
    pollMs: 100,
  };
  sync = await startMosquittoSync(syncOptions);
  await sync.ready;
  await sync.settled();

  const roleOf = async (id: string) => {
    const [r] = await sync!.command([{ command: 'getRole', rolename: deviceRoleName(id) }]);
    return (r!.data as { role: { acls: Parameters<typeof aclKey>[0] } }).role.acls;
  };
  /** Waits until Mosquitto holds exactly the ACLs the device should have at `score` in `state`. */
  const waitRole = async (id: string, score: number | undefined, state: DeviceState = 'active') => {
    const want =
      state === 'revoked' ? '' : state === 'quarantined' || state === 'unclaimed' ? aclKey(compiler.restrictedAcls(id)) : aclKey(compiler.acls(id, aclScore(state, score, 0.5)));
    const until = Date.now() + 10_000;
    for (;;) {
      if (aclKey(await roleOf(id)) === want) return;
      if (Date.now() > until) throw new Error(`role of ${id} never reached score ${score} (${state})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  await t.test('one client and one role per device, service identities with their roles', async (t) => {
    const [list] = await sync!.command([{ command: 'listClients', verbose: true }]);
    const clients = (list!.data as { clients: Array<{ username: string; roles: Array<{ rolename: string }> }> }).clients;
    const roles = Object.fromEntries(clients.map((c) => [c.username, c.roles.map((r) => r.rolename)]));
    for (const id of Object.keys(devices)) t.same(roles[id], [deviceRoleName(id)], `${id} holds only its own role`);
    t.same(roles['scoring:scorer'], ['wott-service-scoring'], 'the scoring identity issued after config was added');
    t.same(roles['admin:sync'], ['wott-service-admin']);
    for (const id of Object.keys(devices)) await waitRole(id, undefined); // initial score 0.5 until scored
  });

  const scorer = track(await connect(broker, { ...scorerCreds, id: 'scoring:scorer' }));
  const seen = inbox(scorer);
  await scorer.subscribeAsync(topicFilters.protectedNamespace, { qos: 1 });
  const setScore = async (id: string, score: number, state?: DeviceState) => {
    const message = { device: id, score, factors: [], modelVersion: 'test', time: new Date().toISOString() };
    await scorer.publishAsync(topics.scores(id), JSON.stringify(message), { qos: 1, retain: true });
    await waitRole(id, score, state);
  };
  await setScore('bob', 0.95);
  await setScore('alice', 0.5);

  const bobClient = track(await connect(broker, devices.bob!));
  const bobGot = inbox(bobClient);
  const aliceClient = track(await connect(broker, devices.alice!));
  let aliceClosed = 0;
  aliceClient.on('close', () => aliceClosed++);
  const aliceGot = inbox(aliceClient);

  await t.test('an allowed publish is delivered (mosquitto_pub → MQTT.js)', async (t) => {
    await aliceClient.subscribeAsync('weather/#', { qos: 1 });
    // erin, not bob: a second connection with bob's certificate would take over bob's session (see below).
    const e = devices.erin!;
    const pub = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(port), '--cafile', e.caPath, '--cert', e.certPath, '--key', e.keyPath, '-q', '1', '-t', 'weather/berlin', '-m', '21C']);
    t.equal(pub.code, 0, pub.stderr);
    await waitFor(() => aliceGot.some((m) => m.topic === 'weather/berlin' && m.payload === '21C'), 'weather message');
    t.pass('delivered');
  });

  await t.test("a '#' subscriber never receives payments/... below 0.9, nor other devices' wott/ topics", async (t) => {
    const d = devices.dave!;
    const hashSub = mosquittoSub(['-h', 'localhost', '-p', String(port), '--cafile', d.caPath, '--cert', d.certPath, '--key', d.keyPath, '-t', '#', '-v', '-q', '1']);
    closers.push(() => hashSub.stop());
    await setScore('dave', 0.5);
    // mosquitto_sub receives the retained scores it may read as soon as its subscription is in place.
    await waitFor(() => hashSub.lines.some((l) => l.startsWith(topics.scores('dave'))), "mosquitto_sub sees its own retained score");
    await bobClient.publishAsync('payments/card', 'secret-1', { qos: 1 });
    await bobClient.publishAsync(topics.telemetry('bob'), '{"not":"for dave"}', { qos: 1 });
    await bobClient.publishAsync('weather/paris', '18C', { qos: 1 });
    await waitFor(() => hashSub.lines.some((l) => l.startsWith('weather/paris')), 'mosquitto_sub sees weather');
    t.notOk(hashSub.lines.some((l) => l.startsWith('payments/')), 'no payments for the # subscriber at 0.5');
    t.notOk(hashSub.lines.some((l) => l.startsWith(topics.telemetry('bob'))), "no other device's telemetry");
    t.notOk(hashSub.lines.some((l) => l.startsWith(topics.scores('bob')) || l.startsWith(topics.scores('alice'))), "no other device's score");
    t.notOk(hashSub.lines.some((l) => l.startsWith('$')), 'nothing from $CONTROL or $SYS');
    // MQTT.js: '#' is granted (weather/# is readable at 0.5) and filtered per delivery the same way.
    const [grant] = await aliceClient.subscribeAsync('#', { qos: 1 });
    t.equal(grant?.qos, 1, '# granted');
    await bobClient.publishAsync('payments/card', 'secret-2', { qos: 1 });
    await barrier(bobClient, aliceGot, 'weather');
    t.notOk(aliceGot.some((m) => m.topic.startsWith('payments/')), 'MQTT.js # subscriber got no payments');
    await aliceClient.unsubscribeAsync('#');
    hashSub.stop();
  });

  await t.test('a score drop below a threshold removes access on the live connection, a rise restores it', async (t) => {
    await bobClient.subscribeAsync(['payments/#', 'weather/#'], { qos: 1 });
    await setScore('alice', 0.95);
    const [grant] = await aliceClient.subscribeAsync('payments/#', { qos: 1 });
    t.equal(grant?.qos, 1, 'payments/# granted at 0.95');
    await bobClient.publishAsync('payments/a', 'before', { qos: 1 });
    await waitFor(() => aliceGot.some((m) => m.payload === 'before'), 'delivered at 0.95');

    await setScore('alice', 0.5);
    await bobClient.publishAsync('payments/b', 'during', { qos: 1 });
    // alice's own payments publish is dropped by Mosquitto: QoS 1 is still acknowledged, the connection stays.
    await aliceClient.publishAsync('payments/from-alice', 'dropped', { qos: 1 });
    await barrier(bobClient, aliceGot, 'weather');
    await barrier(aliceClient, bobGot, 'weather');
    t.notOk(aliceGot.some((m) => m.payload === 'during'), 'no delivery below the threshold on the existing subscription');
    t.notOk(bobGot.some((m) => m.topic === 'payments/from-alice'), "alice's payments publish was dropped");
    t.equal(aliceClosed, 0, 'modifyRole does not kick: the change reached the live connection without a reconnect');
    t.ok(aliceClient.connected);
    await t.rejects(aliceClient.subscribeAsync('payments/x', { qos: 1 }), 'a new payments subscription is refused (SUBACK 0x80)');

    await setScore('alice', 0.95);
    await bobClient.publishAsync('payments/c', 'after', { qos: 1 });
    await waitFor(() => aliceGot.some((m) => m.payload === 'after'), 'delivered again after the rise, same subscription');
    t.equal(aliceClosed, 0);
    await setScore('alice', 0.5);
  });

  await t.test('one session per identity: a second connection with the same certificate replaces the first', async (t) => {
    const m1 = track(await connect(broker, devices.mallory!, { clientId: 'mallory-1' }));
    const closed = new Promise((r) => m1.once('close', r));
    const m2 = track(await connect(broker, devices.mallory!, { clientId: 'bob' }));
    await closed;
    t.ok(m2.connected, 'the newer one stays');
    t.ok(bobClient.connected, "choosing bob's client id did not touch bob's session (use_username_as_clientid)");
    m2.end(true);
  });

  await t.test('a device cannot publish another device’s telemetry, any score, events, or Dynamic Security commands', async (t) => {
    const m = track(await connect(broker, devices.mallory!));
    const forged = { device: 'mallory', score: 1, factors: [], modelVersion: 'x', time: new Date().toISOString() };
    await m.publishAsync(topics.telemetry('bob'), '{}', { qos: 1 });
    await m.publishAsync(topics.scores('mallory'), JSON.stringify(forged), { qos: 1, retain: true });
    await m.publishAsync(topics.events('bob'), '{}', { qos: 1 });
    await m.publishAsync(topics.reports('mallory', 'mallory'), '{}', { qos: 1 });
    await m.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands: [{ command: 'createClient', username: 'evil' }] }), { qos: 1 });
    const mp = devices.mallory!;
    const pub = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(port), '--cafile', mp.caPath, '--cert', mp.certPath, '--key', mp.keyPath, '-q', '1', '-t', topics.scores('bob'), '-m', JSON.stringify({ ...forged, device: 'bob', score: 0 })]);
    t.equal(pub.code, 0, 'mosquitto_pub is not told (Mosquitto drops unauthorised publishes silently)');
    await waitFor(() => !m.connected, "mosquitto_pub with mallory's certificate took over m's session");
    // mallory's own telemetry and reports reach the scoring identity; used as the barrier.
    const m2 = track(await connect(broker, devices.mallory!));
    await m2.publishAsync(topics.reports('mallory', 'bob'), '{}', { qos: 1 });
    await m2.publishAsync(topics.telemetry('mallory'), '{}', { qos: 1 });
    await waitFor(() => seen.some((s) => s.topic === topics.telemetry('mallory')), 'own telemetry');
    t.ok(seen.some((s) => s.topic === topics.reports('mallory', 'bob')), 'own peer report');
    t.notOk(seen.some((s) => s.topic === topics.telemetry('bob') && s.payload === '{}'), "bob's telemetry was not forged");
    t.notOk(seen.some((s) => parseTopic(s.topic)?.kind === 'scores' && s.payload.includes('"modelVersion":"x"')), 'no forged score');
    t.notOk(seen.some((s) => s.topic === topics.events('bob')), 'no forged event');
    t.notOk(seen.some((s) => s.topic === topics.reports('mallory', 'mallory')), 'no report about itself');
    await sync!.settled();
    await waitRole('mallory', undefined);
    await waitRole('bob', 0.95);
    const [evil] = await sync!.command([{ command: 'getClient', username: 'evil' }]);
    t.equal(evil!.error, 'Client not found', 'no Dynamic Security command from a device');
  });

  await t.test('malformed score messages are ignored by the sync', async (t) => {
    const before = aclKey(await roleOf('dave'));
    const malformed = sync!.stats.malformedScores;
    await scorer.publishAsync(topics.scores('dave'), 'not json', { qos: 1 });
    await scorer.publishAsync(topics.scores('dave'), JSON.stringify({ device: 'bob', score: 1, factors: [], modelVersion: 'x', time: new Date().toISOString() }), { qos: 1 });
    await scorer.publishAsync(topics.scores('dave'), JSON.stringify({ device: 'dave', score: 2, factors: [], modelVersion: 'x', time: new Date().toISOString() }), { qos: 1 });
    await waitFor(() => sync!.stats.malformedScores === malformed + 3, 'three malformed messages seen');
    await sync!.settled();
    t.equal(aclKey(await roleOf('dave')), before, "dave's role is unchanged");
    t.ok(logger.lines.some((l: { msg?: string }) => l.msg === 'ignored malformed score message'));
    await setScore('dave', 0.95); // a valid one is applied
    t.pass('a valid score still applies');
  });

  await t.test('quarantine isolates the device (own telemetry and own score only, whatever the rules); release restores it', async (t) => {
    await gw.fleet.quarantine('dave');
    await waitRole('dave', 0.95, 'quarantined');
    const acls = await roleOf('dave');
    t.notOk(acls.some((a) => a.topic === 'weather/#' && a.allow), 'no weather');
    t.notOk(acls.some((a) => a.topic.startsWith('devices/') && a.allow), 'not even the threshold-0 rule devices/{device}/#');
    t.ok(acls.some((a) => a.acltype === 'publishClientSend' && a.topic === topics.telemetry('dave') && a.allow), 'own telemetry stays');
    // On the real Mosquitto: the threshold-0 rule no longer admits dave; its own score does.
    const d = track(await connect(broker, devices.dave!));
    t.equal(await subscribeGrant(d, 'devices/dave/#'), 128, 'devices/dave/# refused while quarantined');
    t.equal(await subscribeGrant(d, topics.events('dave')), 128, 'own events refused too');
    t.equal(await subscribeGrant(d, topics.scores('dave')), 1, 'own score granted');
    d.end(true);
    await gw.fleet.release('dave');
    await waitRole('dave', 0.95);
  });

  await t.test('a revoked device is kicked and cannot connect again (CRL file + SIGHUP)', async (t) => {
    await setScore('carol', 0.95);
    const carolClient = await connect(broker, devices.carol!);
    const kicked = new Promise((r) => carolClient.once('close', r));
    const reloads = sync!.stats.reloads;
    await gw.ca.revoke({ deviceId: 'carol' }, 'keyCompromise');
    await kicked;
    t.pass('the live session was closed');
    await waitFor(() => sync!.stats.reloads > reloads, 'Mosquitto told to reload');
    await sync!.settled();
    const crl = openssl(['crl', '-in', join(mqDir, 'crl.pem'), '-noout', '-text']).toString().toLowerCase();
    t.ok(crl.includes(devices.carol!.serial), 'the CRL file lists the certificate');
    const err = await connectError(broker, devices.carol!);
    t.match(err.message, /revoked|closed/i, 'refused at the handshake');
    const c = devices.carol!;
    const pub = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(port), '--cafile', c.caPath, '--cert', c.certPath, '--key', c.keyPath, '-t', 'weather/x', '-m', '1']);
    t.not(pub.code, 0, 'mosquitto_pub cannot connect either');
    await waitRole('carol', undefined, 'revoked');
    const [client] = await sync!.command([{ command: 'getClient', username: 'carol' }]);
    t.equal((client!.data as { client: { disabled?: boolean } }).client.disabled, true, 'disabled in Dynamic Security');
    t.ok(bobClient.connected, 'others stay connected');
    t.ok(mosq!.log.some((l) => /Reloading config/.test(l)), 'Mosquitto logged the reload');
  });

  await t.test('a certificate from another CA is refused', async (t) => {
    const other = tempDir(t);
    const caKey = makeKey(other, 'p256', 'other-ca');
    openssl(['req', '-x509', '-new', '-key', caKey, '-subj', '/CN=Other CA', '-days', '2', '-out', join(other, 'ca.crt')]);
    const key = makeKey(other, 'p256', 'alice');
    openssl(['req', '-new', '-key', key, '-subj', '/CN=alice', '-out', join(other, 'alice.csr')]);
    openssl(['x509', '-req', '-in', join(other, 'alice.csr'), '-CA', join(other, 'ca.crt'), '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-out', join(other, 'alice.crt')]);
    const forged = { id: 'alice', key: readFileSync(key, 'utf8'), cert: readFileSync(join(other, 'alice.crt'), 'utf8'), ca: devices.alice!.ca };
    const err = await connectError(broker, forged);
    t.ok(err, `refused: ${err.message}`);
    const pub = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(port), '--cafile', devices.alice!.caPath, '--cert', join(other, 'alice.crt'), '--key', key, '-t', 'weather/x', '-m', '1']);
    t.not(pub.code, 0, 'mosquitto_pub with the foreign certificate fails');
    const none = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(port), '--cafile', devices.alice!.caPath, '-t', 'weather/x', '-m', '1']);
    t.not(none.code, 0, 'no client certificate: refused');
    t.ok(aliceClient.connected, 'the real alice is undisturbed');
  });

  await t.test("onDowngrade 'disconnect': a score drop also kicks the device, a rise does not", async (t) => {
    await sync!.close();
    sync = await startMosquittoSync({ ...syncOptions, onDowngrade: 'disconnect' });
    await sync.ready;
    await sync.settled();
    t.equal(sync.stats.commands, 0, 'a restart with Dynamic Security already in line sends no command');
    await setScore('erin', 0.95);
    const erin = await connect(broker, devices.erin!);
    const kicked = new Promise((r) => erin.once('close', r));
    await setScore('erin', 0.5);
    await kicked;
    t.pass('kicked on the drop');
    const again = track(await connect(broker, devices.erin!));
    let closes = 0;
    again.on('close', () => closes++);
    await setScore('erin', 0.95);
    await sync.settled();
    await setScore('erin', 0.93); // same band: no edit at all
    await sync.settled();
    t.equal(closes, 0, 'not kicked on the rise');
    t.ok(again.connected, 'reconnected with the lower score');
  });

  await t.test('the sync CLI reconciles without any edit when Dynamic Security is already in line', async (t) => {
    await sync!.close();
    sync = undefined;
    const creds = join(dir, 'admin-creds');
    mkdirSync(creds);
    writeFileSync(join(creds, 'admin.key'), admin.key, { mode: 0o600 });
    writeFileSync(join(creds, 'admin.crt'), admin.cert);
    writeFileSync(join(creds, 'ca.crt'), admin.ca);
    const policies = join(dir, 'wott.yaml');
    writeFileSync(policies, `policies:\n${POLICIES.map((p) => `  - topic: "${p.topic}"\n    publish: ${p.publish}\n    subscribe: ${p.subscribe}\n`).join('')}`);
    const child = spawn(process.execPath, [CLI, 'mosquitto', 'sync', '--mqtt', `mqtts://localhost:${port}`, '--credentials', creds, '--dir', mqDir, '--data', gw.dir, '--config', policies], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    closers.push(() => child.kill('SIGTERM'));
    const out: string[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
    child.stderr.on('data', (d: Buffer) => out.push(d.toString()));
    await waitFor(() => out.join('').includes('Mosquitto in sync'), 'the CLI sync is ready', 20_000);
    const line = out.join('').split('\n').find((l) => l.includes('Mosquitto in sync'))!;
    const stats = JSON.parse(line).stats as { commands: number; errors: number };
    t.equal(stats.errors, 0, 'no errors');
    t.equal(stats.commands, 0, 'nothing to change: every role and client already matched');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    t.equal(await exited, 0, 'SIGTERM stops it cleanly');
  });
});

t.test('wott gateway runs the sync itself when wott.yaml has a mosquitto: section', async (t) => {
  if (!requireCommand(t, 'mosquitto', 'mosquitto')) return;
  const first = await testGateway(t); // makes the CA and enrolls a device, then stops
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const mqDir = join(dir, 'mosquitto');
  const port = await freePort();
  const alice = await enroll(first, dir, 'alice');
  await execFileP(process.execPath, [CLI, 'mosquitto', 'config', '--out', mqDir, '--port', String(port), '--bind', '127.0.0.1', '--admin', 'gw', '--data', first.dir]);
  const creds = join(dir, 'admin-creds');
  await execFileP(process.execPath, [CLI, 'ca', 'service', '--role', 'admin', '--name', 'gw', '--out', creds, '--data', first.dir]);
  await first.close();
  const mosq = await startMosquitto(join(mqDir, 'mosquitto.conf'));
  t.teardown(() => mosq.stop());
  const config = join(dir, 'wott.yaml');
  writeFileSync(
    config,
    `policies:\n${POLICIES.map((p) => `  - topic: "${p.topic}"\n    publish: ${p.publish}\n    subscribe: ${p.subscribe}\n`).join('')}` +
      `mosquitto:\n  url: mqtts://localhost:${port}\n  credentials: ${creds}\n  dir: ${mqDir}\n`,
  );
  const { child, log } = await startGatewayProcess(first.dir, ['--config', config]);
  t.teardown(() => child.kill('SIGTERM'));
  t.match(log.join('\n'), /Mosquitto sync started/);
  // alice (enrolled before) gets her client and role: at the initial score 0.5 weather/# is open, payments/# is not.
  const client = await (async () => {
    for (let i = 0; ; i++) {
      try {
        return await connect({ mqttPort: port }, { ...alice, id: 'alice' });
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  t.teardown(() => client.end(true));
  const got = inbox(client);
  // The sync gives alice her role shortly after the gateway starts: until then Mosquitto refuses.
  let granted: number | undefined;
  for (let i = 0; i < 100 && granted !== 1; i++) {
    granted = await subscribeGrant(client, 'weather/#');
    if (granted !== 1) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(granted, 1, 'weather/# granted once the gateway synced her role');
  t.equal(await subscribeGrant(client, 'payments/#'), 128, 'payments/# refused at 0.5');
  for (let i = 0; i < 100 && !got.some((m) => m.topic === 'weather/x'); i++) {
    await client.publishAsync('weather/x', 'sunny', { qos: 1 });
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(got.some((m) => m.topic === 'weather/x'), 'weather/# works through Mosquitto with the role the gateway synced');
  await client.publishAsync('payments/x', 'no', { qos: 1 });
  await client.publishAsync('weather/y', 'marker', { qos: 1 });
  await waitFor(() => got.some((m) => m.topic === 'weather/y'), 'marker');
  t.notOk(got.some((m) => m.topic === 'payments/x'), 'payments/# stays closed at 0.5');
});
