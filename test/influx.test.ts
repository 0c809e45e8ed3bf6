/**
 * The InfluxDB writer against a real influxd (Debian influxdb 1.x) on a loopback port: batches, the schema, an
 * outage under load with no point lost, the spool surviving a restart, and which errors are retried.
 */
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync } from 'node:fs';
import { InfluxWriter, Point, scorePoint, behaviourPoint, factorField, toLine } from '../scoring/index.js';
import { tempDir } from './helpers.js';
import { startInfluxd } from './influx-helpers.js';

const until = async (what: string, fn: () => Promise<boolean> | boolean, ms = 30_000) => {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
};

const countOf = async (influx: { query(q: string, db?: string): Promise<unknown[][]> }, measurement: string, db = 'wott') => {
  const rows = await influx.query(`SELECT count("score") FROM "${measurement}"`, db).catch(() => [] as unknown[][]);
  return Number(rows[0]?.[1] ?? 0);
};

t.test('line protocol from Point: device and model are the only tags', async (t) => {
  const line = toLine(
    scorePoint(
      { device: 'dev-1', score: 0.5, modelVersion: 'wott-1', time: '2026-11-24T10:00:00.000Z', factors: [{ id: 'ceiling:quarantined', contribution: -0.2, reason: 'capped, "quoted"' }] },
      [],
    ),
  );
  t.equal(line, 'trust_score,device=dev-1,model=wott-1 cves=0i,cves_exposed=0i,cves_high=0i,f_ceiling_quarantined=-0.2,score=0.5,top_reason="capped, \\"quoted\\"" ' + Date.parse('2026-11-24T10:00:00.000Z'));
  t.equal(factorField('ceiling:noTelemetry'), 'f_ceiling_noTelemetry');
  t.match(toLine(behaviourPoint({ device: 'd', type: 'auth_failure', time: '2026-11-24T10:00:00.000Z', verified: false }, 1)), /^behaviour,device=d,type=auth_failure count=1i,verified=F 1$/);
});

t.test('writes batches to the v1 /write API of a real influxd', async (t) => {
  const influx = await startInfluxd(t);
  if (!influx) return;
  const writer = new InfluxWriter({ url: influx.url, spoolDir: tempDir(t), batchSize: 1000, flushIntervalMs: 50 });
  await writer.start();
  const base = Date.parse('2026-11-24T00:00:00Z');
  for (let i = 0; i < 5000; i++) {
    writer.add([new Point('trust_score').tag('device', `d${i % 50}`).tag('model', 'm').floatField('score', (i % 100) / 100).timestamp(new Date(base + i))]);
  }
  await until('5000 points', async () => (await countOf(influx, 'trust_score')) === 5000);
  // influxd may show the last batch before the writer has read influxd's reply to it: wait for the writer too.
  await until('the writer to count them', async () => writer.stats.written === 5000);
  t.equal(writer.stats.written, 5000);
  t.equal(writer.stats.dropped, 0);
  const series = await influx.query('SHOW SERIES FROM trust_score', 'wott');
  t.equal(series.length, 50, 'one series per device: bounded cardinality');
  await writer.close();
});

t.test('an outage under load loses no point: spooled to disk, sent after influxd returns', async (t) => {
  const influx = await startInfluxd(t);
  if (!influx) return;
  const spoolDir = tempDir(t);
  const writer = new InfluxWriter({ url: influx.url, spoolDir, batchSize: 200, flushIntervalMs: 50, maxRetryDelayMs: 500, requestTimeoutMs: 2000 });
  await writer.start();
  const base = Date.parse('2026-11-24T00:00:00Z');
  let sent = 0;
  const write = (n: number) => {
    for (let i = 0; i < n; i++, sent++) writer.add([new Point('trust_score').tag('device', `d${sent % 20}`).floatField('score', 0.5).timestamp(new Date(base + sent))]);
  };
  const load = setInterval(() => write(100), 20);
  await new Promise((r) => setTimeout(r, 500));
  await influx.stop();
  await new Promise((r) => setTimeout(r, 2500)); // scoring keeps going while influxd is down
  await until('spooled batches', () => writer.stats.spooledBatches > 0);
  t.ok(readdirSync(spoolDir).length > 0, `${writer.stats.spooledBatches} batches in the spool`);
  await influx.start();
  await new Promise((r) => setTimeout(r, 500));
  clearInterval(load);
  write(37);
  await writer.flush();
  await until('every point', async () => {
    await writer.flush();
    return (await countOf(influx, 'trust_score')) === sent;
  });
  t.equal(await countOf(influx, 'trust_score'), sent, `all ${sent} points are there`);
  t.equal(writer.stats.dropped, 0);
  t.ok(writer.stats.failures > 0, 'writes did fail during the outage');
  t.same(readdirSync(spoolDir).filter((f) => f.endsWith('.lp')), [], 'spool drained');
  await writer.close();
});

t.test('the spool survives a restart of the writer; it is bounded', async (t) => {
  const influx = await startInfluxd(t);
  if (!influx) return;
  const spoolDir = tempDir(t);
  await influx.stop();
  const first = new InfluxWriter({ url: influx.url, spoolDir, batchSize: 100, flushIntervalMs: 60_000, requestTimeoutMs: 1000 });
  await first.start();
  for (let i = 0; i < 250; i++) first.add([new Point('trust_score').tag('device', 'd').floatField('score', 1).timestamp(new Date(1_700_000_000_000 + i))]);
  await first.close(); // influxd is down: everything goes to disk
  t.equal(first.stats.spooledBatches, 3);
  await influx.start();
  const second = new InfluxWriter({ url: influx.url, spoolDir, batchSize: 100, flushIntervalMs: 50 });
  await second.start();
  await until('spooled points from the previous run', async () => (await countOf(influx, 'trust_score')) === 250);
  await second.close();

  const tiny = tempDir(t);
  await influx.stop();
  const bounded = new InfluxWriter({ url: influx.url, spoolDir: tiny, batchSize: 100, flushIntervalMs: 60_000, spoolMaxBytes: 20_000, requestTimeoutMs: 1000 });
  for (let i = 0; i < 2000; i++) bounded.add([new Point('trust_score').tag('device', 'd').floatField('score', 1).timestamp(new Date(1_700_000_000_000 + i))]);
  await bounded.close();
  t.ok(bounded.stats.spoolBytes <= 20_000 + 10_000, `spool stays near its bound (${bounded.stats.spoolBytes} bytes)`);
  t.ok(bounded.stats.dropped > 0, `the oldest batches were dropped and counted (${bounded.stats.dropped})`);
});

t.test('4xx is dropped (never retried forever); 5xx and network errors are retried', async (t) => {
  const influx = await startInfluxd(t);
  if (!influx) return;
  // A field type conflict is a 400 from influxd: retrying can never succeed.
  const writer = new InfluxWriter({ url: influx.url, spoolDir: tempDir(t), batchSize: 10, flushIntervalMs: 50 });
  await writer.start();
  writer.add([new Point('trust_score').tag('device', 'd').floatField('score', 0.5).timestamp(new Date(1_700_000_000_000))]);
  await until('first point', async () => (await countOf(influx, 'trust_score')) === 1);
  writer.add([new Point('trust_score').tag('device', 'd').stringField('score', 'high').timestamp(new Date(1_700_000_000_001))]);
  await until('the bad batch dropped', () => writer.stats.dropped === 1);
  writer.add([new Point('trust_score').tag('device', 'd').floatField('score', 0.7).timestamp(new Date(1_700_000_000_002))]);
  await until('later points still flow', async () => (await countOf(influx, 'trust_score')) === 2);
  await writer.close();
  // A database that does not exist (and is not created): 404, dropped.
  const missing = new InfluxWriter({ url: influx.url, database: 'nope', createDatabase: false, spoolDir: tempDir(t), batchSize: 1, flushIntervalMs: 50 });
  await missing.start();
  missing.add([new Point('x').floatField('v', 1)]);
  await until('404 dropped', () => missing.stats.dropped === 1);
  await missing.close();

  // influxd does not answer 5xx on demand; a loopback HTTP server does: 503 twice, then accepted.
  let calls = 0;
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      calls++;
      if (req.url?.startsWith('/query')) return void res.writeHead(200).end('{"results":[{}]}');
      if (calls <= 3) return void res.writeHead(503).end('busy');
      bodies.push(`${req.url} ${body}`);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const retrying = new InfluxWriter({ url: `http://127.0.0.1:${port}`, api: 'v2', org: 'acme', bucket: 'iot', token: 's3cret', spoolDir: tempDir(t), batchSize: 1, flushIntervalMs: 50, maxRetryDelayMs: 200 });
  await retrying.start();
  retrying.add([new Point('x').floatField('v', 1).timestamp(new Date(5))]);
  await until('accepted after retries', () => bodies.length === 1);
  t.equal(bodies[0], '/api/v2/write?org=acme&bucket=iot&precision=ms x v=1 5\n', 'v2 API: org, bucket, ms precision');
  t.equal(retrying.stats.dropped, 0);
  await retrying.close();
});
