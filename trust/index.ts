/**
 * `wott/trust`: trust checks for services and devices that speak mTLS themselves (HTTP APIs, device-to-device
 * links). A TrustClient connects to the gateway's API with a service (or operator) certificate, keeps a cache of
 * device trust fed by `GET /api/v1/trust/stream` (a device is loaded once with `GET /api/v1/trust/{id}` when it
 * first shows up, then kept current by the stream's events; the stream resumes with Last-Event-ID after a drop),
 * and answers from that cache:
 *
 *  - `requireTrust({ minScore })`: middleware for node:https, Express/connect and Fastify (onRequest hook) that
 *    refuses with 403 and the reason unless the TLS peer is a current, unrevoked device certificate of ours whose
 *    device is active and at or above `minScore` now;
 *  - `checkPeer(tlsSocket, { minScore })`: the same verdict for any TLS socket.
 *
 * A score drop reaches the cache as one stream event (milliseconds), so the next request is refused without
 * restarting anything. While the stream is down for longer than `maxStaleMs` every check fails closed.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { Agent, request, type RequestOptions } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createParser } from 'eventsource-parser';
import {
  API_PREFIX,
  deviceTrustSchema,
  identityFromNames,
  normalizeSerial,
  trustDeviceEventSchema,
  trustRevokedEventSchema,
  trustScoreEventSchema,
  type DeviceState,
  type DeviceTrust,
  type TrustCertificate,
  type PeerReport,
} from '../protocol/index.js';
import { DEFAULT_PEER_RATE, nextPeerReport, publishPeerReport, reportPeer as agentReportPeer, splitUrls, type PeerRateLimits, type PeerState } from '../agent/index.js';

export interface TrustClientOptions {
  /** The gateway's HTTPS base URL, e.g. https://gw.example:8443. */
  server: string;
  /** A service or operator certificate of ours (PEM), its key, and the CA chain to verify the gateway with. */
  cert: string;
  key: string;
  ca: string;
  /** TLS server name to verify, when it differs from the URL's host. */
  servername?: string;
  /** Longest the stream may be down before every check fails closed (default 30 s). */
  maxStaleMs?: number;
  /** A silent stream (no event, no heartbeat) for this long is taken as dead and reconnected (default 45 s). */
  idleTimeoutMs?: number;
  /** Devices kept in the cache (default 100,000; the least recently loaded goes first). */
  maxDevices?: number;
  /** Told of stream drops and reconnects. */
  onStatus?: (status: { connected: boolean; error?: string }) => void;
  /** Lets this client send peer reports (reportPeer) as the device it runs on; see PeerReporterOptions. */
  reporter?: PeerReporterOptions;
}

/**
 * Peer reports come from a device, signed by its own certificate, over MQTT like the agent's: the broker lets a
 * device publish only its own reports, and the API refuses device certificates, so the service or operator
 * certificate this client uses for the trust stream cannot report. A service running on a device names that
 * device's identity here.
 */
export interface PeerReporterOptions {
  /**
   * The device's agent directory (default layout /var/lib/wott): its current certificate signs, and the report ids
   * and rate bound are the ones `wott agent report-peer` uses (persisted, so a restart never replays an id).
   */
  agentDir?: string;
  /** Or the device's certificate and key (PEM): ids then come from the clock (ms, increasing), the rate bound is per process. */
  device?: { cert: string; key: string };
  /** Broker URL(s), comma-separated (default: the agent's brokers, else mqtts://<server host>:8883). */
  mqtt?: string;
  limits?: PeerRateLimits;
  /** Report a device whose revoked certificate checkPeer saw (default true): the handshake proved it holds the key. */
  reportRevoked?: boolean;
  /** Told of each automatic report (sent, or why not). */
  onReport?: (result: { subject: string; report?: PeerReport; error?: string }) => void;
}

export interface TrustVerdict {
  trusted: boolean;
  reason: string;
  device: string | null;
  score: number | null;
  state: DeviceState | null;
}

interface Entry {
  state: DeviceState;
  score: number;
  certificate: TrustCertificate | null;
}

type Requirement = { minScore: number };

export class TrustClient {
  private readonly cache = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry | undefined>>();
  /** Devices an event touched while they were loading: loaded again. */
  private readonly dirty = new Set<string>();
  private readonly revoked = new Set<string>();
  private readonly agent: Agent;
  private lastEventId: string | undefined;
  private stream?: IncomingMessage;
  private connected = false;
  private downSince: number | undefined = Date.now();
  private closed = false;
  private retryMs = 500;
  private idleTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private readyWaiters: Array<() => void> = [];
  private readonly base: URL;
  /** Peer-report bookkeeping when the reporter is given as PEMs (no agent directory to persist it in). */
  private peerState: PeerState = { lastId: 0, recent: [] };
  private readonly autoReported = new Map<string, number>();

  private constructor(private readonly options: TrustClientOptions) {
    this.base = new URL(options.server);
    // Keep-alive for the on-demand loads; the stream has its own connection.
    this.agent = new Agent({ keepAlive: true, cert: options.cert, key: options.key, ca: options.ca, ...(options.servername ? { servername: options.servername } : {}) });
  }

  /** Connects the stream and resolves once it is live. */
  static async connect(options: TrustClientOptions): Promise<TrustClient> {
    const client = new TrustClient(options);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`trust stream at ${options.server} not ready within 10 s`)), 10_000);
      client.readyWaiters.push(() => (clearTimeout(timer), resolve()));
      client.openStream();
    }).catch((err) => {
      client.close();
      throw err;
    });
    return client;
  }

  /** The id of the last event applied (what a reconnect resumes after). */
  get position(): string | undefined {
    return this.lastEventId;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  // ------------------------------------------------------------------ the stream

  private requestOptions(path: string, headers: Record<string, string> = {}): RequestOptions {
    return {
      host: this.base.hostname,
      port: this.base.port || 443,
      path: API_PREFIX + path,
      cert: this.options.cert,
      key: this.options.key,
      ca: this.options.ca,
      ...(this.options.servername ? { servername: this.options.servername } : {}),
      headers,
    };
  }

  private openStream(): void {
    if (this.closed) return;
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
    const req = request({ ...this.requestOptions('/trust/stream', headers), agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return this.streamDown(`stream answered ${res.statusCode}`);
      }
      this.stream = res;
      const parser = createParser({
        onEvent: (event) => {
          this.apply(event.event ?? 'message', event.data);
          if (event.id !== undefined) this.lastEventId = event.id;
        },
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.touch();
        parser.feed(chunk);
      });
      res.on('error', () => undefined);
      res.on('close', () => this.streamDown('stream closed'));
      this.touch();
    });
    req.on('error', (err) => this.streamDown(err.message));
    req.end();
  }

  private touch(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stream?.destroy(), this.options.idleTimeoutMs ?? 45_000);
    this.idleTimer.unref();
  }

  private streamDown(error: string): void {
    if (this.stream === undefined && !this.connected && this.retryTimer) return;
    this.stream = undefined;
    clearTimeout(this.idleTimer);
    if (this.connected) {
      this.connected = false;
      this.downSince = Date.now();
      this.options.onStatus?.({ connected: false, error });
    }
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.openStream();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 15_000);
  }

  private apply(name: string, data: string): void {
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return;
    }
    if (name === 'ready') {
      this.connected = true;
      this.downSince = undefined;
      this.retryMs = 500;
      this.options.onStatus?.({ connected: true });
      this.readyWaiters.splice(0).forEach((w) => w());
    } else if (name === 'reset') {
      // The gateway could not replay everything since our last event: forget it all, load again on demand.
      this.cache.clear();
      for (const id of this.loading.keys()) this.dirty.add(id);
    } else if (name === 'score') {
      const e = trustScoreEventSchema.safeParse(json);
      if (!e.success) return;
      this.touchDevice(e.data.device, (entry) => {
        entry.score = e.data.score;
        if (e.data.state) entry.state = e.data.state;
      });
    } else if (name === 'device') {
      const e = trustDeviceEventSchema.safeParse(json);
      if (!e.success) return;
      this.touchDevice(e.data.device, (entry) => {
        if (e.data.state === null) return void this.cache.delete(e.data.device);
        entry.state = e.data.state;
        entry.score = e.data.score;
        entry.certificate = e.data.certificate;
      });
    } else if (name === 'revoked') {
      const e = trustRevokedEventSchema.safeParse(json);
      if (!e.success) return;
      if (this.revoked.size >= 100_000) this.revoked.delete(this.revoked.values().next().value!);
      this.revoked.add(normalizeSerial(e.data.serial));
      if (e.data.device) this.touchDevice(e.data.device, (entry) => {
        if (entry.certificate?.serial === normalizeSerial(e.data.serial)) entry.certificate = null;
      });
    }
  }

  private touchDevice(id: string, update: (entry: Entry) => void): void {
    if (this.loading.has(id)) this.dirty.add(id);
    const entry = this.cache.get(id);
    if (entry) update(entry);
  }

  // ------------------------------------------------------------------ loading a device

  private get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ ...this.requestOptions(path), agent: this.agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
  }

  private load(id: string): Promise<Entry | undefined> {
    const cached = this.cache.get(id);
    if (cached) return Promise.resolve(cached);
    let pending = this.loading.get(id);
    if (!pending) {
      const once = async (): Promise<Entry | undefined> => {
        const reply = await this.get(`/trust/${encodeURIComponent(id)}`);
        if (reply.status === 404) return undefined;
        if (reply.status !== 200) throw new Error(`GET /trust/${id}: ${reply.status} ${reply.body.slice(0, 200)}`);
        const t: DeviceTrust = deviceTrustSchema.parse(JSON.parse(reply.body));
        return { state: t.state, score: t.score, certificate: t.certificate };
      };
      pending = (async () => {
        let entry = await once();
        // An event about it came while we loaded: the answer may predate it.
        if (this.dirty.delete(id)) entry = await once();
        if (entry) {
          if (this.cache.size >= (this.options.maxDevices ?? 100_000)) this.cache.delete(this.cache.keys().next().value!);
          this.cache.set(id, entry);
        }
        return entry;
      })().finally(() => {
        this.loading.delete(id);
        this.dirty.delete(id);
      });
      this.loading.set(id, pending);
    }
    return pending;
  }

  // ------------------------------------------------------------------ checks

  /** Whether the peer of `socket` is a device to trust now (its certificate chain-checked by that socket's TLS). */
  async checkPeer(socket: TLSSocket, requirement: Requirement): Promise<TrustVerdict> {
    const no = (reason: string, extra: Partial<TrustVerdict> = {}): TrustVerdict => ({ trusted: false, reason, device: null, score: null, state: null, ...extra });
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    if (!peer?.raw) return no('no client certificate');
    if (!socket.authorized) return no(`client certificate not accepted: ${String(socket.authorizationError ?? 'not issued by this CA')}`);
    const cn = typeof peer.subject?.CN === 'string' ? peer.subject.CN : '';
    const uris = (peer.subjectaltname ?? '').split(/,\s*/).filter((e) => e.startsWith('URI:')).map((e) => e.slice(4));
    const who = identityFromNames(cn, uris);
    if ('error' in who || who.kind !== 'device') return no(`not a device certificate${'error' in who ? `: ${who.error}` : ''}`);
    const device = who.id;
    if (Date.parse(peer.valid_to) <= Date.now()) return no('certificate expired', { device });
    if (this.downSince !== undefined && Date.now() - this.downSince > (this.options.maxStaleMs ?? 30_000)) {
      return no('trust data is stale: the trust stream to the gateway is down', { device });
    }
    let entry: Entry | undefined;
    try {
      entry = await this.load(device);
    } catch (err) {
      return no(`trust lookup failed: ${(err as Error).message}`, { device });
    }
    if (!entry) return no(`device "${device}" is unknown to the gateway`, { device });
    const facts = { device, score: entry.score, state: entry.state };
    const serial = normalizeSerial(peer.serialNumber ?? '');
    if (this.revoked.has(serial) || entry.state === 'revoked') {
      this.autoReport(device, 'presented a revoked certificate to a trust-checked service');
      return no('certificate revoked', facts);
    }
    const fingerprint = createHash('sha256').update(peer.raw).digest('hex');
    if (entry.certificate?.fingerprint !== fingerprint) return no("not the device's current certificate (revoked or superseded)", facts);
    if (entry.state !== 'active') return no(`device is ${entry.state}`, facts);
    if (entry.score < requirement.minScore) return no(`trust score ${entry.score.toFixed(2)} is below ${requirement.minScore}`, facts);
    return { trusted: true, reason: `trust score ${entry.score.toFixed(2)} meets ${requirement.minScore}`, ...facts };
  }

  /**
   * Middleware: `(req, res, next)` for node:https and Express/connect, or a Fastify onRequest hook
   * `(request, reply, done)`. Refuses with 403 and `{ error, reason, device, score }` as JSON; on success the
   * verdict is on `req.trust`.
   */
  requireTrust(requirement: Requirement): (req: any, res: any, next: (err?: Error) => void) => void {
    return (req, res, next) => {
      // Fastify passes its own request and reply, with the Node ones as .raw.
      const rawReq: IncomingMessage = req.raw ?? req;
      const rawRes: ServerResponse = res.raw ?? res;
      void this.checkPeer(rawReq.socket as TLSSocket, requirement).then((verdict) => {
        req.trust = verdict;
        if (verdict.trusted) return next();
        const body = JSON.stringify({ error: 'Forbidden', reason: verdict.reason, device: verdict.device, score: verdict.score });
        if (res.raw) return void res.code(403).type('application/json').send(body);
        rawRes.writeHead(403, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(body);
      }, (err: unknown) => next(err instanceof Error ? err : new Error(String(err))));
    };
  }

  // ------------------------------------------------------------------ peer reports

  /**
   * reportPeer(subject, rating, reason): what the device this client runs on observed about another device (1 =
   * behaves as expected … 0 = hostile), published over MQTT with the device's certificate (`reporter`). Resolves
   * with the report once the broker acknowledged it; throws without sending on a report about itself, a bad
   * field, or faster than the client-side bound.
   */
  async reportPeer(subject: string, rating: number, reason: string): Promise<PeerReport> {
    const r = this.options.reporter;
    if (!r || (!r.agentDir && !r.device)) {
      throw new Error('reportPeer needs the `reporter` option: peer reports are signed by a device certificate (the API certificate of this client cannot report)');
    }
    if (r.agentDir) return agentReportPeer({ dir: r.agentDir, ...(r.mqtt ? { mqtt: r.mqtt } : {}), ...(r.limits ? { limits: r.limits } : {}) }, subject, rating, reason);
    const cert = new X509Certificate(r.device!.cert);
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
    const uris = (cert.subjectAltName ?? '').split(/,\s*/).filter((e) => e.startsWith('URI:')).map((e) => e.slice(4));
    const who = identityFromNames(cn, uris);
    if ('error' in who || who.kind !== 'device') throw new Error('reporter.device must be a device certificate of ours');
    const { report, state } = nextPeerReport(this.peerState, who.id, { subject, rating, reason }, Date.now(), r.limits);
    this.peerState = state;
    const urls = r.mqtt ? splitUrls(r.mqtt) : [`mqtts://${this.base.hostname}:8883`];
    await publishPeerReport({ urls, caPem: this.options.ca, identity: { certPem: r.device!.cert, keyPem: r.device!.key }, ...(this.options.servername ? { servername: this.options.servername } : {}) }, report);
    return report;
  }

  private autoReport(subject: string, reason: string): void {
    const r = this.options.reporter;
    if (!r || (!r.agentDir && !r.device) || r.reportRevoked === false) return;
    // A revoked device retrying every second must not cost a file read per request: one attempt per bound.
    const now = Date.now();
    if (now - (this.autoReported.get(subject) ?? -Infinity) < (r.limits ?? DEFAULT_PEER_RATE).perSubjectMs) return;
    if (this.autoReported.size >= 10_000) this.autoReported.delete(this.autoReported.keys().next().value!);
    this.autoReported.set(subject, now);
    this.reportPeer(subject, 0, reason).then(
      (report) => r.onReport?.({ subject, report }),
      (err: Error) => r.onReport?.({ subject, error: err.message }),
    );
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.retryTimer);
    this.stream?.destroy();
    this.agent.destroy();
  }
}
