/**
 * wott/trust reports peers as the device it runs on (issue 18): the API certificate of a TrustClient is an
 * operator's or a service's, which may not report, so `reporter` names the device (its agent directory, or its
 * certificate and key) and reportPeer publishes over MQTT like the agent. A revoked device certificate seen by
 * checkPeer is reported automatically, once per bound.
 */
import t from 'tap';
import { join } from 'node:path';
import { pino } from 'pino';
import { AgentStore, enrollAgent } from '../../agent/index.js';
import { peerReportSchema, topicFilters, topics, type PeerReport } from '../../protocol/index.js';
import { TrustClient } from '../../trust/index.js';
import { operatorCredentials } from '../api/helpers.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, inbox, serviceCredentials, testGateway, waitFor } from '../mqtt-helpers.js';
import { callService, mtlsService } from '../trust/helpers.js';

const quiet = pino({ level: 'silent' });

t.test('TrustClient.reportPeer signs with the device identity it is given; revoked peers are reported by themselves', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const base = tempDir(t);
  const agentDir = join(base, 'gw-dev');
  await enrollAgent({ server: `https://localhost:${gw.httpsPort}`, device: 'shop-gw', token: (await gw.ca.createToken('shop-gw')).token, dir: agentDir, caFingerprint: gw.ca.material.root.fingerprint256, keyStore: 'file', log: quiet });
  const pemDevice = await enroll(gw, base, 'shop-cam');
  const door = await enroll(gw, base, 'shop-door');
  await enroll(gw, base, 'shop-till');

  const scorer = await connect(gw, { ...(await serviceCredentials(gw, tempDir(t), 'scoring', 'watch')), id: 'scoring:watch' });
  t.teardown(() => scorer.end(true));
  const got = inbox(scorer);
  await scorer.subscribeAsync(topicFilters.reports, { qos: 1 });
  const reports = () => got.filter((m) => m.topic.startsWith('wott/v1/reports/')).map((m) => ({ topic: m.topic, report: peerReportSchema.parse(JSON.parse(m.payload)) }));

  const viewer = await operatorCredentials(gw, 'viewer', 'shop-service');
  const api = { server: `https://127.0.0.1:${gw.httpsPort}`, servername: 'localhost', cert: viewer.cert, key: viewer.key, ca: gw.caPem };
  const mqtt = `mqtts://localhost:${gw.mqttPort}`;

  const plain = await TrustClient.connect(api);
  t.teardown(() => plain.close());
  await t.rejects(plain.reportPeer('shop-till', 0, 'x'), /needs the `reporter` option/, 'an API certificate alone cannot report');

  const automatic: Array<{ subject: string; report?: PeerReport; error?: string }> = [];
  const trust = await TrustClient.connect({ ...api, reporter: { agentDir, mqtt, onReport: (r) => automatic.push(r) } });
  t.teardown(() => trust.close());
  const sent = await trust.reportPeer('shop-till', 0.1, 'answered with malformed frames');
  await waitFor(() => reports().some((r) => r.report.subject === 'shop-till'), 'the report on the bus');
  const onBus = reports().find((r) => r.report.subject === 'shop-till')!;
  t.equal(onBus.topic, topics.reports('shop-gw', 'shop-till'), 'as the device of the agent directory');
  t.same(onBus.report, sent);
  t.equal(new AgentStore(agentDir).peerState().lastId, sent.reportId, 'the id sequence is the agent’s (persisted)');
  await t.rejects(trust.reportPeer('shop-till', 0.1, 'again'), /already reported shop-till/, 'the rate bound is shared with the agent');
  await t.rejects(trust.reportPeer('shop-gw', 0, 'me'), /cannot report about itself/);

  const withPem = await TrustClient.connect({ ...api, reporter: { device: { cert: pemDevice.cert, key: pemDevice.key }, mqtt } });
  t.teardown(() => withPem.close());
  const fromPem = await withPem.reportPeer('shop-till', 0.5, 'slow to answer');
  t.equal(fromPem.reporter, 'shop-cam');
  await waitFor(() => reports().some((r) => r.report.reporter === 'shop-cam'), 'the PEM reporter’s report');

  // A device whose certificate is revoked calls a trust-checked service on shop-gw: refused, and reported.
  const guard = trust.requireTrust({ minScore: 0 });
  const { port } = await mtlsService(t, gw, (req, res) => guard(req, res, () => res.end('served')));
  await gw.fleet.revoke({ deviceId: 'shop-door' }, 'keyCompromise');
  let answer = await callService(port, gw.caPem, door);
  const until = Date.now() + 5000;
  while (!/revoked/.test(answer.body) && Date.now() < until) answer = await callService(port, gw.caPem, door);
  t.equal(answer.status, 403);
  t.match(answer.body, /certificate revoked/);
  await waitFor(() => reports().some((r) => r.report.subject === 'shop-door'), 'the automatic report on the bus');
  t.match(reports().find((r) => r.report.subject === 'shop-door')!.report, { reporter: 'shop-gw', rating: 0, reason: /revoked certificate/ });
  await callService(port, gw.caPem, door);
  await callService(port, gw.caPem, door);
  await waitFor(() => automatic.length >= 1, 'told of the automatic report');
  t.equal(automatic.length, 1, 'repeated refusals of the same device: one report per bound');
  t.equal(automatic[0]!.subject, 'shop-door');
});
