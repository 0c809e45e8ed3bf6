/**
 * Device-to-device links (issue 18): real TLS between agents enrolled at a real gateway, each side with its own
 * device certificate. A verified peer's valid messages go through; a peer whose certificate is ours but revoked
 * is reported under its id; one whose certificate does not chain to our CA is not reported under the name it
 * claims — its address shows up in the next telemetry as an intrusion source `tls`; a verified peer sending data
 * that fails the schema is reported and cut off. Both directions: the connecting side checks the server too.
 */
import t from 'tap';
import { join } from 'node:path';
import { z } from 'zod';
import { pino } from 'pino';
import { AgentStore, enrollAgent, PeerLink, type PeerRejection } from '../../agent/index.js';
import { peerReportSchema, telemetrySchema, topicFilters, topics } from '../../protocol/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, forgedCredentials, inbox, serviceCredentials, testGateway, waitFor } from '../mqtt-helpers.js';
import { wottAgent } from './agent-helpers.js';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';

const quiet = pino({ level: 'silent' });
const reading = z.object({ sensor: z.string().max(32), celsius: z.number().min(-60).max(100) }).strict();
type Reading = z.infer<typeof reading>;

t.test('a device-to-device link verifies peers against our CA and the CRL, and reports what fails', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  // The gateway's clock can be moved back to issue a certificate that has already expired.
  const clock = { skewMs: 0 };
  const gw = await testGateway(t, { now: () => new Date(Date.now() + clock.skewMs) });
  const base = tempDir(t);
  const dir = (id: string) => join(base, id);
  const server = `https://localhost:${gw.httpsPort}`;
  const fingerprint = gw.ca.material.root.fingerprint256;
  for (const id of ['dev-s', 'dev-c', 'dev-r', 'dev-b']) {
    await enrollAgent({ server, device: id, token: (await gw.ca.createToken(id)).token, dir: dir(id), caFingerprint: fingerprint, keyStore: 'file', log: quiet });
  }
  const mqtt = `mqtts://localhost:${gw.mqttPort}`;
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, tempDir(t), 'scoring', 'watch')), id: 'scoring:watch' });
  t.teardown(() => scorer.end(true));
  const got = inbox(scorer);
  await scorer.subscribeAsync(topicFilters.reports, { qos: 1 });
  const reports = () => got.filter((m) => m.topic.startsWith('wott/v1/reports/')).map((m) => ({ topic: m.topic, report: peerReportSchema.parse(JSON.parse(m.payload)) }));

  const rejected: PeerRejection[] = [];
  const received: Array<{ message: Reading; device: string }> = [];
  const serverLink = new PeerLink({ dir: dir('dev-s'), schema: reading, mqtt, crlMaxAgeMs: 0, log: quiet, onRejected: (r) => rejected.push(r) });
  const listening = await serverLink.listen((message, peer) => received.push({ message, device: peer.device }));
  t.teardown(() => listening.close());
  const target = { host: '127.0.0.1', port: listening.port };
  const link = (id: string) => new PeerLink({ dir: dir(id), schema: reading, mqtt, crlMaxAgeMs: 0, log: quiet });

  await t.test('a verified peer: valid messages arrive with its id, nothing reported', async (t) => {
    const c = await link('dev-c').connect({ ...target, expect: 'dev-s' });
    t.equal(c.peer.device, 'dev-s', 'the client verified the server device');
    c.send({ sensor: 'hall', celsius: 21.5 });
    await waitFor(() => received.length === 1, 'the message');
    t.same(received[0], { message: { sensor: 'hall', celsius: 21.5 }, device: 'dev-c' });
    t.throws(() => c.send({ sensor: 'hall', celsius: 500 } as Reading), 'our own bad data is not sent');
    c.close();
    const wrong = link('dev-c').connect({ ...target, expect: 'dev-other' });
    await t.rejects(wrong, /it is dev-s, not dev-other/, 'another device than expected is refused (not reported)');
    t.same(rejected, []);
  });

  await t.test('revoked certificate of ours: reported against its device', async (t) => {
    await gw.ca.revoke({ deviceId: 'dev-r' }, 'keyCompromise');
    // dev-r's key and certificate, as a stolen or decommissioned device would still hold them.
    const id = new AgentStore(dir('dev-r')).identity();
    const socket = tlsConnect({ ...target, key: id.keyPem, cert: id.certPem, rejectUnauthorized: false });
    socket.on('error', () => undefined);
    await waitFor(() => rejected.some((r) => r.kind === 'revoked'), 'the refusal');
    const r = rejected.find((x) => x.kind === 'revoked')!;
    t.equal(r.device, 'dev-r');
    t.equal(r.address, '127.0.0.1');
    const sent = await r.report;
    t.ok(sent, 'the report was acknowledged');
    await waitFor(() => reports().some((x) => x.report.subject === 'dev-r'), 'the report on the bus');
    const onBus = reports().find((x) => x.report.subject === 'dev-r')!;
    t.equal(onBus.topic, topics.reports('dev-s', 'dev-r'));
    t.match(onBus.report, { reporter: 'dev-s', subject: 'dev-r', rating: 0, reason: /revoked certificate/ });
  });

  await t.test('expired certificate of ours: reported against its device', async (t) => {
    clock.skewMs = -8 * 86_400_000; // issued eight days ago with the 7-day lifetime: expired a day ago
    const expired = await enroll(gw, tempDir(t), 'dev-e');
    clock.skewMs = 0;
    t.ok(Date.parse(new X509Certificate(expired.cert).validTo) < Date.now(), 'the certificate has expired');
    const socket = tlsConnect({ ...target, key: expired.key, cert: expired.cert, rejectUnauthorized: false });
    socket.on('error', () => undefined);
    await waitFor(() => rejected.some((r) => r.kind === 'expired'), 'the refusal');
    const r = rejected.find((x) => x.kind === 'expired')!;
    t.equal(r.device, 'dev-e');
    await r.report;
    await waitFor(() => reports().some((x) => x.report.subject === 'dev-e'), 'the report on the bus');
    t.match(reports().find((x) => x.report.subject === 'dev-e')!.report, { reporter: 'dev-s', rating: 0.3, reason: /outside its validity/ });
  });

  await t.test('a certificate that does not chain to our CA: no report under its name, its address as intrusion source tls', async (t) => {
    const forged = forgedCredentials(tempDir(t), 'dev-c', gw.caPem); // claims dev-c's name, self-signed
    const socket = tlsConnect({ ...target, key: forged.key, cert: forged.cert, rejectUnauthorized: false, localAddress: '127.0.0.3' });
    socket.on('error', () => undefined);
    await waitFor(() => rejected.some((r) => r.kind === 'foreign'), 'the refusal');
    const r = rejected.find((x) => x.kind === 'foreign')!;
    t.equal(r.device, undefined, 'no device named');
    t.equal(r.report, undefined, 'nothing reported');
    t.equal(r.address, '127.0.0.3');
    t.notOk(new AgentStore(dir('dev-s')).peerState().recent.some((x) => x.subject === 'dev-c'), 'dev-s never reported dev-c');
    t.same(new AgentStore(dir('dev-s')).tlsLedger(), [{ address: '127.0.0.3', count: 1 }]);

    const root = tempDir(t); // no logs at all: the TLS source alone
    const printed = await wottAgent(['run', '--dir', dir('dev-s'), '--root', root, '--print']);
    t.equal(printed.code, 0, printed.stderr);
    t.same(telemetrySchema.parse(JSON.parse(printed.stdout)).intrusions?.sources, [{ address: '127.0.0.3', failedLogins: 1, dropped: 0, services: ['tls'] }], 'in the telemetry dev-s sends next');
    t.same(new AgentStore(dir('dev-s')).tlsLedger().length, 1, '--print leaves it for the real report');
  });

  await t.test('a verified peer sending data that fails the schema: reported and cut off', async (t) => {
    const c = await link('dev-b').connect(target);
    const closed = new Promise<void>((resolve) => c.socket.once('close', () => resolve()));
    c.socket.write(JSON.stringify({ sensor: 'hall', celsius: 'hot' }) + '\n');
    await closed;
    await waitFor(() => rejected.some((r) => r.kind === 'bad-data'), 'the refusal');
    const r = rejected.find((x) => x.kind === 'bad-data')!;
    t.equal(r.device, 'dev-b');
    await r.report;
    await waitFor(() => reports().some((x) => x.report.subject === 'dev-b'), 'the report on the bus');
    t.match(reports().find((x) => x.report.subject === 'dev-b')!.report, { reporter: 'dev-s', rating: 0.2, reason: /fails its schema.*celsius/ });
    t.equal(received.length, 1, 'the bad message was not delivered');
  });

  await t.test('the connecting side checks the server the same way', async (t) => {
    const revokedServer = link('dev-r');
    const l = await revokedServer.listen(() => undefined); // a revoked device may still run its server: dev-c must refuse it
    t.teardown(() => l.close());
    const clientRejections: PeerRejection[] = [];
    const client = new PeerLink({ dir: dir('dev-c'), schema: reading, mqtt, crlMaxAgeMs: 0, log: quiet, onRejected: (r) => clientRejections.push(r) });
    await t.rejects(client.connect({ host: '127.0.0.1', port: l.port }), /refused: presented a revoked certificate/);
    t.equal(clientRejections[0]?.kind, 'revoked');
    await waitFor(() => reports().some((x) => x.report.reporter === 'dev-c' && x.report.subject === 'dev-r'), "dev-c's report on the bus");
  });
});
