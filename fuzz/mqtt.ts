/**
 * The MQTT fuzzer: a real gateway (startGateway on 127.0.0.1 free ports, its own CA, SQLite in a temp dir), one
 * legitimate device subscribed to its own topic over mTLS, and per case a raw TLS socket with another device's
 * certificate that writes generated-then-mutated MQTT packets (mqtt-packet for valid packets of every type, then
 * broken lengths, bytes, UTF-8 and cut streams). Properties: no exception escapes in the gateway's process, the
 * bad connection is closed or still served (never a hang of the others), the legitimate device's QoS 1 round trip
 * still completes after every case, and its score is untouched: the gateway's score cache and the retained score
 * message stay what the scoring identity published. At the end the broker is back to its baseline connections, and
 * the process's heap after a full GC is measured against the one after prepare() (`report()`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import fc from 'fast-check';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { quietGatewayOptions, startGateway, type Gateway } from '../gateway/index.js';
import { EST_PATHS, TOPIC_ROOT, topicFilters, topics } from '../protocol/index.js';
import { PropertyFailure, type FuzzTarget } from './targets.js';

/** A real gateway on 127.0.0.1 free ports with its own CA and SQLite inventory in a fresh temp dir. */
export async function startFuzzGateway(name: string, extra: Partial<Parameters<typeof startGateway>[0]> = {}): Promise<{ gw: Gateway; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), `wott-fuzz-${name}-`));
  const gw = await startGateway({
    ...quietGatewayOptions(dir, [{ topic: 'fuzz/#', publish: 0, subscribe: 0 }]),
    eventIntervalMs: 500,
    // One source sends every case: the per-source connect rate (300 per 10 s, then a 60 s ban) would refuse the
    // fuzzer itself after a few seconds. That ban is tested on its own (test/hardening).
    httpsLimits: { connectRate: { max: 1_000_000, windowMs: 10_000, banMs: 1 } },
    ...extra,
  } as Parameters<typeof startGateway>[0]);
  return { gw, dir };
}

export interface Creds {
  key: string;
  cert: string;
}

/** Enrolls `id` through the gateway's real EST endpoint; openssl makes the key and CSR and reads the PKCS#7 reply. */
export async function enrollDevice(gw: Gateway, caPem: string, dir: string, id: string): Promise<Creds> {
  const token = (await gw.ca.createToken(id)).token;
  const keyPath = join(dir, `${id}.key`);
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath]);
  const der = execFileSync('openssl', ['req', '-new', '-key', keyPath, '-subj', `/CN=${id}`, '-outform', 'DER']);
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(`https://127.0.0.1:${gw.httpsPort}${EST_PATHS.simpleenroll}`, { method: 'POST', ca: caPem, servername: 'localhost', auth: `${id}:${token}` }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(data) : reject(new Error(`enroll ${id}: ${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(der.toString('base64'));
  });
  const pem = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: Buffer.from(body, 'base64') }).toString();
  const cert = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/.exec(pem)![0];
  return { key: execFileSync('openssl', ['pkey', '-in', keyPath]).toString(), cert };
}

/** Valid packets of every type a client can send (and some only a server sends), for mqtt-packet to encode. */
function packetArb(device: string): fc.Arbitrary<mqttPacket.Packet> {
  // The legitimate device's score and telemetry topics: a device must never move another's score.
  const victim = [topics.scores(GOOD), topics.telemetry(GOOD), topics.scores(device), topics.telemetry(device), topicFilters.scores, `${TOPIC_ROOT}/#`];
  const topic = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(`fuzz/${device}`, 'fuzz/good', '#', '+/+', '$SYS/x', 'a'.repeat(300)) }, { weight: 2, arbitrary: fc.constantFrom(...victim) }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) });
  // A well-formed score message is the forgery that matters: the legitimate device at 0.01, the sender at 1.
  const forged = (d: string, score: number) => JSON.stringify({ device: d, score, factors: [], modelVersion: 'forged', time: new Date(0).toISOString() });
  const payload = fc.oneof(fc.constant(''), fc.string({ maxLength: 50 }), fc.constantFrom(forged(GOOD, 0.01), forged(device, 1)), fc.nat({ max: 70_000 }).map((n) => Buffer.alloc(n, 0x61)));
  const id = fc.integer({ min: 1, max: 65535 });
  return fc.oneof(
    fc.record({ cmd: fc.constant('connect' as const), clientId: fc.oneof(fc.constant(device), fc.string({ maxLength: 30 })), protocolVersion: fc.constantFrom(3, 4, 5) as fc.Arbitrary<3 | 4 | 5>, clean: fc.boolean(), keepalive: fc.nat({ max: 65535 }) }),
    fc.record({ cmd: fc.constant('publish' as const), topic, payload, qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>, retain: fc.boolean(), dup: fc.boolean(), messageId: id }),
    // Score forgery: another device's score topic, a well-formed score message.
    fc.record({ cmd: fc.constant('publish' as const), topic: fc.constantFrom(topics.scores(GOOD), topics.scores(device)), payload: fc.constantFrom(forged(GOOD, 0.01), forged(device, 1)), qos: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>, retain: fc.boolean(), dup: fc.constant(false), messageId: id }),
    fc.record({ cmd: fc.constant('subscribe' as const), messageId: id, subscriptions: fc.array(fc.record({ topic, qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2> }), { minLength: 1, maxLength: 5 }) }),
    fc.record({ cmd: fc.constant('unsubscribe' as const), messageId: id, unsubscriptions: fc.array(topic, { minLength: 1, maxLength: 5 }) }),
    fc.record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp', 'unsuback') as fc.Arbitrary<'puback'>, messageId: id }),
    fc.record({ cmd: fc.constantFrom('pingreq', 'pingresp', 'disconnect') as fc.Arbitrary<'pingreq'> }),
    fc.record({ cmd: fc.constant('connack' as const), returnCode: fc.nat({ max: 5 }), sessionPresent: fc.boolean() }),
    fc.record({ cmd: fc.constant('suback' as const), messageId: id, granted: fc.array(fc.constantFrom(0, 1, 2, 128), { minLength: 1, maxLength: 3 }) }),
  ) as fc.Arbitrary<mqttPacket.Packet>;
}

type ByteOp = { op: 'set'; at: number; byte: number } | { op: 'cut'; at: number } | { op: 'insert'; at: number; bytes: Uint8Array } | { op: 'length'; at: number; bytes: Uint8Array };

const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  // Invalid UTF-8 and NULs inside strings, stray bytes.
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.oneof(fc.constantFrom(Uint8Array.of(0xc3, 0x28), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0), Uint8Array.of(0xff, 0xfe)), fc.uint8Array({ minLength: 1, maxLength: 8 })) }),
  // A broken remaining length right after a fixed header byte: huge, overlong (5 bytes), zero.
  fc.record({ op: fc.constant('length' as const), at: fc.nat(), bytes: fc.constantFrom(Uint8Array.of(0xff, 0xff, 0xff, 0x7f), Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x01), Uint8Array.of(0), Uint8Array.of(0x80, 0x80, 0x80, 0x80)) }),
);

function applyByteOp(buf: Buffer, op: ByteOp): Buffer {
  const at = buf.length ? op.at % buf.length : 0;
  switch (op.op) {
    case 'set':
      if (buf.length) buf[at] = op.byte;
      return buf;
    case 'cut':
      return buf.subarray(0, at);
    case 'insert':
      return Buffer.concat([buf.subarray(0, at), Buffer.from(op.bytes), buf.subarray(at)]);
    case 'length':
      return Buffer.concat([buf.subarray(0, at + 1), Buffer.from(op.bytes), buf.subarray(at + 1)]);
  }
}

/** The case: a valid CONNECT (usually) then 1-6 packets, the stream then mutated; hex so the corpus keeps it. */
function streamArb(device: string): fc.Arbitrary<string> {
  const connect = mqttPacket.generate({ cmd: 'connect', clientId: device, protocolVersion: 4, clean: true, keepalive: 30 } as mqttPacket.IConnectPacket);
  return fc
    .record({
      withConnect: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      packets: fc.array(packetArb(device), { minLength: 1, maxLength: 6 }),
      ops: fc.array(byteOp, { maxLength: 4 }),
    })
    .map(({ withConnect, packets, ops }) => {
      const parts = packets.map((p) => {
        try {
          return mqttPacket.generate(p, { protocolVersion: 4 });
        } catch {
          return Buffer.alloc(0);
        }
      });
      const body = ops.reduce(applyByteOp, Buffer.concat(parts));
      return Buffer.concat([withConnect ? connect : Buffer.alloc(0), body]).toString('hex');
    });
}

const GOOD = 'fuzz-good';
const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;
/** The legitimate device's score, as the scoring identity publishes it (retained); no other value appears by chance. */
const GOOD_SCORE = 0.73;

/** A full collection now: --expose-gc when the runner passed it, else switched on at run time (tap does not pass it). */
function collect(): void {
  if (!global.gc) setFlagsFromString('--expose-gc');
  const gc = global.gc ?? (runInNewContext('gc') as () => void);
  gc();
  gc();
}

/** Heap and connections at the baseline (after prepare) and at the end (after close), after a full GC. */
export const mqttMemory = { baselineHeapBytes: 0, finalHeapBytes: 0, baselineConnections: 0, finalConnections: 0 };

interface State {
  gw: Gateway;
  scorer: mqtt.MqttClient;
  retained: string;
  dir: string;
  caPem: string;
  bad: Creds;
  good: mqtt.MqttClient;
  escaped: unknown[];
  onError: (err: unknown) => void;
}
let state: State | undefined;
let counter = 0;

/** The retained score message of `device` in the broker's persistence (undefined: none). */
async function retainedScore(gw: Gateway, device: string): Promise<string | undefined> {
  const { persistence } = gw.broker as unknown as { persistence: { createRetainedStream(pattern: string): AsyncIterable<{ payload: Buffer | string }> } };
  let payload: string | undefined;
  for await (const packet of persistence.createRetainedStream(topics.scores(device))) payload = packet.payload.toString();
  return payload;
}

/** The legitimate device's score is still the published one, in the cache decisions use and in the retained message. */
async function scoreUnchanged(s: State): Promise<void> {
  const cached = s.gw.plugin.effectiveScore(GOOD);
  if (cached !== GOOD_SCORE) throw new PropertyFailure(`mqtt: the legitimate device's cached score moved from ${GOOD_SCORE} to ${cached}`);
  const retained = await retainedScore(s.gw, GOOD);
  if (retained !== s.retained) throw new PropertyFailure(`mqtt: the legitimate device's retained score changed: ${String(retained).slice(0, 200)}`);
}

async function roundTrip(s: State): Promise<void> {
  const body = `ping-${++counter}`;
  const got = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new PropertyFailure(`mqtt: the legitimate device's QoS 1 message ${body} was not delivered within 10 s`)), 10_000);
    const onMessage = (_t: string, p: Buffer) => {
      if (p.toString() === body) {
        clearTimeout(timer);
        s.good.off('message', onMessage);
        resolve();
      }
    };
    s.good.on('message', onMessage);
  });
  await s.good.publishAsync('fuzz/good', body, { qos: 1 });
  await got;
}

export const mqttTarget: FuzzTarget<string> = {
  name: 'mqtt',
  description: 'raw MQTT byte streams (generated with mqtt-packet, then mutated) over real mTLS to a real gateway: no escaped exception, the legitimate device keeps its deliveries and its score, connections and heap back to baseline',
  prepare: async () => {
    if (state) return;
    const { gw, dir } = await startFuzzGateway('mqtt');
    const caPem = gw.ca.caCertificates().map((c) => c.toString()).join('');
    const goodCreds = await enrollDevice(gw, caPem, dir, GOOD);
    const bad = await enrollDevice(gw, caPem, dir, 'fuzz-bad');
    const good = await mqtt.connectAsync(`mqtts://127.0.0.1:${gw.mqttPort}`, { ...goodCreds, ca: caPem, servername: 'localhost', clientId: 'fuzz-good', reconnectPeriod: 0 } as mqtt.IClientOptions);
    await good.subscribeAsync('fuzz/good', { qos: 1 });
    // The scoring identity publishes the legitimate device's score, retained, as in production.
    const scoring = await gw.ca.issueService('scoring', 'fuzz');
    const scorer = await mqtt.connectAsync(`mqtts://127.0.0.1:${gw.mqttPort}`, { key: scoring.keyPem, cert: scoring.pem, ca: caPem, servername: 'localhost', clientId: 'scoring:fuzz', reconnectPeriod: 0 } as mqtt.IClientOptions);
    const retained = JSON.stringify({ device: GOOD, score: GOOD_SCORE, factors: [], modelVersion: 'fuzz', time: new Date().toISOString() });
    await scorer.publishAsync(topics.scores(GOOD), retained, { qos: 1, retain: true });
    for (let i = 0; gw.plugin.effectiveScore(GOOD) !== GOOD_SCORE; i++) {
      if (i > 1000) throw new Error(`mqtt: the score for ${GOOD} never reached the broker's cache`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const escaped: unknown[] = [];
    const onError = (err: unknown) => escaped.push(err);
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
    state = { gw, scorer, retained, dir, caPem, bad, good, escaped, onError };
    await roundTrip(state);
    await scoreUnchanged(state);
    collect();
    mqttMemory.baselineHeapBytes = process.memoryUsage().heapUsed;
    mqttMemory.baselineConnections = gw.broker.connectedClients;
  },
  close: async () => {
    const s = state;
    state = undefined;
    if (!s) return;
    try {
      await roundTrip(s);
      await scoreUnchanged(s);
      // Every fuzzed connection gone again: only the legitimate device and the scorer remain.
      for (let i = 0; s.gw.broker.connectedClients !== mqttMemory.baselineConnections && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
      mqttMemory.finalConnections = s.gw.broker.connectedClients;
      collect();
      mqttMemory.finalHeapBytes = process.memoryUsage().heapUsed;
      if (mqttMemory.finalConnections !== mqttMemory.baselineConnections) throw new PropertyFailure(`mqtt: ${mqttMemory.finalConnections} connections after the run, ${mqttMemory.baselineConnections} before`);
    } finally {
      process.off('uncaughtException', s.onError);
      process.off('unhandledRejection', s.onError);
      await s.good.endAsync();
      await s.scorer.endAsync();
      await s.gw.close();
      rmSync(s.dir, { recursive: true, force: true });
    }
    if (s.escaped.length) throw new PropertyFailure(`mqtt: an exception escaped in the gateway after the last case: ${String(s.escaped[0])}`);
  },
  input: () => streamArb('fuzz-bad'),
  check: async (hex) => {
    const s = state;
    if (!s) throw new Error('mqtt: prepare() first');
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: s.gw.mqttPort, ca: s.caPem, servername: 'localhost', key: s.bad.key, cert: s.bad.cert });
    socket.on('error', () => {});
    socket.on('data', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('close', () => reject(new PropertyFailure('mqtt: the gateway refused the TLS handshake of an enrolled device')));
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(Buffer.from(hex, 'hex'));
    // A full QoS 1 round trip of the legitimate device while the bad connection is open: a stalled or crashed
    // broker shows here; an exception thrown later while handling the bad bytes is caught by the next case or
    // at the end of the run (close()).
    await roundTrip(s);
    socket.destroy();
    await closed;
    if (s.escaped.length) {
      const err = s.escaped.splice(0)[0];
      throw new PropertyFailure(`mqtt: an exception escaped in the gateway: ${err instanceof Error ? err.stack : String(err)}`);
    }
    if (!s.good.connected) throw new PropertyFailure('mqtt: the legitimate device was disconnected');
    await scoreUnchanged(s);
  },
  report: () => ({
    heapBaselineMb: mb(mqttMemory.baselineHeapBytes),
    heapAfterMb: mb(mqttMemory.finalHeapBytes),
    heapGrowthMb: mb(mqttMemory.finalHeapBytes - mqttMemory.baselineHeapBytes),
    connectionsBefore: mqttMemory.baselineConnections,
    connectionsAfter: mqttMemory.finalConnections,
  }),
};
