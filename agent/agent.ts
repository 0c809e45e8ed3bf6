/** `wott agent enroll` and `wott agent run`: the device side put together. */
import { generateKeyPairSync } from 'node:crypto';
import { AGENT_VERSION, TELEMETRY_SCHEMA_VERSION, telemetrySchema, type PeerReport, type Telemetry } from '../protocol/index.js';
import { assertDeviceId } from '../protocol/index.js';
import { X509Certificate } from 'node:crypto';
import { createCsr, fetchCaCertificates, simpleEnroll, tpmHeaders, verifyIssued } from './est-client.js';
import { TelemetryPublisher } from './publisher.js';
import { RenewalLoop, splitPem, type Logger } from './renewal.js';
import { TpmKey } from './tpm.js';
import { AgentStore, estServers, type AgentState } from './store.js';
import { ServerList, splitUrls } from './failover.js';
import { collectState, needsJournal, readCommandOutputs, realCrypt } from './collectors/index.js';
import { reportPeerFromStore, type PeerRateLimits } from './peer-report.js';
import { CredentialFiles, CredentialReceiver, DEFAULT_CREDENTIALS_DIR } from './credentials.js';

export interface EnrollOptions {
  /** The gateway's EST base URL, or several separated by commas (tried in turn when one is unreachable). */
  server: string;
  device: string;
  token: string;
  dir: string;
  caFingerprint?: string;
  keyStore: 'file' | 'tpm';
  /** keyStore tpm: persistent handle of the TPM signing key (default 0x81010001). */
  tpmHandle?: string;
  /** keyStore tpm: TCTI of the TPM (default $TPM2TOOLS_TCTI). */
  tpmTcti?: string;
  log: Logger;
}

/** The TPM key recorded in the agent state (keyStore tpm). */
export function tpmKeyFor(state: AgentState): TpmKey {
  return new TpmKey({ handle: state.tpmHandle, tcti: state.tpmTcti });
}

/** Bootstrap trust, make a key on the device, enroll, verify, store. */
export async function enrollAgent(options: EnrollOptions): Promise<AgentState> {
  assertDeviceId(options.device);
  const servers = new ServerList(splitUrls(options.server));
  const caCerts = await servers.call((server) => fetchCaCertificates(server, options.caFingerprint));
  const root = caCerts.find((c) => c.checkIssued(c))!;
  if (!options.caFingerprint) {
    options.log.warn({ fingerprint: root.fingerprint256 }, `no --ca-fingerprint given: trusting the CA on first use; compare its root fingerprint ${root.fingerprint256} with what \`wott ca fingerprint\` prints on the gateway`);
  }
  const caPem = caCerts.map((c) => c.toString()).join('');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = await createCsr(options.device, privateKey, publicKey);
  let headers: Record<string, string> = {};
  let tpm: TpmKey | undefined;
  if (options.keyStore === 'tpm') {
    tpm = new TpmKey({ handle: options.tpmHandle, tcti: options.tpmTcti });
    const spki = await tpm.ensure();
    headers = tpmHeaders(await tpm.sign(csr), spki);
  }
  const cert = await servers.call((server) => simpleEnroll(server, caPem, options.device, options.token, csr, headers));
  verifyIssued(cert, options.device, privateKey, caCerts);
  const store = new AgentStore(options.dir);
  store.saveCa(caPem);
  const previous = store.exists() ? store.state() : undefined;
  return store.commitIdentity(
    { keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), certPem: cert.toString() },
    {
      device: options.device,
      server: servers.servers[0]!,
      ...(servers.servers.length > 1 ? { servers: servers.servers } : {}),
      keyStore: options.keyStore,
      reportId: previous?.reportId ?? 0,
      ...(tpm ? { tpmHandle: tpm.handle, tpmTcti: tpm.tcti } : {}),
    },
  );
}

/**
 * keyStore tpm, at agent start: the TLS key only ever lived in memory, so make a new one and get a certificate for it
 * with a CSR signed by the TPM key (no token; the CA checks the signature against the key recorded at enrollment).
 */
export async function tpmRefresh(store: AgentStore): Promise<AgentState> {
  const state = store.state();
  if (state.keyStore !== 'tpm') throw new Error('tpmRefresh is only for key store tpm');
  const caPem = store.caPem();
  const caCerts = splitPem(caPem).map((p) => new X509Certificate(p));
  const tpm = tpmKeyFor(state);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = await createCsr(state.device, privateKey, publicKey);
  const headers = tpmHeaders(await tpm.sign(csr));
  const cert = await new ServerList(estServers(state)).call((server) => simpleEnroll(server, caPem, state.device, undefined, csr, headers));
  verifyIssued(cert, state.device, privateKey, caCerts);
  return store.commitIdentity({ keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), certPem: cert.toString() }, { ...store.state() });
}

/** The interval a first report (or `--print`) looks back over for intrusion attempts when none was given. */
export const DEFAULT_INTERVAL_MS = 15 * 60_000;

export interface BuildOptions {
  /** Send the package list even when unchanged. */
  full?: boolean;
  /** The report interval: the first report's intrusion window. */
  intervalMs?: number;
  /** A report only shown (`--print`): it does not move the intrusion window nor take the TLS-peer ledger. */
  preview?: boolean;
}

/**
 * What of the systemd journal a report reads, on a device without log files: back to the intrusion window's start
 * and at least the hour failedLoginsLastHour counts, at most a day (the longest window).
 */
function journalRange(root: string, intrusionsSince: number | undefined, intervalMs: number, now: number): { since: number; until: number } | undefined {
  if (!needsJournal(root)) return undefined;
  const windowStart = intrusionsSince !== undefined && intrusionsSince < now ? intrusionsSince : now - intervalMs;
  return { since: Math.max(now - 86_400_000, Math.min(now - 3_600_000, windowStart)), until: now };
}

/** Collects one report; the package list goes in full only when it changed since the last delivered one. */
export function buildReport(store: AgentStore, root: string, options: BuildOptions | boolean = {}): Telemetry {
  const opts = typeof options === 'boolean' ? { full: options } : options;
  const state = store.state();
  const now = new Date();
  const tls = opts.preview ? store.tlsLedger() : store.takeTlsLedger();
  const collected = collectState(root, {
    crypt: realCrypt,
    commandOutputs: root === '/' ? readCommandOutputs(journalRange(root, state.intrusionsSince, opts.intervalMs ?? DEFAULT_INTERVAL_MS, now.getTime())) : undefined,
    now,
    intrusions: {
      ...(state.intrusionsSince !== undefined ? { since: state.intrusionsSince } : {}),
      firstWindowMs: opts.intervalMs ?? DEFAULT_INTERVAL_MS,
      extra: tls.map((e) => ({ address: e.address, service: 'tls' as const, count: e.count })),
    },
  });
  const reportId = state.reportId + 1;
  // Persisted first: a crash never reuses an id (nor reports the same attempts twice).
  store.saveState({ ...state, reportId, ...(opts.preview ? {} : { intrusionsSince: now.getTime() }) });
  const { list, ...packages } = collected.packages;
  const report: Telemetry = {
    ...collected,
    schema: TELEMETRY_SCHEMA_VERSION,
    device: state.device,
    reportId,
    time: now.toISOString(),
    agentVersion: AGENT_VERSION,
    keyStore: state.keyStore,
    packages: opts.full || packages.hash !== state.packagesHash ? { ...packages, list } : packages,
  };
  return telemetrySchema.parse(report);
}

export interface RunOptions {
  dir: string;
  mqtt?: string;
  intervalMs: number;
  root: string;
  once?: boolean;
  print?: boolean;
  /** Where delivered credentials are written (default /run/wott/credentials); none received with once/print. */
  credentialsDir?: string;
  /** While MQTT is down, credentials are fetched over HTTPS this often (default 60 s; also once at start). */
  credentialFetchMs?: number;
  log: Logger;
}

export function defaultMqttUrl(server: string): string {
  return `mqtts://${new URL(server).hostname}:8883`;
}

/** The brokers to use: --mqtt (one URL or several, comma-separated), else port 8883 on each EST gateway's host. */
export function mqttUrls(state: AgentState, mqtt?: string): string[] {
  return mqtt ? splitUrls(mqtt) : [...new Set(estServers(state).map(defaultMqttUrl))];
}

export interface RunningAgent {
  renewal: RenewalLoop;
  publisher: TelemetryPublisher;
  credentials: CredentialReceiver;
  /** Publishes a peer report with this device's certificate (see reportPeer). */
  reportPeer(subject: string, rating: number, reason: string): Promise<PeerReport>;
  stop(): Promise<void>;
}

export interface ReportPeerOptions {
  /** The agent directory (default /var/lib/wott). */
  dir: string;
  /** Broker URL(s); default as for `wott agent run`. */
  mqtt?: string;
  limits?: PeerRateLimits;
}

/**
 * reportPeer(subject, rating, reason): tells scoring what this device observed about another one (rating 1 =
 * behaves as expected … 0 = hostile). Signed by the session: the device's own certificate from the agent directory.
 * Resolves with the report once the broker acknowledged it; throws on a report about itself, a bad field or the
 * client-side rate bound (PeerRateError), without sending anything.
 */
export async function reportPeer(options: ReportPeerOptions, subject: string, rating: number, reason: string): Promise<PeerReport> {
  const store = new AgentStore(options.dir);
  return reportPeerFromStore(store, { subject, rating, reason }, { urls: mqttUrls(store.state(), options.mqtt), ...(options.limits ? { limits: options.limits } : {}) });
}

/** The daemon: renewal loop plus a report every `intervalMs`. With `once`/`print` it does one report and returns. */
export async function runAgent(options: RunOptions): Promise<RunningAgent | undefined> {
  const store = new AgentStore(options.dir);
  if (options.print) {
    process.stdout.write(JSON.stringify(buildReport(store, options.root, { full: true, preview: true, intervalMs: options.intervalMs }), null, 2) + '\n');
    return undefined;
  }
  let state = store.state();
  if (state.keyStore === 'tpm') state = await tpmRefresh(store);
  const publisher = new TelemetryPublisher({
    urls: mqttUrls(state, options.mqtt),
    caPem: store.caPem(),
    device: state.device,
    identity: store.identity(state),
    log: options.log,
    onDelivered: (report) => {
      if (report.packages.list) store.saveState({ ...store.state(), packagesHash: report.packages.hash });
    },
  });
  if (options.once) {
    publisher.enqueue(buildReport(store, options.root, { intervalMs: options.intervalMs }));
    try {
      await publisher.flush();
    } finally {
      await publisher.close();
    }
    return undefined;
  }
  const tpm = state.keyStore === 'tpm' ? tpmKeyFor(state) : undefined;
  const credentials = new CredentialReceiver({
    urls: mqttUrls(state, options.mqtt),
    caPem: store.caPem(),
    device: state.device,
    identity: store.identity(state),
    files: new CredentialFiles(options.credentialsDir ?? DEFAULT_CREDENTIALS_DIR),
    log: options.log,
    servers: estServers(state),
    ...(options.credentialFetchMs ? { fetchIntervalMs: options.credentialFetchMs } : {}),
  });
  const renewal = new RenewalLoop(
    store,
    (identity) => {
      publisher.setIdentity(identity);
      credentials.setIdentity(identity); // the gateway re-encrypts to the new key when the new session subscribes
    },
    options.log,
    tpm && ((csr) => tpm.sign(csr)),
  );
  renewal.start();
  const tick = () => {
    try {
      publisher.enqueue(buildReport(store, options.root, { intervalMs: options.intervalMs }));
    } catch (err) {
      options.log.error({ err: (err as Error).message }, 'collecting a report failed');
    }
  };
  tick();
  const timer = setInterval(tick, options.intervalMs);
  return {
    renewal,
    publisher,
    credentials,
    reportPeer: (subject, rating, reason) => {
      return reportPeerFromStore(store, { subject, rating, reason }, { urls: mqttUrls(store.state(), options.mqtt) });
    },
    async stop() {
      clearInterval(timer);
      renewal.stop();
      await credentials.close();
      await publisher.close();
    },
  };
}

