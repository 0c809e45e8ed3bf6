/**
 * `wott gateway` processes on one Redis and one data folder, attacked the way production does:
 * - 3 × 200 token enrollments at once, spread over three nodes: every serial unique, every token used once, every
 *   certificate a client received stored in the inventory;
 * - `kill -9` of the node holding a persistent subscriber's session: it reconnects to another node and no QoS 1
 *   message the publisher had acknowledged is lost.
 */
import 'reflect-metadata';
import { request } from 'node:https';
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import * as x509 from '@peculiar/x509';
import mqtt from 'mqtt';
import t from 'tap';
import { parseCertsOnly } from '../../agent/index.js';
import { CertificateAuthority } from '../../ca/index.js';
import { EST_PATHS } from '../../protocol/index.js';
import { requireCommand, startGatewayProcess, tempDir, writeTemp } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

interface NodeProcess {
  child: ChildProcess;
  httpsPort: number;
  mqttPort: number;
  /** Everything the process printed (pino JSON lines at info and above). */
  log: string[];
}

async function startNode(data: string, config: string): Promise<NodeProcess> {
  const { child, port, log } = await startGatewayProcess(data, ['--config', config]);
  const line = log.find((l) => /"mqtt":\d+/.test(l))!;
  return { child, httpsPort: port, mqttPort: Number(/"mqtt":(\d+)/.exec(line)![1]), log };
}

function lastLines(nodes: NodeProcess[]): string {
  return nodes.map((n, i) => `node ${i} (${n.child.exitCode ?? n.child.signalCode ?? 'running'}):\n  ${n.log.slice(-15).join('\n  ')}`).join('\n');
}

/**
 * An MQTT connection made as a device makes it: once more if the first attempt got no CONNACK. A connect that hung
 * for 30 s failed this file once in CI and never came back in repeated runs; the retry keeps a transient from failing
 * the test, and the comment (with what each node printed last) keeps it visible.
 */
async function connectTo(t: { comment(message: string): unknown }, nodes: NodeProcess[], name: string, url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  try {
    return await mqtt.connectAsync(url, { connectTimeout: 15_000, ...options });
  } catch (err) {
    t.comment(`${name}: ${(err as Error).message}; trying once more\n${lastLines(nodes)}`);
  }
  try {
    return await mqtt.connectAsync(url, { connectTimeout: 15_000, ...options });
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}\n${lastLines(nodes)}`);
  }
}

/** A cluster of `count` gateway processes (scoring off: these tests are about the broker and the CA). */
async function cluster(t: Parameters<typeof tempDir>[0], count: number) {
  const redis = await startRedis(t);
  if (!redis) return undefined;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const config = writeTemp(
    dir,
    'wott.yaml',
    [
      'cluster:',
      `  redis: ${redis.url}`,
      'scoring:',
      '  enabled: false',
      'gateway:',
      '  httpsLimits:',
      '    maxConnectionsPerSource: 2000',
      // 600 handshakes at once on a loaded 2-core machine can outlast the 10 s default; what this file tests is issuance.
      '    handshakeTimeout: 120s',
      '    headersTimeout: 120s',
      '    requestTimeout: 120s',
      '    connectRate: { max: 100000, window: 10s, ban: 1s }',
      'policies:',
      '  - { topic: "weather/#", publish: 0.4, subscribe: 0.4 }',
      '',
    ].join('\n'),
  );
  const nodes: NodeProcess[] = [];
  t.teardown(() => nodes.forEach((n) => n.child.kill('SIGKILL')));
  nodes.push(await startNode(data, config)); // creates the CA; the others join it
  for (let i = 1; i < count; i++) nodes.push(await startNode(data, config));
  const ca = await CertificateAuthority.open({ dataDir: data });
  t.teardown(() => ca.close());
  const caPem = readFileSync(join(data, 'ca', 'intermediate.crt'), 'utf8') + readFileSync(join(data, 'ca', 'root.crt'), 'utf8');
  return { nodes, ca, caPem, data };
}

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

async function keyAndCsr(id: string): Promise<{ keyPem: string; csr: Buffer }> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${id}`, keys, signingAlgorithm: alg });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`, csr: Buffer.from(csr.rawData) };
}

function simpleEnroll(port: number, caPem: string, id: string, token: string, csr: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `https://localhost:${port}${EST_PATHS.simpleenroll}`,
      { method: 'POST', ca: caPem, auth: `${id}:${token}`, agent: false, headers: { 'Content-Type': 'application/pkcs10' } },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(csr.toString('base64'));
  });
}

t.test('3 × 200 enrollments at once over three nodes: unique serials, tokens used once, every certificate stored', async (t) => {
  if (!requireCommand(t, 'redis-server', 'redis-server')) return;
  const c = await cluster(t, 3);
  if (!c) return;
  const PER_NODE = 200;
  const devices = Array.from({ length: 3 * PER_NODE }, (_, i) => `dev-${i}`);
  const prepared = await Promise.all(devices.map(async (id) => ({ id, token: (await c.ca.createToken(id)).token, ...(await keyAndCsr(id)) })));
  const replies = await Promise.all(prepared.map((p, i) => simpleEnroll(c.nodes[i % 3]!.httpsPort, c.caPem, p.id, p.token, p.csr)));
  const failed = replies.filter((r) => r.status !== 200);
  t.equal(failed.length, 0, `every enrollment answered 200 (${failed.slice(0, 3).map((r) => `${r.status} ${r.body.slice(0, 80)}`).join('; ')})`);
  const serials = replies.map((r) => parseCertsOnly(r.body)[0]!.serialNumber.toLowerCase());
  t.equal(new Set(serials).size, serials.length, 'every serial unique');
  const stored = new Set((await c.ca.inventory.certificates({})).map((cert) => cert.serial.toLowerCase()));
  t.equal(serials.filter((s) => !stored.has(s)).length, 0, 'every certificate a client received is in the inventory');

  // Each token was used once: replaying some of them on every node is refused, and issues nothing.
  const before = stored.size;
  const replays = await Promise.all(prepared.slice(0, 6).map((p, i) => simpleEnroll(c.nodes[(i + 1) % 3]!.httpsPort, c.caPem, p.id, p.token, p.csr)));
  t.same(replays.map((r) => r.status >= 400 && r.status < 500), replays.map(() => true), 'replayed tokens refused on every node');
  t.equal((await c.ca.inventory.certificates({})).length, before, 'nothing issued by the replays');
});

t.test('kill -9 of the node holding a persistent session: no acknowledged QoS 1 message is lost', async (t) => {
  if (!requireCommand(t, 'redis-server', 'redis-server')) return;
  const c = await cluster(t, 2);
  if (!c) return;
  const [a, b] = c.nodes as [NodeProcess, NodeProcess];
  const creds = async (id: string) => {
    const { keyPem, csr } = await keyAndCsr(id);
    const reply = await simpleEnroll(b.httpsPort, c.caPem, id, (await c.ca.createToken(id)).token, csr);
    return { key: keyPem, cert: parseCertsOnly(reply.body)[0]!.toString(), ca: c.caPem };
  };
  const subCreds = await creds('sub-1');
  const pubCreds = await creds('pub-1');
  const options = (port: number, id: string, cr: typeof subCreds, extra: mqtt.IClientOptions = {}) => ({
    ...cr,
    clientId: id,
    protocolVersion: 4 as const,
    reconnectPeriod: 0,
    clean: false,
    ...extra,
    port,
  });
  const received = new Set<number>();
  const onMessage = (_topic: string, payload: Buffer) => received.add(Number(payload.toString()));
  let sub = await connectTo(t, c.nodes, 'subscriber connects to node A', `mqtts://localhost:${a.mqttPort}`, options(a.mqttPort, 'sub-1', subCreds));
  sub.on('message', onMessage);
  await sub.subscribeAsync('weather/q', { qos: 1 });
  const pub = await connectTo(t, c.nodes, 'publisher connects to node B', `mqtts://localhost:${b.mqttPort}`, options(b.mqttPort, 'pub-1', pubCreds, { clean: true }));
  t.teardown(() => pub.end(true));

  const acknowledged: number[] = [];
  const publish = async (from: number, to: number) => {
    for (let n = from; n < to; n++) {
      await pub.publishAsync('weather/q', String(n), { qos: 1 });
      acknowledged.push(n);
    }
  };
  await publish(0, 50);
  await waitFor(() => received.size >= 10, 'the subscriber on node A receives');
  a.child.kill('SIGKILL'); // the node holding the subscriber's session dies mid-stream
  await publish(50, 100); // acknowledged by node B while the subscriber is offline
  sub.end(true);
  sub = await connectTo(t, c.nodes, 'subscriber reconnects to node B', `mqtts://localhost:${b.mqttPort}`, options(b.mqttPort, 'sub-1', subCreds));
  t.teardown(() => sub.end(true));
  sub.on('message', onMessage);
  await publish(100, 120);
  await waitFor(() => acknowledged.every((n) => received.has(n)), `every acknowledged message delivered (missing: ${acknowledged.filter((n) => !received.has(n)).slice(0, 10).join(',')})`, 20_000);
  t.equal(acknowledged.filter((n) => !received.has(n)).length, 0, `all ${acknowledged.length} acknowledged messages reached the subscriber after it moved to node B`);
});
