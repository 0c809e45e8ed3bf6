/** Test plumbing for the broker: enroll real devices over EST, connect real MQTT clients, publish scores. */
import { execFile, spawn } from 'node:child_process';
import { request } from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { startGateway, type Gateway } from '../gateway/index.js';
import type { PolicyRule } from '../policy/index.js';
import { behaviourEventSchema, EST_PATHS, topicFilters, topics, type BehaviourEvent, type ServiceRole } from '../protocol/index.js';
import { makeCsr, openssl, tempDir } from './helpers.js';

type T = Parameters<typeof tempDir>[0];

export const POLICIES: PolicyRule[] = [
  { topic: 'weather/#', publish: 0.4, subscribe: 0.4 },
  { topic: 'payments/#', publish: 0.9, subscribe: 0.9 },
  { topic: 'devices/{device}/#', publish: 0, subscribe: 0 },
];

type GatewayOptions = Parameters<typeof startGateway>[0];

/** The test gateway's options on `dataDir` (a test that restarts a gateway on the same data starts it with these). */
export function testGatewayOptions(dataDir: string, extra: Partial<GatewayOptions> = {}): GatewayOptions {
  return {
    dataDir,
    httpsPort: 0,
    mqttPort: 0,
    hosts: [],
    certLifetimeMs: 7 * 86_400_000,
    crlValidityMs: 86_400_000,
    claim: false,
    log: pino({ level: 'silent' }),
    policies: POLICIES,
    initialScore: 0.5,
    onDowngrade: 'filter',
    eventIntervalMs: 500,
    trustPollMs: 100,
    ...extra,
  };
}

export async function testGateway(t: T, extra: Partial<GatewayOptions> = {}): Promise<Gateway & { dir: string; caPem: string }> {
  const dir = tempDir(t);
  const gw = await startGateway(testGatewayOptions(dir, extra));
  t.teardown(() => gw.close());
  return Object.assign(gw, { dir, caPem: gw.ca.caCertificates().map((c) => c.toString()).join('') });
}

export interface Credentials {
  id: string;
  key: string;
  cert: string;
  ca: string;
  keyPath: string;
  certPath: string;
  caPath: string;
  serial: string;
}

function writeCreds(dir: string, id: string, key: string, cert: string, ca: string, serial: string): Credentials {
  const keyPath = join(dir, `${id}.key`);
  const certPath = join(dir, `${id}.crt`);
  const caPath = join(dir, 'ca.pem');
  writeFileSync(keyPath, key, { mode: 0o600 });
  writeFileSync(certPath, cert);
  writeFileSync(caPath, ca);
  return { id, key, cert, ca, keyPath, certPath, caPath, serial };
}

/** Enrolls `id` through the gateway's real EST endpoint (HTTP Basic + one-time token). */
export async function enroll(gw: Gateway & { dir: string; caPem: string }, dir: string, id: string): Promise<Credentials> {
  const token = (await gw.ca.createToken(id)).token;
  const { der, keyPath } = makeCsr(dir, `/CN=${id}`);
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(`https://localhost:${gw.httpsPort}${EST_PATHS.simpleenroll}`, { method: 'POST', ca: gw.caPem, auth: `${id}:${token}` }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(data) : reject(new Error(`enroll ${id}: ${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(der.toString('base64'));
  });
  const pem = openssl(['pkcs7', '-inform', 'DER', '-print_certs'], Buffer.from(body, 'base64')).toString();
  const cert = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/.exec(pem)![0];
  const serial = openssl(['x509', '-noout', '-serial'], cert).toString().trim().split('=')[1]!.toLowerCase();
  const { readFileSync } = await import('node:fs');
  return writeCreds(dir, id, readFileSync(keyPath, 'utf8'), cert, gw.caPem, serial);
}

export async function serviceCredentials(gw: Gateway & { caPem: string }, dir: string, role: ServiceRole, name: string): Promise<Credentials> {
  const issued = await gw.ca.issueService(role, name);
  return writeCreds(dir, `${role}-${name}`, issued.keyPem, issued.pem, gw.caPem, issued.serial);
}

export async function connect(gw: { mqttPort: number }, creds: Pick<Credentials, 'key' | 'cert' | 'ca'> & { id: string }, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(`mqtts://localhost:${gw.mqttPort}`, {
    key: creds.key,
    cert: creds.cert,
    ca: creds.ca,
    clientId: creds.id.includes(':') || options.clientId ? options.clientId ?? creds.id : creds.id,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4,
    ...options,
  });
}

/** A connection attempt that may be refused: the connected client, or undefined when the broker closed it. */
/**
 * A persistent session (clean: false) that subscribes to `filter` at QoS 1 and goes away: what the broker then
 * publishes there queues for it. Returns once the broker no longer holds a session of that device.
 */
export async function subscribeAndLeave(gw: { mqttPort: number; plugin: { sessionsOf(device: string): unknown[] } }, creds: Pick<Credentials, 'key' | 'cert' | 'ca'>, clientId: string, filter: string): Promise<void> {
  const client = await connect(gw, { ...creds, id: clientId }, { clean: false });
  await client.subscribeAsync(filter, { qos: 1 });
  client.end(true);
  const device = clientId.split(':')[0]!;
  await waitFor(() => gw.plugin.sessionsOf(device).length === 0, `${clientId} gone`);
}

export function tryConnect(gw: { mqttPort: number }, creds: { key: string; cert: string; ca: string; id: string }): Promise<mqtt.MqttClient | undefined> {
  return new Promise((resolve) => {
    const client = mqtt.connect(`mqtts://localhost:${gw.mqttPort}`, { key: creds.key, cert: creds.cert, ca: creds.ca, clientId: creds.id, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 });
    client.on('error', () => {});
    client.once('connect', () => resolve(client));
    client.once('close', () => {
      if (client.connected) return;
      client.end(true);
      resolve(undefined);
    });
  });
}

/** Connection attempt expected to fail: resolves with the error. */
export function connectError(gw: { mqttPort: number }, creds: { key: string; cert: string; ca: string; id: string }): Promise<Error> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtts://localhost:${gw.mqttPort}`, { key: creds.key, cert: creds.cert, ca: creds.ca, clientId: creds.id, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 });
    let error: Error | undefined;
    client.on('connect', () => {
      client.end(true);
      reject(new Error('connected but should have been refused'));
    });
    client.on('error', (err) => (error = err));
    // Refusals before CONNACK just close the socket; resolve with whatever error the client saw.
    client.on('close', () => {
      client.end(true);
      resolve(error ?? new Error('connection closed by the broker'));
    });
  });
}

/** Publishes a retained score as the scoring identity and waits until the broker's cache has it. */
export async function setScore(gw: Gateway, scorer: mqtt.MqttClient, device: string, score: number): Promise<void> {
  const message = { device, score, factors: [], modelVersion: 'test', time: new Date().toISOString() };
  await scorer.publishAsync(topics.scores(device), JSON.stringify(message), { qos: 1, retain: true });
  await waitFor(() => gw.plugin.effectiveScore(device) === score || gw.plugin.deviceState(device) === 'quarantined', `score ${score} for ${device}`);
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects messages arriving on a client. */
export function inbox(client: mqtt.MqttClient): Array<{ topic: string; payload: string }> {
  const got: Array<{ topic: string; payload: string }> = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

/**
 * A round trip through the broker that proves earlier messages have been routed: the sender publishes a marker on a
 * topic the receiver may read, and we wait for it. Anything not delivered by then was suppressed.
 */
export async function barrier(sender: mqtt.MqttClient, receiverInbox: Array<{ topic: string }>, topic: string): Promise<void> {
  const marker = `${topic}/barrier-${Math.random().toString(36).slice(2)}`;
  await sender.publishAsync(marker, 'x', { qos: 1 });
  await waitFor(() => receiverInbox.some((m) => m.topic === marker), `barrier ${marker}`);
}

export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A long-running mosquitto_sub; `lines` fills as messages arrive. */
export function mosquittoSub(args: string[]): { lines: string[]; done: Promise<number | null>; stop(): void; stderr: string[] } {
  const child = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const stderr: string[] = [];
  child.stdout.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
  const done = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { lines, done, stderr, stop: () => child.kill('SIGTERM') };
}

/** The granted QoS for one filter; 128 when the broker refused it (MQTT.js rejects the promise then). */
export async function subscribeGrant(client: mqtt.MqttClient, filter: string, qos: 0 | 1 = 1): Promise<number | undefined> {
  return (await subscribeGrants(client, [filter], qos))[0];
}

/** The granted QoS of each filter of one SUBSCRIBE, 128 for each one refused. */
export async function subscribeGrants(client: mqtt.MqttClient, filters: string[], qos: 0 | 1 = 1): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos })).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted) return granted;
    throw err;
  }
}

/** A certificate anyone could make: self-signed, with the victim's name in CN and SAN. */
export function forgedCredentials(dir: string, cn: string, ca: string): { key: string; cert: string; ca: string; id: string } {
  const keyPath = join(dir, `forged-${cn}.key`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath]);
  const cert = openssl(['req', '-new', '-x509', '-key', keyPath, '-subj', `/CN=${cn}`, '-days', '1', '-addext', `subjectAltName=URI:urn:wott:device:${cn}`]).toString();
  return { key: openssl(['pkey', '-in', keyPath]).toString(), cert, ca, id: cn };
}

/** Connects a scoring-service client that collects every behaviour event the broker publishes. */
export async function eventWatcher(t: T, gw: Gateway & { caPem: string }, dir: string): Promise<BehaviourEvent[]> {
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  const events: BehaviourEvent[] = [];
  scorer.on('message', (_topic, payload) => events.push(behaviourEventSchema.parse(JSON.parse(payload.toString()))));
  await scorer.subscribeAsync(topicFilters.events);
  return events;
}
