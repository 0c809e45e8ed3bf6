/**
 * `npm run bench -- api`: the HTTPS API for services and operators, against baselines in the same run.
 *
 *  1. `GET /api/v1/trust/{id}` over keep-alive mTLS HTTPS, requests per second, against a bare node:https handler
 *     that returns a constant on the same TLS settings (baseline). Goal: ≥ 0.7×. The load generator runs in a
 *     worker thread so the server keeps its own event loop.
 *  2. A score change (published into the broker as in-process scoring does) → the `score` event received by each
 *     of 1,000 connected `/trust/stream` subscribers (in a worker thread), p99 over 30 changes. Goal: ≤ 50 ms.
 *  3. `GET /api/v1/devices` with 100,000 devices in the inventory, filtered, sorted, one page, sequential requests
 *     over keep-alive HTTPS, p99. Goal: ≤ 50 ms.
 */
import { createServer, request, Agent, type Server } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createParser } from 'eventsource-parser';
import { pino } from 'pino';
import { startGateway, type Gateway } from '../gateway/index.js';
import { API_PREFIX, topics } from '../protocol/index.js';
import { ratio, type Suite, type SuiteResult } from './harness.js';

interface Creds {
  cert: string;
  key: string;
}

const now = () => performance.timeOrigin + performance.now();

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// ------------------------------------------------------------------ workers

type WorkerSpec =
  | { role: 'wott-bench-api-load'; port: number; path: string; ca: string; creds: Creds; concurrency: number; warmupMs: number; durationMs: number }
  | { role: 'wott-bench-api-stream'; port: number; ca: string; creds: Creds; subscribers: number };

/** Keep-alive requests, `concurrency` in flight, counted after a warm-up. */
async function loadWorker(spec: Extract<WorkerSpec, { role: 'wott-bench-api-load' }>): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency, ...spec.creds, ca: spec.ca, servername: 'localhost' });
  let counting = false;
  let done = 0;
  let errors = 0;
  let stop = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: spec.port, path: spec.path, agent, servername: 'localhost' }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) {
            if (counting) done++;
          } else errors++;
          resolve();
        });
      });
      req.on('error', () => (errors++, resolve()));
      req.end();
    });
  const loop = async () => {
    while (!stop) await one();
  };
  const loops = Array.from({ length: spec.concurrency }, loop);
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, spec.durationMs));
  counting = false;
  const elapsed = performance.now() - t0;
  stop = true;
  await Promise.all(loops);
  agent.destroy();
  parentPort!.postMessage({ type: 'result', rate: (done * 1000) / elapsed, errors });
}

/** Opens `subscribers` streams; for each score event, the delay since the time the main thread put in modelVersion. */
async function streamWorker(spec: Extract<WorkerSpec, { role: 'wott-bench-api-stream' }>): Promise<void> {
  const latencies: number[] = [];
  let ready = 0;
  const streams: Array<{ destroy(): void }> = [];
  for (let i = 0; i < spec.subscribers; i++) {
    const req = request(
      { host: '127.0.0.1', port: spec.port, path: `${API_PREFIX}/trust/stream`, ...spec.creds, ca: spec.ca, servername: 'localhost', agent: false, headers: { Accept: 'text/event-stream' } },
      (res) => {
        if (res.statusCode !== 200) throw new Error(`stream ${i}: ${res.statusCode}`);
        const parser = createParser({
          onEvent: (e) => {
            if (e.event === 'ready') return void (++ready === spec.subscribers && parentPort!.postMessage({ type: 'ready' }));
            if (e.event !== 'score') return;
            const sent = Number((JSON.parse(e.data) as { modelVersion: string }).modelVersion.slice(6));
            if (sent) latencies.push(now() - sent);
          },
        });
        res.setEncoding('utf8');
        res.on('data', (c: string) => parser.feed(c));
      },
    );
    req.on('error', (err) => parentPort!.postMessage({ type: 'error', message: err.message }));
    req.end();
    streams.push(req);
    // Stay under the gateway's connect rate per source.
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
  }
  parentPort!.on('message', (m: { type: string }) => {
    if (m.type !== 'report') return;
    parentPort!.postMessage({ type: 'result', latencies });
    for (const s of streams) s.destroy();
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role?.startsWith('wott-bench-api')) {
  const spec = workerData as WorkerSpec;
  (spec.role === 'wott-bench-api-load' ? loadWorker(spec) : streamWorker(spec)).catch((err: Error) => {
    process.stderr.write(`api bench worker: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}

function runLoad(spec: Omit<Extract<WorkerSpec, { role: 'wott-bench-api-load' }>, 'role'>): Promise<{ rate: number; errors: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: 'wott-bench-api-load', ...spec } });
    worker.once('message', (m: { rate: number; errors: number }) => {
      resolve(m);
      void worker.terminate();
    });
    worker.on('error', reject);
  });
}

// ------------------------------------------------------------------ the suite

async function gateway(dir: string): Promise<Gateway & { caPem: string }> {
  const gw = await startGateway({
    dataDir: dir,
    httpsPort: 0,
    mqttPort: 0,
    hosts: [],
    certLifetimeMs: 7 * 86_400_000,
    crlValidityMs: 86_400_000,
    claim: false,
    log: pino({ level: 'silent' }),
    policies: [{ topic: 'weather/#', publish: 0.4, subscribe: 0.4 }],
    initialScore: 0.5,
    onDowngrade: 'filter',
    eventIntervalMs: 10_000,
    // One source (this machine) opens all the benchmark's connections.
    httpsLimits: { maxConnectionsPerSource: 5_000, connectRate: { max: 100_000, windowMs: 10_000, banMs: 1_000 } },
    api: { trustStream: { maxSubscribers: 2_000 } },
  });
  return Object.assign(gw, { caPem: gw.ca.caCertificates().map((c) => c.toString()).join('') });
}

/** A bare node:https server on the gateway's TLS settings (same CA, client certificates asked for) returning a constant. */
async function bareServer(gw: Gateway & { caPem: string }): Promise<Server> {
  const issued = await gw.ca.issueServer(['localhost']);
  const body = JSON.stringify({ device: 'bench-0', score: 0.9 });
  const server = createServer({ key: issued.keyPem, cert: issued.pem + gw.ca.material.intermediate.toString(), ca: gw.caPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

function publishScore(gw: Gateway, device: string, score: number, modelVersion: string): void {
  const payload = Buffer.from(JSON.stringify({ device, score, factors: [], modelVersion, time: new Date().toISOString() }));
  gw.broker.publish({ cmd: 'publish', topic: topics.scores(device), payload, qos: 0, retain: true, dup: false }, () => {});
}

function get(port: number, ca: string, creds: Creds, agent: Agent, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: API_PREFIX + path, ...creds, ca, servername: 'localhost', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

export const apiSuite: Suite = {
  name: 'api',
  description: 'trust lookups vs a bare node:https handler, score change → 1,000 stream subscribers, device list over 100,000 devices',
  async run({ quick }): Promise<SuiteResult> {
    const result: SuiteResult = { suite: 'api', measurements: [], ratios: [], goals: [] };
    const dir = mkdtempSync(join(tmpdir(), 'wott-bench-api-'));
    const gw = await gateway(join(dir, 'gw'));
    try {
      const operator = await gw.ca.issueOperator('viewer', 'bench');
      const creds = { cert: operator.pem, key: operator.keyPem };
      await gw.ca.inventory.transaction(async (tx) => {
        await tx.upsertDevice('bench-0', 'active', new Date().toISOString());
      });
      await gw.view.refresh();
      publishScore(gw, 'bench-0', 0.9, 'bench');

      // 1. GET /trust/{id} vs the bare handler.
      // Alternating rounds (bare, trust, bare, trust …), medians: a machine whose load changes during the run
      // (other processes) then weighs on both sides alike.
      const durationMs = quick ? 1_000 : 2_000;
      const bare = await bareServer(gw);
      const rounds = quick ? 2 : 5;
      const bareRates: number[] = [];
      const trustRates: number[] = [];
      for (let i = 0; i < rounds; i++) {
        bareRates.push((await runLoad({ port: (bare.address() as AddressInfo).port, path: '/', ca: gw.caPem, creds, concurrency: 16, warmupMs: 500, durationMs })).rate);
        const trust = await runLoad({ port: gw.httpsPort, path: `${API_PREFIX}/trust/bench-0`, ca: gw.caPem, creds, concurrency: 16, warmupMs: 500, durationMs });
        if (trust.errors) throw new Error(`GET /trust/bench-0: ${trust.errors} errors`);
        trustRates.push(trust.rate);
      }
      bare.close();
      bare.closeAllConnections();
      const median = (v: number[]) => percentile([...v].sort((a, b) => a - b), 50);
      const base = { rate: median(bareRates) };
      const trust = { rate: median(trustRates) };
      result.measurements.push({ name: 'bare node:https constant', value: base.rate, unit: 'req/s', baseline: true });
      result.measurements.push({ name: 'GET /trust/{id}', value: trust.rate, unit: 'req/s' });
      const r = ratio(result, 'trust lookup vs bare https', 'GET /trust/{id}', 'bare node:https constant');
      result.goals.push({ name: 'GET /trust/{id} ≥ 0.7× bare node:https', met: r >= 0.7, detail: `${r.toFixed(2)}×` });

      // 2. Score change → 1,000 subscribers.
      const subscribers = quick ? 200 : 1_000;
      const changes = quick ? 10 : 30;
      // Readers in several worker threads: one thread decrypting and parsing 1,000 TLS streams in turn would
      // measure itself more than the gateway.
      const readers = 4;
      const workers = Array.from({ length: readers }, () => new Worker(new URL(import.meta.url), { workerData: { role: 'wott-bench-api-stream', port: gw.httpsPort, ca: gw.caPem, creds, subscribers: subscribers / readers } }));
      const fanout: number[] = [];
      const results = workers.map(
        (worker) =>
          new Promise<number[]>((resolve, reject) => {
            worker.on('error', reject);
            worker.on('message', (m: { type: string; latencies?: number[]; message?: string }) => {
              if (m.type === 'error') reject(new Error(m.message));
              else if (m.type === 'result') resolve(m.latencies!);
            });
          }),
      );
      await Promise.all(workers.map((w) => new Promise<void>((resolve) => w.on('message', (m: { type: string }) => m.type === 'ready' && resolve()))));
      // Registered after the streams' own listener, so it runs once every subscriber's write is done.
      const stop = gw.trust.onEvent((e) => {
        if (e.kind === 'score' && e.data.modelVersion.startsWith('bench-')) fanout.push(now() - Number(e.data.modelVersion.slice(6)));
      });
      for (let i = 0; i < changes; i++) {
        publishScore(gw, 'bench-0', i % 2 ? 0.9 : 0.3, `bench-${now()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 500));
      stop();
      for (const w of workers) w.postMessage({ type: 'report' });
      const latencies = (await Promise.all(results)).flat();
      await Promise.all(workers.map((w) => w.terminate()));
      const sorted = latencies.sort((a, b) => a - b);
      const p99 = percentile(sorted, 99);
      result.measurements.push({ name: `score → ${subscribers} stream subscribers p50`, value: percentile(sorted, 50), unit: 'ms' });
      result.measurements.push({ name: `score → ${subscribers} stream subscribers p99`, value: p99, unit: 'ms' });
      result.measurements.push({ name: 'score events received', value: sorted.length, unit: `of ${subscribers * changes}` });
      // What the gateway itself spends: publish → written to every subscriber's socket (the rest is the readers').
      result.measurements.push({ name: `gateway side: publish → ${subscribers} writes done, max`, value: Math.max(...fanout), unit: 'ms' });
      result.goals.push({ name: `score change → ${subscribers} subscribers p99 ≤ 50 ms`, met: p99 <= 50 && sorted.length === subscribers * changes, detail: `p99 ${p99.toFixed(1)} ms, ${sorted.length}/${subscribers * changes} events` });

      // 3. The device list over 100,000 devices.
      const count = quick ? 20_000 : 100_000;
      const states = ['active', 'active', 'active', 'active', 'quarantined', 'unclaimed'] as const;
      const t0 = performance.now();
      await gw.ca.inventory.transaction(async (tx) => {
        const at = Date.now();
        for (let i = 1; i < count; i++) {
          const id = `dev-${String(i).padStart(6, '0')}`;
          const time = new Date(at - i * 1000).toISOString();
          await tx.upsertDevice(id, states[i % states.length]!, time);
          await tx.setDeviceTags(id, [`site-${i % 10}`, i % 3 ? 'sensor' : 'camera'], time);
        }
      });
      await gw.view.refresh();
      const loadedMs = performance.now() - t0;
      if (gw.view.deviceCount < count) throw new Error(`view holds ${gw.view.deviceCount} devices, expected ${count}`);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const queries = {
        'state+tag, sort updatedAt desc': '/devices?state=active&tag=site-3&sort=updatedAt&order=desc&limit=100',
        'state, sort createdAt desc': '/devices?state=active&sort=createdAt&order=desc&limit=100',
        'all, sort id': '/devices?sort=id&limit=100',
      };
      let worst = 0;
      for (const [name, path] of Object.entries(queries)) {
        const times: number[] = [];
        for (let i = 0; i < (quick ? 20 : 100) + 5; i++) {
          const s = performance.now();
          const reply = await get(gw.httpsPort, gw.caPem, creds, agent, path);
          if (reply.status !== 200) throw new Error(`${path}: ${reply.status} ${reply.body.slice(0, 200)}`);
          if (i >= 5) times.push(performance.now() - s);
        }
        const p = percentile(times.sort((a, b) => a - b), 99);
        worst = Math.max(worst, p);
        result.measurements.push({ name: `device list (${count}) ${name} p99`, value: p, unit: 'ms' });
      }
      agent.destroy();
      result.measurements.push({ name: `inventory + view load of ${count} devices`, value: loadedMs, unit: 'ms' });
      result.goals.push({ name: `device list with ${count} devices, one page p99 ≤ 50 ms`, met: worst <= 50, detail: `worst p99 ${worst.toFixed(1)} ms` });
    } finally {
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
    return result;
  },
};
