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
 *     the median of the rounds' p99s. Goal: ≤ 50 ms. Baseline in the same run, rounds alternating: a bare
 *     node:https SSE server writing one event of the same size to 1,000 sockets of its own. Reported beside: the
 *     server's own part (publish → the last subscriber's write returned), CPU per change of server and readers,
 *     the load average and CPU pressure (on a shared machine, waiting for a core is most of every figure).
 *  3. `GET /api/v1/devices` with 100,000 devices in the inventory, filtered, sorted, one page, sequential requests
 *     over keep-alive HTTPS, p99. Goal: ≤ 50 ms.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, request, Agent, type Server } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { quietGatewayOptions, startGateway, type Gateway } from '../gateway/index.js';
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
    ...quietGatewayOptions(dir, [{ topic: 'weather/#', publish: 0.4, subscribe: 0.4 }]),
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

/** Where stream subscribers connect, and how a change is made there. */
export interface FanoutTarget {
  name: string;
  port: number;
  path: string;
  /** Makes the i-th change, whose `score` event carries `modelVersion`. */
  publish(modelVersion: string, i: number): void;
  /** Calls back once the server has written the event of `modelVersion` to every subscriber. */
  onWritten(listener: (modelVersion: string) => void): () => void;
}

export interface FanoutResult {
  name: string;
  /** Median over rounds of each round's p50 / p99 (ms, every subscriber × change of the round). */
  p50: number;
  p99: number;
  /** Each round's p99. */
  rounds: number[];
  /** p99 over every change of publish → the server's write to the last subscriber returned. */
  serverP99: number;
  /**
   * CPU time per change (ms, user + system): this process during the target's rounds less what it spends with the
   * streams open and nothing changing (the server's fan-out; the gateway and the bare server both run here), and
   * all of the target's readers together.
   */
  serverCpuMs: number;
  /** Of serverCpuMs, the kernel's part (system time: mostly the TCP sends to the subscribers' sockets). */
  serverSystemMs: number;
  readersCpuMs: number;
  received: number;
  expected: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Opens `subscribers` streams to each target from `readers` child processes each (bench/stream-reader.ts), then
 * runs `rounds` rounds per target, alternating between targets (so load that comes and goes on the machine weighs
 * on each alike): `changes` changes `gapMs` apart, each stamped with CLOCK_MONOTONIC (ns) in its modelVersion.
 */
export async function streamFanout(
  targets: FanoutTarget[],
  creds: Creds & { ca: string },
  opts: { subscribers: number; readers: number; rounds: number; changes: number; gapMs: number },
): Promise<FanoutResult[]> {
  const readerPath = fileURLToPath(new URL('./stream-reader.js', import.meta.url));
  const all: ChildProcess[] = [];
  const failed = new Promise<never>((_, reject) => {
    for (let i = 0; i < targets.length * opts.readers; i++) {
      const child = fork(readerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (m: ReaderReply) => m.type === 'error' && reject(new Error(`stream reader: ${m.message}`)));
      child.on('exit', (code) => code && reject(new Error(`stream reader exited with ${code}`)));
      all.push(child);
    }
  });
  failed.catch(() => {});
  const next = <T extends ReaderReply['type']>(child: ChildProcess, type: T) =>
    Promise.race([
      failed,
      new Promise<Extract<ReaderReply, { type: T }>>((resolve) => {
        const on = (m: ReaderReply) => m.type === type && (child.off('message', on), resolve(m as Extract<ReaderReply, { type: T }>));
        child.on('message', on);
      }),
    ]);
  const state = targets.map((target, t) => ({
    target,
    children: all.slice(t * opts.readers, (t + 1) * opts.readers),
    written: [] as number[],
    p50s: [] as number[],
    p99s: [] as number[],
    received: 0,
    readersCpu: 0,
    cpu: { user: 0, system: 0 },
    stop: undefined as (() => void) | undefined,
  }));
  const collect = (children: ChildProcess[]) => Promise.all(children.map((c) => (c.send({ type: 'round' } satisfies ReaderRequest), next(c, 'round'))));
  const changes = async (s: (typeof state)[number], n: number) => {
    for (let i = 0; i < n; i++) {
      s.target.publish(`bench-${process.hrtime.bigint()}`, i);
      await sleep(opts.gapMs);
    }
  };
  try {
    const per = Math.ceil(opts.subscribers / opts.readers);
    for (const s of state) {
      for (const [i, child] of s.children.entries()) {
        const count = Math.max(0, Math.min(per, opts.subscribers - i * per));
        child.send({ type: 'open', port: s.target.port, path: s.target.path, ca: creds.ca, cert: creds.cert, key: creds.key, count } satisfies ReaderRequest);
        // One reader at a time: stay under the gateway's connect rate per source.
        await next(child, 'ready');
      }
      // Registered after the server's own listener: it runs once every subscriber's write has returned.
      s.stop = s.target.onWritten((modelVersion) => {
        const stamp = /^bench-(\d+)$/.exec(modelVersion);
        if (stamp) s.written.push(Number(process.hrtime.bigint() - BigInt(stamp[1]!)) / 1e6);
      });
      // A warm-up round, not counted (the first events run the write path cold); measuring starts with its collect.
      await changes(s, Math.min(5, opts.changes));
      await collect(s.children);
      s.written.length = 0;
    }
    // This process's CPU with every stream open and no change (timers, polls), over as long as a round.
    const idleFrom = process.cpuUsage();
    await sleep(opts.changes * opts.gapMs);
    const idle = process.cpuUsage(idleFrom);
    for (const s of state) await collect(s.children);
    for (let r = 0; r < opts.rounds; r++) {
      for (const s of state) {
        const from = process.cpuUsage();
        await changes(s, opts.changes);
        const used = process.cpuUsage(from);
        s.cpu.user += used.user - idle.user;
        s.cpu.system += used.system - idle.system;
        const replies = await collect(s.children);
        const bad = replies.reduce((n, m) => n + m.malformed, 0);
        if (bad) throw new Error(`${s.target.name}: ${bad} malformed score events`);
        const latencies = replies.flatMap((m) => m.latencies).sort((a, b) => a - b);
        s.received += latencies.length;
        s.readersCpu += replies.reduce((n, m) => n + m.cpuMs, 0);
        s.p50s.push(percentile(latencies, 50));
        s.p99s.push(percentile(latencies, 99));
      }
    }
    const median = (v: number[]) => percentile([...v].sort((a, b) => a - b), 50);
    const count = opts.rounds * opts.changes;
    return state.map((s) => ({
      name: s.target.name,
      p50: median(s.p50s),
      p99: median(s.p99s),
      rounds: s.p99s,
      serverP99: percentile(s.written.sort((a, b) => a - b), 99),
      serverCpuMs: (s.cpu.user + s.cpu.system) / 1000 / count,
      serverSystemMs: s.cpu.system / 1000 / count,
      readersCpuMs: s.readersCpu / count,
      received: s.received,
      expected: opts.subscribers * count,
    }));
  } finally {
    for (const s of state) s.stop?.();
    for (const child of all) if (child.connected) child.send({ type: 'exit' } satisfies ReaderRequest);
    await Promise.all(all.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  }
}

/** The gateway as a fan-out target: score changes published into its broker, events on /trust/stream. */
export function gatewayTarget(gw: Gateway): FanoutTarget {
  return {
    name: 'gateway /trust/stream',
    port: gw.httpsPort,
    path: `${API_PREFIX}/trust/stream`,
    publish: (modelVersion, i) => publishScore(gw, 'bench-0', i % 2 ? 0.9 : 0.3, modelVersion),
    onWritten: (listener) => gw.trust.onEvent((e) => e.kind === 'score' && listener(e.data.modelVersion)),
  };
}

/**
 * The baseline: a bare node:https server on the gateway's TLS settings that holds SSE responses and, for each
 * change, writes one event of the same shape and size to every socket, formatted once (the least any node:https
 * event stream can do per subscriber: one TLS write).
 */
async function bareStreamServer(gw: Gateway & { caPem: string }): Promise<{ server: Server; target: FanoutTarget }> {
  const issued = await gw.ca.issueServer(['localhost']);
  const sockets = new Set<Socket>();
  const listeners = new Set<(modelVersion: string) => void>();
  const server = createServer({ key: issued.keyPem, cert: issued.pem + gw.ca.material.intermediate.toString(), ca: gw.caPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store' });
    res.write('retry: 1000\n\nid: 0\nevent: ready\ndata: {"position":0,"resumed":false}\n\n');
    const socket = res.socket!;
    socket.setNoDelay(true);
    sockets.add(socket);
    res.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let seq = 0;
  const target: FanoutTarget = {
    name: 'bare node:https SSE',
    port: (server.address() as AddressInfo).port,
    path: '/',
    publish: (modelVersion, i) => {
      const data = { device: 'bench-0', score: i % 2 ? 0.9 : 0.3, rawScore: i % 2 ? 0.9 : 0.3, state: 'active', modelVersion, scoredAt: new Date().toISOString() };
      const body = Buffer.from(`id: ${++seq}-bare-${seq}\nevent: score\ndata: ${JSON.stringify(data)}\n\n`);
      const chunk = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')]);
      for (const socket of sockets) socket.write(chunk);
      for (const listener of listeners) listener(modelVersion);
    },
    onWritten: (listener) => (listeners.add(listener), () => listeners.delete(listener)),
  };
  return { server, target };
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
      const bareStream = await bareStreamServer(gw);
      const [bareFan, fan] = await streamFanout([bareStream.target, gatewayTarget(gw)], { ...creds, ca: gw.caPem }, { subscribers, readers: 4, rounds: quick ? 3 : 7, changes: quick ? 10 : 20, gapMs: 100 });
      bareStream.server.close();
      bareStream.server.closeAllConnections();
      const load = loadavg()[0]!;
      const pressure = cpuPressure();
      for (const f of [bareFan!, fan!]) {
        const baseline = f === bareFan;
        const who = baseline ? 'bare node:https SSE' : 'gateway';
        result.measurements.push({ name: `${who}: change → ${subscribers} subscribers p50 (median of rounds)`, value: f.p50, unit: 'ms' });
        result.measurements.push({ name: `${who}: change → ${subscribers} subscribers p99 (median of rounds)`, value: f.p99, unit: 'ms', ...(baseline ? { baseline: true } : {}) });
        result.measurements.push({ name: `${who}: events received`, value: f.received, unit: `of ${f.expected}` });
        result.measurements.push({ name: `${who}: publish → ${subscribers} writes done, p99`, value: f.serverP99, unit: 'ms' });
        result.measurements.push({ name: `${who}: server CPU per change`, value: f.serverCpuMs, unit: `ms (kernel ${f.serverSystemMs.toFixed(1)} ms)` });
        result.measurements.push({ name: `${who}: readers' CPU per change`, value: f.readersCpuMs, unit: 'ms' });
      }
      result.measurements.push({ name: 'load average (1 min) on this machine', value: load, unit: `on ${availableParallelism()} cores` });
      if (pressure !== null) result.measurements.push({ name: 'CPU pressure (PSI some, 10 s)', value: pressure, unit: '% of time a task waited for a core' });
      ratio(result, 'stream fan-out p99 vs bare node:https SSE', `gateway: change → ${subscribers} subscribers p99 (median of rounds)`, `bare node:https SSE: change → ${subscribers} subscribers p99 (median of rounds)`);
      result.goals.push({
        name: `score change → ${subscribers} subscribers p99 ≤ 50 ms`,
        met: fan!.p99 <= 50 && fan!.received === fan!.expected,
        detail:
          `median p99 ${fan!.p99.toFixed(1)} ms (bare node:https SSE in the same run: ${bareFan!.p99.toFixed(1)} ms); rounds' p99 ${fan!.rounds.map((r) => r.toFixed(1)).join(', ')} ms; ` +
          `gateway side p99 ${fan!.serverP99.toFixed(1)} ms; CPU per change: gateway ${fan!.serverCpuMs.toFixed(1)} ms (bare ${bareFan!.serverCpuMs.toFixed(1)} ms), readers ${fan!.readersCpuMs.toFixed(1)} ms; ` +
          `load ${load.toFixed(1)} on ${availableParallelism()} cores${pressure !== null ? `, CPU pressure ${pressure.toFixed(0)} %` : ''}; ${fan!.received}/${fan!.expected} events`,
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
