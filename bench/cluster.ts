/**
 * `npm run bench -- cluster [--rounds N] [--seconds S]`: two `wott gateway` processes on one Redis against one
 * `wott gateway` process without Redis, in the same run.
 *
 * Every broker node is a process of its own, and so is each side of the load (bench/cluster-load.ts: one publisher
 * process, one receiver process): the event loop that stamps a message's arrival runs neither a broker nor the
 * publisher. Send and arrival are stamped on CLOCK_MONOTONIC (process.hrtime), the same clock in every process.
 * Between phases the bench drains (waits until every message sent has arrived, or 10 s) and settles (waits until the
 * nodes and Redis are idle again). For each phase it reports the generator's own event-loop utilisation, the CPU of
 * every node and of Redis, and how busy the whole machine was, so a reader can see what was saturated.
 *
 * Per round:
 *  1. Single-node delivery rate: one publisher floods QoS 0 (bounded in flight) to one receiver on the same node.
 *  2. The same across nodes (publisher on node A, receiver on node B): the rate ratio.
 *  3. End-to-end latency at half the round's single-node rate: on the single node; on node A alone (publisher and
 *     receiver on the cluster's node A: what the cluster costs a message that does not cross); across nodes (the
 *     message crosses Redis). p50 / p99 / max. Goal: the median over rounds of the cross-node p99 <= 10 ms.
 *  4. Across nodes at a light 100 msg/s: what the hop costs when nothing is busy.
 * Once, after the rounds: across nodes at half the rate with Redis' appendfsync everysec (diagnostic: what the fsync
 * of every write costs; the durable setting, and the bench's, is always).
 *
 * Then, in this process: revocation through node A -> the session held by node B closed (p99; goal <= 1 s), and
 * `wott gateway --workers 2` against `--workers 1` (both on Redis): 10 publishers -> 10 subscribers at QoS 0, the
 * load generator in a worker thread of this process, messages delivered per second.
 *
 * Enrollments on PostgreSQL against SQLite: `npm run bench -- store`.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { CertificateAuthority } from '../ca/index.js';
import { quietGatewayOptions, startGateway, type Gateway, type GatewayOptions } from '../gateway/index.js';
import { connectTo, enrollDevice, runLoad, type Creds } from './broker.js';
import type { LoadClient, LoadCommand, LoadReply } from './cluster-load.js';
import { numberOptions, ratio, type Suite, type SuiteResult } from './harness.js';
import { redisServer } from './servers.js';

/** The light load of the diagnostic cross-node latency run (msg/s). */
const LIGHT_RATE = 100;
/** Messages a flood keeps in flight (sent, not yet counted by the receiver). */
const FLOOD_WINDOW = 2000;
/** How long a phase may take to drain before its missing messages count as lost. */
const DRAIN_MS = 10_000;
const POLICY_LINE = '  - { topic: "bench/#", publish: 0.4, subscribe: 0.4 }';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!);
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
const CLI = fileURLToPath(new URL('../cli/wott.js', import.meta.url));
const LOAD = fileURLToPath(new URL('./cluster-load.js', import.meta.url));
const log = (msg: string) => process.stderr.write(`cluster: ${msg}\n`);

// ------------------------------------------------------------------ CPU from /proc

/** utime + stime of a process, in clock ticks (USER_HZ: 100 per second on Linux). */
function processTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Busy and total ticks of the whole machine (every CPU), from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

const loadAverage = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/** CPU use of named processes (% of one core) and of the machine (% of all cores) between start() and stop(). */
function cpuWindow(pids: Record<string, number>) {
  let t0 = 0;
  let p0: Record<string, number> = {};
  let m0 = machineTicks();
  return {
    start() {
      t0 = performance.now();
      p0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, processTicks(pid)]));
      m0 = machineTicks();
    },
    stop(): { perProcess: Record<string, number>; machine: number } {
      const wallTicks = (performance.now() - t0) / 10;
      const m1 = machineTicks();
      return {
        perProcess: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, ((processTicks(pid) - p0[k]!) / wallTicks) * 100])),
        machine: ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 100,
      };
    },
  };
}

// ------------------------------------------------------------------ gateway processes

interface NodeProcess {
  pid: number;
  mqttPort: number;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => (clearTimeout(killer), resolve()));
    child.kill('SIGTERM');
  });
}

/** `wott gateway` as a process with `configLines` as its wott.yaml; resolves once it listens. */
function startNode(dir: string, name: string, dataDir: string, configLines: string[]): Promise<NodeProcess> {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, [...configLines, ''].join('\n'), { mode: 0o600 });
  const child = spawn(process.execPath, [CLI, 'gateway', '--data', dataDir, '--config', config, '--https-port', '0', '--mqtt-port', '0', '--metrics-port', '0', '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  // For diagnosis: WOTT_BENCH_CLUSTER_LOGS names a folder that gets each node's whole log (NAME.log).
  const logs = process.env.WOTT_BENCH_CLUSTER_LOGS;
  const keep = (line: string) => {
    if (logs) appendFileSync(join(logs, `${name}.log`), `${line}\n`);
    tail.push(line);
    if (tail.length > 30) tail.shift();
  };
  return new Promise((resolve, reject) => {
    let listening = false;
    const timer = setTimeout(() => void stopChild(child).then(() => reject(new Error(`${name}: not listening within 60 s: ${tail.join('\n')}`))), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      const m = /"mqtt":(\d+)/.exec(line);
      if (!listening && m && line.includes('gateway listening')) {
        listening = true;
        clearTimeout(timer);
        resolve({ pid: child.pid!, mqttPort: Number(m[1]), stop: () => stopChild(child) });
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => keep(chunk.toString()));
    child.once('exit', (code) => {
      if (!listening) reject(new Error(`${name} exited (${code}) before listening: ${tail.join('\n')}`));
      else log(`${name} exited (${code})`);
    });
  });
}

/** Device credentials from the CA in `dataDir` (a gateway already made it), and that CA's certificates. */
async function credentials(dataDir: string, ids: string[]): Promise<{ ca: string; creds: Map<string, Creds> }> {
  const authority = await CertificateAuthority.open({ dataDir, create: false });
  try {
    const asGateway = { ca: authority } as unknown as Gateway;
    const creds = new Map<string, Creds>();
    for (const id of ids) creds.set(id, await enrollDevice(asGateway, id));
    return { ca: authority.caCertificates().map((c) => c.toString()).join(''), creds };
  } finally {
    await authority.close();
  }
}

// ------------------------------------------------------------------ the load generator processes

interface LoadProcess {
  pid: number;
  send(command: LoadCommand): void;
  /** The next reply of this type. */
  next<T extends LoadReply['type']>(type: T, timeoutMs?: number): Promise<Extract<LoadReply, { type: T }>>;
  onCount(listener: ((phase: number, received: number) => void) | undefined): void;
  stop(): Promise<void>;
}

function startLoad(role: string): LoadProcess {
  const child = fork(LOAD, [role], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<string, { resolve: (m: LoadReply) => void; reject: (err: Error) => void }>();
  let countListener: ((phase: number, received: number) => void) | undefined;
  const failAll = (err: Error) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  child.on('message', (m: LoadReply) => {
    if (m.type === 'count') return countListener?.(m.phase, m.received);
    if (m.type === 'error') return failAll(new Error(`load ${role}: ${m.message}`));
    const w = waiting.get(m.type);
    waiting.delete(m.type);
    w?.resolve(m);
  });
  child.once('exit', (code) => failAll(new Error(`load ${role} exited (${code})`)));
  return {
    pid: child.pid!,
    send: (command) => void child.send(command),
    next<T extends LoadReply['type']>(type: T, timeoutMs = 60_000) {
      return new Promise<Extract<LoadReply, { type: T }>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`load ${role}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
        waiting.set(type, {
          resolve: (m) => (clearTimeout(timer), resolve(m as Extract<LoadReply, { type: T }>)),
          reject: (err) => (clearTimeout(timer), reject(err)),
        });
      });
    },
    onCount: (listener) => void (countListener = listener),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      if (child.connected) child.send({ type: 'end' } satisfies LoadCommand);
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

// ------------------------------------------------------------------ one phase

interface PhaseResult {
  sent: number;
  received: number;
  /** Sorted, ms. */
  latencies: number[];
  /** Delivered per second, from the first send to the last arrival. */
  rate: number;
  pubElu: number;
  subElu: number;
  /** % of one core, per watched process. */
  cpu: Record<string, number>;
  /** % of all the machine's cores, every process included. */
  machine: number;
  /** The longest fsync Redis reported (LATENCY, aof-fsync-always) during the phase, ms; 0 if none reached 1 ms. */
  fsyncMaxMs: number;
}

interface Rig {
  pub: LoadProcess;
  sub: LoadProcess;
  admin: Redis;
  pids: Record<string, number>;
}

let phaseCounter = 0;

async function fsyncMaxMs(admin: Redis): Promise<number> {
  const latest = (await admin.call('LATENCY', 'LATEST')) as Array<[string, number, number, number]>;
  const fsync = latest.find((e) => e[0] === 'aof-fsync-always');
  return fsync ? Number(fsync[3]) : 0;
}

/** Waits until every watched process used under 10% of a core for 100 ms (at most 3 s): the next phase starts idle. */
async function settle(pids: Record<string, number>): Promise<void> {
  const until = performance.now() + 3000;
  while (performance.now() < until) {
    const w = cpuWindow(pids);
    w.start();
    await sleep(100);
    if (Object.values(w.stop().perProcess).every((v) => v < 10)) return;
  }
}

async function phase(rig: Rig, load: { kind: 'flood'; ms: number } | { kind: 'paced'; ms: number; rate: number }, from: string, to: string): Promise<PhaseResult> {
  const id = ++phaseCounter;
  const topic = `bench/${to}/m`;
  rig.sub.send({ type: 'arm', phase: id });
  await rig.sub.next('armed');
  let counted = 0;
  let drained: (() => void) | undefined;
  let sentTotal = Infinity;
  rig.sub.onCount((p, received) => {
    if (p !== id) return;
    counted = received;
    if (load.kind === 'flood') rig.pub.send({ type: 'count', phase: id, received });
    if (counted >= sentTotal) drained?.();
  });
  await rig.admin.call('LATENCY', 'RESET');
  const cpu = cpuWindow(rig.pids);
  cpu.start();
  rig.pub.send(load.kind === 'flood' ? { type: 'flood', phase: id, client: from, topic, ms: load.ms, window: FLOOD_WINDOW } : { type: 'paced', phase: id, client: from, topic, rate: load.rate, ms: load.ms });
  const sent = await rig.pub.next('sent');
  sentTotal = sent.sent;
  // Drain: until every message sent has arrived (or DRAIN_MS; what is missing then is lost).
  if (counted < sentTotal) {
    await Promise.race([new Promise<void>((r) => (drained = r)), sleep(DRAIN_MS)]);
  }
  const usage = cpu.stop();
  rig.sub.onCount(undefined);
  rig.sub.send({ type: 'collect', phase: id });
  const got = await rig.sub.next('collected');
  const fsync = await fsyncMaxMs(rig.admin);
  await settle(rig.pids);
  return {
    sent: sent.sent,
    received: got.received,
    latencies: got.latenciesMs.sort((a, b) => a - b),
    rate: (got.received * 1000) / Math.max(1, got.lastMs - sent.startMs),
    pubElu: sent.elu,
    subElu: got.elu,
    cpu: usage.perProcess,
    machine: usage.machine,
    fsyncMaxMs: fsync,
  };
}

// ------------------------------------------------------------------ revocation and --workers (unchanged method)

function nodeOptions(dataDir: string, redis: string, nodeId: string): GatewayOptions {
  return { ...quietGatewayOptions(dataDir, [{ topic: 'bench/#', publish: 0.4, subscribe: 0.4 }]), cluster: { redis, nodeId, leaseMs: 3000 } };
}

const caOf = (gw: Gateway) => gw.ca.caCertificates().map((c) => c.toString()).join('');

/** Revocation through node A -> the session node B holds is closed, `trials` times; sorted ms. */
async function revocations(dir: string, redis: string, trials: number): Promise<number[]> {
  const a = await startGateway(nodeOptions(dir, redis, 'rev-a'));
  try {
    const b = await startGateway(nodeOptions(dir, redis, 'rev-b'));
    try {
      const times: number[] = [];
      const caB = caOf(b);
      for (let k = 0; k < trials; k++) {
        const creds = await enrollDevice(a, `rev-${k}`);
        const client = await connectTo(b.mqttPort, caB, creds);
        const closed = new Promise<number>((resolve, reject) => {
          client.once('close', () => resolve(performance.now()));
          setTimeout(() => reject(new Error(`session of ${creds.id} on node B still open 10 s after the revocation on node A`)), 10_000).unref();
        });
        const t = performance.now();
        await a.fleet.revoke({ deviceId: creds.id }, 'unspecified');
        times.push((await closed) - t);
        client.end(true);
      }
      return times.sort((x, y) => x - y);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}

/** `wott gateway --workers N` as a process; resolves when every worker listens, with the shared MQTT port. */
async function gatewayWithWorkers(dir: string, redis: string, workers: number): Promise<{ mqttPort: number; stop(): Promise<void> }> {
  const config = join(dir, 'wott.yaml');
  writeFileSync(config, `cluster:\n  redis: ${redis}\n  node: bench${workers}\npolicies:\n  - { topic: "weather/#", publish: 0.4, subscribe: 0.4 }\n`);
  const child = spawn(process.execPath, [CLI, 'gateway', '--data', join(dir, 'data'), '--config', config, '--workers', String(workers), '--https-port', '0', '--mqtt-port', '0', '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = () => stopChild(child);
  return new Promise((resolve, reject) => {
    let listening = 0;
    const timer = setTimeout(() => void stop().then(() => reject(new Error(`--workers ${workers}: not listening within 60 s`))), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"mqtt":(\d+)/.exec(line);
      if (m && line.includes('gateway listening') && ++listening === workers) {
        clearTimeout(timer);
        resolve({ mqttPort: Number(m[1]), stop });
      }
    });
    child.once('exit', (code) => reject(new Error(`--workers ${workers} exited (${code})`)));
  });
}

async function workersRate(dir: string, redis: string, workers: number, durationMs: number): Promise<number> {
  const gw = await gatewayWithWorkers(dir, redis, workers);
  try {
    const ids = Array.from({ length: 20 }, (_, i) => `w${workers}-${i}`);
    const { ca, creds } = await credentials(join(dir, 'data'), ids);
    const all = ids.map((id) => creds.get(id)!);
    const idle = { start() {}, stop: () => 0 };
    const outcome = await runLoad({ port: gw.mqttPort, ca, pubs: all.slice(0, 10), subs: all.slice(10), qos: 0, warmupMs: 1000, durationMs }, idle);
    return outcome.rate;
  } finally {
    await gw.stop();
  }
}

// ------------------------------------------------------------------ the suite

export const clusterSuite: Suite = {
  name: 'cluster',
  description: 'two gateway processes on Redis vs one: delivery rate, same-node and cross-node latency, cross-node revocation, --workers',
  async run({ quick, args }) {
    const options = numberOptions(args ?? [], 'cluster', ['rounds', 'seconds']);
    const rounds = Math.max(1, Math.round(options.get('rounds') ?? (quick ? 1 : 3)));
    const ms = (options.get('seconds') ?? (quick ? 1.5 : 3)) * 1000;
    const result: SuiteResult = { suite: 'cluster', measurements: [], ratios: [], goals: [] };
    const dir = mkdtempSync(join(tmpdir(), 'wott-bench-cluster-'));
    const cleanup: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
    const loadAtStart = loadAverage();
    try {
      const redis = await redisServer(mkdtempSync(join(dir, 'redis-')));
      cleanup.unshift(() => redis.stop());
      const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      cleanup.unshift(() => void admin.disconnect());
      // Redis records every event over 1 ms, fsyncs included (LATENCY LATEST): the bench reads the longest per phase.
      await admin.config('SET', 'latency-monitor-threshold', '1');

      const singleData = join(dir, 'single-data');
      const sharedData = join(dir, 'shared-data');
      const base = ['gateway:', '  bind: 127.0.0.1', 'audit:', '  schedule: false', 'policies:', POLICY_LINE];
      const nodes: NodeProcess[] = [];
      cleanup.unshift(() => Promise.all(nodes.map((n) => n.stop())).then(() => undefined));
      const single = await startNode(dir, 'single', singleData, base);
      nodes.push(single);
      const a = await startNode(dir, 'node-a', sharedData, [...base, 'cluster:', `  redis: ${redis.url}`, '  node: node-a']);
      nodes.push(a);
      const b = await startNode(dir, 'node-b', sharedData, [...base, 'cluster:', `  redis: ${redis.url}`, '  node: node-b']);
      nodes.push(b);

      const s = await credentials(singleData, ['single-pub', 'single-sub']);
      const c = await credentials(sharedData, ['a-pub', 'a-sub', 'b-sub']);
      const client = (name: string, port: number, from: { ca: string; creds: Map<string, Creds> }, filter?: string): LoadClient => {
        const cr = from.creds.get(name)!;
        return { name, port, ca: from.ca, key: cr.key, cert: cr.cert, clientId: cr.id, ...(filter ? { filter } : {}) };
      };
      const pub = startLoad('pub');
      const sub = startLoad('sub');
      cleanup.unshift(() => Promise.all([pub.stop(), sub.stop()]).then(() => undefined));
      // Receivers first, each on its own topic, so a phase's messages reach only the receiver it names.
      sub.send({ type: 'connect', clients: [client('single-sub', single.mqttPort, s, 'bench/single-sub/#'), client('a-sub', a.mqttPort, c, 'bench/a-sub/#'), client('b-sub', b.mqttPort, c, 'bench/b-sub/#')] });
      await sub.next('connected');
      pub.send({ type: 'connect', clients: [client('single-pub', single.mqttPort, s), client('a-pub', a.mqttPort, c)] });
      await pub.next('connected');
      const rig: Rig = { pub, sub, admin, pids: { single: single.pid, 'node A': a.pid, 'node B': b.pid, redis: redis.pid } };
      await settle(rig.pids);

      const runs = { singleFlood: [] as PhaseResult[], crossFlood: [] as PhaseResult[], single: [] as PhaseResult[], local: [] as PhaseResult[], cross: [] as PhaseResult[], light: [] as PhaseResult[] };
      const halves: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const sf = await phase(rig, { kind: 'flood', ms }, 'single-pub', 'single-sub');
        runs.singleFlood.push(sf);
        runs.crossFlood.push(await phase(rig, { kind: 'flood', ms }, 'a-pub', 'b-sub'));
        const half = Math.max(100, Math.floor(sf.rate / 2));
        halves.push(half);
        runs.single.push(await phase(rig, { kind: 'paced', ms, rate: half }, 'single-pub', 'single-sub'));
        runs.local.push(await phase(rig, { kind: 'paced', ms, rate: half }, 'a-pub', 'a-sub'));
        runs.cross.push(await phase(rig, { kind: 'paced', ms, rate: half }, 'a-pub', 'b-sub'));
        runs.light.push(await phase(rig, { kind: 'paced', ms, rate: LIGHT_RATE }, 'a-pub', 'b-sub'));
        const x = runs.cross[r]!;
        log(`round ${r + 1}: single ${sf.rate.toFixed(0)}/s; at ${half}/s cross p50 ${percentile(x.latencies, 50).toFixed(1)} p99 ${percentile(x.latencies, 99).toFixed(1)} max ${percentile(x.latencies, 100).toFixed(1)} ms; pub ${x.pubElu.toFixed(2)} sub ${x.subElu.toFixed(2)} ELU; CPU A ${x.cpu['node A']!.toFixed(0)}% B ${x.cpu['node B']!.toFixed(0)}% redis ${x.cpu.redis!.toFixed(0)}%; machine ${x.machine.toFixed(0)}%; fsync max ${x.fsyncMaxMs} ms`);
      }
      // Diagnostic: the same cross-node run with fsync once a second instead of on every write.
      await admin.config('SET', 'appendfsync', 'everysec');
      const everysec = await phase(rig, { kind: 'paced', ms, rate: median(halves) }, 'a-pub', 'b-sub');
      await admin.config('SET', 'appendfsync', 'always');
      const loadAtEnd = loadAverage();
      await Promise.all([pub.stop(), sub.stop()]);
      await Promise.all(nodes.splice(0).map((n) => n.stop()));

      const med = (list: PhaseResult[], f: (p: PhaseResult) => number) => median(list.map(f));
      const p = (q: number) => (x: PhaseResult) => percentile(x.latencies, q);
      const lost = Object.values(runs).flat().concat(everysec).reduce((n, x) => n + (x.sent - x.received), 0);
      result.measurements.push(
        { name: 'single node, delivered QoS 0 (median of rounds)', value: med(runs.singleFlood, (x) => x.rate), unit: 'msg/s', baseline: true },
        { name: 'cross node via Redis, delivered QoS 0', value: med(runs.crossFlood, (x) => x.rate), unit: 'msg/s' },
        { name: 'single-node flood: the node\'s CPU', value: med(runs.singleFlood, (x) => x.cpu.single!), unit: '% core' },
        { name: 'single-node flood: publisher event-loop utilisation', value: med(runs.singleFlood, (x) => x.pubElu * 100), unit: '%' },
        { name: 'single-node flood: receiver event-loop utilisation', value: med(runs.singleFlood, (x) => x.subElu * 100), unit: '%' },
        { name: 'cross-node flood: node A CPU', value: med(runs.crossFlood, (x) => x.cpu['node A']!), unit: '% core' },
        { name: 'cross-node flood: node B CPU', value: med(runs.crossFlood, (x) => x.cpu['node B']!), unit: '% core' },
        { name: 'cross-node flood: Redis CPU', value: med(runs.crossFlood, (x) => x.cpu.redis!), unit: '% core' },
        { name: 'half the single rate (the paced runs\' rate, median)', value: median(halves), unit: 'msg/s' },
        { name: 'same node (single) at half rate, p50', value: med(runs.single, p(50)), unit: 'ms' },
        { name: 'same node (single) at half rate, p99', value: med(runs.single, p(99)), unit: 'ms' },
        { name: 'same node (single) at half rate, max', value: med(runs.single, p(100)), unit: 'ms' },
        { name: 'same node in the cluster (A -> A) at half rate, p50', value: med(runs.local, p(50)), unit: 'ms' },
        { name: 'same node in the cluster (A -> A) at half rate, p99', value: med(runs.local, p(99)), unit: 'ms' },
        { name: 'cross node (A -> Redis -> B) at half rate, p50', value: med(runs.cross, p(50)), unit: 'ms' },
        { name: 'cross node (A -> Redis -> B) at half rate, p99', value: med(runs.cross, p(99)), unit: 'ms' },
        { name: 'cross node (A -> Redis -> B) at half rate, max', value: med(runs.cross, p(100)), unit: 'ms' },
        // Both runs of a round share the machine's load of the moment: their ratio is what crossing costs.
        { name: 'cross-node p99 / single-node p99 at half rate, same round (median of rounds)', value: median(runs.cross.map((x, r) => p(99)(x) / p(99)(runs.single[r]!))), unit: 'x' },
        { name: 'cross node at half rate: node A CPU', value: med(runs.cross, (x) => x.cpu['node A']!), unit: '% core' },
        { name: 'cross node at half rate: node B CPU', value: med(runs.cross, (x) => x.cpu['node B']!), unit: '% core' },
        { name: 'cross node at half rate: Redis CPU', value: med(runs.cross, (x) => x.cpu.redis!), unit: '% core' },
        { name: 'cross node at half rate: publisher event-loop utilisation', value: med(runs.cross, (x) => x.pubElu * 100), unit: '%' },
        { name: 'cross node at half rate: receiver event-loop utilisation', value: med(runs.cross, (x) => x.subElu * 100), unit: '%' },
        { name: 'cross node at half rate: whole machine busy (all processes, both cores)', value: med(runs.cross, (x) => x.machine), unit: '%' },
        { name: 'cross node at half rate: longest Redis fsync (LATENCY)', value: med(runs.cross, (x) => x.fsyncMaxMs), unit: 'ms' },
        { name: `cross node at ${LIGHT_RATE} msg/s, p50`, value: med(runs.light, p(50)), unit: 'ms' },
        { name: `cross node at ${LIGHT_RATE} msg/s, p99`, value: med(runs.light, p(99)), unit: 'ms' },
        { name: 'cross node at half rate with appendfsync everysec (diagnostic, one run), p99', value: percentile(everysec.latencies, 99), unit: 'ms' },
        { name: 'messages sent but not delivered, all phases', value: lost, unit: 'msg' },
        { name: 'machine load average (1 min) at the start', value: loadAtStart, unit: '' },
        { name: 'machine load average (1 min) after the latency runs', value: loadAtEnd, unit: '' },
      );
      ratio(result, 'cross-node vs single-node delivery rate', 'cross node via Redis, delivered QoS 0', 'single node, delivered QoS 0 (median of rounds)');
      const crossP99 = runs.cross.map(p(99));
      const crossP99Median = median(crossP99);
      result.goals.push({
        name: 'cross-node p99 <= 10 ms at half the single-node rate',
        met: crossP99Median <= 10,
        detail: `${crossP99Median.toFixed(2)} ms, median of ${rounds} round(s): ${crossP99.map((v) => v.toFixed(1)).join(', ')} at ${halves.join(', ')} msg/s`,
      });

      // Revocation through A, session on B: B follows the shared store's change feed.
      const trials = quick ? 10 : 30;
      const rev = await revocations(mkdtempSync(join(dir, 'rev-')), redis.url, trials);
      result.measurements.push(
        { name: 'revocation on node A -> session on node B closed, p50', value: percentile(rev, 50), unit: 'ms' },
        { name: 'revocation on node A -> session on node B closed, p99', value: percentile(rev, 99), unit: 'ms' },
      );
      const revP99 = percentile(rev, 99);
      result.goals.push({ name: 'cross-node revocation p99 <= 1 s', met: revP99 <= 1000, detail: `${revP99.toFixed(0)} ms over ${trials} trials` });

      // --workers: processes of their own (node:cluster shares the ports), one after the other.
      const one: number[] = [];
      const two: number[] = [];
      for (let r = 0; r < rounds; r++) {
        one.push(await workersRate(mkdtempSync(join(dir, 'w1-')), redis.url, 1, ms));
        two.push(await workersRate(mkdtempSync(join(dir, 'w2-')), redis.url, 2, ms));
      }
      result.measurements.push(
        { name: 'gateway --workers 1, delivered QoS 0 (10 -> 10)', value: median(one), unit: 'msg/s', baseline: true },
        { name: 'gateway --workers 2, delivered QoS 0 (10 -> 10)', value: median(two), unit: 'msg/s' },
      );
      ratio(result, '--workers 2 vs --workers 1', 'gateway --workers 2, delivered QoS 0 (10 -> 10)', 'gateway --workers 1, delivered QoS 0 (10 -> 10)');
    } finally {
      for (const step of cleanup) await step();
    }
    return result;
  },
};
