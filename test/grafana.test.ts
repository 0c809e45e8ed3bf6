/**
 * The Grafana boards: the committed JSON is exactly what the generator produces, and every panel query (and the
 * device variable), with Grafana's variables filled in, returns rows from a real influxd seeded by scoring's own
 * writer with scores computed by the real engine.
 */
import t from 'tap';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { collectOs, collectPackages } from '../agent/collectors/index.js';
import { renderDashboards } from '../grafana/index.js';
import { openSqliteVulnStore } from '../store/index.js';
import { CveDatabase, updateCveStore } from '../vuln/index.js';
import { behaviourPoint, findingPoints, InfluxWriter, lateralPoint, loadModel, ScoreEngine, scorePoint, type CaFacts } from '../scoring/index.js';
import { tempDir } from './helpers.js';
import { run } from './mqtt-helpers.js';
import { startInfluxd } from './influx-helpers.js';
import { counters, event, fixtureTelemetry } from './scoring-fixtures.js';
import { behaviourEventSchema } from '../protocol/index.js';

const DIR = 'grafana/dashboards';

interface Panel {
  title: string;
  type: string;
  targets?: Array<{ query: string; rawQuery: boolean; resultFormat: string; datasource: { uid: string } }>;
}

t.test('the committed dashboards are what the generator produces', async (t) => {
  const rendered = renderDashboards();
  t.same(readdirSync(DIR).sort(), Object.keys(rendered).sort(), 'no stale or missing files');
  for (const [name, json] of Object.entries(rendered)) {
    t.equal(readFileSync(join(DIR, name), 'utf8'), json, `${name} is current (run npm run grafana)`);
    const d = JSON.parse(json) as { schemaVersion: number; uid: string; panels: Panel[] };
    t.equal(d.schemaVersion, 42);
    t.ok(d.panels.filter((p) => p.type !== 'row').every((p) => p.targets?.every((q) => q.datasource.uid === 'wott-influxdb' && q.rawQuery)), `${name}: every target is raw InfluxQL on the provisioned datasource`);
  }
  const fleet = JSON.parse(rendered['fleet-trust.json']!) as { panels: Panel[] };
  const titles = fleet.panels.map((p) => p.title);
  for (const want of ['Score distribution', 'Below 0.9', 'Below 0.4', 'Lowest-scored devices', 'Fleet score over time', 'Certificates expiring within 48 h', 'Policy denials', 'Authentication failures']) {
    t.ok(titles.includes(want), `fleet board has "${want}"`);
  }
  const device = JSON.parse(rendered['device.json']!) as { panels: Panel[]; templating: { list: Array<{ name: string }> } };
  t.same(device.templating.list.map((v) => v.name), ['device']);
  t.ok(['Factor contributions', 'Behaviour events', 'CVE findings', 'Score'].every((x) => device.panels.some((p) => p.title === x)));
});

t.test('npm run grafana -- --config: boards that follow your own policy thresholds', async (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'wott.yaml');
  writeFileSync(config, 'policies:\n  - topic: a/#\n    publish: 0.7\n  - topic: b/#\n    subscribe: 0.3\n  - topic: c/#\n    publish: 0\n');
  const r = await run('node', ['dist/grafana/generate.js', '--config', config, '--out', join(dir, 'out')]);
  t.equal(r.code, 0, r.stderr);
  const fleet = JSON.parse(readFileSync(join(dir, 'out', 'fleet-trust.json'), 'utf8')) as { panels: Panel[] };
  t.same(fleet.panels.filter((p) => p.title.startsWith('Below')).map((p) => p.title), ['Below 0.7', 'Below 0.3']);
  const bad = await run('node', ['dist/grafana/generate.js', '--config', join(dir, 'missing.yaml')]);
  t.not(bad.code, 0);
  t.match(bad.stderr, /cannot read config/);
});

t.test('provisioning files', async (t) => {
  const ds = parse(readFileSync('grafana/provisioning/datasources/wott-influxdb.yaml', 'utf8')) as { datasources: Array<{ uid: string; type: string; jsonData: { dbName: string } }> };
  t.match(ds.datasources[0], { uid: 'wott-influxdb', type: 'influxdb', jsonData: { dbName: '${WOTT_INFLUX_DATABASE}' } });
  const boards = parse(readFileSync('grafana/provisioning/dashboards/wott.yaml', 'utf8')) as { providers: Array<{ type: string; options: { path: string } }> };
  t.match(boards.providers[0], { type: 'file', options: { path: '/var/lib/grafana/dashboards/wott' } });
});

t.test('every panel query returns rows from a real influxd seeded by the writer', async (t) => {
  const influx = await startInfluxd(t);
  if (!influx) return;
  const now = Date.now();
  // The real engine, with CA facts and the real CVE store (the repo's tracker fixture against this machine's packages).
  const data = tempDir(t);
  await updateCveStore({ dataDir: data, from: ['test/fixtures/cve/tracker.json'] });
  const cveStore = await openSqliteVulnStore(data);
  t.teardown(() => cveStore.close());
  const cve = await CveDatabase.open(cveStore);
  const facts = new Map<string, CaFacts>([
    ['gw-hardened', { state: 'active', tpm: true, certificate: { notBefore: now - 86_400_000, notAfter: now + 6 * 86_400_000 } }],
    ['pi-kitchen', { state: 'active', tpm: false, certificate: { notBefore: now - 6.5 * 86_400_000, notAfter: now + 12 * 3_600_000 } }],
    ['host-cve', { state: 'active', tpm: false, certificate: { notBefore: now - 86_400_000, notAfter: now + 6 * 86_400_000 } }],
  ]);
  const engine = new ScoreEngine({ model: loadModel(), caFacts: (d) => facts.get(d), vulnerabilities: cve });
  engine.ingestTelemetry('gw-hardened', JSON.stringify(fixtureTelemetry('debian12-hardened', 'gw-hardened', 1, now)));
  engine.ingestTelemetry('pi-kitchen', JSON.stringify(fixtureTelemetry('rpi-factory', 'pi-kitchen', 1, now)));
  const host = fixtureTelemetry('debian12-hardened', 'host-cve', 1, now);
  const packages = collectPackages('/');
  host.packages = { count: packages.list.length, hash: packages.hash, list: packages.list };
  host.os = collectOs('/');
  engine.ingestTelemetry('host-cve', JSON.stringify(host));
  const events = [
    event('pi-kitchen', 'auth_failure', { verified: false, reason: 'certificate not trusted' }),
    event('pi-kitchen', 'connect', { remoteAddress: '192.0.2.10' }),
    event('pi-kitchen', 'publish_denied', { topic: 'payments/x' }),
    counters('pi-kitchen', 120),
    counters('gw-hardened', 40),
  ];
  const writer = new InfluxWriter({ url: influx.url, database: 'wott', spoolDir: tempDir(t), flushIntervalMs: 50 });
  await writer.start();
  for (const e of events) {
    engine.ingestEvent(JSON.parse(e).device, e);
    writer.add([behaviourPoint(behaviourEventSchema.parse(JSON.parse(e)), now)]);
  }
  // gw-hardened saw a few logins from pi-kitchen's address: lateral movement (a few: its score must stay above 0 here).
  const seen = engine.ingestTelemetry('gw-hardened', JSON.stringify({ ...fixtureTelemetry('debian12-hardened', 'gw-hardened', 2, now), intrusions: { windowSeconds: 60, sources: [{ address: '192.0.2.10', failedLogins: 3, dropped: 0, services: ['ssh'] }] } }));
  t.ok(seen.accepted && seen.lateral?.length === 1, 'an intrusion source attributed');
  if (seen.accepted) writer.add((seen.lateral ?? []).map((o) => lateralPoint(o, now)));
  // Denials from the counters too.
  writer.add([behaviourPoint(behaviourEventSchema.parse({ ...JSON.parse(counters('pi-kitchen', 10)), counters: { intervalMs: 10_000, messagesIn: 10, bytesIn: 100, messagesOut: 3, bytesOut: 30, publishDenied: 2, subscribeDenied: 1, suppressedEvents: 0 } }), now + 1)]);
  let findings = 0;
  for (const device of ['gw-hardened', 'pi-kitchen', 'host-cve']) {
    const r = engine.compute(device);
    writer.add([scorePoint(r.message, r.findings, r.certificateNotAfter)]);
    if (r.findings?.length) {
      findings += r.findings.length;
      writer.add(findingPoints(device, r.findings, r.message.time));
    }
  }
  t.ok(findings > 0, `${findings} CVE findings on this machine's packages`);
  await writer.flush();
  await writer.close();
  t.equal(writer.stats.dropped, 0, 'nothing dropped');
  t.ok(writer.stats.written > 20);

  const substitute = (q: string, device: string) =>
    q
      .replaceAll('$timeFilter', `time >= ${now - 3_600_000}ms AND time <= ${now + 60_000}ms`)
      .replaceAll('$__interval', '1m')
      .replaceAll('$device', device);
  for (const [name, json] of Object.entries(renderDashboards())) {
    const d = JSON.parse(json) as { panels: Panel[]; templating: { list?: Array<{ name: string; query: string }> } };
    for (const v of d.templating.list ?? []) {
      const values = (await influx.query(v.query, 'wott')).map((r) => r[1]); // SHOW TAG VALUES: [key, value]
      t.same([...values].sort(), ['gw-hardened', 'host-cve', 'pi-kitchen'], `${name}: variable ${v.name} lists the devices`);
    }
    for (const p of d.panels) {
      for (const target of p.targets ?? []) {
        const device = p.title === 'CVE findings' || p.title === 'Vulnerabilities' ? 'host-cve' : 'pi-kitchen';
        const q = substitute(target.query, device);
        const rows = await influx.query(q, 'wott').catch((err: Error) => t.fail(`${name} / ${p.title}: ${err.message}\n${q}`));
        const nonNull = Array.isArray(rows) && rows.some((r) => r.slice(1).some((v) => v !== null && v !== 0 && v !== ''));
        t.ok(nonNull, `${name} / ${p.title}: returns rows`);
      }
    }
  }
});
