/**
 * The device side of peer reports (issue 18), as real processes against a real gateway: `wott agent run --print`
 * shows who tried to get in (the lateral-target fixture, moved to now), and `wott agent report-peer` publishes
 * signed reports that reach the bus and the subject's `peers` factor once two devices report; the client refuses
 * reports about itself, bad fields and reports faster than its bound, and never reuses an id across processes.
 */
import t from 'tap';
import { join } from 'node:path';
import { AgentStore } from '../../agent/index.js';
import { peerReportSchema, scoreMessageSchema, telemetrySchema, topicFilters, topics, type PeerReport } from '../../protocol/index.js';
import { loadModel } from '../../scoring/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, inbox, serviceCredentials, testGateway, waitFor } from '../mqtt-helpers.js';
import { enrollAgentCli, LATERAL_NOW, LATERAL_ROOT, rootAsOf, wottAgent } from './agent-helpers.js';

t.test('run --print shows the intrusion sources; report-peer reaches the bus and the peers factor', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });
  const base = tempDir(t);
  const dirs = { a: join(base, 'a'), b: join(base, 'b'), x: join(base, 'x') };
  await Promise.all([enrollAgentCli(gw, dirs.a, 'dev-a'), enrollAgentCli(gw, dirs.b, 'dev-b'), enrollAgentCli(gw, dirs.x, 'dev-x')]);
  const mqtt = `mqtts://localhost:${gw.mqttPort}`;

  // What dev-a's agent sends: the attempts from 127.0.0.2 (dev-x's address in the scenario).
  const root = rootAsOf(t, LATERAL_ROOT, LATERAL_NOW);
  const printed = await wottAgent(['run', '--dir', dirs.a, '--root', root, '--print']);
  t.equal(printed.code, 0, printed.stderr);
  const report = telemetrySchema.parse(JSON.parse(printed.stdout));
  t.equal(report.intrusions?.windowSeconds, 900, 'first report: the last interval (the default 15 min)');
  t.same(report.intrusions?.sources[0], { address: '127.0.0.2', failedLogins: 9, dropped: 2, services: ['ssh', 'telnet'] });
  t.same(report.intrusions?.sources.map((s) => s.address), ['127.0.0.2', '198.51.100.7', '203.0.113.50']);
  t.notMatch(printed.stdout, /"(root|admin|guest|support)"/, 'no usernames in the report');
  t.equal(new AgentStore(dirs.a).state().intrusionsSince, undefined, '--print does not move the window');

  const scorer = await connect(gw, { ...(await serviceCredentials(gw, tempDir(t), 'scoring', 'watch')), id: 'scoring:watch' });
  t.teardown(() => scorer.end(true));
  const got = inbox(scorer);
  await scorer.subscribeAsync(topicFilters.reports, { qos: 1 });
  await scorer.subscribeAsync(topics.scores('dev-x'), { qos: 1 });
  const reports = () => got.filter((m) => m.topic.startsWith('wott/v1/reports/')).map((m) => ({ topic: m.topic, report: peerReportSchema.parse(JSON.parse(m.payload)) }));

  const reason = 'tried 11 logins (ssh, telnet) from 127.0.0.2';
  const first = await wottAgent(['report-peer', '--dir', dirs.a, '--mqtt', mqtt, '--subject', 'dev-x', '--rating', '0', '--reason', reason]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /^reported dev-x \(rating 0, report \d+\)/);
  await waitFor(() => reports().length === 1, "dev-a's report on the bus");
  const [a1] = reports();
  t.equal(a1!.topic, topics.reports('dev-a', 'dev-x'), 'on the reporter/subject topic (the broker let dev-a publish its own)');
  t.match(a1!.report, { reporter: 'dev-a', subject: 'dev-x', rating: 0, reason });

  const second = await wottAgent(['report-peer', '--dir', dirs.b, '--mqtt', mqtt, '--subject', 'dev-x', '--rating', '0.1', '--reason', 'dropped 40 telnet SYNs from 127.0.0.2']);
  t.equal(second.code, 0, second.stderr);
  await waitFor(() => reports().length === 2, "dev-b's report on the bus");
  const scoreOfX = () => got.filter((m) => m.topic === topics.scores('dev-x')).map((m) => scoreMessageSchema.parse(JSON.parse(m.payload))).pop();
  await waitFor(() => scoreOfX()?.factors.some((f) => f.id === 'peers' && /^2 peers reported/.test(f.reason)) === true, 'the peers factor of dev-x with both reporters');
  const peers = scoreOfX()!.factors.find((f) => f.id === 'peers')!;
  t.ok(peers.contribution < 0, `dev-x loses trust: ${peers.contribution} (${peers.reason})`);

  // Refused before anything is sent.
  const again = await wottAgent(['report-peer', '--dir', dirs.a, '--mqtt', mqtt, '--subject', 'dev-x', '--rating', '0', '--reason', 'again']);
  t.equal(again.code, 1);
  t.match(again.stderr, /already reported dev-x .* at most one report per subject/);
  const self = await wottAgent(['report-peer', '--dir', dirs.a, '--mqtt', mqtt, '--subject', 'dev-a', '--rating', '0', '--reason', 'me']);
  t.equal(self.code, 1);
  t.match(self.stderr, /cannot report about itself/);
  const rating = await wottAgent(['report-peer', '--dir', dirs.a, '--mqtt', mqtt, '--subject', 'dev-b', '--rating', '2', '--reason', 'x']);
  t.equal(rating.code, 1, 'a rating outside 0..1 is refused by the option parser');
  t.match(rating.stderr, /argument '2' is invalid\. expected a number from 0 \(hostile\) to 1/);
  const long = await wottAgent(['report-peer', '--dir', dirs.a, '--mqtt', mqtt, '--subject', 'dev-b', '--rating', '0.5', '--reason', 'y'.repeat(301)]);
  t.equal(long.code, 1);
  t.match(long.stderr, /invalid peer report: reason/);
  const badId = await wottAgent(['report-peer', '--dir', dirs.a, '--mqtt', mqtt, '--subject', '../x', '--rating', '0.5', '--reason', 'z']);
  t.equal(badId.code, 1);
  t.match(badId.stderr, /invalid peer report: subject/);

  // A new process (a restart) continues the ids: scoring would drop a repeated one as a replay.
  const third = await wottAgent(['report-peer', '--dir', dirs.a, '--mqtt', mqtt, '--subject', 'dev-b', '--rating', '0.9', '--reason', 'fine']);
  t.equal(third.code, 0, third.stderr);
  await waitFor(() => reports().length === 3, "dev-a's second report");
  const byA = reports().filter((r) => r.report.reporter === 'dev-a').map((r) => r.report);
  t.equal(byA.length, 2, 'the refused ones never reached the bus');
  t.ok(byA[1]!.reportId > byA[0]!.reportId, `ids increase across processes (${byA[0]!.reportId} → ${byA[1]!.reportId})`);
  t.equal(new AgentStore(dirs.a).peerState().lastId, byA[1]!.reportId, 'the last id is persisted in the agent directory');
  const r: PeerReport = byA[1]!;
  t.equal(r.subject, 'dev-b');
});
