/**
 * `npm run bench -- soak [--minutes N] [--devices N]`: a long run of a real `wott gateway` process holding N devices
 * (10,000 by default) for N minutes (30), the numbers issue 21 asks for: what was held, what was lost (nothing), what
 * grew.
 *
 * Devices live in load worker threads (MQTT.js over mTLS, the agent's own EST client for enrollment and renewal):
 *  - each enrolls over EST with a one-time token, connects with a persistent session (clean: false);
 *  - publishes agent state reports (protocol/ telemetry) and QoS 1 application messages to soak/{group}/{device};
 *  - one device per group of `--group` subscribes to soak/{group}/# at QoS 1 and checks that every message whose
 *    PUBACK its publisher received arrives (lost = acknowledged, never delivered: must be 0);
 *  - renews its certificate (re-keyed, simplereenroll over mTLS) on the agent's schedule (2/3 of the lifetime minus
 *    jitter) with a short `--cert-lifetime`, then moves its session onto the new certificate; the first renewals are
 *    spread over the first period, as in a fleet that enrolled over time (`--renewal-storm 1`: all at once, as a
 *    fleet enrolled within the ramp would);
 *  - a device whose connection the gateway closes reconnects (counted);
 *  - `--revocations` publishers are revoked during the run through another connection to the inventory (as
 *    `wott ca revoke` in another process is): their sessions must be gone within 1 s.
 * The gateway's RSS and descriptors (from /proc), heap, event-loop delay p99, handles and connections (from its
 * Prometheus listener) are sampled every `--sample-seconds` (60, less for short runs).
 *
 * Baseline, in the same run: plain Aedes behind node:tls with the same certificates, holding the same devices with
 * the same traffic (no renewals: plain Aedes has no CA) for a shorter time: memory after warm-up, per device. The
 * gateway's own leak figure is the growth slope after warm-up, against a stated bound, of the memory it holds and
 * reserves (glibc's count, read by bench/malloc-probe.ts, and V8's), or of its RSS where glibc's count is missing.
 */
import mqtt from 'mqtt';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createHash, generateKeyPairSync, type X509Certificate } from 'node:crypto';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSecureContext, type SecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createCsr, EstError, renewalDelay, retryAfterMs, retryDelay, simpleEnroll, simpleReenroll } from '../agent/index.js';
import { CertificateAuthority } from '../ca/index.js';
import { FleetService } from '../fleet/index.js';
import { GATEWAY_MALLOC_ENV } from '../gateway/index.js';
import { AGENT_VERSION, TELEMETRY_SCHEMA_VERSION, telemetrySchema, topics, type Telemetry } from '../protocol/index.js';
import { numberOptions, type Suite, type SuiteResult } from './harness.js';
import { buildMallocProbe, mallocProbeEnv, readMallocProbe, type MallocInfo } from './malloc-probe.js';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves once `cond()` holds, polling; false when `ms` passed first. */
async function until(cond: () => boolean, ms: number, step = 100): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(step);
  }
  return true;
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

// ------------------------------------------------------------------ options

export interface SoakOptions {
  devices: number;
  minutes: number;
  /** Devices per delivery group (one of them subscribes to the group's messages). */
  group: number;
  /** Seconds between one device's application messages, and between its state reports. */
  appSeconds: number;
  telemetrySeconds: number;
  certLifetimeSeconds: number;
  /** Every device's first renewal when the agent schedules it from enrollment, so a fleet enrolled within a minute or
   * two renews within the same few minutes (`--renewal-storm 1`); by default the first renewals are spread over the
   * first renewal period, as in a fleet whose devices enrolled over time (then renewal keeps them spread). */
  renewalStorm: boolean;
  revocations: number;
  /** Group subscribers quarantined during the run (through the fleet, as `wott device quarantine` is), each released
   * after `quarantineSeconds`. */
  quarantines: number;
  quarantineSeconds: number;
  sampleSeconds: number;
  /** How long plain Aedes holds the same devices (0: no baseline). */
  baselineMinutes: number;
  /** The nice value of the load threads (0-19; `--load-nice`): above 0 the server measured gets the machine's CPU
   * first, as it would with its devices on other machines. */
  loadNice: number;
}

/** `--minutes 30 --devices 10000` style arguments (also `--minutes=30`), with defaults scaled to the run. */
export function soakOptions(args: string[]): SoakOptions {
  const given = numberOptions(args, 'soak', ['devices', 'minutes', 'group', 'app-seconds', 'telemetry-seconds', 'cert-lifetime', 'revocations', 'quarantines', 'quarantine-seconds', 'sample-seconds', 'baseline-minutes', 'load-nice', 'renewal-storm']);
  const devices = Math.floor(given.get('devices') ?? 10_000);
  const minutes = given.get('minutes') ?? 30;
  if (devices < 2) throw new Error('--devices: at least 2');
  if (!(minutes > 0)) throw new Error('--minutes: must be positive');
  return {
    devices,
    minutes,
    group: Math.max(2, Math.floor(given.get('group') ?? 50)),
    // Realistic for sensors: an application message every 30 s; state reports every 2 minutes (the agent's own
    // default is 15: faster here, so scoring works during the run).
    appSeconds: given.get('app-seconds') ?? 30,
    telemetrySeconds: given.get('telemetry-seconds') ?? 120,
    // Renewal falls due at 2/3 of (lifetime + 1 min backdating): a few renewals per device within the run.
    certLifetimeSeconds: given.get('cert-lifetime') ?? Math.min(3600, Math.max(180, (minutes * 60) / 3)),
    renewalStorm: (given.get('renewal-storm') ?? 0) > 0,
    revocations: Math.floor(given.get('revocations') ?? Math.max(3, Math.min(50, Math.round(minutes)))),
    quarantines: Math.floor(given.get('quarantines') ?? Math.max(2, Math.min(10, Math.round(minutes / 3)))),
    quarantineSeconds: given.get('quarantine-seconds') ?? Math.max(5, Math.min(60, minutes * 2)),
    sampleSeconds: given.get('sample-seconds') ?? Math.max(5, Math.min(60, (minutes * 60) / 12)),
    baselineMinutes: given.get('baseline-minutes') ?? Math.min(5, Math.max(1, minutes / 5)),
    // 0 by default: at nice 10 the 10,000-device renewal storm went worse, not better (the load threads' own TLS
    // handshakes then outlived the gateway's 10 s handshake timeout: 22,000 resets instead of 4,300).
    loadNice: Math.max(0, Math.min(19, Math.floor(given.get('load-nice') ?? 0))),
  };
}

// ------------------------------------------------------------------ load worker (one thread, a slice of the devices)

interface DeviceSpec {
  id: string;
  group: string;
  subscriber: boolean;
  token?: string;
  key?: string;
  cert?: string;
}

interface LoadSpec {
  role: 'wott-soak-load';
  /** gateway: enroll, renew, telemetry; aedes: the same connections and traffic with the credentials given. */
  mode: 'gateway' | 'aedes';
  mqttPort: number;
  estUrl: string;
  caPem: string;
  devices: DeviceSpec[];
  appMs: number;
  telemetryMs: number;
  nice: number;
  renewalStorm: boolean;
}

export interface LoadStats {
  enrollments: number;
  enrollFailures: number;
  held: number;
  appSent: number;
  appAcked: number;
  delivered: number;
  /** Acknowledged to the publisher and not (yet) delivered to the group's subscriber, which is connected (outside
   * quarantines: lost). */
  pending: number;
  /** Acknowledged and not (yet) delivered because the group's subscriber has no connection (its certificate expired
   * after failed renewals, say): queued in its persistent session, not delivered within the run. */
  queuedForDown: number;
  /** Acknowledged and not delivered because the group's subscriber was quarantined when it was published (from the
   * quarantine's start until the first delivery after its release): withheld as the fleet asked. */
  withheld: number;
  /** Delivered without a PUBACK seen by the publisher (in flight when a session moved), or delivered again. */
  unackedOrDuplicate: number;
  telemetrySent: number;
  telemetryAcked: number;
  renewals: number;
  renewalFailures: number;
  /** Failed renewal attempts by reason: the HTTP status EST answered, or the client's error (timeout, reset …). */
  renewalFailureReasons: Record<string, number>;
  /** Connections the gateway closed without being asked (not revocations, not moves onto a renewed certificate). */
  reconnects: number;
  connectFailures: number;
  /** Devices (not revoked) without a connection when the stats were taken, by state. */
  down: number;
  moving: number;
  lostSample: string[];
  /** Why connections ended that the device did not end: device, time, the client's last error. */
  reconnectSample: string[];
}

type ToWorker =
  | { type: 'go' }
  | { type: 'expect-revoke'; device: string }
  | { type: 'quarantine'; device: string; phase: 'start' | 'committed' | 'released'; at: number }
  | { type: 'stats' }
  | { type: 'stop' }
  | { type: 'close' };
type FromWorker =
  | { type: 'ready'; stats: LoadStats }
  | { type: 'revoke-ready'; device: string; ok: boolean }
  | { type: 'revoke-closed'; device: string; at: number }
  | { type: 'quarantine-ready'; device: string; ok: boolean }
  /** Quarantine committed -> the last message still delivered (publish time; 0 when none was), and release
   * committed -> the first message published after it delivered (undefined: none within the run). */
  | { type: 'quarantine-result'; device: string; stopMs: number; resumeMs: number | undefined }
  | { type: 'stats'; stats: LoadStats }
  | { type: 'drained'; stats: LoadStats }
  | { type: 'closed'; creds: DeviceSpec[] }
  | { type: 'fatal'; message: string };

const PACKAGES = Array.from({ length: 20 }, (_, i) => ({ name: `pkg${i}`, source: `pkg${i}`, version: `1.${i}-1` }));
const PACKAGES_HASH = createHash('sha256')
  .update(PACKAGES.map((p) => `${p.name} ${p.source} ${p.version}`).sort().join('\n'))
  .digest('hex');

/** A well-kept device's state report, in protocol/'s shape (validated once per worker). */
function stateReport(device: string, reportId: number): Telemetry {
  return {
    schema: TELEMETRY_SCHEMA_VERSION,
    device,
    reportId,
    time: new Date().toISOString(),
    agentVersion: AGENT_VERSION,
    os: { id: 'debian', versionId: '12', versionCodename: 'bookworm', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    kernel: '6.1.0-soak',
    uptimeSeconds: Math.round(performance.now() / 1000),
    listening: [{ protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' }],
    firewall: { tool: 'nftables', rules: 12, defaultInputPolicy: 'drop' },
    ssh: { installed: true, settings: { passwordauthentication: 'no', permitrootlogin: 'no' } },
    defaultCredentials: [],
    failedLoginsLastHour: 0,
    // The full list with the first report, its hash afterwards: what the agent does.
    packages: reportId === 1 ? { count: PACKAGES.length, hash: PACKAGES_HASH, list: PACKAGES } : { count: PACKAGES.length, hash: PACKAGES_HASH },
    autoUpdates: true,
    mac: { apparmor: 'enabled', selinux: 'absent' },
    cpuVulnerabilities: [],
    rebootRequired: false,
    insecureServices: [],
    keyStore: 'file',
  };
}

interface Device extends DeviceSpec {
  key: string;
  cert: string;
  /** The current certificate's validity (ms), read once when it was issued. */
  validFrom: number;
  validTo: number;
  /** A TLS context for the current key and certificate, made once and shared by every connection made with them
   * (MQTT.js would otherwise build one per connection: parsing the key and the CA each time was a fifth of the load
   * generator's CPU, which shares the 2 cores with the gateway). */
  context?: SecureContext;
  /** The next renewal's key and CSR, made at a quiet moment after the last issuance rather than in the renewal storm
   * (a device has all that time too; the gateway's work per renewal is the same). */
  next?: { keyPem: string; csr: Buffer };
  client?: mqtt.MqttClient;
  state: 'idle' | 'up' | 'moving' | 'gone';
  seq: number;
  reportId: number;
  revokeExpected: boolean;
  /** A renewal is under way: the gateway closes the superseded certificate's session as soon as the new one exists. */
  renewing: boolean;
  renewFailures: number;
  /** The Retry-After of the last refused renewal, if it gave one (the agent waits at least that long). */
  retryAfterMs?: number;
  connecting: boolean;
  timers: NodeJS.Timeout[];
}

async function loadWorker(spec: LoadSpec): Promise<void> {
  const post = (m: FromWorker) => parentPort!.postMessage(m);
  // On Linux the nice value is per thread, and pid 0 is the calling thread: this lowers this load thread only.
  try {
    os.setPriority(0, spec.nice);
  } catch {
    // Not permitted here: the load shares the CPU equally, which the CPU figures show.
  }
  telemetrySchema.parse(stateReport('soak-check', 1));
  const stats: LoadStats = {
    enrollments: 0, enrollFailures: 0, held: 0, appSent: 0, appAcked: 0, delivered: 0, pending: 0, queuedForDown: 0, withheld: 0, unackedOrDuplicate: 0,
    telemetrySent: 0, telemetryAcked: 0, renewals: 0, renewalFailures: 0, renewalFailureReasons: {}, reconnects: 0, connectFailures: 0, down: 0, moving: 0, lostSample: [], reconnectSample: [],
  };
  const acked = new Set<string>(); // acknowledged, not yet delivered
  const early = new Set<string>(); // delivered before (or without) the PUBACK
  /** Per group, its subscriber's quarantines: from `start` (before the commit) to the publish time of the first
   * message delivered after the release (`end`). */
  interface Quarantine { device: string; start: number; committed?: number; released?: number; lastLeak?: number; end?: number }
  const quarantines = new Map<string, Quarantine[]>();
  /** Keys are `device:seq:publish time` and travel as the payload; the group is the topic's second level. */
  const keyTime = (key: string) => Number(key.slice(key.lastIndexOf(':') + 1));
  const withheld = (group: string, t: number) => (quarantines.get(group) ?? []).some((q) => t >= q.start && t < (q.end ?? Infinity));
  const groupOf = new Map<string, string>();
  /** Per group, the publish time of the newest message its subscriber got: anything newer may still be queued in its
   * session (it was moving onto a renewed certificate) and is dropped if the quarantine reaches it first. */
  const lastDelivered = new Map<string, number>();
  const subscriberOf = new Map<string, Device>();
  const subscriberUp = (group: string) => {
    const d = subscriberOf.get(group);
    return !!d && d.state === 'up' && !!d.client?.connected;
  };
  /** Acknowledged, not delivered, not withheld by a quarantine: lost while the group's subscriber is connected, else
   * queued in its session. */
  const undelivered = () => [...acked].filter((k) => !withheld(groupOf.get(k.slice(0, k.indexOf(':')))!, keyTime(k)));
  const lost = () => undelivered().filter((k) => subscriberUp(groupOf.get(k.slice(0, k.indexOf(':')))!));
  let publishing = false;
  let closing = false;
  /** After 'stop': no new renewal starts, so that every device settles on one session for the final count. */
  let stopped = false;
  const devices: Device[] = [];
  const lastError = new WeakMap<mqtt.MqttClient, string>();
  const snapshot = (): LoadStats => {
    // Each is a pass over every acknowledged, undelivered key: once each per snapshot.
    const waiting = undelivered();
    const missing = lost();
    return {
      ...stats,
      held: devices.filter((d) => d.state === 'up' && d.client?.connected).length,
      down: devices.filter((d) => d.state === 'idle' || (d.state === 'up' && !d.client?.connected)).length,
      moving: devices.filter((d) => d.state === 'moving').length,
      pending: missing.length,
      queuedForDown: waiting.length - missing.length,
      withheld: acked.size - waiting.length,
      unackedOrDuplicate: early.size,
      lostSample: missing.slice(0, 10),
    };
  };

  const onAcked = (key: string) => {
    stats.appAcked++;
    if (early.delete(key)) stats.delivered++;
    else acked.add(key);
  };
  const onDelivered = (topic: string, payload: Buffer) => {
    const key = payload.toString();
    const t = keyTime(key);
    const group = topic.split('/')[1]!;
    lastDelivered.set(group, Math.max(lastDelivered.get(group) ?? 0, t));
    for (const q of quarantines.get(group) ?? []) {
      if (q.end !== undefined) continue;
      if (q.released === undefined) {
        if (q.committed !== undefined && t >= q.committed) q.lastLeak = Math.max(q.lastLeak ?? t, t);
      } else if (t >= q.released) {
        q.end = t;
        post({ type: 'quarantine-result', device: q.device, stopMs: q.lastLeak === undefined ? 0 : q.lastLeak - q.committed!, resumeMs: now() - q.released });
      }
    }
    if (acked.delete(key)) stats.delivered++;
    else early.add(key);
  };

  const connect = (d: Device): Promise<mqtt.MqttClient> =>
    new Promise((resolve, reject) => {
      d.context ??= createSecureContext({ key: d.key, cert: d.cert, ca: spec.caPem });
      const c = mqtt.connect(`mqtts://127.0.0.1:${spec.mqttPort}`, {
        // MQTT.js hands its options to tls.connect, which takes a ready context (its types do not list it).
        ...({ secureContext: d.context } as mqtt.IClientOptions), clientId: d.id, protocolVersion: 4,
        clean: false, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 60,
      });
      const fail = (err: Error) => (c.end(true), reject(err));
      const early = () => fail(new Error('closed before CONNACK'));
      c.once('error', fail);
      c.once('close', early);
      c.once('connect', (connack) => {
        c.removeListener('close', early);
        c.removeListener('error', fail);
        c.on('error', (err) => void (lastError.set(c, err.message))); // a close follows; handled there
        c.on('close', () => onClose(d, c));
        if (d.subscriber) {
          c.on('message', (topic, payload) => onDelivered(topic, payload));
          // A persistent session keeps the subscription; subscribe when the broker has none.
          if (!connack.sessionPresent) {
            c.subscribe(`soak/${d.group}/#`, { qos: 1 }, (err, granted) => {
              // A connection that ended meanwhile (a renewal's supersede closes it) is retried like any other; a
              // refusal is the broker's answer and ends the run.
              if (err && !c.connected) reject(err);
              else if (err || granted?.some((g) => g.qos !== 1)) post({ type: 'fatal', message: `subscription of ${d.id} refused: ${err?.message ?? JSON.stringify(granted)}` });
              else resolve(c);
            });
            return;
          }
        }
        resolve(c);
      });
    });

  /** Read through a function: the state changes across awaits, which narrowing would not see. */
  const gone = (d: Device) => d.state === 'gone';
  const bringUp = async (d: Device): Promise<void> => {
    // One connection attempt per device at a time: two would take each other's session over (same client id).
    if (d.connecting) return;
    d.connecting = true;
    try {
      await connectLoop(d);
    } finally {
      d.connecting = false;
    }
  };
  const connectLoop = async (d: Device): Promise<void> => {
    for (let failures = 0; !closing && !gone(d) && !(d.state === 'up' && d.client?.connected); failures++) {
      try {
        d.client = await connect(d);
        d.state = 'up';
        return;
      } catch {
        stats.connectFailures++;
        await sleep(Math.min(30_000, 500 * 2 ** Math.min(failures, 6)) * (0.8 + 0.4 * Math.random()));
      }
    }
  };

  function onClose(d: Device, c: mqtt.MqttClient): void {
    if (d.client !== c || closing || d.state === 'moving') return;
    if (d.revokeExpected) {
      post({ type: 'revoke-closed', device: d.id, at: now() });
      d.state = 'gone';
      for (const t of d.timers) clearTimeout(t);
      return;
    }
    if (d.renewing) {
      // The gateway closed the superseded session before the device moved itself: the renewal brings it back up.
      d.state = 'moving';
      d.client = undefined;
      return;
    }
    if ((quarantines.get(d.group) ?? []).some((q) => q.device === d.id && q.released !== undefined && q.end === undefined)) {
      // Released: the gateway closes a session opened while quarantined, so that the reconnect restores its stored
      // subscription (expected, not counted).
      d.state = 'idle';
      d.client = undefined;
      void bringUp(d);
      return;
    }
    stats.reconnects++;
    if (stats.reconnectSample.length < 20) stats.reconnectSample.push(`${d.id} at ${new Date().toISOString()}: ${lastError.get(c) ?? 'closed by the gateway (no error)'}`);
    d.state = 'idle';
    d.client = undefined;
    void sleep(500 + Math.random() * 1000).then(() => bringUp(d));
  }

  const publishApp = (d: Device) => {
    if (!publishing || d.state !== 'up' || !d.client?.connected) return;
    // A quarantined device may publish only its own telemetry (anything else ends its session: MQTT 3.1.1 has no
    // refusal for a PUBLISH); a real one learns it from its score (0). The bench knows it from the start.
    if ((quarantines.get(d.group) ?? []).some((q) => q.device === d.id && q.end === undefined)) return;
    const key = `${d.id}:${++d.seq}:${now()}`;
    stats.appSent++;
    d.client.publish(`soak/${d.group}/${d.id}`, key, { qos: 1 }, (err) => void (err || onAcked(key)));
  };
  const publishState = (d: Device) => {
    if (!publishing || d.state !== 'up' || !d.client?.connected || spec.mode !== 'gateway') return;
    stats.telemetrySent++;
    d.client.publish(topics.telemetry(d.id), JSON.stringify(stateReport(d.id, ++d.reportId)), { qos: 1 }, (err) => void (err || stats.telemetryAcked++));
  };

  /** The device's new certificate (and key): what every later connection and the next renewal use. */
  const adopt = (d: Device, keyPem: string, cert: X509Certificate) => {
    d.key = keyPem;
    d.cert = cert.toString();
    d.validFrom = Date.parse(cert.validFrom);
    d.validTo = Date.parse(cert.validTo);
    d.context = undefined;
  };
  const prepareNext = async (d: Device) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csr = await createCsr(d.id, privateKey, publicKey);
    return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, csr };
  };
  const scheduleRenewal = (d: Device, first = false) => {
    const lifetime = d.validTo - d.validFrom;
    let delay = d.renewFailures > 0 ? retryDelay(d.renewFailures, lifetime, d.retryAfterMs) : renewalDelay(d.validFrom, d.validTo, Date.now());
    // A fleet in its steady state: devices enrolled at different times renew at different times.
    if (first && !spec.renewalStorm) delay *= 0.05 + 0.95 * Math.random();
    d.timers.push(setTimeout(() => void renew(d), delay));
    // The next key and CSR at a random moment in the first half of the wait (spread, as devices' own clocks are).
    if (!d.next) {
      d.timers.push(setTimeout(() => void prepareNext(d).then((n) => void (d.next ??= n)).catch(() => undefined), Math.random() * delay * 0.5));
    }
  };
  /** What the agent's RenewalLoop does: new key, simplereenroll over mTLS with the current certificate. */
  const renew = async (d: Device) => {
    if (closing || stopped || gone(d) || d.revokeExpected) return;
    d.renewing = true;
    try {
      const next = d.next ?? (await prepareNext(d));
      d.next = next; // kept for a retry if this attempt fails
      const issued = await simpleReenroll(spec.estUrl, spec.caPem, d.key, d.cert, next.csr);
      if (gone(d) || d.revokeExpected) return;
      adopt(d, next.keyPem, issued);
      d.next = undefined;
      d.renewFailures = 0;
      stats.renewals++;
      // Move the session onto the new certificate: the old one expires (and the gateway closes its sessions then).
      const old = d.client;
      d.state = 'moving';
      d.client = undefined;
      // A graceful end waits for in-flight PUBACKs; one the old connection never gets must not hold the move up.
      if (old) await Promise.race([old.endAsync().catch(() => undefined), sleep(5000)]).then(() => old.end(true));
      await bringUp(d);
    } catch (err) {
      if (closing || gone(d)) return;
      stats.renewalFailures++;
      const reason = err instanceof EstError && err.status ? `HTTP ${err.status}` : ((err as NodeJS.ErrnoException).code ?? (err as Error).message.slice(0, 40));
      stats.renewalFailureReasons[reason] = (stats.renewalFailureReasons[reason] ?? 0) + 1;
      d.retryAfterMs = retryAfterMs(err);
      d.renewFailures++;
      if (d.state === 'moving') void bringUp(d);
    } finally {
      d.renewing = false;
    }
    if (!closing && !gone(d)) scheduleRenewal(d);
  };

  // Enrollment (gateway mode) and connection, a few at a time (MQTT.js handshakes are the client's bottleneck).
  for (const s of spec.devices) groupOf.set(s.id, s.group);
  for (const s of spec.devices) devices.push({ ...s, key: s.key ?? '', cert: s.cert ?? '', validFrom: 0, validTo: 0, state: 'idle', seq: 0, reportId: 0, revokeExpected: false, renewing: false, renewFailures: 0, connecting: false, timers: [] });
  for (const d of devices) if (d.subscriber) subscriberOf.set(d.group, d);
  if (spec.mode === 'gateway') {
    await pool(devices, 16, async (d) => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      for (let attempt = 0; ; attempt++) {
        try {
          const cert = await simpleEnroll(spec.estUrl, spec.caPem, d.id, d.token!, await createCsr(d.id, privateKey, publicKey));
          adopt(d, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert);
          stats.enrollments++;
          // From enrollment on, as the agent does: a ramp of 10,000 devices can outlast a short certificate lifetime.
          scheduleRenewal(d, true);
          return;
        } catch (err) {
          stats.enrollFailures++;
          if (attempt >= 5) throw new Error(`enrollment of ${d.id} failed: ${(err as Error).message}`);
          await sleep(1000 * (attempt + 1));
        }
      }
    });
  }
  // Subscribers first, so every group's messages have a reader before anything is published.
  await pool(devices.filter((d) => d.subscriber), 32, bringUp);
  await pool(devices.filter((d) => !d.subscriber), 32, bringUp);
  post({ type: 'ready', stats: snapshot() });

  parentPort!.on('message', (m: ToWorker) => {
    if (m.type === 'go') {
      publishing = true;
      for (const d of devices) {
        // Spread over the interval, so the load is steady rather than in waves.
        d.timers.push(setTimeout(() => (publishApp(d), d.timers.push(setInterval(() => publishApp(d), spec.appMs))), Math.random() * spec.appMs));
        d.timers.push(setTimeout(() => (publishState(d), d.timers.push(setInterval(() => publishState(d), spec.telemetryMs))), Math.random() * Math.min(spec.telemetryMs, 10_000)));
      }
    } else if (m.type === 'expect-revoke') {
      const d = devices.find((x) => x.id === m.device);
      const ok = !!d && d.state === 'up' && !!d.client?.connected && !d.subscriber;
      if (ok) d.revokeExpected = true;
      post({ type: 'revoke-ready', device: m.device, ok });
    } else if (m.type === 'quarantine') {
      const d = devices.find((x) => x.id === m.device);
      if (!d?.subscriber) return post({ type: 'quarantine-ready', device: m.device, ok: false });
      const list = quarantines.get(d.group) ?? [];
      quarantines.set(d.group, list);
      if (m.phase === 'start') {
        const ok = d.state === 'up' && list.every((q) => q.end !== undefined);
        if (ok) list.push({ device: d.id, start: Math.min(m.at, lastDelivered.get(d.group) ?? m.at) });
        post({ type: 'quarantine-ready', device: m.device, ok });
      } else {
        const q = list[list.length - 1]!;
        if (m.phase === 'committed') q.committed = m.at;
        else q.released = m.at;
      }
    } else if (m.type === 'stats') {
      post({ type: 'stats', stats: snapshot() });
    } else if (m.type === 'stop') {
      publishing = false;
      stopped = true;
      // Acknowledged messages still on their way get the time to arrive; what does not is lost. Devices in the middle
      // of a move onto a renewed certificate finish it, so that the final count of sessions is not a race.
      const settled = () => devices.every((d) => d.state === 'gone' || (d.state === 'up' && !!d.client?.connected));
      void until(() => lost().length === 0 && settled(), 30_000).then(() => post({ type: 'drained', stats: snapshot() }));
    } else if (m.type === 'close') {
      closing = true;
      for (const d of devices) for (const t of d.timers) clearTimeout(t);
      void Promise.all(devices.map((d) => d.client?.endAsync(true).catch(() => undefined))).then(() =>
        post({ type: 'closed', creds: devices.map((d) => ({ id: d.id, group: d.group, subscriber: d.subscriber, key: d.key, cert: d.cert })) }),
      );
    }
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'wott-soak-load') {
  loadWorker(workerData as LoadSpec).catch((err: Error) => {
    parentPort!.postMessage({ type: 'fatal', message: err.stack ?? err.message } satisfies FromWorker);
  });
}

// ------------------------------------------------------------------ the coordinator

class Load {
  readonly workers: Worker[] = [];
  private readonly waiters = new Map<string, Array<(m: FromWorker) => void>>();
  readonly revokeClosed = new Map<string, number>();
  readonly quarantineResults = new Map<string, { stopMs: number; resumeMs: number | undefined }>();
  fatal?: string;

  constructor(specs: Array<Omit<LoadSpec, 'role'>>) {
    for (const spec of specs) {
      const w = new Worker(new URL(import.meta.url), { workerData: { role: 'wott-soak-load', ...spec } satisfies LoadSpec });
      w.on('message', (m: FromWorker) => {
        if (m.type === 'fatal') this.fatal ??= m.message;
        else if (m.type === 'revoke-closed') this.revokeClosed.set(m.device, m.at);
        else if (m.type === 'quarantine-result') this.quarantineResults.set(m.device, { stopMs: m.stopMs, resumeMs: m.resumeMs });
        const key = `${this.workers.indexOf(w)}:${m.type}`;
        const q = this.waiters.get(key);
        if (q?.length) q.shift()!(m);
      });
      w.on('error', (err) => (this.fatal ??= err.stack ?? err.message));
      this.workers.push(w);
    }
  }

  /** The next message of `type` from worker `i` (or a rejection when a worker fails). */
  next<T extends FromWorker['type']>(i: number, type: T, ms = 3_600_000): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      const key = `${i}:${type}`;
      const q = this.waiters.get(key) ?? [];
      this.waiters.set(key, q);
      const timer = setInterval(() => {
        if (this.fatal) (clearInterval(timer), reject(new Error(`load worker: ${this.fatal}`)));
      }, 200);
      const waiter = (m: FromWorker) => (clearInterval(timer), clearTimeout(deadline), resolve(m as Extract<FromWorker, { type: T }>));
      // A waiter that gave up leaves the queue, so a late reply goes to the next one who asks.
      const deadline = setTimeout(() => (clearInterval(timer), q.splice(q.indexOf(waiter) >>> 0, 1), reject(new Error(`load worker ${i}: no ${type} within ${ms} ms`))), ms);
      q.push(waiter);
    });
  }

  async all<T extends FromWorker['type']>(send: ToWorker | undefined, type: T, ms?: number): Promise<Array<Extract<FromWorker, { type: T }>>> {
    const replies = this.workers.map((_, i) => this.next(i, type, ms));
    if (send) for (const w of this.workers) w.postMessage(send);
    return Promise.all(replies);
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function sum(list: LoadStats[]): LoadStats {
  const total = { ...list[0]!, lostSample: list.flatMap((s) => s.lostSample).slice(0, 10), reconnectSample: list.flatMap((s) => s.reconnectSample).slice(0, 20), renewalFailureReasons: { ...list[0]!.renewalFailureReasons } };
  for (const s of list.slice(1)) {
    for (const k of Object.keys(s) as Array<keyof LoadStats>) if (typeof s[k] === 'number') (total[k] as number) += s[k];
    for (const [reason, n] of Object.entries(s.renewalFailureReasons)) total.renewalFailureReasons[reason] = (total.renewalFailureReasons[reason] ?? 0) + n;
  }
  return total;
}

interface Sample {
  t: number;
  rss: number;
  /** RSS split as the kernel counts it: anonymous memory (heaps: V8's and malloc's) and file-backed pages. */
  rssAnon: number;
  rssFile: number;
  fds: number;
  heapUsed?: number;
  /** V8's committed heap and the memory V8 knows is held outside it (Buffers, ArrayBuffers). */
  heapTotal?: number;
  external?: number;
  loopP99?: number;
  /** glibc's count (bench/malloc-probe.ts), when the probe runs in the gateway. */
  malloc?: MallocInfo;
  handles?: number;
  connections?: number;
  scoresPublished?: number;
  /** CPU seconds used so far: the gateway (from /proc) and this process, i.e. the load generator (all threads). */
  cpu: number;
  loadCpu: number;
}

/** RSS and open descriptors of a process, from /proc (works for the baseline, which has no metrics listener). */
/** A process's or thread's user and system CPU seconds from its /proc stat file (`/proc/PID/stat`,
 * `/proc/PID/task/TID/stat`): the 12th and 13th fields after the command name, in clock ticks (100 a second on
 * Linux). The command name may hold spaces and parentheses, hence the last ')'. */
export function statCpuSeconds(path: string): { user: number; system: number } {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}

export function procSample(pid: number): { rss: number; rssAnon: number; rssFile: number; fds: number; cpu: number; loadCpu: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  const rss = kB('VmRSS');
  const { user, system } = statCpuSeconds(`/proc/${pid}/stat`);
  const cpu = user + system;
  const own = process.cpuUsage();
  return { rss, rssAnon: kB('RssAnon'), rssFile: kB('RssFile') + kB('RssShmem'), fds: readdirSync(`/proc/${pid}/fd`).length, cpu, loadCpu: (own.user + own.system) / 1e6 };
}

export async function scrape(metricsPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$/.exec(line);
    if (m) out[m[1]! + (m[2] ?? '')] = Number(m[3]);
  }
  return out;
}

/** Least-squares slope of y over t, per hour. */
function slopePerHour(points: Array<{ t: number; y: number }>): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? NaN : (num / den) * 3_600_000;
}

const MiB = 1024 * 1024;
const CLI = fileURLToPath(new URL('../cli/wott.js', import.meta.url));
const AEDES = fileURLToPath(new URL('./soak-aedes.js', import.meta.url));

/** Starts a child and resolves with the first stdout line `match` accepts. */
export function startChild(argv: string[], match: (line: string) => RegExpExecArray | null, what: string, onLine?: (line: string) => void, nodeArgs: string[] = [], env: Record<string, string> = {}): Promise<{ child: ChildProcess; m: RegExpExecArray; log: string[] }> {
  const child = spawn(process.execPath, [...nodeArgs, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const log: string[] = [];
  // The first 100 lines (why a start failed) and the latest 100 (why a running child died: a crash's stack is last).
  const keep = (line: string) => {
    if (log.length >= 200) log.splice(100, 1);
    log.push(line);
  };
  return new Promise((resolve, reject) => {
    let done = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      onLine?.(line);
      const m = done ? null : match(line);
      if (m) (done = true), resolve({ child, m, log });
    });
    child.stderr!.on('data', (c: Buffer) => keep(c.toString()));
    child.once('exit', (code) => done || reject(new Error(`${what} exited (${code}) before listening: ${log.join('\n').slice(-2000)}`)));
  });
}

export function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => (clearTimeout(killer), resolve()));
    child.kill('SIGTERM');
  });
}

const log = (msg: string) => process.stderr.write(`soak: ${msg}\n`);

export async function runSoak(o: SoakOptions): Promise<SuiteResult> {
  const result: SuiteResult = { suite: 'soak', measurements: [], ratios: [], goals: [] };
  const dir = mkdtempSync(join(tmpdir(), 'wott-bench-soak-'));
  let gateway: ChildProcess | undefined;
  let baseline: ChildProcess | undefined;
  let load: Load | undefined;
  let admin: CertificateAuthority | undefined;
  /** Set once the gateway is meant to stop: an exit before that is a crash (a restart a supervisor would make). */
  let stopping = false;
  // Interrupted (Ctrl-C) or not, nothing is left behind: children stopped, the temp folder removed.
  const cleanup = async () => {
    stopping = true;
    await load?.terminate().catch(() => undefined);
    await admin?.close().catch(() => undefined);
    await Promise.all([stopChild(gateway), stopChild(baseline)]);
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping the gateway and the load, removing ${dir}`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  const onExit = () => {
    for (const c of [gateway, baseline]) if (c && c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  try {
    const dataDir = join(dir, 'data');
    const config = join(dir, 'wott.yaml');
    const gatewayClosed = new Map<string, number>();
    // Every device connects from 127.0.0.1: the per-source limits (right for real fleets) would refuse the load, so
    // they are lifted to the fleet size; per-identity limits stay at their defaults.
    const many = o.devices * 4 + 1000;
    writeFileSync(
      config,
      [
        'ca:',
        `  certLifetime: ${Math.round(o.certLifetimeSeconds)}`,
        'gateway:',
        '  bind: 127.0.0.1',
        '  httpsLimits:',
        `    maxConnectionsPerSource: ${many}`,
        `    connectRate: { max: ${many * 10}, window: 10s, ban: 1s }`,
        'policies:',
        '  - { topic: "soak/#", publish: 0.3, subscribe: 0.3 }',
        'broker:',
        '  limits:',
        `    maxConnections: ${many}`,
        `    maxConnectionsPerSource: ${many}`,
        `    sourceConnectRate: { max: ${many * 10}, window: 10s, ban: 1s }`,
        '',
      ].join('\n'),
    );
    // For diagnosis (not part of the figures): WOTT_SOAK_GATEWAY_LOG names a file that gets every gateway log line;
    // WOTT_SOAK_GATEWAY_NODE_ARGS adds node options to the gateway (e.g. --heapsnapshot-signal=SIGUSR2);
    // WOTT_SOAK_GATEWAY_ENV adds variables to its environment only (e.g. LD_PRELOAD=... to compare allocators; or
    // GLIBC_TUNABLES= to run without the allocator setting the gateway is started with, GATEWAY_MALLOC_ENV).
    const gatewayLog = process.env.WOTT_SOAK_GATEWAY_LOG;
    const extraEnv = Object.fromEntries((process.env.WOTT_SOAK_GATEWAY_ENV ?? '').split(' ').filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    // glibc's own count of the gateway's malloc memory, read at every sample: what tells a leak from an allocator
    // settling (see bench/malloc-probe.ts). Not with another allocator preloaded, whose memory glibc does not see.
    const probe = extraEnv['LD_PRELOAD'] ? { missing: 'another library preloaded (WOTT_SOAK_GATEWAY_ENV)' } : buildMallocProbe(dir);
    const probeFile = join(dir, 'malloc-probe.log');
    if ('missing' in probe) log(`glibc's malloc count: none (${probe.missing}); the leak goal is judged on RSS alone`);
    const started = await startChild(
      [CLI, 'gateway', '--data', dataDir, '--config', config, '--https-port', '0', '--mqtt-port', '0', '--metrics-port', '0', '--log-format', 'json'],
      (line) => (line.includes('gateway listening') ? /"https":(\d+),"mqtt":(\d+),"metrics":(\d+)/.exec(line) : null),
      'wott gateway',
      (line) => {
        if (gatewayLog) appendFileSync(gatewayLog, `${line}\n`);
        // When the gateway itself closed a revoked session (its log line's time), apart from the device noticing.
        if (!line.includes('certificate revoked: closing session')) return;
        try {
          const entry = JSON.parse(line) as { time: number; id: string };
          gatewayClosed.set(entry.id, entry.time);
        } catch {
          // not JSON: ignored
        }
      },
      (process.env.WOTT_SOAK_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean),
      {
        ...GATEWAY_MALLOC_ENV,
        ...('path' in probe ? mallocProbeEnv(probe.path, probeFile, Math.min(5000, o.sampleSeconds * 500)) : {}),
        ...extraEnv,
      },
    );
    gateway = started.child;
    const httpsPort = Number(started.m[1]);
    const mqttPort = Number(started.m[2]);
    const metricsPort = Number(started.m[3]);
    const pid = gateway.pid!;
    let restarts = 0;
    gateway.once('exit', (code, signal) => {
      if (!stopping) (restarts++, log(`the gateway exited during the run (${code ?? signal}):\n${started.log.slice(-20).join('\n')}`));
    });
    log(`gateway pid ${pid}, https ${httpsPort}, mqtt ${mqttPort}, metrics ${metricsPort}, folder ${dir}`);

    const samples: Sample[] = [];
    const sample = async (): Promise<Sample> => {
      const p = procSample(pid);
      const m = await scrape(metricsPort);
      const s: Sample = {
        t: Date.now(),
        ...p,
        heapUsed: m['wott_process_nodejs_heap_size_used_bytes'],
        heapTotal: m['wott_process_nodejs_heap_size_total_bytes'],
        external: m['wott_process_nodejs_external_memory_bytes'],
        loopP99: m['wott_process_nodejs_eventloop_lag_p99_seconds'],
        malloc: readMallocProbe(probeFile),
        handles: m['wott_process_nodejs_active_handles_total'],
        connections: m['wott_mqtt_connections'],
        scoresPublished: m['wott_scores_published_total'],
      };
      samples.push(s);
      return s;
    };
    const atStart = await sample();

    admin = await CertificateAuthority.open({ dataDir, create: false });
    const caPem = admin.caCertificates().map((c) => c.toString()).join('');
    const ids = Array.from({ length: o.devices }, (_, i) => `soak-${String(i).padStart(5, '0')}`);
    log(`creating ${o.devices} enrollment tokens`);
    const tokensFrom = Date.now();
    const specs: DeviceSpec[] = [];
    // 500 tokens per transaction: one commit (and fsync) each took ~40 ms here under load, 7 minutes for 10,000.
    for (let from = 0; from < ids.length; from += 500) {
      await admin.inventory.transaction(async (tx) => {
        for (const [j, id] of ids.slice(from, from + 500).entries()) {
          const i = from + j;
          specs.push({ id, group: `g${Math.floor(i / o.group)}`, subscriber: i % o.group === 0, token: (await admin!.createToken(id, 6 * 3_600_000, tx)).token });
        }
      });
    }
    log(`${specs.length} tokens in ${((Date.now() - tokensFrom) / 1000).toFixed(1)} s`);
    // Whole groups per worker: a group's publishers and its subscriber count in the same thread.
    const threads = Math.max(1, Math.min(4, Math.ceil(o.devices / 2500)));
    const groups = Math.ceil(o.devices / o.group);
    const slices = Array.from({ length: threads }, (_, w) => specs.filter((_, i) => Math.floor(i / o.group) % threads === w)).filter((s) => s.length > 0);
    const t0 = Date.now();
    load = new Load(slices.map((devices) => ({ mode: 'gateway', mqttPort, estUrl: `https://127.0.0.1:${httpsPort}`, caPem, devices, appMs: o.appSeconds * 1000, telemetryMs: o.telemetrySeconds * 1000, nice: o.loadNice, renewalStorm: o.renewalStorm })));
    const ready = sum((await load.all(undefined, 'ready')).map((r) => r.stats));
    const rampSeconds = (Date.now() - t0) / 1000;
    log(`${ready.enrollments} enrolled, ${ready.held} connected in ${rampSeconds.toFixed(0)} s (${groups} groups, ${slices.length} load threads at nice ${o.loadNice})`);
    const connected = await sample();
    load.workers.forEach((w) => w.postMessage({ type: 'go' } satisfies ToWorker));

    // The soak: samples at intervals, revocations spread over the run.
    const runMs = o.minutes * 60_000;
    const soakStart = Date.now();
    // Warm-up lasts at least one certificate lifetime: every renewal leaves its superseded certificate (and what
    // follows it) held until that certificate expires, so the fleet's held state grows by design until the first
    // certificates have expired. Growth after that is what the leak goal judges.
    const warmupEnd = soakStart + Math.max(runMs / 4, o.certLifetimeSeconds * 1000, o.sampleSeconds * 1000);
    const revokeAt = Array.from({ length: o.revocations }, (_, k) => soakStart + ((k + 1) * runMs) / (o.revocations + 1));
    /** Revocation committed -> the gateway closed the session (its log), and -> the device saw its connection close. */
    const revocationMs: number[] = [];
    const deviceSawMs: number[] = [];
    let revokeFailures = 0;
    let nextRevoke = 0;
    let nextCandidate = 1;
    let nextSample = soakStart + o.sampleSeconds * 1000;
    let warm: Sample | undefined;
    // Quarantines: a group's subscriber quarantined through the fleet (the gateway follows the inventory's change
    // feed, as for `wott device quarantine` in another process), released `quarantineSeconds` later. Its group's
    // deliveries must stop and resume; what was published in between is withheld, not lost.
    const fleet = new FleetService(admin, 'soak-bench');
    const subscribers = specs.filter((d) => d.subscriber);
    const quarantineAt = Array.from({ length: Math.min(o.quarantines, subscribers.length) }, (_, k) => soakStart + ((k + 0.5) * runMs) / (o.quarantines + 1));
    const quarantined: string[] = [];
    const quarantineRuns: Array<Promise<void>> = [];
    let quarantineFailures = 0;
    const quarantineOne = async (d: DeviceSpec): Promise<void> => {
      const w = slices.findIndex((s) => s.includes(d));
      const send = (phase: 'start' | 'committed' | 'released', at: number) => load!.workers[w]!.postMessage({ type: 'quarantine', device: d.id, phase, at } satisfies ToWorker);
      // A subscriber in the middle of a move onto a renewed certificate is not 'up': asked again a little later.
      for (let tries = 0; ; tries++) {
        const reply = load!.next(w, 'quarantine-ready', 30_000).catch(() => undefined);
        send('start', now());
        const answer = await reply;
        if (answer?.ok && answer.device === d.id) break;
        if (tries >= 40) return;
        await sleep(250);
      }
      quarantined.push(d.id);
      await fleet.quarantine(d.id);
      send('committed', now());
      await sleep(o.quarantineSeconds * 1000);
      await fleet.release(d.id);
      send('released', now());
      if (!(await until(() => load!.quarantineResults.has(d.id), 30_000))) quarantineFailures++;
    };
    let nextQuarantine = 0;
    while (Date.now() < soakStart + runMs && restarts === 0 && !load.fatal) {
      if (nextQuarantine < quarantineAt.length && Date.now() >= quarantineAt[nextQuarantine]!) {
        const d = subscribers[(nextQuarantine * 7) % subscribers.length]!;
        nextQuarantine++;
        quarantineRuns.push(quarantineOne(d).catch((err: Error) => void (quarantineFailures++, log(`quarantine of ${d.id}: ${err.message}`))));
      }
      if (nextRevoke < revokeAt.length && Date.now() >= revokeAt[nextRevoke]!) {
        nextRevoke++;
        // A publisher (never a group's subscriber) that is connected right now.
        for (let tries = 0; tries < 20; tries++, nextCandidate++) {
          const idx = nextCandidate % specs.length;
          const d = specs[idx]!;
          if (d.subscriber || load.revokeClosed.has(d.id)) continue;
          const w = slices.findIndex((s) => s.includes(d));
          // A worker too busy to answer in 30 s (the machine overloaded) skips this candidate; it does not end the run.
          const reply = load.next(w, 'revoke-ready', 30_000).catch(() => undefined);
          load.workers[w]!.postMessage({ type: 'expect-revoke', device: d.id } satisfies ToWorker);
          const answer = await reply;
          if (!answer?.ok || answer.device !== d.id) continue;
          nextCandidate++;
          const t = now();
          await admin.revoke({ deviceId: d.id }, 'keyCompromise');
          if (await until(() => load!.revokeClosed.has(d.id), 5_000, 10)) deviceSawMs.push(load.revokeClosed.get(d.id)! - t);
          else revokeFailures++;
          await until(() => gatewayClosed.has(d.id), 1_000, 10);
          revocationMs.push(gatewayClosed.has(d.id) ? gatewayClosed.get(d.id)! - t : Infinity);
          break;
        }
      }
      if (Date.now() >= nextSample) {
        nextSample += o.sampleSeconds * 1000;
        // A gateway that died has no /proc entry and no metrics: the loop ends on `restarts` instead of throwing.
        const s = await sample().catch(() => undefined);
        if (!s) continue;
        if (!warm && s.t >= warmupEnd) warm = s;
        const st = sum((await load.all({ type: 'stats' }, 'stats', 60_000)).map((r) => r.stats));
        const prev = samples[samples.length - 2];
        const cores = (a: number, b: number) => (prev ? (a - b) / ((s.t - prev.t) / 1000) : 0).toFixed(2);
        log(
          `${((s.t - soakStart) / 60_000).toFixed(1)} min: cpu cores gateway ${cores(s.cpu, prev?.cpu ?? 0)} / load ${cores(s.loadCpu, prev?.loadCpu ?? 0)}, rss ${(s.rss / MiB).toFixed(0)} MiB (anon ${(s.rssAnon / MiB).toFixed(0)}, file ${(s.rssFile / MiB).toFixed(0)}), heap ${((s.heapUsed ?? 0) / MiB).toFixed(0)}/${((s.heapTotal ?? 0) / MiB).toFixed(0)} MiB, external ${((s.external ?? 0) / MiB).toFixed(0)} MiB, ` +
            (s.malloc ? `malloc in use ${(s.malloc.inUse / MiB).toFixed(0)} MiB (free kept ${(s.malloc.free / MiB).toFixed(0)}, arenas ${(s.malloc.arena / MiB).toFixed(0)}, mmapped ${(s.malloc.mapped / MiB).toFixed(0)}), ` : '') +
            `fds ${s.fds}, ` +
            `loop p99 ${((s.loopP99 ?? 0) * 1000).toFixed(1)} ms, connections ${s.connections}, sent ${st.appSent}, delivered ${st.delivered}, ` +
            `renewals ${st.renewals}/${st.renewalFailures} failed${st.renewalFailures ? ` (${Object.entries(st.renewalFailureReasons).map(([r, n]) => `${r}: ${n}`).join(', ')})` : ''}, reconnects ${st.reconnects}, down ${st.down}, moving ${st.moving}, connect failures ${st.connectFailures}`,
        );
      }
      await sleep(Math.max(10, Math.min(1000, nextSample - Date.now(), (revokeAt[nextRevoke] ?? Infinity) - Date.now(), (quarantineAt[nextQuarantine] ?? Infinity) - Date.now())));
    }
    await Promise.all(quarantineRuns);
    if (load.fatal) throw new Error(`load worker: ${load.fatal}`);
    const end = (restarts === 0 ? await sample().catch(() => undefined) : undefined) ?? samples[samples.length - 1]!;
    const drained = sum((await load.all({ type: 'stop' }, 'drained', 60_000)).map((r) => r.stats));
    // Sessions held once every device has settled (no move onto a renewed certificate under way).
    const heldAtEnd = restarts === 0 ? (await scrape(metricsPort).catch(() => ({}) as Record<string, number>))['wott_mqtt_connections'] ?? NaN : NaN;
    const creds = (await load.all({ type: 'close' }, 'closed', 120_000)).flatMap((c) => c.creds);
    const revoked = new Set(load.revokeClosed.keys());
    const quarantineResults = quarantined.map((id) => ({ id, ...load!.quarantineResults.get(id) }));
    await load.terminate();
    load = undefined;
    stopping = true;
    await stopChild(gateway);
    // The SQLite files' sizes: each connection caches up to 16 MB of its file's pages (better-sqlite3's default
    // cache_size), so a file growing past that fills its cache during the run: bounded memory that looks like growth.
    const dbFiles = readdirSync(dataDir, { recursive: true, encoding: 'utf8' })
      .filter((f) => /\.(db|sqlite)(-wal)?$/.test(f))
      .map((f) => ({ f, bytes: statSync(join(dataDir, f)).size }));
    log(`SQLite files at the end: ${dbFiles.map((d) => `${d.f} ${(d.bytes / MiB).toFixed(1)} MiB`).join(', ')}`);

    // ------------------------------------------------------------ results of the gateway run
    const after = samples.filter((s) => warm && s.t >= warm.t);
    const rssSlope = slopePerHour(after.map((s) => ({ t: s.t, y: s.rss })));
    const heapSlope = slopePerHour(after.filter((s) => s.heapUsed !== undefined).map((s) => ({ t: s.t, y: s.heapUsed! })));
    // Where growth lives: V8's committed heap, file-backed pages (SQLite's shared memory, mapped files), and the
    // rest of the anonymous memory (malloc: OpenSSL, SQLite's page cache, Node's native objects).
    const withHeap = after.filter((s) => s.heapTotal !== undefined);
    const heapTotalSlope = slopePerHour(withHeap.map((s) => ({ t: s.t, y: s.heapTotal! })));
    const fileSlope = slopePerHour(after.map((s) => ({ t: s.t, y: s.rssFile })));
    const nativeSlope = slopePerHour(withHeap.map((s) => ({ t: s.t, y: s.rssAnon - s.heapTotal! })));
    const loop = samples.filter((s) => s !== atStart && s.loopP99 !== undefined).map((s) => s.loopP99! * 1000);
    const loopWorst = loop.length ? Math.max(...loop) : NaN;
    const loopMedian = loop.length ? [...loop].sort((a, b) => a - b)[Math.floor(loop.length / 2)]! : NaN;
    const scoreUpdates = (end.scoresPublished ?? 0) - (atStart.scoresPublished ?? 0);
    const warmRss = warm?.rss ?? NaN;
    const m = (name: string, value: number, unit: string, baselineFlag?: boolean) => result.measurements.push({ name, value, unit, ...(baselineFlag ? { baseline: true } : {}) });
    m('devices', o.devices, 'devices');
    m('devices held (connected at the end)', heldAtEnd, 'sessions');
    m('soak duration', (end.t - soakStart) / 60_000, 'min');
    m('enrollments (EST, token)', drained.enrollments, 'devices');
    m('enroll + connect ramp', rampSeconds, 's');
    m('application messages sent (QoS 1)', drained.appSent, 'messages');
    m('application messages acknowledged', drained.appAcked, 'messages');
    m('acknowledged and delivered', drained.delivered, 'messages');
    m('acknowledged and lost', drained.pending, 'messages');
    m('acknowledged, queued for a subscriber without a connection at the end', drained.queuedForDown, 'messages');
    m('acknowledged and withheld (subscriber quarantined)', drained.withheld, 'messages');
    m('delivered without a PUBACK seen, or twice', drained.unackedOrDuplicate, 'messages');
    m('state reports sent / acknowledged', drained.telemetryAcked, `of ${drained.telemetrySent}`);
    m('score updates published', scoreUpdates, 'scores');
    m('certificate renewals', drained.renewals, 'renewals');
    m('certificate renewals failed', drained.renewalFailures, 'attempts');
    const busy = drained.renewalFailureReasons['HTTP 503'] ?? 0;
    m('  of which EST was busy (503, retried after Retry-After)', busy, 'attempts');
    m('reconnects (sessions the gateway closed)', drained.reconnects, 'reconnects');
    if (drained.reconnectSample.length) log(`reconnects (device, time, the client's last error; the gateway's log says why it closed them):\n  ${drained.reconnectSample.join('\n  ')}`);
    m('connection attempts failed (retried)', drained.connectFailures, 'attempts');
    m('revocations', revocationMs.length, 'devices');
    m('revocation -> gateway closed the session (max)', revocationMs.length ? Math.max(...revocationMs) : NaN, 'ms');
    m('revocation -> the device saw it closed (max)', deviceSawMs.length ? Math.max(...deviceSawMs) : NaN, 'ms');
    const stops = quarantineResults.flatMap((q) => (q.stopMs === undefined ? [] : [q.stopMs]));
    const resumes = quarantineResults.flatMap((q) => (q.resumeMs === undefined ? [] : [q.resumeMs]));
    m('quarantines (group subscribers, then released)', quarantined.length, 'devices');
    m('quarantine -> deliveries stopped (max; last message still delivered)', stops.length ? Math.max(...stops) : NaN, 'ms');
    m('release -> deliveries resumed (max)', resumes.length ? Math.max(...resumes) : NaN, 'ms');
    m('gateway restarts', restarts, 'restarts');
    m('RSS at start (no devices)', atStart.rss / MiB, 'MiB');
    m('RSS with all devices connected', connected.rss / MiB, 'MiB');
    m('RSS after warm-up', warmRss / MiB, 'MiB');
    m('RSS at the end', end.rss / MiB, 'MiB');
    m('RSS growth after warm-up (slope)', rssSlope / MiB, 'MiB/h');
    m('heap used after warm-up / at the end', (warm?.heapUsed ?? NaN) / MiB, `MiB / ${((end.heapUsed ?? NaN) / MiB).toFixed(0)} MiB`);
    m('heap growth after warm-up (slope)', heapSlope / MiB, 'MiB/h');
    m('  V8 committed heap after warm-up / at the end', (warm?.heapTotal ?? NaN) / MiB, `MiB / ${((end.heapTotal ?? NaN) / MiB).toFixed(0)} MiB`);
    m('  V8 committed heap growth (slope)', heapTotalSlope / MiB, 'MiB/h');
    m('  anonymous memory outside V8\'s heap after warm-up / at the end', warm?.heapTotal !== undefined ? (warm.rssAnon - warm.heapTotal) / MiB : NaN, `MiB / ${end.heapTotal !== undefined ? ((end.rssAnon - end.heapTotal) / MiB).toFixed(0) : '?'} MiB`);
    m('  anonymous memory outside V8\'s heap growth (slope)', nativeSlope / MiB, 'MiB/h');
    m('  file-backed RSS growth (slope)', fileSlope / MiB, 'MiB/h');
    // What the gateway holds (glibc's bytes in use, mmapped chunks included, and V8's heap in use) and what it has
    // reserved (the arenas' size, the mmapped chunks and V8's committed heap): a leak grows the first; the second
    // bounds the anonymous RSS, whatever the allocator keeps resident inside it.
    const withMalloc = after.filter((s) => s.malloc !== undefined && s.heapUsed !== undefined && s.heapTotal !== undefined);
    const held = (s: Sample) => s.malloc!.inUse + s.heapUsed!;
    const reserved = (s: Sample) => s.malloc!.arena + s.malloc!.mapped + s.heapTotal!;
    const heldSlope = slopePerHour(withMalloc.map((s) => ({ t: s.t, y: held(s) })));
    const reservedSlope = slopePerHour(withMalloc.map((s) => ({ t: s.t, y: reserved(s) })));
    const warmMalloc = withMalloc[0];
    const endMalloc = withMalloc.at(-1);
    if (warmMalloc && endMalloc) {
      const mib = (x: number) => (x / MiB).toFixed(0);
      m('held: malloc in use + V8 heap used, after warm-up / at the end', held(warmMalloc) / MiB, `MiB / ${mib(held(endMalloc))} MiB`);
      m('held growth after warm-up (slope)', heldSlope / MiB, 'MiB/h');
      m('  malloc in use (glibc, mmapped chunks included) after warm-up / at the end', warmMalloc.malloc!.inUse / MiB, `MiB / ${mib(endMalloc.malloc!.inUse)} MiB`);
      m('  malloc in use growth (slope)', slopePerHour(withMalloc.map((s) => ({ t: s.t, y: s.malloc!.inUse }))) / MiB, 'MiB/h');
      m('  malloc free kept in its arenas after warm-up / at the end', warmMalloc.malloc!.free / MiB, `MiB / ${mib(endMalloc.malloc!.free)} MiB`);
      m('reserved: malloc arenas + mmapped + V8 committed, after warm-up / at the end', reserved(warmMalloc) / MiB, `MiB / ${mib(reserved(endMalloc))} MiB`);
      m('reserved growth after warm-up (slope)', reservedSlope / MiB, 'MiB/h');
      m('  anonymous RSS at the end, of what is reserved', endMalloc.rssAnon / reserved(endMalloc) * 100, '%');
    }
    // A leak keeps its slope; an allocator settling into a churn of connections flattens out: the slope of each
    // third of the window after warm-up tells them apart (informative, not a goal).
    const thirds = <T extends { t: number }>(points: T[], y: (p: T) => number): number[] => {
      if (points.length === 0) return [NaN, NaN, NaN];
      const t0 = points[0]!.t;
      const span = points[points.length - 1]!.t - t0;
      return [0, 1, 2].map((k) => slopePerHour(points.filter((p) => p.t >= t0 + (span * k) / 3 && p.t <= t0 + (span * (k + 1)) / 3).map((p) => ({ t: p.t, y: y(p) }))));
    };
    const rssThirds = thirds(after, (p) => p.rss);
    const nativeThirds = thirds(withHeap, (p) => p.rssAnon - p.heapTotal!);
    const thirdNames = ['first', 'second', 'last'];
    for (let k = 0; k < 3; k++) m(`RSS growth after warm-up, ${thirdNames[k]} third (slope)`, rssThirds[k]! / MiB, 'MiB/h');
    for (let k = 0; k < 3; k++) m(`  anonymous memory outside V8's heap, ${thirdNames[k]} third (slope)`, nativeThirds[k]! / MiB, 'MiB/h');
    m('RSS per device after warm-up', (warmRss - atStart.rss) / o.devices / 1024, 'KiB', false);
    m('open fds at start / end', atStart.fds, `/ ${end.fds}`);
    m('active handles at the end', end.handles ?? NaN, 'handles');
    m('event-loop delay p99 (median of intervals)', loopMedian, 'ms');
    m('event-loop delay p99 (worst interval)', loopWorst, 'ms');
    // Both share the machine's cores: a load generator that takes most of them starves the gateway it measures.
    const intervals = samples.slice(1).map((x, i) => ({ gateway: (x.cpu - samples[i]!.cpu) / ((x.t - samples[i]!.t) / 1000), load: (x.loadCpu - samples[i]!.loadCpu) / ((x.t - samples[i]!.t) / 1000) }));
    const byGateway = [...intervals].sort((a, b) => a.gateway - b.gateway);
    const busiest = [...intervals].sort((a, b) => b.gateway + b.load - (a.gateway + a.load))[0];
    m('CPU cores used, gateway / load generator (median interval)', byGateway[byGateway.length >> 1]?.gateway ?? NaN, `cores / ${(byGateway[byGateway.length >> 1]?.load ?? NaN).toFixed(2)} cores`);
    m('CPU cores used, gateway / load generator (busiest interval)', busiest?.gateway ?? NaN, `cores / ${(busiest?.load ?? NaN).toFixed(2)} cores (${os.availableParallelism()} cores here)`);

    // ------------------------------------------------------------ baseline: plain Aedes, same devices and traffic
    let baselineRss = NaN;
    if (o.baselineMinutes > 0) {
      const caPath = join(dir, 'ca.pem');
      writeFileSync(caPath, caPem, { mode: 0o600 });
      const b = await startChild([AEDES, join(dataDir, 'server', 'server.key'), join(dataDir, 'server', 'server.crt'), caPath], (line) => /"port":(\d+)/.exec(line), 'plain Aedes');
      baseline = b.child;
      const bPid = baseline.pid!;
      const bStart = procSample(bPid);
      const live = creds.filter((c) => !revoked.has(c.id));
      load = new Load(
        Array.from({ length: slices.length }, (_, w) => live.filter((c) => slices[w]!.some((s) => s.id === c.id))).map((devices) => ({
          mode: 'aedes' as const, mqttPort: Number(b.m[1]), estUrl: '', caPem, devices, appMs: o.appSeconds * 1000, telemetryMs: o.telemetrySeconds * 1000, nice: o.loadNice, renewalStorm: false,
        })),
      );
      await load.all(undefined, 'ready');
      const bConnected = { t: Date.now(), ...procSample(bPid) };
      load.workers.forEach((w) => w.postMessage({ type: 'go' } satisfies ToWorker));
      const bSamples: Array<{ t: number; rss: number; fds: number }> = [];
      const holdUntil = Date.now() + o.baselineMinutes * 60_000;
      while (Date.now() < holdUntil && !load.fatal) {
        await sleep(Math.min(o.sampleSeconds * 1000, Math.max(10, holdUntil - Date.now())));
        bSamples.push({ t: Date.now(), ...procSample(bPid) });
      }
      if (load.fatal) throw new Error(`load worker (baseline): ${load.fatal}`);
      const bEnd = bSamples[bSamples.length - 1] ?? bConnected;
      const bDrained = sum((await load.all({ type: 'stop' }, 'drained', 60_000)).map((r) => r.stats));
      await load.all({ type: 'close' }, 'closed', 120_000);
      await load.terminate();
      load = undefined;
      await stopChild(baseline);
      baselineRss = bEnd.rss;
      m('plain Aedes + TLS: RSS at start', bStart.rss / MiB, 'MiB', true);
      m('plain Aedes + TLS: RSS with the same devices, after the same traffic', bEnd.rss / MiB, 'MiB', true);
      m('plain Aedes + TLS: RSS per device', (bEnd.rss - bStart.rss) / live.length / 1024, 'KiB', true);
      m('plain Aedes + TLS: hold time', (bEnd.t - (bSamples[0]?.t ?? bEnd.t) + o.sampleSeconds * 1000) / 60_000, 'min', true);
      m('plain Aedes + TLS: devices held', bDrained.held, 'sessions', true);
      m('plain Aedes + TLS: acknowledged and lost', bDrained.pending, 'messages', true);
      result.ratios.push({ name: 'gateway RSS after warm-up vs plain Aedes', of: 'RSS after warm-up', to: 'plain Aedes + TLS: RSS with the same devices, after the same traffic', value: warmRss / baselineRss });
      result.ratios.push({
        name: 'gateway RSS per device vs plain Aedes',
        of: 'RSS per device after warm-up',
        to: 'plain Aedes + TLS: RSS per device',
        value: (warmRss - atStart.rss) / (bEnd.rss - bStart.rss) * (live.length / o.devices),
      });
    }

    // ------------------------------------------------------------ goals
    const bound = 0.1; // of the after-warm-up RSS, per hour
    // A slope over a few minutes mostly measures the heap still settling: judged only on a long enough window.
    const window = after.length ? (after[after.length - 1]!.t - after[0]!.t) / 60_000 : 0;
    const judged = after.length >= 3 && window >= 10;
    // The run length that leaves 10 minutes of samples after this run's warm-up (a quarter of the run, or one
    // certificate lifetime if longer), plus one sample interval for where the samples fall.
    const sampleMin = o.sampleSeconds / 60;
    const minutesNeeded = Math.ceil(Math.max(((10 + sampleMin) * 4) / 3, o.certLifetimeSeconds / 60 + 10 + sampleMin));
    result.goals.push({ name: 'QoS 1: every acknowledged message delivered to its subscriber (lost = 0)', met: drained.pending === 0 && drained.queuedForDown === 0 && drained.appAcked > 0, detail: `${drained.delivered} of ${drained.appAcked} acknowledged delivered, ${drained.pending} lost${drained.pending ? ` (e.g. ${drained.lostSample.join(', ')})` : ''}${drained.queuedForDown ? `, ${drained.queuedForDown} queued in the sessions of subscribers without a connection at the end (not delivered within the run)` : ''}` });
    // A 503 from EST's admission control is the CA saying "later", not a failed renewal: the device keeps its valid
    // certificate and comes back after Retry-After. Every other failure counts.
    const reasons = Object.entries(drained.renewalFailureReasons).map(([r, n]) => `${r}: ${n}`).join(', ');
    result.goals.push({ name: 'every renewal succeeded', met: drained.renewalFailures - busy === 0 && drained.renewals > 0, detail: `${drained.renewals} renewed, ${drained.renewalFailures - busy} failed attempts, ${busy} deferred by a busy CA (certificate lifetime ${o.certLifetimeSeconds} s)${reasons ? `; reasons ${reasons}` : ''}` });
    result.goals.push({ name: 'every revoked device gone within 1 s', met: revokeFailures === 0 && revocationMs.every((x) => x <= 1000) && revocationMs.length > 0, detail: `${revocationMs.length} revoked; the gateway closed the session in ${revocationMs.map((x) => x.toFixed(0)).join(', ')} ms (another process's revocation: noticed by the 200 ms poll); the devices saw it in ${deviceSawMs.map((x) => x.toFixed(0)).join(', ')} ms; ${revokeFailures} still connected after 5 s` });
    result.goals.push({
      name: 'quarantined subscribers: deliveries stop, and resume after the release',
      met: quarantined.length > 0 && quarantineFailures === 0 && resumes.length === quarantined.length && drained.withheld > 0,
      detail: `${quarantined.length} quarantined for ${o.quarantineSeconds} s each (${quarantineResults.map((q) => q.id).join(', ')}); ` +
        `last delivery after the commit ${stops.map((x) => x.toFixed(0)).join(', ')} ms; first delivery after the release ${resumes.map((x) => x.toFixed(0)).join(', ')} ms; ` +
        `${drained.withheld} messages withheld; ${quarantineFailures} did not resume within 30 s`,
    });
    result.goals.push({ name: 'gateway restarts = 0', met: restarts === 0, detail: `${restarts}` });
    result.goals.push({ name: 'every device held', met: heldAtEnd >= o.devices - revocationMs.length, detail: `${heldAtEnd} sessions at the end for ${o.devices} devices less ${revocationMs.length} revoked` });
    const allowed = bound * warmRss;
    const notJudged = `not judged: ${window.toFixed(1)} min after warm-up, ${after.length} samples (need 10 min and 3 samples: --minutes ${minutesNeeded} or more with these settings)`;
    const f = (x: number) => (x / MiB).toFixed(1);
    if (withMalloc.length >= 3 && withMalloc.length >= after.length - 1) {
      // With glibc's count: a leak is memory held that keeps growing; RSS may still rise inside what is reserved, as
      // the allocator settles (the RSS slope is printed above, by thirds).
      result.goals.push({
        name: `no leak: memory held and memory reserved grow <= ${bound * 100} % of the warmed-up RSS per hour after warm-up`,
        met: judged && heldSlope <= allowed && reservedSlope <= allowed,
        detail: judged
          ? `held ${f(heldSlope)} MiB/h, reserved ${f(reservedSlope)} MiB/h, against ${f(allowed)} MiB/h allowed (${withMalloc.length} samples after warm-up; RSS ${f(rssSlope)} MiB/h, heap ${f(heapSlope)} MiB/h)`
          : `${notJudged}; held ${f(heldSlope)}, reserved ${f(reservedSlope)} MiB/h`,
      });
    } else {
      result.goals.push({
        name: `no leak: RSS growth after warm-up <= ${bound * 100} % of the warmed-up RSS per hour`,
        met: judged && rssSlope <= allowed,
        detail: (judged ? `${f(rssSlope)} MiB/h against ${f(allowed)} MiB/h allowed (${after.length} samples after warm-up; heap ${f(heapSlope)} MiB/h)` : `${notJudged}; slope ${f(rssSlope)} MiB/h`) +
          `; glibc's count: ${'missing' in probe ? probe.missing : `${withMalloc.length} of ${after.length} samples`}`,
      });
    }
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    await cleanup();
  }
}

export const soakSuite: Suite = {
  name: 'soak',
  description: 'N devices (10,000) for N minutes (30) on a wott gateway process: delivery, renewals, revocations, memory slope; plain Aedes memory baseline',
  run: ({ args }) => runSoak(soakOptions(args ?? [])),
};
