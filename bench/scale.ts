/**
 * `npm run bench -- scale [--devices N]` (issue 20): what holding many mTLS devices costs a `wott gateway` process
 * against plain Aedes behind node:tls (bench/soak-aedes.ts) with the same TLS settings and certificates, in one run.
 *
 * Every device has its own key and certificate (the gateway keys its rules and limits by identity), issued in
 * process from the gateway's own CA with one-time tokens before the ramp, while the gateway runs: it scores each
 * new device, as at an EST enrollment, before the first ramp. Per server, in turn (never both at once:
 * they would share the cores):
 *  1. ramp: every device connects (mTLS, MQTT 3.1.1, clean session as the agent does), `--concurrency` handshakes in
 *     flight per load thread: connections/s;
 *  2. hold for `--hold-seconds` while each device publishes one small QoS 1 message every `--publish-seconds`:
 *     RSS per held connection ((RSS held - RSS before the ramp) / devices), event-loop delay p99 over the hold;
 *  3. restart: the server process is stopped (SIGTERM) and started again on the same port and data; devices
 *     reconnect with jittered exponential backoff (250 ms doubling to 5 s, as a fleet's agents would): the time
 *     from the new process listening until every device is connected again.
 * The load lives in `--threads` worker threads of this process. It is not the bottleneck when the server's CPU
 * during the ramp is near one core (Node serves connections on one thread) while the load threads' event-loop
 * utilisation stays below 1; both are reported. Besides connections/s the ramp reports the server's CPU time per
 * connection set up: on a machine shared with other work the rate is set by every process on the cores, while the
 * CPU a server spends per connection is its own. `--rounds N` alternates the servers N times and reports medians.
 */
import mqtt from 'mqtt';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createCsr } from '../agent/index.js';
import { CertificateAuthority } from '../ca/index.js';
import { numberOptions, type Suite, type SuiteResult } from './harness.js';
import { freePort } from './servers.js';
import { procSample, scrape, startChild, statCpuSeconds, stopChild } from './soak.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ScaleOptions {
  devices: number;
  threads: number;
  /** Handshakes in flight per load thread during the ramp. */
  concurrency: number;
  holdSeconds: number;
  publishSeconds: number;
  /** Rounds, each measuring the gateway then plain Aedes; the figures are the rounds' medians. */
  rounds: number;
}

export function scaleOptions(args: string[]): ScaleOptions {
  const given = numberOptions(args, 'scale', ['devices', 'threads', 'concurrency', 'hold-seconds', 'publish-seconds', 'rounds']);
  const devices = Math.floor(given.get('devices') ?? 10_000);
  if (devices < 1) throw new Error('--devices: at least 1');
  return {
    devices,
    threads: Math.max(1, Math.floor(given.get('threads') ?? Math.min(4, devices))),
    concurrency: Math.max(1, Math.floor(given.get('concurrency') ?? 32)),
    holdSeconds: given.get('hold-seconds') ?? 60,
    // One telemetry message per device per 30 s: a sensor's rate.
    publishSeconds: given.get('publish-seconds') ?? 30,
    rounds: Math.max(1, Math.floor(given.get('rounds') ?? 1)),
  };
}

// ------------------------------------------------------------------ load worker

interface Creds {
  id: string;
  key: string;
  cert: string;
}
interface LoadSpec {
  role: 'wott-scale-load';
  port: number;
  caPem: string;
  devices: Creds[];
  concurrency: number;
  publishMs: number;
}
export interface ScaleStats {
  held: number;
  sent: number;
  acked: number;
  connectFailures: number;
  reconnects: number;
  /** Event-loop utilisation of the load thread since the last `stats`. */
  elu: number;
}
type ToWorker = { type: 'ramp' } | { type: 'go' } | { type: 'stats' } | { type: 'quiet' } | { type: 'close' };
type FromWorker = { type: 'ramped'; stats: ScaleStats } | { type: 'stats'; stats: ScaleStats } | { type: 'closed' } | { type: 'fatal'; message: string };

async function loadWorker(spec: LoadSpec): Promise<void> {
  const post = (m: FromWorker) => parentPort!.postMessage(m);
  interface Device extends Creds {
    /** Parsed once: a device's key and certificate do not change, and parsing them per attempt made the load the bottleneck. */
    context: SecureContext;
    client?: mqtt.MqttClient;
    failures: number;
    seq: number;
  }
  const devices: Device[] = spec.devices.map((d) => ({ ...d, context: createSecureContext({ key: d.key, cert: d.cert, ca: spec.caPem }), failures: 0, seq: 0 }));
  const stats = { sent: 0, acked: 0, connectFailures: 0, reconnects: 0 };
  let closing = false;
  let publishing = false;
  let elu = performance.eventLoopUtilization();
  const snapshot = (): ScaleStats => {
    const next = performance.eventLoopUtilization();
    const since = performance.eventLoopUtilization(next, elu);
    elu = next;
    return { ...stats, held: devices.filter((d) => d.client?.connected).length, elu: since.utilization };
  };

  /** One connection attempt: resolves connected, or rejects (the caller backs off and tries again). */
  const connect = (d: Device): Promise<void> =>
    new Promise((resolve, reject) => {
      // MQTT.js hands its options to tls.connect, secureContext included (its types do not list it).
      const options = { secureContext: d.context, clientId: d.id, protocolVersion: 4, clean: true, reconnectPeriod: 0, connectTimeout: 60_000, keepalive: 120 };
      const c = mqtt.connect(`mqtts://127.0.0.1:${spec.port}`, options as mqtt.IClientOptions);
      const fail = (err: Error) => (c.end(true), reject(err));
      const early = () => fail(new Error('closed before CONNACK'));
      c.once('error', fail);
      c.once('close', early);
      c.once('connect', () => {
        c.removeListener('close', early);
        c.removeListener('error', fail);
        c.on('error', () => undefined); // a close follows
        c.once('close', () => {
          if (closing || d.client !== c) return;
          d.client = undefined;
          stats.reconnects++;
          void bringUp(d);
        });
        d.client = c;
        d.failures = 0;
        resolve();
      });
    });
  const bringUp = async (d: Device, first = false): Promise<void> => {
    // After a server restart: back off first, as agents do, so the fleet does not arrive in one wave.
    if (!first) await sleep(250 * (0.5 + Math.random()));
    while (!closing) {
      try {
        return await connect(d);
      } catch {
        stats.connectFailures++;
        d.failures++;
        await sleep(Math.min(5000, 250 * 2 ** Math.min(d.failures, 5)) * (0.5 + Math.random()));
      }
    }
  };
  const publish = (d: Device) => {
    if (!publishing || !d.client?.connected) return;
    stats.sent++;
    const payload = JSON.stringify({ t: Date.now(), seq: ++d.seq, temperature: 20 + Math.random() * 5 });
    d.client.publish(`scale/${d.id}/telemetry`, payload, { qos: 1 }, (err) => void (err || stats.acked++));
  };
  const timers: NodeJS.Timeout[] = [];

  parentPort!.on('message', (m: ToWorker) => {
    if (m.type === 'ramp') {
      snapshot();
      let next = 0;
      void Promise.all(
        Array.from({ length: Math.min(spec.concurrency, devices.length) }, async () => {
          while (next < devices.length) await bringUp(devices[next++]!, true);
        }),
      ).then(() => post({ type: 'ramped', stats: snapshot() }));
    } else if (m.type === 'go') {
      publishing = true;
      // Spread over the interval: a steady rate rather than waves.
      for (const d of devices) timers.push(setTimeout(() => (publish(d), timers.push(setInterval(() => publish(d), spec.publishMs))), Math.random() * spec.publishMs));
    } else if (m.type === 'stats') {
      post({ type: 'stats', stats: snapshot() });
    } else if (m.type === 'quiet') {
      // The hold is over: no more telemetry, and the PUBACKs of what is in flight are waited for (10 s at most: a
      // session that ended takes its unacknowledged messages with it), so sent and acknowledged compare.
      publishing = false;
      for (const t of timers.splice(0)) clearTimeout(t);
      const until = Date.now() + 10_000;
      const settle = () => (stats.acked >= stats.sent || Date.now() > until ? post({ type: 'stats', stats: snapshot() }) : void setTimeout(settle, 20));
      settle();
    } else if (m.type === 'close') {
      closing = true;
      for (const t of timers) clearTimeout(t);
      void Promise.all(devices.map((d) => d.client?.endAsync(true).catch(() => undefined))).then(() => post({ type: 'closed' }));
    }
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'wott-scale-load') {
  loadWorker(workerData as LoadSpec).catch((err: Error) => parentPort!.postMessage({ type: 'fatal', message: err.stack ?? err.message } satisfies FromWorker));
}

// ------------------------------------------------------------------ coordinator

class Load {
  readonly workers: Worker[];
  private readonly waiting = new Map<string, Array<(m: FromWorker) => void>>();
  fatal?: string;
  constructor(port: number, caPem: string, slices: Creds[][], o: ScaleOptions) {
    this.workers = slices.map((devices, i) => {
      const spec: LoadSpec = { role: 'wott-scale-load', port, caPem, devices, concurrency: o.concurrency, publishMs: o.publishSeconds * 1000 };
      const w = new Worker(new URL(import.meta.url), { workerData: spec });
      w.on('message', (m: FromWorker) => {
        if (m.type === 'fatal') this.fatal ??= m.message;
        this.waiting.get(`${i}:${m.type}`)?.shift()?.(m);
      });
      w.on('error', (err) => (this.fatal ??= err.stack ?? err.message));
      return w;
    });
  }
  all<T extends FromWorker['type']>(send: ToWorker, type: T, ms = 3_600_000): Promise<Array<Extract<FromWorker, { type: T }>>> {
    const replies = this.workers.map(
      (_, i) =>
        new Promise<Extract<FromWorker, { type: T }>>((resolve, reject) => {
          const q = this.waiting.get(`${i}:${type}`) ?? [];
          this.waiting.set(`${i}:${type}`, q);
          const poll = setInterval(() => this.fatal && (clearInterval(poll), clearTimeout(deadline), reject(new Error(`load worker: ${this.fatal}`))), 200);
          const deadline = setTimeout(() => (clearInterval(poll), reject(new Error(`load worker ${i}: no ${type} within ${ms} ms`))), ms);
          q.push((m) => (clearInterval(poll), clearTimeout(deadline), resolve(m as Extract<FromWorker, { type: T }>)));
        }),
    );
    for (const w of this.workers) w.postMessage(send);
    return Promise.all(replies);
  }
  async stats(type: 'stats' | 'quiet' = 'stats'): Promise<ScaleStats> {
    const list = (await this.all({ type }, 'stats', 60_000)).map((r) => r.stats);
    return sumStats(list);
  }
  async close(): Promise<void> {
    await this.all({ type: 'close' }, 'closed', 120_000).catch(() => undefined);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function sumStats(list: ScaleStats[]): ScaleStats {
  const total = { held: 0, sent: 0, acked: 0, connectFailures: 0, reconnects: 0, elu: 0 };
  for (const s of list) for (const k of ['held', 'sent', 'acked', 'connectFailures', 'reconnects'] as const) total[k] += s[k];
  // The busiest load thread: the one that would be the bottleneck.
  total.elu = Math.max(...list.map((s) => s.elu));
  return total;
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const { user, system } = statCpuSeconds(`/proc/${pid}/stat`);
  return user + system;
}

/**
 * The same CPU split by thread, to say where a difference in CPU per connection lies: the main thread's user time
 * (JavaScript, TLS, SQLite: what a --cpu-prof profile sees, and more), its system time (sockets, file writes), and
 * every other thread together (V8's garbage-collection helpers, libuv's pool; Node 20 names neither, so they are
 * not told apart). A thread that ended during the ramp is not counted: the servers start none.
 */
export function cpuByThread(pid: number): { mainUser: number; mainSystem: number; otherThreads: number } {
  const out = { mainUser: 0, mainSystem: 0, otherThreads: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let user: number, system: number;
    try {
      ({ user, system } = statCpuSeconds(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      continue; // the thread ended between the listing and the read
    }
    if (tid === String(pid)) {
      out.mainUser += user;
      out.mainSystem += system;
    } else out.otherThreads += user + system;
  }
  return out;
}

const MiB = 1024 * 1024;
const CLI = fileURLToPath(new URL('../cli/wott.js', import.meta.url));
const AEDES = fileURLToPath(new URL('./soak-aedes.js', import.meta.url));
const log = (msg: string) => process.stderr.write(`scale: ${msg}\n`);
/**
 * WOTT_BENCH_PROFILE=DIR: both servers run with `--cpu-prof` into DIR (one .cpuprofile per process, written at its
 * exit), to see where their time goes; Node refuses --cpu-prof in NODE_OPTIONS.
 */
const PROFILE_ARGS = process.env.WOTT_BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.WOTT_BENCH_PROFILE] : [];

/** A server under test: started, stopped and started again on the same port; an event-loop p99 since the last call. */
interface Server {
  name: string;
  start(): Promise<number>;
  stop(): Promise<void>;
  pid(): number;
  /** Event-loop delay p99 (ms) since the previous call. */
  loopP99(): Promise<number>;
}

export interface ServerFigures {
  rampSeconds: number;
  connectionsPerSecond: number;
  serverCpuShare: number;
  /**
   * Server CPU time per connection set up during the ramp (ms): the server's capacity, which other work on a shared
   * machine does not change the way it changes connections/s (that rate is set by every process on the cores).
   */
  serverCpuMsPerConnection: number;
  /** The same, split by thread (cpuByThread), in ms per connection. */
  cpuSplit: { mainUser: number; mainSystem: number; otherThreads: number };
  /** CPU of this process (every load thread) during the ramp, in cores. */
  loadCpuShare: number;
  /** The machine's 1-minute load average at the end of the ramp (other work on a shared machine shows here). */
  machineLoad: number;
  loadEluMax: number;
  rssStart: number;
  rssHeld: number;
  perConnectionKiB: number;
  loopP99Ms: number;
  held: number;
  sent: number;
  acked: number;
  restartSeconds: number;
  heldAfterRestart: number;
  connectFailures: number;
}

async function measure(server: Server, creds: Creds[], caPem: string, o: ScaleOptions): Promise<ServerFigures> {
  const port = await server.start();
  const slices = Array.from({ length: o.threads }, (_, w) => creds.filter((_, i) => i % o.threads === w)).filter((s) => s.length > 0);
  const load = new Load(port, caPem, slices, o);
  try {
    await sleep(2000); // the server settles after its start before the baseline RSS
    const rssStart = procSample(server.pid()).rss;
    const cpu0 = cpuSeconds(server.pid());
    const threads0 = cpuByThread(server.pid());
    const loadCpu0 = process.cpuUsage();
    const t0 = performance.now();
    const ramped = sumStats((await load.all({ type: 'ramp' }, 'ramped')).map((r) => r.stats));
    const rampSeconds = (performance.now() - t0) / 1000;
    const serverCpu = cpuSeconds(server.pid()) - cpu0;
    const threads1 = cpuByThread(server.pid());
    const perConnectionMs = (seconds: number) => (seconds * 1000) / creds.length;
    const cpuSplit = {
      mainUser: perConnectionMs(threads1.mainUser - threads0.mainUser),
      mainSystem: perConnectionMs(threads1.mainSystem - threads0.mainSystem),
      otherThreads: perConnectionMs(threads1.otherThreads - threads0.otherThreads),
    };
    const serverCpuShare = serverCpu / rampSeconds;
    const loadCpu = process.cpuUsage(loadCpu0);
    const loadCpuShare = (loadCpu.user + loadCpu.system) / 1e6 / rampSeconds;
    const machineLoad = loadavg()[0]!;
    log(`${server.name}: ${ramped.held} connected in ${rampSeconds.toFixed(1)} s (${(creds.length / rampSeconds).toFixed(0)}/s; server CPU ${(serverCpuShare * 100).toFixed(0)} % of a core, ${((serverCpu * 1000) / creds.length).toFixed(2)} ms per connection (main thread ${cpuSplit.mainUser.toFixed(2)} user + ${cpuSplit.mainSystem.toFixed(2)} system, other threads ${cpuSplit.otherThreads.toFixed(2)}), busiest load thread ${(ramped.elu * 100).toFixed(0)} % busy)`);
    await load.stats();
    for (const w of load.workers) w.postMessage({ type: 'go' } satisfies ToWorker);
    await server.loopP99(); // starts the hold's window
    const holdUntil = Date.now() + o.holdSeconds * 1000;
    while (Date.now() < holdUntil && !load.fatal) await sleep(Math.min(1000, Math.max(10, holdUntil - Date.now())));
    if (load.fatal) throw new Error(`load worker: ${load.fatal}`);
    const loopP99Ms = await server.loopP99();
    const rssHeld = procSample(server.pid()).rss;
    const holding = await load.stats('quiet');
    log(`${server.name}: holding ${holding.held}, RSS ${(rssStart / MiB).toFixed(0)} -> ${(rssHeld / MiB).toFixed(0)} MiB, loop p99 ${loopP99Ms.toFixed(1)} ms, ${holding.acked}/${holding.sent} messages acknowledged`);

    // Restart: stop, start on the same port, and wait for every device to be back.
    await server.stop();
    await server.start();
    const back0 = performance.now();
    let back = await load.stats();
    const deadline = back0 + Math.max(120_000, creds.length * 50);
    while (back.held < creds.length && performance.now() < deadline && !load.fatal) {
      await sleep(250);
      back = await load.stats();
    }
    const restartSeconds = back.held >= creds.length ? (performance.now() - back0) / 1000 : NaN;
    log(`${server.name}: restarted, ${back.held} back in ${restartSeconds.toFixed(1)} s`);
    return {
      rampSeconds,
      connectionsPerSecond: creds.length / rampSeconds,
      serverCpuShare,
      serverCpuMsPerConnection: (serverCpu * 1000) / creds.length,
      cpuSplit,
      loadCpuShare,
      machineLoad,
      loadEluMax: ramped.elu,
      rssStart,
      rssHeld,
      perConnectionKiB: (rssHeld - rssStart) / creds.length / 1024,
      loopP99Ms,
      held: holding.held,
      sent: holding.sent,
      acked: holding.acked,
      restartSeconds,
      heldAfterRestart: back.held,
      connectFailures: back.connectFailures,
    };
  } finally {
    await load.close();
    await server.stop();
  }
}

export async function runScale(o: ScaleOptions): Promise<SuiteResult> {
  const result: SuiteResult = { suite: 'scale', measurements: [], ratios: [], goals: [] };
  const dir = mkdtempSync(join(tmpdir(), 'wott-bench-scale-'));
  const children = new Set<ChildProcess>();
  const onExit = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping the servers, removing ${dir}`);
    process.exit(signal === 'SIGINT' ? 130 : 143); // the exit handler kills the children and removes the folder
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const dataDir = join(dir, 'data');
    const config = join(dir, 'wott.yaml');
    // Every device connects from 127.0.0.1: the per-source limits (right for real fleets) would refuse the load, so
    // they are lifted to the run's size; per-identity limits stay at their defaults.
    const many = o.devices * 4 + 1000;
    writeFileSync(
      config,
      [
        'gateway:',
        '  bind: 127.0.0.1',
        '  httpsLimits:',
        `    maxConnectionsPerSource: ${many}`,
        `    connectRate: { max: ${many * 10}, window: 10s, ban: 1s }`,
        'policies:',
        '  - { topic: "scale/{device}/#", publish: 0.3, subscribe: 0.3 }',
        'broker:',
        '  limits:',
        `    maxConnections: ${many}`,
        `    maxConnectionsPerSource: ${many}`,
        `    sourceConnectRate: { max: ${many * 10}, window: 10s, ban: 1s }`,
        '',
      ].join('\n'),
    );
    const mqttPort = await freePort();
    let gateway: ChildProcess | undefined;
    let metricsPort = 0;
    const gw: Server = {
      name: 'gateway',
      async start() {
        const s = await startChild(
          [CLI, 'gateway', '--data', dataDir, '--config', config, '--https-port', '0', '--mqtt-port', String(mqttPort), '--metrics-port', '0', '--log-format', 'json'],
          (line) => (line.includes('gateway listening') ? /"metrics":(\d+)/.exec(line) : null),
          'wott gateway',
          undefined,
          PROFILE_ARGS,
        );
        gateway = s.child;
        children.add(gateway);
        metricsPort = Number(s.m[1]);
        return mqttPort;
      },
      stop: () => stopChild(gateway),
      pid: () => gateway!.pid!,
      // prom-client resets its event-loop histogram on every collection: each scrape covers the time since the last.
      loopP99: async () => ((await scrape(metricsPort))['wott_process_nodejs_eventloop_lag_p99_seconds'] ?? NaN) * 1000,
    };

    // Certificates: the gateway creates its CA on its first start; the devices' certificates come from it in process.
    await gw.start();
    const admin = await CertificateAuthority.open({ dataDir, create: false });
    const caPem = admin.caCertificates().map((c) => c.toString()).join('');
    const creds: Creds[] = [];
    const t0 = performance.now();
    try {
      for (let i = 0; i < o.devices; i++) {
        const id = `scale-${String(i).padStart(5, '0')}`;
        const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const issued = await admin.enrollWithToken(id, (await admin.createToken(id)).token, await createCsr(id, privateKey, publicKey));
        creds.push({ id, key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: issued.pem });
      }
    } finally {
      await admin.close();
    }
    log(`${o.devices} device certificates issued in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // A device enrolled over EST is scored at its enrollment (the gateway's view sees it and scoring publishes its
    // first score), long before it connects. These were issued behind the gateway's back: it is left running until
    // it has taken them in and scored each, so that every round, the first included, measures what a running fleet
    // does, connections of devices the gateway knows.
    const known = performance.now();
    const until = known + Math.max(60_000, o.devices * 10);
    let scored = 0;
    while ((scored = (await scrape(metricsPort))['wott_score_cache_size'] ?? 0) < o.devices && performance.now() < until) await sleep(500);
    log(`the gateway scored ${scored} of ${o.devices} devices in ${((performance.now() - known) / 1000).toFixed(1)} s`);
    await gw.stop();

    const caPath = join(dataDir, '..', 'ca.pem');
    writeFileSync(caPath, caPem, { mode: 0o600 });
    let aedes: ChildProcess | undefined;
    let loopLine: ((ms: number) => void) | undefined;
    const plain: Server = {
      name: 'plain Aedes',
      async start() {
        const s = await startChild([AEDES, join(dataDir, 'server', 'server.key'), join(dataDir, 'server', 'server.crt'), caPath, String(mqttPort)], (line) => /"port":(\d+)/.exec(line), 'plain Aedes', (line) => {
          const m = /"loopP99Ms":([0-9.eE+-]+)/.exec(line);
          if (m) loopLine?.(Number(m[1]));
        }, PROFILE_ARGS);
        aedes = s.child;
        children.add(aedes);
        return Number(s.m[1]);
      },
      stop: () => stopChild(aedes),
      pid: () => aedes!.pid!,
      loopP99: () =>
        new Promise((resolve) => {
          loopLine = resolve;
          aedes!.kill('SIGUSR2');
        }),
    };
    // Rounds alternate between the servers, so load that comes and goes on a shared machine weighs on both.
    const gs: ServerFigures[] = [];
    const bs: ServerFigures[] = [];
    for (let r = 0; r < o.rounds; r++) {
      if (o.rounds > 1) log(`round ${r + 1} of ${o.rounds}`);
      gs.push(await measure(gw, creds, caPem, o));
      bs.push(await measure(plain, creds, caPem, o));
    }
    const g = medianFigures(gs);
    const b = medianFigures(bs);

    const m = (name: string, value: number, unit: string, baseline?: boolean) => result.measurements.push({ name, value, unit, ...(baseline ? { baseline } : {}) });
    m('devices (own certificate each)', o.devices, 'devices');
    m('load threads', slices(o), 'threads');
    m('rounds (figures: medians; held: the lowest)', o.rounds, 'rounds');
    for (const [f, prefix, baseline] of [[g, 'gateway', false], [b, 'plain Aedes + TLS', true]] as const) {
      m(`${prefix}: connections/s during the ramp`, f.connectionsPerSecond, '/s', baseline);
      m(`${prefix}: ramp`, f.rampSeconds, 's', baseline);
      m(`${prefix}: server CPU during the ramp`, f.serverCpuShare * 100, '% of a core', baseline);
      m(`${prefix}: server CPU per connection set-up`, f.serverCpuMsPerConnection, 'ms', baseline);
      m(`${prefix}: of it, main thread user`, f.cpuSplit.mainUser, 'ms', baseline);
      m(`${prefix}: of it, main thread system`, f.cpuSplit.mainSystem, 'ms', baseline);
      m(`${prefix}: of it, other threads (GC helpers, libuv pool)`, f.cpuSplit.otherThreads, 'ms', baseline);
      m(`${prefix}: busiest load thread during the ramp`, f.loadEluMax * 100, '% busy', baseline);
      m(`${prefix}: load process CPU during the ramp`, f.loadCpuShare * 100, '% of a core', baseline);
      m(`${prefix}: machine load average after the ramp`, f.machineLoad, `on ${availableParallelism()} cores`, baseline);
      m(`${prefix}: RSS before the ramp`, f.rssStart / MiB, 'MiB', baseline);
      m(`${prefix}: RSS holding`, f.rssHeld / MiB, 'MiB', baseline);
      m(`${prefix}: RSS per held connection`, f.perConnectionKiB, 'KiB', baseline);
      m(`${prefix}: event-loop delay p99 while holding`, f.loopP99Ms, 'ms', baseline);
      m(`${prefix}: held`, f.held, 'devices', baseline);
      m(`${prefix}: telemetry acknowledged while holding`, f.acked, `of ${f.sent}`, baseline);
      m(`${prefix}: restart -> all back`, f.restartSeconds, 's', baseline);
      m(`${prefix}: back after the restart`, f.heldAfterRestart, 'devices', baseline);
    }
    const memory = g.perConnectionKiB / b.perConnectionKiB;
    const rate = g.connectionsPerSecond / b.connectionsPerSecond;
    const cpu = g.serverCpuMsPerConnection / b.serverCpuMsPerConnection;
    const perRound = gs.map((x, i) => `${(x.connectionsPerSecond / bs[i]!.connectionsPerSecond).toFixed(2)}x / ${(x.serverCpuMsPerConnection / bs[i]!.serverCpuMsPerConnection).toFixed(2)}x`).join(', ');
    result.ratios.push({ name: 'memory per held connection, gateway vs plain Aedes', of: 'gateway: RSS per held connection', to: 'plain Aedes + TLS: RSS per held connection', value: memory });
    result.ratios.push({ name: 'connection set-up rate, gateway vs plain Aedes', of: 'gateway: connections/s during the ramp', to: 'plain Aedes + TLS: connections/s during the ramp', value: rate });
    result.ratios.push({ name: 'server CPU per connection set-up, gateway vs plain Aedes', of: 'gateway: server CPU per connection set-up', to: 'plain Aedes + TLS: server CPU per connection set-up', value: cpu });
    result.ratios.push({ name: 'restart -> all back, gateway vs plain Aedes', of: 'gateway: restart -> all back', to: 'plain Aedes + TLS: restart -> all back', value: g.restartSeconds / b.restartSeconds });
    result.ratios.push({ name: 'event-loop delay p99 while holding, gateway vs plain Aedes', of: 'gateway: event-loop delay p99 while holding', to: 'plain Aedes + TLS: event-loop delay p99 while holding', value: g.loopP99Ms / b.loopP99Ms });
    result.goals.push({ name: 'every device held, on both servers', met: g.held === o.devices && b.held === o.devices, detail: `gateway ${g.held}, plain Aedes ${b.held} of ${o.devices}` });
    result.goals.push({ name: 'every device back after a restart', met: g.heldAfterRestart === o.devices && b.heldAfterRestart === o.devices, detail: `gateway ${g.heldAfterRestart}, plain Aedes ${b.heldAfterRestart} of ${o.devices}` });
    result.goals.push({ name: 'memory per held connection <= 1.1x plain Aedes', met: memory <= 1.1, detail: `${g.perConnectionKiB.toFixed(1)} KiB vs ${b.perConnectionKiB.toFixed(1)} KiB: ${memory.toFixed(2)}x` });
    result.goals.push({
      name: 'connection set-up rate >= 0.9x plain Aedes',
      met: rate >= 0.9,
      detail: `${g.connectionsPerSecond.toFixed(0)}/s vs ${b.connectionsPerSecond.toFixed(0)}/s: ${rate.toFixed(2)}x${o.rounds > 1 ? ` (rate / CPU per connection by round: ${perRound})` : ''}`,
    });
    // The same goal as capacity: at 0.9x the rate on a saturated core, the gateway may spend 1/0.9 of plain Aedes' CPU
    // per connection. On a machine shared with other work this is the steadier of the two figures.
    result.goals.push({
      name: 'server CPU per connection set-up <= 1.11x plain Aedes (the set-up goal as capacity)',
      met: cpu <= 1 / 0.9,
      detail: `${g.serverCpuMsPerConnection.toFixed(2)} ms vs ${b.serverCpuMsPerConnection.toFixed(2)} ms: ${cpu.toFixed(2)}x`,
    });
    result.goals.push({
      name: 'the load generator is not the bottleneck',
      met: Math.max(g.loadEluMax, b.loadEluMax) < 0.9,
      detail: `busiest load thread ${(g.loadEluMax * 100).toFixed(0)} % / ${(b.loadEluMax * 100).toFixed(0)} % busy during the ramps (gateway / plain Aedes); server CPU ${(g.serverCpuShare * 100).toFixed(0)} % / ${(b.serverCpuShare * 100).toFixed(0)} % of a core; machine load average ${g.machineLoad.toFixed(1)} / ${b.machineLoad.toFixed(1)} on ${availableParallelism()} cores${Math.max(g.machineLoad, b.machineLoad) > availableParallelism() * 1.5 ? ' (well above the core count: other work on the machine set the rates)' : ''}`,
    });
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    onExit();
  }
}

const slices = (o: ScaleOptions) => Math.min(o.threads, o.devices);

const median = (xs: number[]) => {
  if (xs.some(Number.isNaN)) return NaN; // a round that failed (not every device back) fails the median too
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Each figure's median over the rounds; the device counts the lowest (a goal must hold in every round). */
function medianFigures(rounds: ServerFigures[]): ServerFigures {
  const out = { ...rounds[0]! };
  for (const k of Object.keys(out) as Array<keyof ServerFigures>) {
    if (k === 'cpuSplit') continue;
    const values = rounds.map((r) => r[k]);
    // Counts of messages add up over the rounds (medians of `sent` and `acked` taken apart need not pair up).
    out[k] = k === 'held' || k === 'heldAfterRestart' ? Math.min(...values) : k === 'sent' || k === 'acked' ? values.reduce((a, v) => a + v, 0) : median(values);
  }
  const split = (part: keyof ServerFigures['cpuSplit']) => median(rounds.map((r) => r.cpuSplit[part]));
  out.cpuSplit = { mainUser: split('mainUser'), mainSystem: split('mainSystem'), otherThreads: split('otherThreads') };
  return out;
}

export const scaleSuite: Suite = {
  name: 'scale',
  description: 'N devices (10,000) over mTLS: RSS per connection, connections/s, restart -> all back, event-loop p99; against plain Aedes + TLS',
  run: ({ args }) => runScale(scaleOptions(args ?? [])),
};
