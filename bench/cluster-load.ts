/**
 * The load generator of `npm run bench -- cluster`, forked by the suite (IPC channel) as two processes of their own: one
 * publishes, one receives. So neither shares an event loop with a broker node, nor with the other side of the
 * measurement. A message carries its phase, its sequence number and its send time from process.hrtime.bigint()
 * (CLOCK_MONOTONIC: one clock for every process on the machine), so the receiver's stamp minus it is the end-to-end
 * latency even across processes.
 *
 * The suite says (LoadCommand) which clients to connect, then per phase which client publishes to which topic, how
 * fast and how long; the receiver reports its count every few milliseconds while a phase is armed (the suite passes
 * it on to the publisher, whose flood keeps a bounded number of messages in flight) and its latencies when asked.
 */
import mqtt from 'mqtt';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

export interface LoadClient {
  name: string;
  port: number;
  ca: string;
  key: string;
  cert: string;
  clientId: string;
  /** Receivers subscribe to this filter (QoS 0). */
  filter?: string;
}

export type LoadCommand =
  | { type: 'connect'; clients: LoadClient[] }
  /** Receiver: count and time what arrives for `phase` from now on. */
  | { type: 'arm'; phase: number }
  /** Receiver: stop counting `phase`; reply with what arrived. */
  | { type: 'collect'; phase: number }
  /** Publisher: as fast as `window` messages in flight allow (the receiver's count comes in `count` commands). */
  | { type: 'flood'; phase: number; client: string; topic: string; ms: number; window: number }
  /** Publisher: `rate` messages/s, each stamped as it is handed to the client. */
  | { type: 'paced'; phase: number; client: string; topic: string; rate: number; ms: number }
  | { type: 'count'; phase: number; received: number }
  | { type: 'end' };

export type LoadReply =
  | { type: 'connected' }
  | { type: 'armed' }
  | { type: 'count'; phase: number; received: number }
  /** startMs: process.hrtime in ms when the first message went out; elu: this process's event-loop utilisation meanwhile. */
  | { type: 'sent'; phase: number; sent: number; startMs: number; elu: number }
  | { type: 'collected'; phase: number; received: number; stray: number; latenciesMs: number[]; lastMs: number; elu: number }
  | { type: 'error'; message: string };

export const PAYLOAD_BYTES = 64;
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function stamp(phase: number, seq: number): Buffer {
  const payload = Buffer.alloc(PAYLOAD_BYTES);
  payload.writeUInt32LE(phase, 0);
  payload.writeUInt32LE(seq, 4);
  payload.writeBigUInt64LE(process.hrtime.bigint(), 8);
  return payload;
}

async function main(): Promise<void> {
  const send = (m: LoadReply) => process.send!(m);
  const clients = new Map<string, mqtt.MqttClient>();
  // Receiver state for the armed phase.
  let armed = -1;
  let received = 0;
  let stray = 0;
  let lastMs = 0;
  let latencies: number[] = [];
  let elu0: EventLoopUtilization | undefined;
  let counter: NodeJS.Timeout | undefined;
  // Publisher: the receiver's latest count for the phase being flooded.
  let floodPhase = -1;
  let floodReceived = 0;
  let wake: (() => void) | undefined;

  const onMessage = (_topic: string, payload: Buffer) => {
    const t = process.hrtime.bigint();
    if (payload.length < 16 || payload.readUInt32LE(0) !== armed) return void stray++;
    received++;
    latencies.push(Number(t - payload.readBigUInt64LE(8)) / 1e6);
    lastMs = Number(t) / 1e6;
  };

  async function connect(list: LoadClient[]): Promise<void> {
    for (const c of list) {
      const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${c.port}`, { key: c.key, cert: c.cert, ca: c.ca, clientId: c.clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, clean: true });
      client.on('error', (err) => send({ type: 'error', message: `${c.name}: ${err.message}` }));
      if (c.filter) {
        const granted = await client.subscribeAsync(c.filter, { qos: 0 });
        if (granted.some((g) => g.qos === 128)) throw new Error(`${c.name}: subscription to ${c.filter} refused`);
        client.on('message', onMessage);
      }
      clients.set(c.name, client);
    }
  }

  const publisher = (name: string) => {
    const client = clients.get(name);
    if (!client) throw new Error(`no client ${name}`);
    return client;
  };

  async function flood(c: Extract<LoadCommand, { type: 'flood' }>): Promise<void> {
    const client = publisher(c.client);
    floodPhase = c.phase;
    floodReceived = 0;
    const e0 = performance.eventLoopUtilization();
    const startMs = nowMs();
    let sent = 0;
    while (nowMs() - startMs < c.ms) {
      while (sent - floodReceived < c.window && nowMs() - startMs < c.ms) {
        // Slices, then let I/O run: the socket's buffer stays small.
        for (let i = 0; i < 100; i++) client.publish(c.topic, stamp(c.phase, sent++), { qos: 0 });
        await new Promise<void>((r) => setImmediate(r));
      }
      // The window is full: wait for the receiver's next count (or 5 ms, should one be lost).
      await Promise.race([new Promise<void>((r) => (wake = r)), sleep(5)]);
    }
    floodPhase = -1;
    send({ type: 'sent', phase: c.phase, sent, startMs, elu: performance.eventLoopUtilization(e0).utilization });
  }

  async function paced(c: Extract<LoadCommand, { type: 'paced' }>): Promise<void> {
    const client = publisher(c.client);
    const e0 = performance.eventLoopUtilization();
    const startMs = nowMs();
    let sent = 0;
    for (let elapsed = 0; elapsed < c.ms; elapsed = nowMs() - startMs) {
      const due = Math.floor((elapsed * c.rate) / 1000);
      for (; sent < due; sent++) client.publish(c.topic, stamp(c.phase, sent), { qos: 0 });
      await sleep(1);
    }
    send({ type: 'sent', phase: c.phase, sent, startMs, elu: performance.eventLoopUtilization(e0).utilization });
  }

  process.on('message', (m: LoadCommand) => {
    const run = async () => {
      switch (m.type) {
        case 'connect':
          await connect(m.clients);
          return send({ type: 'connected' });
        case 'arm':
          armed = m.phase;
          received = 0;
          stray = 0;
          latencies = [];
          elu0 = performance.eventLoopUtilization();
          clearInterval(counter);
          counter = setInterval(() => send({ type: 'count', phase: armed, received }), 5);
          return send({ type: 'armed' });
        case 'collect': {
          clearInterval(counter);
          const reply: LoadReply = { type: 'collected', phase: m.phase, received, stray, latenciesMs: latencies, lastMs, elu: elu0 ? performance.eventLoopUtilization(elu0).utilization : 0 };
          armed = -1;
          latencies = [];
          return send(reply);
        }
        case 'count':
          if (m.phase === floodPhase) {
            floodReceived = m.received;
            wake?.();
          }
          return;
        case 'flood':
          return flood(m);
        case 'paced':
          return paced(m);
        case 'end':
          clearInterval(counter);
          await Promise.all([...clients.values()].map((c) => c.endAsync(true)));
          process.disconnect?.();
          return;
      }
    };
    run().catch((err: Error) => {
      send({ type: 'error', message: err.stack ?? err.message });
      process.exitCode = 1;
    });
  });
  // The suite went away (or ended us): nothing to stay for.
  process.on('disconnect', () => process.exit(process.exitCode ?? 0));
}

if (process.send) await main();
