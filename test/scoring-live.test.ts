/**
 * Scoring live with the broker: devices enrolled over EST and connected with MQTT.js over mutual TLS publish
 * telemetry; scoring (inside the gateway, or as `wott scoring --mqtt` in its own process with a scoring service
 * certificate) publishes retained scores the broker enforces at once; an authentication-failure storm cuts a
 * device's access to payments/# and the decay gives it back; `wott score show`; scores reach a real influxd.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { collectOs, collectPackages } from '../agent/collectors/index.js';
import { join } from 'node:path';
import { scoreMessageSchema, topics } from '../protocol/index.js';
import { loadModel } from '../scoring/index.js';
import { CLI, tempDir } from './helpers.js';
import { startInfluxd } from './influx-helpers.js';
import { barrier, connect, connectError, enroll, forgedCredentials, inbox, run, subscribeGrant, testGateway, waitFor } from './mqtt-helpers.js';
import { fixtureTelemetry } from './scoring-fixtures.js';

const telemetry = (root: 'debian12-hardened' | 'rpi-factory', device: string, reportId: number) => JSON.stringify(fixtureTelemetry(root, device, reportId, Date.now()));


t.test('in the gateway: telemetry → retained score → enforcement; a storm cuts payments/#, decay restores it', async (t) => {
  const model = loadModel({ behaviour: { halfLife: '3s' } });
  const gw = await testGateway(t, { scoring: { model, republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });
  const dir = tempDir(t);
  // sensor-1 is enrolled twice (as after a factory reset): its first certificate is superseded by the second.
  const replaced = await enroll(gw, dir, 'sensor-1');
  const sensor = await enroll(gw, tempDir(t), 'sensor-1');
  const payer = await enroll(gw, dir, 'payer-1');
  const s = await connect(gw, { ...sensor, id: 'sensor-1:main' });
  const p = await connect(gw, { ...payer, id: 'payer-1:main' });
  t.teardown(() => {
    s.end(true);
    p.end(true);
  });
  const got = inbox(s);
  t.equal(await subscribeGrant(s, topics.scores('sensor-1')), 1, 'a device may read its own score');

  const first = telemetry('debian12-hardened', 'sensor-1', 1);
  await s.publishAsync(topics.telemetry('sensor-1'), first, { qos: 1 });
  await p.publishAsync(topics.telemetry('payer-1'), telemetry('debian12-hardened', 'payer-1', 1), { qos: 1 });
  await waitFor(() => gw.plugin.effectiveScore('sensor-1') >= 0.9 && gw.plugin.effectiveScore('payer-1') >= 0.9, 'hardened scores in the broker');
  await waitFor(() => got.some((m) => m.topic === topics.scores('sensor-1') && JSON.parse(m.payload).score >= 0.9), 'the score message');
  const message = scoreMessageSchema.parse(JSON.parse(got.filter((m) => m.topic === topics.scores('sensor-1')).pop()!.payload));
  t.equal(message.modelVersion, model.version);
  t.ok(message.factors.length > 5, 'with its factors');

  t.equal(await subscribeGrant(s, 'payments/#'), 1, 'hardened: payments/# granted');
  t.equal(await subscribeGrant(s, 'weather/#'), 1);
  await p.publishAsync('payments/tx', 'before', { qos: 1 });
  await waitFor(() => got.some((m) => m.topic === 'payments/tx' && m.payload === 'before'), 'payment delivered');

  // Garbage on the telemetry topic changes nothing.
  const steady = gw.plugin.effectiveScore('sensor-1');
  await s.publishAsync(topics.telemetry('sensor-1'), '{"schema":1,"device":"sensor-1"', { qos: 1 });
  await s.publishAsync(topics.telemetry('sensor-1'), first, { qos: 1 }); // a replay
  await s.publishAsync(topics.telemetry('sensor-1'), JSON.stringify(fixtureTelemetry('rpi-factory', 'sensor-1', 9, Date.now() - 3_600_000)), { qos: 1 }); // out of order
  await barrier(p, got, 'weather');
  t.equal(gw.plugin.effectiveScore('sensor-1'), steady, 'malformed and replayed reports are ignored');
  const metrics = await gw.metrics.metrics();
  t.match(metrics, /wott_scoring_messages_total\{result="ignored"\} [3-9]/, 'counted as ignored in /metrics');
  t.match(metrics, /wott_scores_published_total [1-9]/);

  // Forged certificates carrying sensor-1's name (anyone can make one) are refused and prove nothing about
  // sensor-1: its score does not move, however many there are.
  const forged = forgedCredentials(dir, 'sensor-1', gw.caPem);
  for (let i = 0; i < 30; i++) await connectError(gw, forged);
  await new Promise((r) => setTimeout(r, 1000)); // five scoring ticks: time for a penalty to show, were there one
  await barrier(p, got, 'weather');
  t.equal(gw.plugin.effectiveScore('sensor-1'), steady, 'forged-certificate storm: the named device keeps its score');

  // The storm: connection attempts with sensor-1's superseded certificate, a key we did certify for sensor-1.
  const started = Date.now();
  for (let i = 0; i < 10; i++) await connectError(gw, { ...replaced, id: 'sensor-1' });
  await waitFor(() => gw.plugin.effectiveScore('sensor-1') < 0.9, 'the score to fall below 0.9', 10_000);
  t.comment(`below 0.9 ${Date.now() - started} ms after the storm began`);
  await p.publishAsync('payments/tx', 'during', { qos: 1 });
  await barrier(p, got, 'weather');
  t.notOk(got.some((m) => m.payload === 'during'), 'no payments delivered while the score is low');

  // `wott score show` from another process, reading the gateway's store.
  let shown = '';
  for (let i = 0; i < 50 && !shown.includes('authFailures'); i++) {
    shown = (await run('node', [CLI, 'score', 'show', 'sensor-1', '--data', gw.dir])).stdout;
    if (!shown.includes('authFailures')) await new Promise((r) => setTimeout(r, 100));
  }
  t.match(shown, /sensor-1 {2}score 0\.\d+ {2}\(model wott-/);
  t.match(shown, /authFailures .*failed connection attempts/);
  t.match(shown, /fix: /);
  const json = await run('node', [CLI, 'score', 'show', 'sensor-1', '--json', '--data', gw.dir]);
  t.ok(scoreMessageSchema.safeParse(JSON.parse(json.stdout).message).success, '--json prints the stored score message');
  const unknown = await run('node', [CLI, 'score', 'show', 'nobody', '--data', gw.dir]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no score for nobody/);
  t.match((await run('node', [CLI, 'score', 'show', '../../etc/passwd', '--data', gw.dir])).stderr, /not a device id/);
  const history = await run('node', [CLI, 'score', 'history', 'sensor-1', '--since', '1h', '--data', gw.dir]);
  const lines = history.stdout.trim().split('\n');
  t.ok(lines.length >= 2, 'the history holds the scores published so far');
  t.ok(lines.some((l) => /authFailures -0\.\d+/.test(l)), 'with the costliest factor of each');
  const jsonl = await run('node', [CLI, 'score', 'history', 'sensor-1', '--json', '--data', gw.dir]);
  t.ok(jsonl.stdout.trim().split('\n').every((l) => typeof JSON.parse(l).score === 'number'));
  t.equal((await run('node', [CLI, 'score', 'history', 'nobody', '--data', gw.dir])).code, 1);

  // Recovery: the penalty halves every 3 s here; the score climbs back and payments flow again.
  await waitFor(() => gw.plugin.effectiveScore('sensor-1') >= 0.9, 'recovery above 0.9', 30_000);
  await p.publishAsync('payments/tx', 'after', { qos: 1 });
  await waitFor(() => got.some((m) => m.payload === 'after'), 'payments delivered again');
  t.pass(`recovered ${Date.now() - started} ms after the storm began`);
});

t.test('CVE findings: `wott cve update` beside a running gateway re-scores devices; `wott score show` lists them', async (t) => {
  const gw = await testGateway(t, { scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });
  const dir = tempDir(t);
  const dev = await enroll(gw, dir, 'cve-host');
  const c = await connect(gw, { ...dev, id: 'cve-host:1' });
  t.teardown(() => c.end(true));
  const got = inbox(c);
  await subscribeGrant(c, topics.scores('cve-host'));
  // This machine's real packages (Debian 12), reported as the hardened fixture's state otherwise.
  const report = fixtureTelemetry('debian12-hardened', 'cve-host', 1, Date.now());
  const packages = collectPackages('/');
  report.packages = { count: packages.list.length, hash: packages.hash, list: packages.list };
  report.os = collectOs('/');
  await c.publishAsync(topics.telemetry('cve-host'), JSON.stringify(report), { qos: 1 });
  const cves = () => {
    const last = got.filter((m) => m.topic === topics.scores('cve-host')).pop();
    return last ? (JSON.parse(last.payload) as { factors: Array<{ id: string; contribution: number; reason: string }> }).factors.find((f) => f.id === 'cves') : undefined;
  };
  await waitFor(() => cves() !== undefined, 'a first score');
  t.match(cves(), { contribution: 0, reason: /no vulnerability data loaded/ }, 'no feed yet: not counted');
  const update = await run('node', [CLI, 'cve', 'update', '--from', 'test/fixtures/cve/tracker.json', '--data', gw.dir]);
  t.equal(update.code, 0, update.stderr);
  await waitFor(() => (cves()?.contribution ?? 0) < 0, 'the device re-matched after the feed update', 15_000);
  t.match(cves()!.reason, /fixed vulnerabilities in \d+ packages \(worst: /);
  let shown = '';
  for (let i = 0; i < 50 && !shown.includes('Vulnerabilities ('); i++) {
    shown = (await run('node', [CLI, 'score', 'show', 'cve-host', '--data', gw.dir])).stdout;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.match(shown, /Vulnerabilities \(\d+\):/);
  t.match(shown, /CVE-\d{4}-\d+ +\S+ \S+ -> fixed in \S+ +\((low|medium|high|critical|unknown)/);
  t.match(shown, /apt-get install --only-upgrade /);
  // A broken feed leaves the data (and the scores) as they were.
  const broken = await run('node', [CLI, 'cve', 'update', '--from', 'test/fixtures/cve/bad/' + readdirSync('test/fixtures/cve/bad')[0], '--data', gw.dir]);
  t.not(broken.code, 0);
  t.ok(cves()!.contribution < 0, 'findings kept');
});

t.test('wott scoring --mqtt: scoring in its own process with a scoring service certificate', async (t) => {
  const gw = await testGateway(t); // no in-process scoring
  const dir = tempDir(t);
  const creds = join(dir, 'scoring-credentials');
  const issued = await run('node', [CLI, 'ca', 'service', '--role', 'scoring', '--name', 'remote', '--out', creds, '--data', gw.dir]);
  t.equal(issued.code, 0, issued.stderr);
  const data = tempDir(t);
  const child = spawn('node', [CLI, 'scoring', '--mqtt', `mqtts://localhost:${gw.mqttPort}`, '--credentials', creds, '--data', data], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  child.stdout.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => log.push(d.toString()));
  t.teardown(() => {
    child.kill('SIGTERM');
  });
  await waitFor(() => log.join('').includes('scoring connected'), 'scoring to connect', 20_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${log.join('')}`);
  });
  const dev = await enroll(gw, dir, 'remote-dev');
  const c = await connect(gw, { ...dev, id: 'remote-dev:1' });
  t.teardown(() => c.end(true));
  await c.publishAsync(topics.telemetry('remote-dev'), telemetry('rpi-factory', 'remote-dev', 1), { qos: 1 });
  await waitFor(() => gw.plugin.effectiveScore('remote-dev') <= 0.3 && gw.plugin.effectiveScore('remote-dev') > 0, 'the remote score in the broker', 15_000);
  t.equal(await subscribeGrant(c, 'weather/#'), 128, 'factory Pi: weather/# (0.4) refused');
  await c.publishAsync(topics.telemetry('remote-dev'), telemetry('debian12-hardened', 'remote-dev', 2), { qos: 1 });
  await waitFor(() => gw.plugin.effectiveScore('remote-dev') >= 0.9, 'the fixed device scored again', 15_000);
  t.equal(await subscribeGrant(c, 'weather/#'), 1, 'hardened: granted');
  let shown = '';
  for (let i = 0; i < 50 && !shown.includes('remote-dev'); i++) {
    shown = (await run('node', [CLI, 'score', 'show', 'remote-dev', '--data', data])).stdout;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.match(shown, /remote-dev {2}score 0\.9/);

  // A device certificate is not a scoring identity.
  const wrong = join(dir, 'wrong');
  const { mkdirSync, copyFileSync } = await import('node:fs');
  mkdirSync(wrong);
  copyFileSync(dev.keyPath, join(wrong, 'scoring.key'));
  copyFileSync(dev.certPath, join(wrong, 'scoring.crt'));
  copyFileSync(dev.caPath, join(wrong, 'ca.crt'));
  const refused = await run('node', [CLI, 'scoring', '--mqtt', `mqtts://localhost:${gw.mqttPort}`, '--credentials', wrong, '--data', tempDir(t)]);
  t.not(refused.code, 0);
  t.match(refused.stderr, /not a scoring service certificate/);
});

t.test('the gateway writes scores and behaviour to a real influxd', async (t) => {
  const influx = await startInfluxd(t);
  if (!influx) return;
  const gw = await testGateway(t, {
    scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200, influx: { url: influx.url, database: 'fleet', flushIntervalMs: 100 } },
  });
  const dir = tempDir(t);
  const dev = await enroll(gw, dir, 'influx-dev');
  const c = await connect(gw, { ...dev, id: 'influx-dev:1' });
  t.teardown(() => c.end(true));
  await c.publishAsync(topics.telemetry('influx-dev'), telemetry('rpi-factory', 'influx-dev', 1), { qos: 1 });
  let rows: unknown[][] = [];
  for (let i = 0; i < 100 && rows.length === 0; i++) {
    rows = await influx.query(`SELECT score, f_firewall, f_defaultCredentials, top_reason FROM trust_score WHERE device = 'influx-dev' AND score < 0.3`, 'fleet').catch(() => []);
    if (!rows.length) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(rows.length >= 1, 'the score point is in InfluxDB');
  t.ok(Number(rows[0]![2]) < 0, 'with factor contributions as fields');
  t.match(String(rows[0]![4]), /firewall/, 'and the top reason');
  const tags = await influx.query('SHOW TAG KEYS FROM trust_score', 'fleet');
  t.same(tags.map((r) => r[0]).sort(), ['device', 'model'], 'only device and model are tags');
  let events: unknown[][] = [];
  for (let i = 0; i < 100 && events.length === 0; i++) {
    events = await influx.query(`SELECT count FROM behaviour WHERE device = 'influx-dev' AND "type" = 'connect'`, 'fleet').catch(() => []);
    if (!events.length) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(events.length >= 1, 'behaviour events are written too');
});

t.test('a release restores deliveries at once, without waiting for a scoring tick', async (t) => {
  const hour = 3_600_000;
  const gw = await testGateway(t, { scoring: { model: loadModel(), republishMs: hour, historyRetentionMs: 86_400_000, tickMs: hour } });
  const dir = tempDir(t);
  const dev = await enroll(gw, dir, 'released-1');
  const payer = await enroll(gw, dir, 'payer-2');
  const d = await connect(gw, { ...dev, id: 'released-1:main' });
  const p = await connect(gw, { ...payer, id: 'payer-2:main' });
  t.teardown(() => {
    d.end(true);
    p.end(true);
  });
  await d.publishAsync(topics.telemetry('released-1'), telemetry('debian12-hardened', 'released-1', 1), { qos: 1 });
  await p.publishAsync(topics.telemetry('payer-2'), telemetry('debian12-hardened', 'payer-2', 1), { qos: 1 });
  await waitFor(() => gw.plugin.effectiveScore('released-1') >= 0.9 && gw.plugin.effectiveScore('payer-2') >= 0.9, 'hardened scores');
  const got = inbox(d);
  const echo = inbox(p); // the payer reads payments too: the barrier's receiver
  t.equal(await subscribeGrant(d, 'payments/#'), 1);
  t.equal(await subscribeGrant(p, 'payments/#'), 1);

  t.equal((await run('node', [CLI, 'device', 'quarantine', 'released-1', '--data', gw.dir])).code, 0);
  await waitFor(() => gw.plugin.deviceState('released-1') === 'quarantined', 'quarantine in the broker');
  // While quarantined it reports (its one permitted publish); scoring publishes the capped score, 0.
  await d.publishAsync(topics.telemetry('released-1'), telemetry('debian12-hardened', 'released-1', 2), { qos: 1 });
  await p.publishAsync('payments/tx', 'during', { qos: 1 });
  await barrier(p, echo, 'payments');
  t.notOk(got.some((m) => m.payload === 'during'), 'no payments while quarantined');

  t.equal((await run('node', [CLI, 'device', 'release', 'released-1', '--data', gw.dir])).code, 0);
  // Scoring ticks once an hour here: only the release itself can bring the score back.
  await waitFor(() => gw.plugin.effectiveScore('released-1') >= 0.9, 'the score back in the broker after the release');
  await p.publishAsync('payments/tx', 'after release', { qos: 1 });
  await waitFor(() => got.some((m) => m.payload === 'after release'), 'payments delivered again');
});
