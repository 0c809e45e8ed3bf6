/**
 * Lateral movement and peer-report safeguards on a real gateway with real MQTT.js clients over mutual TLS: the
 * attacker connects from a loopback address of its own (127.0.0.2), reporters publish telemetry whose intrusion
 * sources name it, and scoring attributes them through the sessions' remote addresses. Two reporters cut the
 * attacker's live payments/# subscription and the operator's event stream says who it tried; one reporter alone,
 * a low-score reporter, a self-report, a NAT address and a spoofed one cost nobody more than the rules allow;
 * hostile peer reports are refused and counted on /metrics.
 */
import { request } from 'node:https';
import { createParser } from 'eventsource-parser';
import type { MqttClient } from 'mqtt';
import t from 'tap';
import { API_PREFIX, topics, type FleetEvent, type ScoreMessage } from '../../protocol/index.js';
import { loadModel } from '../../scoring/index.js';
import { memoryLogger, tempDir } from '../helpers.js';
import { barrier, connect, enroll, eventWatcher, inbox, subscribeGrant, testGateway, waitFor } from '../mqtt-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';
import { operatorCredentials } from '../api/helpers.js';
import { startInfluxd } from '../influx-helpers.js';

type Gw = Awaited<ReturnType<typeof testGateway>>;
const model = loadModel();
const single = model.lateralMovement.max / model.lateralMovement.k;

/** Connects `id` from a loopback address of its own, so the broker sees that address as the session's. */
async function connectFrom(t: Tap.Test, gw: Gw, dir: string, id: string, localAddress?: string): Promise<MqttClient> {
  const creds = await enroll(gw, dir, id);
  const client = await connect(gw, creds, localAddress ? ({ host: '127.0.0.1', servername: 'localhost', localAddress } as object) : {});
  t.teardown(() => void client.end(true));
  return client;
}

const reportIds = new Map<string, number>();
/** A hardened device's state report, with intrusion sources when given. */
function report(device: string, sources: Array<{ address: string; failedLogins?: number; dropped?: number }> = [], root: 'debian12-hardened' | 'rpi-factory' = 'debian12-hardened'): string {
  const id = (reportIds.get(device) ?? 0) + 1;
  reportIds.set(device, id);
  const telemetry = fixtureTelemetry(root, device, id, Date.now());
  if (sources.length === 0) return JSON.stringify(telemetry);
  return JSON.stringify({ ...telemetry, intrusions: { windowSeconds: 60, sources: sources.map((s) => ({ failedLogins: 0, dropped: 0, services: ['ssh'], ...s })) } });
}

/** The latest score message per device, as the broker's plugin accepted them. */
function scores(gw: Gw): Map<string, ScoreMessage> {
  const latest = new Map<string, ScoreMessage>();
  gw.plugin.onScore((m) => latest.set(m.device, m));
  return latest;
}

const lateralOf = (m: ScoreMessage | undefined) => m?.factors.find((f) => f.id === 'lateralMovement');

/** The value of a counter line on /metrics (0 when absent). */
async function metric(gw: Gw, name: string, label: string): Promise<number> {
  const text = await gw.metrics.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function waitMetric(gw: Gw, name: string, label: string, atLeast: number): Promise<void> {
  let value = 0;
  const until = Date.now() + 10_000;
  while ((value = await metric(gw, name, label)) < atLeast) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${name}{${label}} >= ${atLeast} (is ${value})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** GET /api/v1/events/stream with an operator certificate: the fleet events as they come. */
async function fleetEvents(t: Tap.Test, gw: Gw): Promise<FleetEvent[]> {
  const viewer = await operatorCredentials(gw, 'viewer', 'watcher');
  const events: FleetEvent[] = [];
  let ready = false;
  const req = request(`https://127.0.0.1:${gw.httpsPort}${API_PREFIX}/events/stream`, { ca: gw.caPem, servername: 'localhost', agent: false, cert: viewer.cert, key: viewer.key, headers: { Accept: 'text/event-stream' } }, (res) => {
    const parser = createParser({
      onEvent: (e) => {
        if (e.event === 'ready') ready = true;
        if (e.event === 'fleet') events.push(JSON.parse(e.data) as FleetEvent);
      },
    });
    res.setEncoding('utf8');
    res.on('data', (c: string) => parser.feed(c));
  });
  req.on('error', () => {});
  req.end();
  t.teardown(() => void req.destroy());
  await waitFor(() => ready, 'the event stream');
  return events;
}

const scoringOptions = (override: object = {}) => ({ model: loadModel(override), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 });

t.test('two reporters see logins from dev-x: below payments/#, its live subscription stops, the finding and the feed name them', async (t) => {
  const gw = await testGateway(t, { scoring: scoringOptions() });
  const dir = tempDir(t);
  const latest = scores(gw);
  const x = await connectFrom(t, gw, dir, 'dev-x', '127.0.0.2');
  const y = await connectFrom(t, gw, dir, 'dev-y', '127.0.0.3');
  const z = await connectFrom(t, gw, dir, 'dev-z', '127.0.0.4');
  const p = await connectFrom(t, gw, dir, 'payer-1');
  await waitFor(() => gw.plugin.sessionsOf('dev-x')[0]?.remoteAddress?.endsWith('127.0.0.2') === true, 'dev-x connected from 127.0.0.2');
  for (const [c, id] of [[x, 'dev-x'], [y, 'dev-y'], [z, 'dev-z'], [p, 'payer-1']] as const) await c.publishAsync(topics.telemetry(id), report(id), { qos: 1 });
  await waitFor(() => ['dev-x', 'dev-y', 'dev-z'].every((d) => gw.plugin.effectiveScore(d) >= 0.9), 'hardened scores');
  const events = await fleetEvents(t, gw);

  const got = inbox(x);
  const echo = inbox(p); // the payer reads payments too: the barrier's receiver
  t.equal(await subscribeGrant(x, 'payments/#'), 1, 'dev-x is trusted with payments/#');
  t.equal(await subscribeGrant(p, 'payments/#'), 1);
  await p.publishAsync('payments/tx', 'before', { qos: 1 });
  await waitFor(() => got.some((m) => m.payload === 'before'), 'a payment delivered to dev-x');
  const healthy = gw.plugin.effectiveScore('dev-x');

  // dev-y alone: at most the single-reporter maximum.
  await y.publishAsync(topics.telemetry('dev-y'), report('dev-y', [{ address: '127.0.0.2', failedLogins: 120 }]), { qos: 1 });
  await waitFor(() => lateralOf(latest.get('dev-x')) !== undefined, 'the lateral-movement factor on dev-x');
  const one = lateralOf(latest.get('dev-x'))!;
  t.ok(-one.contribution <= single + 1e-9, `one reporter costs ${-one.contribution}, at most max/k = ${single}`);
  t.match(one.reason, /reported by dev-y: it attempted 120 logins on 1 device in the last hour/);

  // dev-z too: the full effect.
  await z.publishAsync(topics.telemetry('dev-z'), report('dev-z', [{ address: '::ffff:127.0.0.2', failedLogins: 120 }]), { qos: 1 });
  await waitFor(() => gw.plugin.effectiveScore('dev-x') < 0.9 && /dev-y and dev-z|dev-z and dev-y/.test(lateralOf(latest.get('dev-x'))?.reason ?? ''), 'dev-x below payments/# with both reporters named');
  const two = lateralOf(latest.get('dev-x'))!;
  t.ok(-two.contribution > -one.contribution, `two reporters cost more: ${-two.contribution}`);
  t.equal(two.fix, 'isolate dev-x: it attempted 240 logins on 2 devices in the last hour');
  t.ok(gw.plugin.effectiveScore('dev-x') < healthy - single, `from ${healthy} to ${gw.plugin.effectiveScore('dev-x')}`);
  for (const d of ['dev-y', 'dev-z']) t.notOk(lateralOf(latest.get(d)), `${d} (a reporter) is not blamed`);

  await p.publishAsync('payments/tx', 'during', { qos: 1 });
  await barrier(p, echo, 'payments');
  t.notOk(got.some((m) => m.payload === 'during'), "dev-x's live subscription on payments/# no longer delivers");

  const text = 'dev-x tried to log in to dev-y and dev-z 240 times';
  await waitFor(() => ['dev-x', 'dev-y', 'dev-z'].every((d) => events.some((e) => e.type === 'lateral_movement' && e.device === d && e.text === text)), 'the fleet event on dev-x, dev-y and dev-z');
  t.pass(`the event stream says "${text}" on all three devices`);
  t.equal(await metric(gw, 'wott_intrusion_sources_total', 'outcome="attributed"'), 2, 'two sources attributed on /metrics');
});

t.test('one reporter, a low-score reporter, self, NAT and a spoofed address: nobody is blamed beyond the rules', async (t) => {
  const log = memoryLogger();
  const gw = await testGateway(t, { scoring: scoringOptions(), log });
  const dir = tempDir(t);
  const latest = scores(gw);
  const x = await connectFrom(t, gw, dir, 'dev-x', '127.0.0.2');
  const y = await connectFrom(t, gw, dir, 'dev-y', '127.0.0.3');
  const low = await connectFrom(t, gw, dir, 'low-1', '127.0.0.6');
  const nat1 = await connectFrom(t, gw, dir, 'nat-1', '127.0.0.5');
  const nat2 = await connectFrom(t, gw, dir, 'nat-2', '127.0.0.5');
  await waitFor(() => gw.plugin.sessionsOf('nat-2').length === 1, 'nat-2 connected');
  for (const [c, id] of [[x, 'dev-x'], [y, 'dev-y'], [nat1, 'nat-1'], [nat2, 'nat-2']] as const) await c.publishAsync(topics.telemetry(id), report(id), { qos: 1 });
  await low.publishAsync(topics.telemetry('low-1'), report('low-1', [], 'rpi-factory'), { qos: 1 });
  await waitFor(() => ['dev-x', 'dev-y', 'nat-1', 'nat-2'].every((d) => gw.plugin.effectiveScore(d) >= 0.9) && latest.get('low-1')?.factors.some((f) => f.id === 'defaultCredentials') === true, 'scores');
  const lowScore = latest.get('low-1')!.score;
  t.ok(lowScore < model.lateralMovement.minReporterScore, `low-1 scores ${lowScore}, below minReporterScore ${model.lateralMovement.minReporterScore}`);
  const noLateral = (d: string) => !lateralOf(gw.scoring!.recompute(d, true));

  // A low-score reporter counts for nothing (its observation is attributed, and weighs zero).
  await low.publishAsync(topics.telemetry('low-1'), report('low-1', [{ address: '127.0.0.2', failedLogins: 500 }], 'rpi-factory'), { qos: 1 });
  await waitMetric(gw, 'wott_intrusion_sources_total', 'outcome="attributed"', 1);
  t.ok(noLateral('dev-x'), 'a low-score reporter: dev-x loses nothing');

  // Self: dev-x names its own address.
  await x.publishAsync(topics.telemetry('dev-x'), report('dev-x', [{ address: '127.0.0.2', failedLogins: 50 }]), { qos: 1 });
  await waitMetric(gw, 'wott_intrusion_sources_total', 'outcome="self"', 1);
  t.ok(noLateral('dev-x'), 'an intrusion source that is the reporter itself: nothing');

  // NAT: two devices behind one address; and an address no device holds (spoofed).
  await y.publishAsync(topics.telemetry('dev-y'), report('dev-y', [{ address: '127.0.0.5', failedLogins: 300 }, { address: '127.0.0.9', failedLogins: 300 }]), { qos: 1 });
  await waitMetric(gw, 'wott_intrusion_sources_total', 'outcome="shared"', 1);
  await waitMetric(gw, 'wott_intrusion_sources_total', 'outcome="unheld"', 1);
  for (const d of ['nat-1', 'nat-2', 'dev-x', 'dev-y', 'low-1']) t.ok(noLateral(d), `${d}: not blamed for a shared or spoofed address`);
  const logged = log.lines.map((l: { msg?: string }) => l.msg ?? '').join('\n');
  t.match(logged, /127\.0\.0\.5 shared by 2 devices: not attributed/, 'the log says the address is shared');
  const seen = gw.scoring!.recompute('dev-y', true)!.factors.find((f) => f.id === 'intrusions');
  t.match(seen, { contribution: 0, reason: /300 from 127\.0\.0\.5 \(shared by 2 devices\), 300 from 127\.0\.0\.9 \(no fleet device held it\)/ }, "and the reporter's findings say so, at no cost");

  // One reporter alone with a huge count: at most the single-reporter maximum.
  await y.publishAsync(topics.telemetry('dev-y'), report('dev-y', [{ address: '127.0.0.2', failedLogins: 100_000 }]), { qos: 1 });
  await waitFor(() => lateralOf(latest.get('dev-x')) !== undefined, 'the factor on dev-x');
  const one = lateralOf(latest.get('dev-x'))!;
  t.ok(-one.contribution <= single + 1e-9 && -one.contribution > single * 0.9, `one reporter: ${-one.contribution} (max/k = ${single})`);
  t.match(one.reason, /reported by dev-y:/, 'the low-score reporter is not named among those that count');
  t.notMatch(one.reason, /low-1/);

  // A peer report about itself: the broker denies the publish (scoring would refuse it too, see lateral.test.ts).
  const denied = await eventWatcher(t, gw, dir);
  const before = gw.scoring!.recompute('dev-y', true)!;
  await y.publishAsync(topics.reports('dev-y', 'dev-y'), JSON.stringify({ reporter: 'dev-y', subject: 'dev-y', reportId: 1, time: new Date().toISOString(), rating: 0, reason: 'me' }), { qos: 0 });
  await waitFor(() => denied.some((e) => e.type === 'publish_denied' && e.device === 'dev-y' && e.topic === topics.reports('dev-y', 'dev-y')), 'the broker denies a self-report');
  t.notOk(gw.scoring!.recompute('dev-y', true)!.factors.some((f) => f.id === 'peers'), 'and it costs nothing');
  t.ok(before.factors.every((f) => f.id !== 'peers'));
});

t.test('hostile peer reports are refused and counted; a reporter can not report faster than the bound', async (t) => {
  const gw = await testGateway(t, { scoring: scoringOptions({ peers: { rate: { max: 3, per: '1h' } } }) });
  const dir = tempDir(t);
  const latest = scores(gw);
  const x = await connectFrom(t, gw, dir, 'dev-x', '127.0.0.2');
  const y = await connectFrom(t, gw, dir, 'dev-y', '127.0.0.3');
  await x.publishAsync(topics.telemetry('dev-x'), report('dev-x'), { qos: 1 });
  await y.publishAsync(topics.telemetry('dev-y'), report('dev-y'), { qos: 1 });
  await waitFor(() => gw.plugin.effectiveScore('dev-x') >= 0.9 && gw.plugin.effectiveScore('dev-y') >= 0.9, 'scores');
  const peer = (over: Record<string, unknown> = {}) => JSON.stringify({ reporter: 'dev-y', subject: 'dev-x', reportId: 1, time: new Date().toISOString(), rating: 0, reason: 'port scan from dev-x', ...over });
  const send = (payload: string, subject = 'dev-x') => y.publishAsync(topics.reports('dev-y', subject), payload, { qos: 1 });

  await send('{"reporter":"dev-y","subject":');
  await send(peer({ reason: 'x'.repeat(10_000) }));
  await send(peer({ time: new Date(Date.now() + 3_600_000).toISOString() }));
  await send(peer({ subject: 'ghost' }), 'ghost');
  await send(peer());
  await send(peer()); // the same reportId again: a replay
  await send(peer({ reportId: 2 }));
  await send(peer({ reportId: 3 }));
  await send(peer({ reportId: 4 })); // the fourth accepted-looking report in the window: over the rate
  for (const reason of ['schema', 'huge', 'future', 'unknown_device', 'replay', 'rate']) await waitMetric(gw, 'wott_peer_reports_refused_total', `reason="${reason}"`, 1);
  t.pass('schema, huge, future, unknown device, replay and rate each counted on /metrics');
  await waitFor(() => latest.get('dev-x')?.factors.some((f) => f.id === 'peers') === true, 'the accepted reports count');
  // An intrusion report over the rate is refused too (the report's state still counts).
  await y.publishAsync(topics.telemetry('dev-y'), report('dev-y', [{ address: '127.0.0.2', failedLogins: 100 }, { address: '127.0.0.9', failedLogins: 5 }]), { qos: 1 });
  await waitMetric(gw, 'wott_intrusion_sources_total', 'outcome="rate"', 2);
  t.equal(await metric(gw, 'wott_peer_reports_refused_total', 'reason="rate"'), 2, 'counted once more as a refused report (its two sources as refused sources)');
  t.notOk(lateralOf(gw.scoring!.recompute('dev-x', true)), 'and blames nobody');
});

t.test('lateral movement reaches a real influxd: one point per attributed source, tagged subject and reporter', async (t) => {
  const influx = await startInfluxd(t);
  if (!influx) return;
  const gw = await testGateway(t, { scoring: { ...scoringOptions(), influx: { url: influx.url, database: 'fleet', flushIntervalMs: 100 } } });
  const dir = tempDir(t);
  await connectFrom(t, gw, dir, 'dev-x', '127.0.0.2');
  const y = await connectFrom(t, gw, dir, 'dev-y', '127.0.0.3');
  await waitFor(() => gw.plugin.sessionsOf('dev-x').length === 1, 'dev-x connected');
  await y.publishAsync(topics.telemetry('dev-y'), report('dev-y', [{ address: '127.0.0.2', failedLogins: 240, dropped: 3 }]), { qos: 1 });
  let rows: unknown[][] = [];
  const until = Date.now() + 15_000;
  while (rows.length === 0 && Date.now() < until) {
    rows = await influx.query(`SELECT "count", failed_logins, dropped, services FROM lateral_movement WHERE subject = 'dev-x' AND reporter = 'dev-y'`, 'fleet').catch(() => []);
    if (!rows.length) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(rows.length, 1, 'the observation is in InfluxDB');
  t.same(rows[0]!.slice(1), [243, 240, 3, 'ssh']);
  const tags = await influx.query('SHOW TAG KEYS FROM lateral_movement', 'fleet');
  t.same(tags.map((r) => r[0]).sort(), ['reporter', 'subject']);
});
