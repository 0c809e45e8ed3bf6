/**
 * The gateway's side of credential delivery (issue 17): the credential store and key, the operators' service, and
 * the delivery following the broker (who listens on its credentials topic, scores) and the fleet view (tags,
 * states, certificates). Credentials are published by the broker itself (no client may publish there).
 */
import type { Aedes, Client } from 'aedes';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { identityFromCertificate, type TrustSource, type WottPlugin } from '../broker/index.js';
import type { CertificateAuthority } from '../ca/index.js';
import { CredentialDelivery, CredentialService, CredentialVault, type DeliveryPort } from '../credentials/index.js';
import type { FleetInsights, FleetService, FleetView } from '../fleet/index.js';
import { CREDENTIAL_FETCH_PATH, topics, type CredentialFetchReply, type CredentialMessage } from '../protocol/index.js';
import { openSelectedCredentialStore, type CredentialStore, type StoreSelection } from '../store/index.js';

export interface GatewayCredentialsOptions {
  /** Largest value accepted (default credentials/service.ts DEFAULT_MAX_VALUE_BYTES, 64 KiB). */
  maxValueBytes?: number;
  /** How often changes made by other processes (the CLI) are looked for (default 1 s). */
  pollMs?: number;
  /** How often expired versions are looked for (default 60 s). */
  sweepMs?: number;
  /** Fetches over HTTPS per device: at most one this often (default 1 s); more are answered 429. */
  fetchIntervalMs?: number;
  /** At revocation: how long the session is kept for the agent to acknowledge its withdrawals (default 2 s). */
  withdrawWaitMs?: number;
}

export interface GatewayCredentials {
  service: CredentialService;
  delivery: CredentialDelivery;
  store: CredentialStore;
  /** GET CREDENTIAL_FETCH_PATH on the HTTPS listener: the device's own credentials, for its current certificate only. */
  fetchHandler(req: IncomingMessage, res: ServerResponse): void;
  /** Starts following the broker once it exists. */
  attach(broker: Aedes, plugin: WottPlugin): void;
  /** The broker's trust source, holding back the session kick of a revoked device until its credentials are withdrawn. */
  guard(trust: TrustSource): TrustSource;
  close(): Promise<void>;
}

export async function openGatewayCredentials(
  selection: StoreSelection | undefined,
  dataDir: string,
  passphrase: string | undefined,
  ca: CertificateAuthority,
  view: FleetView,
  fleet: FleetService,
  insights: FleetInsights,
  log: Logger,
  options: GatewayCredentialsOptions = {},
): Promise<GatewayCredentials> {
  const store = await openSelectedCredentialStore(selection, dataDir);
  let vault: CredentialVault;
  try {
    vault = await CredentialVault.openFor(store, dataDir, passphrase);
  } catch (err) {
    await store.close();
    throw err;
  }
  let broker: Aedes | undefined;
  let plugin: WottPlugin | undefined;
  /** Device id → its clients subscribed to its credentials topic. */
  const listeners = new Map<string, Set<Client>>();
  const port: DeliveryPort = {
    send: (device, message: CredentialMessage) =>
      new Promise((resolve, reject) => {
        if (!broker || broker.closed) return resolve();
        broker.publish({ cmd: 'publish', topic: topics.credentials(device), payload: Buffer.from(JSON.stringify(message)), qos: 1, retain: false, dup: false }, (err) => (err ? reject(err) : resolve()));
      }),
    standing: (device) => {
      const facts = view.device(device);
      if (!facts || !plugin) return undefined;
      return { state: facts.state, tags: facts.tags, score: plugin.effectiveScore(device), ...(facts.certificate ? { serial: facts.certificate.serial } : {}) };
    },
    devices: () => [...view.allDevices()].map((d) => d.id),
    certificate: async (device, serial) => (await ca.inventory.certificates({ deviceId: device, status: 'active' })).find((c) => c.serial === serial)?.der,
    listening: (device) => (listeners.get(device)?.size ?? 0) > 0,
    audit: (entry) => fleet.record(entry),
  };
  const delivery = new CredentialDelivery(store, vault, port, log, Date.now, (rows) => insights.setCredentialExposures(rows));
  const service = new CredentialService(store, vault, fleet, { ...(options.maxValueBytes ? { maxValueBytes: options.maxValueBytes } : {}), onChange: () => void delivery.reconcile() });
  const stopView = view.onChange((change) => {
    const devices = new Set([...change.devices, ...change.updated, ...change.revoked.map((r) => r.deviceId).filter((d): d is string => d !== null)]);
    if (devices.size) void delivery.reconcile(devices);
  });
  const forget = (client: Client) => {
    for (const [device, set] of listeners) if (set.delete(client) && set.size === 0) listeners.delete(device);
  };
  const lastFetch = new Map<string, number>();
  const refuse = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) =>
    void res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers }).end(`${message}\n`);
  /**
   * Only a device, only with the certificate the gateway encrypts to (its current one, chain-verified, not revoked),
   * only its own credentials. The answer is JWEs for that certificate's key: useless to anyone else on the way.
   */
  async function fetchHandler(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url !== CREDENTIAL_FETCH_PATH) return refuse(res, 404, 'not found');
    if (req.method !== 'GET') return refuse(res, 405, 'GET only', { Allow: 'GET' });
    const socket = req.socket as TLSSocket;
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    if (!peer?.raw) return refuse(res, 401, 'a device certificate over mutual TLS is required');
    if (!socket.authorized) return refuse(res, 401, `client certificate rejected: ${String(socket.authorizationError ?? 'not trusted')}`);
    const who = identityFromCertificate(peer);
    if ('error' in who || who.kind !== 'device') return refuse(res, 403, 'only a device certificate may fetch device credentials');
    if (view.isRevoked(who.serial)) return refuse(res, 403, 'this certificate is revoked');
    const standing = port.standing(who.id);
    if (!standing) return refuse(res, 403, 'unknown device');
    if (standing.serial !== who.serial) return refuse(res, 409, "this is not the device's current certificate: credentials are encrypted to the current one");
    const now = Date.now();
    const wait = (lastFetch.get(who.id) ?? -Infinity) + (options.fetchIntervalMs ?? 1000) - now;
    if (wait > 0) return refuse(res, 429, 'fetching too often', { 'Retry-After': String(Math.ceil(wait / 1000)) });
    lastFetch.set(who.id, now);
    const messages = await delivery.fetch(who.id, who.serial);
    const reply: CredentialFetchReply = { device: who.id, messages };
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(reply));
  }
  return {
    service,
    delivery,
    store,
    fetchHandler(req, res) {
      fetchHandler(req, res).catch((err: Error) => {
        log.error({ err: err.message }, 'credentials: fetch failed');
        if (!res.headersSent) refuse(res, 500, 'internal error');
        else res.destroy();
      });
    },
    attach(b, p) {
      broker = b;
      plugin = p;
      p.onScore((message) => void delivery.reconcile([message.device]));
      b.on('subscribe', (subs, client) => {
        const who = client && p.identityOf(client);
        if (!who || who.kind !== 'device') return;
        const own = topics.credentials(who.id);
        if (!subs.some((s) => s.topic === own && (s.qos as number) !== 128)) return;
        let set = listeners.get(who.id);
        if (!set) listeners.set(who.id, (set = new Set()));
        set.add(client);
        void delivery.listening(who.id);
      });
      b.on('unsubscribe', (unsubs, client) => {
        const who = client && p.identityOf(client);
        if (who?.kind === 'device' && unsubs.includes(topics.credentials(who.id))) listeners.get(who.id)?.delete(client);
      });
      b.on('clientDisconnect', forget);
      delivery.start(options.pollMs ?? 1000, options.sweepMs ?? 60_000);
      void delivery.reconcile();
    },
    guard(trust) {
      // A class instance, not a literal spreading `trust` with a getter: such a literal is a dictionary-mode object,
      // and the broker reads stateVersion through it on every delivery (~40 ns a read through two of them, ~1 ns
      // through class instances). Read live, never copied: the delivery cache compares it on every delivery.
      return new (class RevocationGuard implements TrustSource {
        deviceState(id: string) {
          return trust.deviceState(id);
        }
        get stateVersion() {
          return trust.stateVersion;
        }
        isRevoked(serial: string) {
          return trust.isRevoked(serial);
        }
        isSuperseded(serial: string) {
          return trust.isSuperseded(serial);
        }
        close() {
          trust.close();
        }
        onChange(listener: (devices: string[], serials?: string[]) => void) {
          trust.onChange((devices, serials) => {
            const revoked = devices.filter((d) => view.deviceState(d) === 'revoked' && port.listening(d));
            if (!revoked.length || !broker) return listener(devices, serials);
            // The session of a revoked device is closed by `listener`: first tell its agent to delete what it holds,
            // and give it a moment to acknowledge (bounded as a whole, queue included: revocation is held up 2 s at most).
            const b = broker;
            const acked = new Promise<void>((resolve) => {
              const waiting = new Set(revoked);
              const timer = setTimeout(done, options.withdrawWaitMs ?? 2000);
              function onAck(packet: { topic?: string } | undefined, client: Client) {
                const who = plugin?.identityOf(client);
                if (who && packet?.topic === topics.credentials(who.id)) waiting.delete(who.id);
                if (waiting.size === 0) done();
              }
              function done() {
                clearTimeout(timer);
                b.off('ack', onAck as never);
                resolve();
              }
              b.on('ack', onAck as never);
            });
            // Bounded as a whole: the withdrawals wait in the delivery queue, which may be busy.
            const deadline = new Promise<void>((resolve) => setTimeout(resolve, options.withdrawWaitMs ?? 2000).unref());
            void Promise.race([Promise.all(revoked.map((d) => delivery.withdrawAll(d, 'device revoked'))).then(() => acked), deadline]).finally(() => listener(devices, serials));
          });
        }
      })();
    },
    async close() {
      stopView();
      delivery.close();
      await delivery.idle();
      await store.close();
    },
  };
}
