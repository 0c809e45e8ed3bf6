/**
 * The broker bench's load generator: MQTT.js publishers and subscribers over mTLS with a bounded window of messages
 * in flight, so the broker is never idle waiting for the clients nor flooded beyond its queues.
 *
 * It runs as one of several child processes (the broker suite's throughput: `forkGenerators`), so that no generator
 * is saturated and the broker, not the clients, sets the rate; or inside a worker thread (runLoad in broker.ts, which
 * the cluster suite uses). Run as a child it takes its orders over the IPC channel (see GeneratorOrder).
 */
import mqtt from 'mqtt';
import { fork, type ChildProcess } from 'node:child_process';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export interface Creds {
  id: string;
  key: string;
  cert: string;
}

export interface GeneratorSpec {
  port: number;
  ca: string;
  pubs: Creds[];
  subs: Creds[];
  qos: 0 | 1;
  /** Messages this generator keeps in flight: published and not yet delivered to all of its own subscribers. */
  window: number;
  /** Its publishers' topics are `weather/{group}/{i}`. Every subscriber reads weather/#, so each message fans out to
   * the subscribers of all generators; the window is kept on this generator's own subscribers (which receive every
   * message at the same broker pass as the others). */
  group: string;
  payloadBytes: number;
}

export interface Generator {
  /** Messages received by this generator's subscribers (all topics), and what the stall check gave up as lost. */
  counts(): { delivered: number; lost: number };
  /** Starts publishing. */
  start(): void;
  /** Stops publishing, waits up to 3 s for what is in flight, disconnects. */
  stop(): Promise<void>;
}

export async function connectGenerator(spec: GeneratorSpec): Promise<Generator> {
  const connect = (c: Creds) =>
    mqtt.connectAsync(`mqtts://127.0.0.1:${spec.port}`, {
      key: c.key,
      cert: c.cert,
      ca: spec.ca,
      clientId: c.id,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      clean: true,
    });
  const prefix = `weather/${spec.group}/`;
  const fanout = spec.subs.length;
  let delivered = 0;
  let own = 0;
  let published = 0;
  let lost = 0;
  let running = false;
  let next = 0;
  const payload = Buffer.alloc(spec.payloadBytes, 'x');
  const pubTopics = spec.pubs.map((_, i) => `${prefix}${i}`);
  const subs = await Promise.all(spec.subs.map(connect));
  for (const s of subs) {
    const granted = await s.subscribeAsync('weather/#', { qos: spec.qos });
    if (granted.some((g) => g.qos === 128)) throw new Error(`subscription refused for ${s.options.clientId}`);
  }
  const pubs = await Promise.all(spec.pubs.map(connect));
  const outstanding = () => published * fanout - own - lost;
  const pump = () => {
    while (running && outstanding() < spec.window * fanout) {
      const i = next++ % pubs.length;
      pubs[i]!.publish(pubTopics[i]!, payload, { qos: spec.qos });
      published++;
    }
  };
  for (const s of subs) {
    s.on('message', (topic: string) => {
      delivered++;
      if (topic.startsWith(prefix)) own++, pump();
    });
  }
  // A broker may drop messages (e.g. full queues); without this the window would never reopen.
  let lastOwn = -1;
  const stall = setInterval(() => {
    if (own === lastOwn && outstanding() > 0) {
      lost += outstanding();
      pump();
    }
    lastOwn = own;
  }, 500);
  return {
    counts: () => ({ delivered, lost }),
    start() {
      running = true;
      pump();
    },
    async stop() {
      running = false;
      const until = Date.now() + 3000;
      while (outstanding() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      clearInterval(stall);
      await Promise.all([...pubs, ...subs].map((c) => c.endAsync(true)));
    },
  };
}

// ------------------------------------------------------------------ as a child process

/** What the bench tells a generator process, in this order per run: spec, go, mark (twice), stop. */
export type GeneratorOrder = { type: 'spec'; spec: GeneratorSpec } | { type: 'go' } | { type: 'mark' } | { type: 'stop' } | { type: 'exit' };

/** A generator's counters at one instant, with its own clock, CPU time and event-loop counters. */
export interface GeneratorMark {
  delivered: number;
  lost: number;
  at: number;
  /** process.cpuUsage(), user + system, µs. */
  cpuUs: number;
  elu: EventLoopUtilization;
}

type GeneratorReply = { type: 'ready' } | { type: 'mark'; mark: GeneratorMark } | { type: 'stopped' } | { type: 'error'; message: string };

function serveOrders(): void {
  let gen: Generator | undefined;
  const reply = (m: GeneratorReply) => process.send!(m);
  // The bench is gone (ended, killed, Ctrl-C): so is the reason to hold connections to a broker that may outlive it.
  process.once('disconnect', () => process.exit(0));
  process.on('message', (order: GeneratorOrder) => {
    void (async () => {
      try {
        if (order.type === 'spec') (gen = await connectGenerator(order.spec)), reply({ type: 'ready' });
        else if (order.type === 'go') gen!.start();
        else if (order.type === 'mark') {
          const cpu = process.cpuUsage();
          reply({ type: 'mark', mark: { ...gen!.counts(), at: performance.now(), cpuUs: cpu.user + cpu.system, elu: performance.eventLoopUtilization() } });
        } else if (order.type === 'stop') await gen!.stop(), (gen = undefined), reply({ type: 'stopped' });
        else process.exit(0);
      } catch (err) {
        reply({ type: 'error', message: (err as Error).stack ?? (err as Error).message });
      }
    })();
  });
}

if (process.argv[2] === 'wott-bench-generator' && process.argv[1] === fileURLToPath(import.meta.url) && process.send) serveOrders();

/** One generator's share of a measured interval: messages, and how busy it was (CPU and event loop). */
export interface GeneratorShare {
  delivered: number;
  lost: number;
  ms: number;
  /** CPU time over wall time (1 = one core). */
  cpu: number;
  /** Event-loop utilisation: near 1 means it had no idle time, i.e. it, not the broker, would set the pace. */
  elu: number;
}

export function share(a: GeneratorMark, b: GeneratorMark): GeneratorShare {
  const ms = b.at - a.at;
  return {
    delivered: b.delivered - a.delivered,
    lost: b.lost - a.lost,
    ms,
    cpu: (b.cpuUs - a.cpuUs) / 1000 / ms,
    elu: performance.eventLoopUtilization(b.elu, a.elu).utilization,
  };
}

/** Generator child processes, kept for the whole suite and given one spec per run. */
export class GeneratorPool {
  private readonly children: ChildProcess[];
  private readonly waiting: Array<Array<(m: GeneratorReply) => void>>;

  constructor(size: number) {
    const path = fileURLToPath(import.meta.url);
    this.children = [];
    this.waiting = [];
    for (let i = 0; i < size; i++) {
      const child = fork(path, ['wott-bench-generator'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
      const queue: Array<(m: GeneratorReply) => void> = [];
      child.on('message', (m: GeneratorReply) => {
        if (m.type === 'error') process.stderr.write(`load generator ${i}: ${m.message}\n`);
        queue.shift()?.(m);
      });
      child.on('exit', (code) => {
        for (const w of queue.splice(0)) w({ type: 'error', message: `exited with code ${code}` });
      });
      this.children.push(child);
      this.waiting.push(queue);
    }
  }

  get size(): number {
    return this.children.length;
  }

  private ask(i: number, order: GeneratorOrder): Promise<GeneratorReply> {
    return new Promise((resolve, reject) => {
      const child = this.children[i]!;
      if (child.exitCode !== null) return reject(new Error(`load generator ${i} has exited`));
      this.waiting[i]!.push((m) => (m.type === 'error' ? reject(new Error(`load generator ${i}: ${m.message}`)) : resolve(m)));
      child.send(order);
    });
  }

  /** Connects every generator (its spec), then starts them all at once. */
  async start(specs: GeneratorSpec[]): Promise<void> {
    await Promise.all(specs.map((spec, i) => this.ask(i, { type: 'spec', spec })));
    for (const child of this.children.slice(0, specs.length)) child.send({ type: 'go' } satisfies GeneratorOrder);
  }

  /** Every running generator's counters now. */
  async mark(count: number): Promise<GeneratorMark[]> {
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => this.ask(i, { type: 'mark' })));
    return replies.map((r) => (r as { mark: GeneratorMark }).mark);
  }

  async stop(count: number): Promise<void> {
    await Promise.all(Array.from({ length: count }, (_, i) => this.ask(i, { type: 'stop' })));
  }

  async close(): Promise<void> {
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
            child.once('exit', () => (clearTimeout(killer), resolve()));
            child.send({ type: 'exit' } satisfies GeneratorOrder);
          }),
      ),
    );
  }
}
