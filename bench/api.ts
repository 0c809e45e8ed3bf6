/**
 * `npm run bench -- api`: the HTTPS API for services and operators, against baselines in the same run.
 *
 *  1. `GET /api/v1/trust/{id}` over keep-alive mTLS HTTPS, requests per second, against a bare node:https handler
 *     that returns a constant on the same TLS settings (baseline). Goal: ≥ 0.7×. The load generator runs in a
 *     worker thread so the server keeps its own event loop.
 *  2. A score change (published into the broker as in-process scoring does) → the `score` event received by each
 *     of 1,000 connected `/trust/stream` subscribers, held by reader child processes (bench/stream-reader.ts) so
 *     that no single event loop decrypts 1,000 sockets in turn. Both sides stamp CLOCK_MONOTONIC
 *     (process.hrtime.bigint, one clock for every process on the machine): the gateway's stamp, taken just before
 *     the score is published, travels in the event. p99 over every subscriber × change of a round; the goal takes
 *     the median of the rounds' p99s. Goal: ≤ 50 ms. The gateway's own part (publish → the last subscriber's
 *     write returned) is reported beside it.
 *  3. `GET /api/v1/devices` with 100,000 devices in the inventory, filtered, sorted, one page, sequential requests
 *     over keep-alive HTTPS, p99. Goal: ≤ 50 ms.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, request, Agent, type Server } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { startGateway, type Gateway } from '../gateway/index.js';
import { API_PREFIX, topics } from '../protocol/index.js';
import { ratio, type Suite, type SuiteResult } from './harness.js';
import type { ReaderReply, ReaderRequest } from './stream-reader.js';

interface Creds {
  cert: string;
  key: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// ------------------------------------------------------------------ workers

type WorkerSpec =
  { role: 'wott-bench-api-load'; port: number; path: string; ca: string; creds: Creds; concurrency: number; warmupMs: number; durationMs: number };

/** Keep-alive requests, `concurrency` in flight, counted after a warm-up. */
async function loadWorker(spec: WorkerSpec): Promise<void> {
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

if (!isMainThread && (workerData as { role?: string } | null)?.role?.startsWith('wott-bench-api')) {
  const spec = workerData as WorkerSpec;
  loadWorker(spec).catch((err: Error) => {
    process.stderr.write(`api bench worker: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}

function runLoad(spec: Omit<WorkerSpec, 'role'>): Promise<{ rate: number; errors: number }> {
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

export async function gateway(dir: string): Promise<Gateway & { caPem: string }> {
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

export interface FanoutResult {
  /** Median over rounds of each round's p50 / p99 (ms, every subscriber × change of the round). */
  p50: number;
  p99: number;
  /** Each round's p99. */
  rounds: number[];
  /** p99 over every change of publish → the gateway's write to the last subscriber returned. */
  gatewayP99: number;
  /**
   * CPU time per change (ms, user + system, all rounds): the gateway process (less what it spends with the streams
   * open and nothing changing), and all readers together.
   */
  gatewayCpuMs: number;
  /** Of gatewayCpuMs, the kernel's part (system time: TCP sends to the subscribers' sockets). */
  gatewaySystemMs: number;
  readersCpuMs: number;
  /** The machine's 1-minute load average at the end (other work on the same cores stretches every figure above). */
  load: number;
  /** Linux CPU pressure (PSI "some", % of the last 10 s some task waited for a core), at the end; null where absent. */
  cpuPressure: number | null;
  received: number;
  expected: number;
}

/**
 * Opens `subscribers` streams from `readers` child processes (bench/stream-reader.ts), then publishes `changes`
 * score changes `gapMs` apart per round, each stamped with CLOCK_MONOTONIC (ns) in its modelVersion.
 */
export async function streamFanout(
  gw: Gateway,
  creds: Creds & { ca: string },
  opts: { subscribers: number; readers: number; rounds: number; changes: number; gapMs: number },
): Promise<FanoutResult> {
  const children = Array.from({ length: opts.readers }, () => fork(fileURLToPath(new URL('./stream-reader.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const failed = new Promise<never>((_, reject) => {
    for (const child of children) {
      child.on('message', (m: ReaderReply) => m.type === 'error' && reject(new Error(`stream reader: ${m.message}`)));
      child.on('exit', (code) => code && reject(new Error(`stream reader exited with ${code}`)));
    }
  });
  failed.catch(() => {});
  const next = <T extends ReaderReply['type']>(child: ChildProcess, type: T) =>
    Promise.race([failed, new Promise<Extract<ReaderReply, { type: T }>>((resolve) => {
      const on = (m: ReaderReply) => m.type === type && (child.off('message', on), resolve(m as Extract<ReaderReply, { type: T }>));
      child.on('message', on);
    })]);
  const gatewayTimes: number[] = [];
  let stop: (() => void) | undefined;
  try {
    const per = Math.ceil(opts.subscribers / opts.readers);
    const counts = children.map((_, i) => Math.max(0, Math.min(per, opts.subscribers - i * per)));
    for (const [i, child] of children.entries()) {
      child.send({ type: 'open', port: gw.httpsPort, path: `${API_PREFIX}/trust/stream`, ca: creds.ca, cert: creds.cert, key: creds.key, count: counts[i]! } satisfies ReaderRequest);
      // One reader at a time: stay under the gateway's connect rate per source.
      await next(child, 'ready');
    }
    // Registered after the streams' own listener: it runs once every subscriber's write has returned.
    stop = gw.trust.onEvent((e) => {
      const stamp = e.kind === 'score' ? /^bench-(\d+)$/.exec(e.data.modelVersion) : null;
      if (stamp) gatewayTimes.push(Number(process.hrtime.bigint() - BigInt(stamp[1]!)) / 1e6);
    });
    const collect = () => Promise.all(children.map((c) => (c.send({ type: 'round' } satisfies ReaderRequest), next(c, 'round'))));
    // A warm-up round, not counted (the first events run the write path cold), then measuring starts.
    for (let i = 0; i < Math.min(5, opts.changes); i++) {
      publishScore(gw, 'bench-0', i % 2 ? 0.9 : 0.3, `bench-${process.hrtime.bigint()}`);
      await new Promise((resolve) => setTimeout(resolve, opts.gapMs));
    }
    await collect();
    gatewayTimes.length = 0;
    const p50s: number[] = [];
    const p99s: number[] = [];
    let received = 0;
    // The gateway's CPU with the streams open and no change (timers, polls), over as long as a round: subtracted
    // below, so the per-change figure is the fan-out's own.
    const idleFrom = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, opts.changes * opts.gapMs));
    const idle = process.cpuUsage(idleFrom);
    await collect();
    let readersCpu = 0;
    const cpu = process.cpuUsage();
    for (let r = 0; r < opts.rounds; r++) {
      for (let i = 0; i < opts.changes; i++) {
        publishScore(gw, 'bench-0', i % 2 ? 0.9 : 0.3, `bench-${process.hrtime.bigint()}`);
        await new Promise((resolve) => setTimeout(resolve, opts.gapMs));
      }
      const replies = await collect();
      const bad = replies.reduce((n, m) => n + m.malformed, 0);
      if (bad) throw new Error(`${bad} malformed score events`);
      const latencies = replies.flatMap((m) => m.latencies).sort((a, b) => a - b);
      received += latencies.length;
      readersCpu += replies.reduce((n, m) => n + m.cpuMs, 0);
      p50s.push(percentile(latencies, 50));
      p99s.push(percentile(latencies, 99));
    }
    const used = process.cpuUsage(cpu);
    const median = (v: number[]) => percentile([...v].sort((a, b) => a - b), 50);
    const changes = opts.rounds * opts.changes;
    return {
      gatewayCpuMs: (used.user + used.system - opts.rounds * (idle.user + idle.system)) / 1000 / changes,
      gatewaySystemMs: (used.system - opts.rounds * idle.system) / 1000 / changes,
      readersCpuMs: readersCpu / changes,
      load: loadavg()[0]!,
      cpuPressure: cpuPressure(),
      p50: median(p50s),
      p99: median(p99s),
      rounds: p99s,
      gatewayP99: percentile(gatewayTimes.sort((a, b) => a - b), 99),
      received,
      expected: opts.subscribers * opts.changes * opts.rounds,
    };
  } finally {
    stop?.();
    for (const child of children) if (child.connected) child.send({ type: 'exit' } satisfies ReaderRequest);
    await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  }
}

function cpuPressure(): number | null {
  try {
    const m = /^some avg10=([\d.]+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
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
      const fan = await streamFanout(gw, { ...creds, ca: gw.caPem }, { subscribers, readers: 4, rounds: quick ? 3 : 7, changes: quick ? 10 : 20, gapMs: 100 });
      result.measurements.push({ name: `score → ${subscribers} stream subscribers p50 (median of rounds)`, value: fan.p50, unit: 'ms' });
      result.measurements.push({ name: `score → ${subscribers} stream subscribers p99 (median of rounds)`, value: fan.p99, unit: 'ms' });
      result.measurements.push({ name: 'score events received', value: fan.received, unit: `of ${fan.expected}` });
      result.measurements.push({ name: `gateway side: publish → ${subscribers} writes done, p99`, value: fan.gatewayP99, unit: 'ms' });
      result.measurements.push({ name: `gateway CPU per change (${subscribers} subscribers)`, value: fan.gatewayCpuMs, unit: 'ms' });
      result.measurements.push({ name: `  of which kernel (TCP sends)`, value: fan.gatewaySystemMs, unit: 'ms' });
      result.measurements.push({ name: `readers' CPU per change (${subscribers} subscribers)`, value: fan.readersCpuMs, unit: 'ms' });
      result.measurements.push({ name: 'load average (1 min) on this machine', value: fan.load, unit: `on ${availableParallelism()} cores` });
      if (fan.cpuPressure !== null) result.measurements.push({ name: 'CPU pressure (PSI some, 10 s)', value: fan.cpuPressure, unit: '% of time a task waited for a core' });
      result.goals.push({
        name: `score change → ${subscribers} subscribers p99 ≤ 50 ms`,
        met: fan.p99 <= 50 && fan.received === fan.expected,
        detail:
          `median p99 ${fan.p99.toFixed(1)} ms; rounds' p99 ${fan.rounds.map((r) => r.toFixed(1)).join(', ')} ms; gateway side p99 ${fan.gatewayP99.toFixed(1)} ms; ` +
          `CPU per change: gateway ${fan.gatewayCpuMs.toFixed(1)} ms, readers ${fan.readersCpuMs.toFixed(1)} ms; load ${fan.load.toFixed(1)} on ${availableParallelism()} cores` +
          `${fan.cpuPressure !== null ? `, CPU pressure ${fan.cpuPressure.toFixed(0)} %` : ''}; ${fan.received}/${fan.expected} events`,
      });

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
