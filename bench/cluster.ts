/**
 * `npm run bench -- cluster`: two gateway nodes on one Redis (in this process, sharing one data folder) against a
 * single node without Redis, in the same run.
 *
 *  1. Single-node delivery rate: one publisher floods QoS 0 to one subscriber on the same node (messages/s).
 *  2. End-to-end latency at half that rate, publisher and subscriber on the same node, then on different nodes
 *     (the message crosses Redis): p50 / p99. Goal: cross-node p99 <= 10 ms.
 *  3. Revocation through node A -> the session held by node B is closed: p99. Goal: <= 1 s.
 *
 *  4. `wott gateway --workers 2` against `--workers 1` (both on Redis): 10 publishers -> 10 subscribers at QoS 0,
 *     the load generator in a worker thread of this process, messages delivered per second.
 *
 * Enrollments on PostgreSQL against SQLite: `npm run bench -- store`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type mqtt from 'mqtt';
import { Redis } from 'ioredis';
import { quietGatewayOptions, startGateway, type Gateway, type GatewayOptions } from '../gateway/index.js';
import { connectTo, enrollDevice, runLoad, type Creds } from './broker.js';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { CertificateAuthority } from '../ca/index.js';
import { fileURLToPath } from 'node:url';
import { ratio, type Suite, type SuiteResult } from './harness.js';
import { redisServer } from './servers.js';

/** The light load of the diagnostic cross-node latency run (msg/s). */
const LIGHT_RATE = 100;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

function nodeOptions(dataDir: string, redis?: string, nodeId = 'single'): GatewayOptions {
  return {
    ...quietGatewayOptions(dataDir, [{ topic: 'bench/#', publish: 0.4, subscribe: 0.4 }]),
    ...(redis ? { cluster: { redis, nodeId, leaseMs: 3000 } } : {}),
  };
}

const caOf = (gw: Gateway) => gw.ca.caCertificates().map((c) => c.toString()).join('');

/** Messages/s one subscriber receives while one publisher floods QoS 0 for `ms`. */
async function floodRate(pub: mqtt.MqttClient, sub: mqtt.MqttClient, ms: number): Promise<number> {
  let received = 0;
  const onMessage = () => received++;
  sub.on('message', onMessage);
  const payload = Buffer.alloc(64, 'x');
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < ms) {
    // Keep the socket's buffer from growing without bound: publish in slices, then let I/O run.
    for (let i = 0; i < 200; i++) pub.publish('bench/flood', payload, { qos: 0 });
    sent += 200;
    await new Promise<void>((r) => setImmediate(r));
    while (sent - received > 5_000 && performance.now() - start < ms) await sleep(1);
  }
  const rate = (received * 1000) / (performance.now() - start);
  sub.off('message', onMessage);
  await sleep(200);
  return rate;
}

/**
 * Publishes `rate`/s for `ms`, each message carrying its send time; returns sorted end-to-end latencies (ms) and
 * the p99 of this process's event-loop delay meanwhile (ms). Publisher, subscriber and both brokers share this one
 * event loop: a message waits behind whatever else the loop runs, so loop delay bounds what latency can be shown.
 */
async function pacedLatency(pub: mqtt.MqttClient, sub: mqtt.MqttClient, rate: number, ms: number): Promise<number[] & { loopP99: number }> {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const samples: number[] = [];
  const onMessage = (_topic: string, payload: Buffer) => samples.push(performance.now() - payload.readDoubleLE(0));
  sub.on('message', onMessage);
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < ms) {
    const due = Math.floor(((performance.now() - start) * rate) / 1000);
    for (; sent < due; sent++) {
      const payload = Buffer.alloc(64);
      payload.writeDoubleLE(performance.now(), 0);
      pub.publish('bench/paced', payload, { qos: 0 });
    }
    await sleep(1);
  }
  await sleep(300);
  loop.disable();
  sub.off('message', onMessage);
  return Object.assign(samples.sort((a, b) => a - b), { loopP99: loop.percentile(99) / 1e6 });
}

async function pair(pubNode: Gateway, subNode: Gateway, tag: string): Promise<{ pub: mqtt.MqttClient; sub: mqtt.MqttClient }> {
  const pub = await connectTo(pubNode.mqttPort, caOf(pubNode), await enrollDevice(pubNode, `${tag}-pub`));
  const sub = await connectTo(subNode.mqttPort, caOf(subNode), await enrollDevice(subNode, `${tag}-sub`));
  await sub.subscribeAsync('bench/#', { qos: 0 });
  return { pub, sub };
}

const CLI = fileURLToPath(new URL('../cli/wott.js', import.meta.url));

/** `wott gateway --workers N` as a process; resolves when every worker listens, with the shared MQTT port. */
async function gatewayWithWorkers(dir: string, redis: string, workers: number): Promise<{ mqttPort: number; stop(): Promise<void> }> {
  const config = join(dir, 'wott.yaml');
  writeFileSync(config, `cluster:\n  redis: ${redis}\n  node: bench${workers}\npolicies:\n  - { topic: "weather/#", publish: 0.4, subscribe: 0.4 }\n`);
  const child = spawn(process.execPath, [CLI, 'gateway', '--data', join(dir, 'data'), '--config', config, '--workers', String(workers), '--https-port', '0', '--mqtt-port', '0', '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    let listening = 0;
    let buffer = '';
    const timer = setTimeout(() => void stop().then(() => reject(new Error(`--workers ${workers}: not listening within 60 s`))), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const m = /"mqtt":(\d+)/.exec(line);
        if (m && line.includes('gateway listening') && ++listening === workers) {
          clearTimeout(timer);
          resolve({ mqttPort: Number(m[1]), stop });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`--workers ${workers} exited (${code})`)));
  });
}

async function workersRate(dir: string, redis: string, workers: number, durationMs: number): Promise<number> {
  const gw = await gatewayWithWorkers(dir, redis, workers);
  try {
    const ca = await CertificateAuthority.open({ dataDir: join(dir, 'data'), create: false });
    let creds: Creds[];
    let caPem: string;
    try {
      const asGateway = { ca } as unknown as Gateway;
      creds = [];
      for (let i = 0; i < 20; i++) creds.push(await enrollDevice(asGateway, `w${workers}-${i}`));
      caPem = ca.caCertificates().map((c) => c.toString()).join('');
    } finally {
      await ca.close();
    }
    const idle = { start() {}, stop: () => 0 };
    const outcome = await runLoad({ port: gw.mqttPort, ca: caPem, pubs: creds.slice(0, 10), subs: creds.slice(10), qos: 0, warmupMs: 1000, durationMs }, idle);
    return outcome.rate;
  } finally {
    await gw.stop();
  }
}

export const clusterSuite: Suite = {
  name: 'cluster',
  description: 'two nodes on Redis vs one node: delivery rate, same-node and cross-node latency, cross-node revocation',
  async run({ quick }) {
    const result: SuiteResult = { suite: 'cluster', measurements: [], ratios: [], goals: [] };
    const dir = mkdtempSync(join(tmpdir(), 'wott-bench-cluster-'));
    const redis = await redisServer(mkdtempSync(join(dir, 'redis-')));
    const cleanup: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true }), () => redis.stop()];
    const rounds = quick ? 1 : 3;
    const seconds = quick ? 1500 : 3000;
    try {
      const single = await startGateway(nodeOptions(join(dir, 'single')));
      cleanup.unshift(() => single.close());
      const shared = join(dir, 'shared');
      const a = await startGateway(nodeOptions(shared, redis.url, 'node-a'));
      cleanup.unshift(() => a.close());
      const b = await startGateway(nodeOptions(shared, redis.url, 'node-b'));
      cleanup.unshift(() => b.close());

      const local = await pair(single, single, 'single');
      const cross = await pair(a, b, 'cross');
      cleanup.unshift(() => Promise.all([local, cross].flatMap((p) => [p.pub.endAsync(true), p.sub.endAsync(true)])).then(() => undefined));

      const singleRates: number[] = [];
      const crossRates: number[] = [];
      const localP50: number[] = [];
      const localP99: number[] = [];
      const crossP50: number[] = [];
      const crossP99: number[] = [];
      const localLoop: number[] = [];
      const crossLoop: number[] = [];
      const lightP99: number[] = [];
      const lightLoop: number[] = [];
      for (let r = 0; r < rounds; r++) {
        singleRates.push(await floodRate(local.pub, local.sub, seconds));
        crossRates.push(await floodRate(cross.pub, cross.sub, seconds));
        const half = Math.max(100, Math.floor(singleRates[r]! / 2));
        const l = await pacedLatency(local.pub, local.sub, half, seconds);
        const c = await pacedLatency(cross.pub, cross.sub, half, seconds);
        localP50.push(percentile(l, 50));
        localP99.push(percentile(l, 99));
        crossP50.push(percentile(c, 50));
        crossP99.push(percentile(c, 99));
        localLoop.push(l.loopP99);
        crossLoop.push(c.loopP99);
        // The same path at a light load: what the Redis hop itself costs when the shared event loop is not busy.
        const light = await pacedLatency(cross.pub, cross.sub, LIGHT_RATE, seconds);
        lightP99.push(percentile(light, 99));
        lightLoop.push(light.loopP99);
      }
      // Diagnostic: the bench's redis-server fsyncs every write (appendfsync always, the durable setting) and answers
      // a blocked XREAD only after that fsync; the same light run with everysec shows what the fsync costs here.
      const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      cleanup.unshift(() => void admin.disconnect());
      await admin.config('SET', 'appendfsync', 'everysec');
      const lightEverysec = await pacedLatency(cross.pub, cross.sub, LIGHT_RATE, seconds);
      await admin.config('SET', 'appendfsync', 'always');
      result.measurements.push(
        { name: 'single node, delivered QoS 0 (median of rounds)', value: median(singleRates), unit: 'msg/s', baseline: true },
        { name: 'cross node via Redis, delivered QoS 0', value: median(crossRates), unit: 'msg/s' },
        { name: 'same node latency at half the single rate, p50', value: median(localP50), unit: 'ms' },
        { name: 'same node latency at half the single rate, p99', value: median(localP99), unit: 'ms' },
        { name: 'cross node latency at half the single rate, p50', value: median(crossP50), unit: 'ms' },
        { name: 'cross node latency at half the single rate, p99', value: median(crossP99), unit: 'ms' },
        { name: 'event-loop delay during the same-node run, p99 (bench process: load generator and brokers)', value: median(localLoop), unit: 'ms' },
        { name: 'event-loop delay during the cross-node run, p99', value: median(crossLoop), unit: 'ms' },
        { name: `cross node latency at ${LIGHT_RATE} msg/s, p99`, value: median(lightP99), unit: 'ms' },
        { name: `event-loop delay during the ${LIGHT_RATE} msg/s cross-node run, p99`, value: median(lightLoop), unit: 'ms' },
        { name: `cross node latency at ${LIGHT_RATE} msg/s with redis appendfsync everysec (diagnostic, one run), p99`, value: percentile(lightEverysec, 99), unit: 'ms' },
      );
      ratio(result, 'cross-node vs single-node delivery rate', 'cross node via Redis, delivered QoS 0', 'single node, delivered QoS 0 (median of rounds)');
      const crossP99Median = median(crossP99);
      result.goals.push({ name: 'cross-node p99 <= 10 ms at half the single-node rate', met: crossP99Median <= 10, detail: `${crossP99Median.toFixed(2)} ms (rounds: ${crossP99.map((v) => v.toFixed(1)).join(', ')})` });

      // Revocation through A, session on B: B follows the shared store's change feed.
      const trials = quick ? 10 : 30;
      const revocations: number[] = [];
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
        revocations.push((await closed) - t);
        client.end(true);
      }
      revocations.sort((x, y) => x - y);
      result.measurements.push(
        { name: 'revocation on node A -> session on node B closed, p50', value: percentile(revocations, 50), unit: 'ms' },
        { name: 'revocation on node A -> session on node B closed, p99', value: percentile(revocations, 99), unit: 'ms' },
      );
      const revP99 = percentile(revocations, 99);
      result.goals.push({ name: 'cross-node revocation p99 <= 1 s', met: revP99 <= 1000, detail: `${revP99.toFixed(0)} ms over ${trials} trials` });

      // --workers: processes of their own (node:cluster shares the ports), one after the other.
      const one: number[] = [];
      const two: number[] = [];
      for (let r = 0; r < rounds; r++) {
        one.push(await workersRate(mkdtempSync(join(dir, 'w1-')), redis.url, 1, seconds));
        two.push(await workersRate(mkdtempSync(join(dir, 'w2-')), redis.url, 2, seconds));
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
