/**
 * The gateway's scheduled audit (a short interval here): it runs on its own, its latest run is GET
 * /api/v1/audit/latest (viewer role), its counts go to a real InfluxDB, and a new critical finding — a device trying
 * to take over another device's MQTT session with its client id — appears as an `audit_finding` event on the
 * operators' event stream, once (the next runs still have it, but it is no longer new).
 */
import { request } from 'node:https';
import { createParser } from 'eventsource-parser';
import t from 'tap';
import { API_PREFIX, auditLatestSchema, type FleetEvent } from '../../protocol/index.js';
import { loadModel } from '../../scoring/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, connectError, enroll, testGateway, waitFor } from '../mqtt-helpers.js';
import { startInfluxd } from '../influx-helpers.js';
import { api, operatorCredentials } from '../api/helpers.js';

/** The fleet events of GET /api/v1/events/stream, as an operator's client reads them. */
function followEvents(gw: { httpsPort: number; caPem: string }, who: { cert: string; key: string }): { events: FleetEvent[]; ready: () => boolean; stop(): void } {
  const events: FleetEvent[] = [];
  let ready = false;
  const req = request(`https://127.0.0.1:${gw.httpsPort}${API_PREFIX}/events/stream`, { ca: gw.caPem, servername: 'localhost', agent: false, cert: who.cert, key: who.key, headers: { Accept: 'text/event-stream' } }, (res) => {
    const parser = createParser({
      onEvent: (e) => {
        if (e.event === 'ready') ready = true;
        if (e.event === 'fleet') events.push(JSON.parse(e.data) as FleetEvent);
      },
    });
    res.setEncoding('utf8');
    res.on('data', (c: string) => parser.feed(c));
  });
  req.on('error', () => undefined);
  req.end();
  return { events, ready: () => ready, stop: () => req.destroy() };
}

t.test('scheduled audits run, are served by the API and written to InfluxDB, and a new critical finding is an event on the stream', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const influx = await startInfluxd(t);
  if (!influx) return;
  const gw = await testGateway(t, {
    audit: { schedule: true, intervalMs: 300, firstRunMs: 0 },
    scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200, influx: { url: influx.url, database: 'wott', flushIntervalMs: 100 } },
  });
  const dir = tempDir(t);
  const viewer = await operatorCredentials(gw, 'viewer', 'auditor');
  const stream = followEvents(gw, viewer);
  t.teardown(() => stream.stop());
  await waitFor(() => stream.ready(), 'the event stream');

  const victim = await enroll(gw, dir, 'boiler');
  const intruder = await enroll(gw, dir, 'thermostat');
  const client = await connect(gw, victim);
  t.teardown(() => client.end(true));

  // Runs happen on their own; the API serves the latest one.
  await waitFor(() => gw.audit.latest !== undefined && gw.audit.latest.devices === 2, 'a scheduled run that sees both devices');
  const first = gw.audit.latest!;
  t.equal(first.counts.critical, 0, 'no critical finding yet');
  const served = await api(gw, 'GET', '/audit/latest', viewer);
  t.equal(served.status, 200);
  const latest = auditLatestSchema.parse(served.json);
  t.ok(latest.run && latest.run.source === 'gateway' && latest.run.checks.length > 15, 'the latest run with all its checks');
  t.ok(latest.nextRunAt === null || Date.parse(latest.nextRunAt) > 0, 'and when the next one starts');
  t.equal((await api(gw, 'GET', '/audit/latest')).status, 401, 'not without authentication');

  // The intruder's own certificate, another device's client id: refused by the broker, found by the next run.
  const refused = await connectError(gw, { ...intruder, id: 'boiler' });
  t.match(refused.message, /identifier rejected|client id|closed/i, 'the broker refuses the takeover');
  await waitFor(() => stream.events.some((e) => e.type === 'audit_finding'), 'an audit_finding event on the stream', 15_000);
  const event = stream.events.find((e) => e.type === 'audit_finding')!;
  t.equal(event.device, 'thermostat', 'about the device that tried');
  t.match(event.text, /^audit \(critical\): thermostat tried to take over the session of boiler/);
  const finding = gw.audit.latest!.findings.find((f) => f.check === 'identity.client_id_conflict')!;
  t.match(finding, { severity: 'critical', objects: ['device:thermostat', 'device:boiler'] });
  t.match(finding.evidence[0]!.fact, /client id "boiler" refused/);

  // Later runs still find it, but it is not new: no second event.
  const runs = new Set([gw.audit.latest!.id]);
  await waitFor(() => (runs.add(gw.audit.latest!.id), runs.size >= 3), 'two more runs');
  t.equal(stream.events.filter((e) => e.type === 'audit_finding').length, 1, 'one event per new critical finding');

  // InfluxDB: the audit's counts, one point per run, and one per check.
  let rows: unknown[][] = [];
  for (let i = 0; i < 100 && !rows.some((r) => Number(r[1]) >= 1); i++) {
    rows = await influx.query('SELECT "critical", "findings" FROM "audit_summary"', 'wott').catch(() => []);
    if (!rows.some((r) => Number(r[1]) >= 1)) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(rows.some((r) => Number(r[1]) >= 1), 'the critical count is in InfluxDB');
  const perCheck = await influx.query(`SELECT "findings" FROM "audit" WHERE "check" = 'identity.client_id_conflict'`, 'wott');
  t.ok(perCheck.some((r) => Number(r[1]) === 1), 'and the check that found it');
});
