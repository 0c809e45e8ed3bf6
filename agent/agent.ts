/** `wott agent enroll` and `wott agent run`: the device side put together. */
import { generateKeyPairSync } from 'node:crypto';
import { AGENT_VERSION, TELEMETRY_SCHEMA_VERSION, telemetrySchema, type Telemetry } from '../protocol/index.js';
import { assertDeviceId } from '../protocol/index.js';
import { createCsr, fetchCaCertificates, sha256Fingerprint, simpleEnroll, verifyIssued } from './est-client.js';
import { TelemetryPublisher } from './publisher.js';
import { RenewalLoop, type Logger } from './renewal.js';
import { AgentStore, type AgentState } from './store.js';
import { collectState, readCommandOutputs, realCrypt } from './collectors/index.js';

export interface EnrollOptions {
  server: string;
  device: string;
  token: string;
  dir: string;
  caFingerprint?: string;
  keyStore: 'file' | 'tpm';
  log: Logger;
}

/** Bootstrap trust, make a key on the device, enroll, verify, store. */
export async function enrollAgent(options: EnrollOptions): Promise<AgentState> {
  assertDeviceId(options.device);
  if (options.keyStore === 'tpm') throw new Error('--key-store tpm is not available in this version of the agent; use --key-store file');
  const caCerts = await fetchCaCertificates(options.server, options.caFingerprint);
  const root = caCerts.find((c) => c.checkIssued(c))!;
  if (!options.caFingerprint) {
    options.log.warn({ fingerprint: sha256Fingerprint(root) }, 'no --ca-fingerprint given: trusting the CA on first use; compare this fingerprint with `wott ca init` on the gateway');
  }
  const caPem = caCerts.map((c) => c.toString()).join('');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = await createCsr(options.device, privateKey, publicKey);
  const cert = await simpleEnroll(options.server, caPem, options.device, options.token, csr);
  verifyIssued(cert, options.device, privateKey, caCerts);
  const store = new AgentStore(options.dir);
  store.saveCa(caPem);
  const previous = store.exists() ? store.state() : undefined;
  return store.commitIdentity(
    { keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), certPem: cert.toString() },
    { device: options.device, server: options.server, keyStore: options.keyStore, reportId: previous?.reportId ?? 0 },
  );
}

/** Collects one report; the package list goes in full only when it changed since the last delivered one. */
export function buildReport(store: AgentStore, root: string, full = false): Telemetry {
  const state = store.state();
  const collected = collectState(root, { crypt: realCrypt, commandOutputs: root === '/' ? readCommandOutputs() : undefined });
  const reportId = state.reportId + 1;
  store.saveState({ ...state, reportId }); // persisted first: a crash never reuses an id
  const { list, ...packages } = collected.packages;
  const report: Telemetry = {
    ...collected,
    schema: TELEMETRY_SCHEMA_VERSION,
    device: state.device,
    reportId,
    time: new Date().toISOString(),
    agentVersion: AGENT_VERSION,
    keyStore: state.keyStore,
    packages: full || packages.hash !== state.packagesHash ? { ...packages, list } : packages,
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
  log: Logger;
}

export function defaultMqttUrl(server: string): string {
  return `mqtts://${new URL(server).hostname}:8883`;
}

export interface RunningAgent {
  renewal: RenewalLoop;
  publisher: TelemetryPublisher;
  stop(): Promise<void>;
}

/** The daemon: renewal loop plus a report every `intervalMs`. With `once`/`print` it does one report and returns. */
export async function runAgent(options: RunOptions): Promise<RunningAgent | undefined> {
  const store = new AgentStore(options.dir);
  if (options.print) {
    process.stdout.write(JSON.stringify(buildReport(store, options.root, true), null, 2) + '\n');
    return undefined;
  }
  const state = store.state();
  const publisher = new TelemetryPublisher({
    url: options.mqtt ?? defaultMqttUrl(state.server),
    caPem: store.caPem(),
    device: state.device,
    identity: store.identity(state),
    log: options.log,
    onDelivered: (report) => {
      if (report.packages.list) store.saveState({ ...store.state(), packagesHash: report.packages.hash });
    },
  });
  if (options.once) {
    publisher.enqueue(buildReport(store, options.root));
    try {
      await publisher.flush();
    } finally {
      await publisher.close();
    }
    return undefined;
  }
  const renewal = new RenewalLoop(store, (identity) => publisher.setIdentity(identity), options.log);
  renewal.start();
  const tick = () => {
    try {
      publisher.enqueue(buildReport(store, options.root));
    } catch (err) {
      options.log.error({ err: (err as Error).message }, 'collecting a report failed');
    }
  };
  tick();
  const timer = setInterval(tick, options.intervalMs);
  return {
    renewal,
    publisher,
    async stop() {
      clearInterval(timer);
      renewal.stop();
      await publisher.close();
    },
  };
}

