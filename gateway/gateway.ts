/**
 * `wott gateway`: one process on embedded defaults: the CA with EST and the CRL on HTTPS, the MQTT broker
 * (Aedes + the wott plugin) on MQTT over TLS, scoring, and Prometheus metrics on a loopback listener.
 */
import { createServer, type Server } from 'node:https';
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Aedes, type AedesOptions } from 'aedes';
import type { Registry } from 'prom-client';
import {
  identityFromCertificate,
  OpenCounter,
  policyThresholds,
  RateLimiter,
  WottPlugin,
  clusterBrokerParts,
  redisConnectionOptions,
  RedisRetainedLedger,
  localBus,
  type RetainedLimits,
  type BrokerLimits,
  type DeepPartial,
  type PolicyRule,
} from '../broker/index.js';
import { LogThrottle } from '../lib/log-throttle.js';
import { sourceKey } from '../lib/rate-limit.js';
import { createMetrics, registerCrlMetrics, registerEstMetrics, registerScoringMetrics } from './metrics.js';
import { Lease } from './leader.js';
import { LiveNodes, NodeRecord } from './cluster-status.js';
import { hostname } from 'node:os';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { CertificateAuthority, createEstHandler, createOcspHandler, isOcspPath, startUnclaimedSweeper, type EnrollmentLimits } from '../ca/index.js';
import { fleetCaFacts, FleetEvents, FleetInsights, FleetService, fleetTrustSource, FleetView, TrustCache } from '../fleet/index.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { PRIVATE_KEY_MODE } from '../lib/private.js';
import { parseBehaviourEvent, type BehaviourEvent, CREDENTIAL_FETCH_PATH, lateralNoticeSchema, type LateralNoticeMessage, CRL_PATH, EST_PATHS, OCSP_PATH, parseMessage, parseTopic, topicFilters } from '../protocol/index.js';
import { readSyncCredentials, startMosquittoSync, type MosquittoSection, type MosquittoSync } from '../mosquitto-compat/index.js';
import { aedesBus, startScoring, type ScoreModel, type InfluxOptions, type ScoringService, type StartScoringOptions } from '../scoring/index.js';
import { createApi, FleetAdapter, Sessions, type DeviceEndpoints, type RefusalLimits, type TrustStreamLimits, type EventStreamLimits } from '../api/index.js';
import { isDashboardPath, serveDashboard } from '../dashboard/index.js';
import { StaleEpochError, openSelectedActionStore, openSelectedInventory, openSelectedSessionStore, type StoreSelection } from '../store/index.js';
import ms from 'ms';
import { openGatewayCredentials, type GatewayCredentials, type GatewayCredentialsOptions } from './credentials.js';
import type { CredentialService } from '../credentials/index.js';
import { AuditScheduler, auditPoints, collectFacts, type AuditFacts, type LiveFacts } from '../audit/index.js';
import { ROUTES } from '../api/index.js';
import { openReportHistory, openSelectedVulnStore } from '../store/index.js';
import { ComplianceReports } from '../report/index.js';
import type { BehaviourEvent as Behaviour } from '../protocol/index.js';

export interface GatewayOptions {
  dataDir: string;
  /** Where the fleet's state lives (wott.yaml `store:`); default: the SQLite files in dataDir. */
  store?: StoreSelection;
  httpsPort: number;
  /** Host names / addresses for the server certificate besides localhost, 127.0.0.1 and ::1. */
  hosts: string[];
  publicUrl?: string;
  certLifetimeMs: number;
  crlValidityMs: number;
  /** OCSP answers' nextUpdate - thisUpdate (default one hour, DEFAULT_OCSP_VALIDITY_MS). */
  ocspValidityMs?: number;
  claim: boolean;
  /** Limits on enrollment without credentials and on unclaimed devices (defaults: DEFAULT_ENROLLMENT_LIMITS). */
  enrollment?: Partial<EnrollmentLimits>;
  /** The clock of the CA and of the broker's rate limits and bans (tests). */
  now?: () => Date;
  passphrase?: string;
  log: Logger;
  mqttPort: number;
  policies: PolicyRule[];
  initialScore: number;
  onDowngrade: 'filter' | 'disconnect';
  eventIntervalMs: number;
  /** How often the broker looks for CA changes (revocations, quarantines); default 200 ms. */
  trustPollMs?: number;
  /** Addresses the listeners bind to (default: all IPv4 addresses for HTTPS and MQTT, loopback for metrics). */
  bind?: { https?: string; mqtt?: string; metrics?: string };
  /** Port of the plain-HTTP Prometheus listener (0 = pick a free one); none when omitted. */
  metricsPort?: number;
  /** What one MQTT client may consume (broker/limits.ts DEFAULT_LIMITS). */
  limits?: DeepPartial<BrokerLimits>;
  /** What one HTTPS (EST) client may consume. */
  httpsLimits?: Partial<HttpsLimits>;
  /** In-process scoring (the default); omitted when scoring runs elsewhere. */
  scoring?: GatewayScoringOptions;
  /** Keep a Mosquitto's Dynamic Security in line with the policies and scores (the `mosquitto:` config section). */
  mosquitto?: MosquittoSection;
  /** The HTTPS API under /api/v1 (same listener). */
  api?: GatewayApiOptions;
  /** One node of a cluster: Aedes on Redis, scoring on the lease holder only (the `cluster:` config section). */
  cluster?: GatewayClusterOptions;
  /** Credential delivery (issue 17): value bound, polling. */
  credentials?: GatewayCredentialsOptions;
  /** The scheduled fleet audit (issue 19; the `audit:` config section): daily by default. */
  audit?: { schedule: boolean; intervalMs?: number; firstRunMs?: number };
  /** The compliance report of GET /api/v1/reports/compliance: how long one is served, how many requests may wait. */
  reports?: { cacheMs?: number; maxWaiting?: number };
}

export interface GatewayClusterOptions {
  /** redis://host:port[/db] shared by every node. */
  redis: string;
  /** This node's name in leases, events and logs (default: host name and process id). */
  nodeId: string;
  /** Scoring leadership lease (default 3 s): a dead leader is replaced within about this long. */
  leaseMs: number;
  /** About how many messages the cluster bus (the Redis stream wott:bus) keeps; default 100,000. */
  busMaxLength?: number;
  /** Devices' QoS 0 messages sent to Redis pub/sub and not answered, past which publishers wait; default 10,000. */
  qos0InFlight?: number;
}

export interface GatewayApiOptions {
  /** Default lifetime of tokens made through the API (enrollment.tokenTtl; default 24 h). */
  tokenTtlMs?: number;
  /** Lifetime of a browser session (default 12 h). */
  sessionTtlMs?: number;
  /** Refused calls per source and per identity before 429s (api/auth.ts DEFAULT_REFUSAL_LIMITS). */
  refusalLimits?: Partial<RefusalLimits>;
  /** Limits of GET /api/v1/trust/stream (api/trust-stream.ts DEFAULT_TRUST_STREAM_LIMITS). */
  trustStream?: Partial<TrustStreamLimits>;
  /** Limits of GET /api/v1/events/stream (api/events-stream.ts DEFAULT_EVENT_STREAM_LIMITS). */
  eventStream?: Partial<EventStreamLimits>;
}

export interface HttpsLimits {
  /** Open HTTPS connections in all, and from one source address. */
  maxConnections: number;
  maxConnectionsPerSource: number;
  /** Time to finish the TLS handshake, to send the request headers, and to send the whole request. */
  handshakeTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** New connections per source address (over it: refused for banMs). */
  connectRate: { max: number; windowMs: number; banMs: number };
}

export const DEFAULT_HTTPS_LIMITS: HttpsLimits = {
  maxConnections: 10_000,
  maxConnectionsPerSource: 256,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  connectRate: { max: 300, windowMs: 10_000, banMs: 60_000 },
};

export interface GatewayScoringOptions {
  model: ScoreModel;
  republishMs: number;
  historyRetentionMs: number;
  influx?: Omit<InfluxOptions, 'spoolDir' | 'log'>;
  tickMs?: number;
}

export interface Gateway {
  ca: CertificateAuthority;
  /** The fleet's use cases, acting as the gateway itself (EST); `fleet.as(actor)` for someone else. */
  fleet: FleetService;
  /** The in-memory read model of the fleet the broker and scoring use. */
  view: FleetView;
  /** Operators' credential use cases (`credentials.as(actor)` for someone else); values are write-only. */
  credentials: CredentialService;
  /** Credential delivery internals (tests, diagnostics). */
  credentialDelivery: GatewayCredentials;
  /** Trust for services: the latest score message per device and the trust events of the API's stream. */
  trust: TrustCache;
  /** This node's fleet events (what the API's /events/stream and the dashboard's feed show). */
  events: FleetEvents;
  broker: Aedes;
  plugin: WottPlugin;
  metrics: Registry;
  httpsPort: number;
  mqttPort: number;
  /** Bound port of the metrics listener, when there is one. */
  metricsPort?: number;
  /** The scoring service running in this process now (in a cluster: only while this node holds the lease). */
  readonly scoring?: ScoringService;
  /** In a cluster: this node's hold on the scoring lease. */
  lease?: Lease;
  /** The fleet audit: `audit.run()` runs one now; `audit.latest` is what GET /api/v1/audit/latest answers. */
  audit: AuditScheduler;
  /** The compliance report GET /api/v1/reports/compliance serves (built from the same live facts as the audit). */
  reports: ComplianceReports;
  /**
   * Replaces the topic policies in the running gateway (broker, scoring thresholds, Mosquitto sync), recorded in the
   * audit log as done by `actor`. Invalid rules are refused (and recorded as refused) with nothing changed.
   */
  reloadPolicies(rules: PolicyRule[], actor: string): Promise<void>;
  close(): Promise<void>;
}

/** Reuses the stored server certificate while it covers the hosts and has over a third of its life left. */
async function serverCredentials(ca: CertificateAuthority, dataDir: string, hosts: string[], log: Logger): Promise<{ key: string; cert: string }> {
  const keyPath = join(dataDir, 'server', 'server.key');
  const certPath = join(dataDir, 'server', 'server.crt');
  if (existsSync(keyPath) && existsSync(certPath)) {
    try {
      const cert = new X509Certificate(readFileSync(certPath));
      const from = Date.parse(cert.validFrom);
      const to = Date.parse(cert.validTo);
      const san = cert.subjectAltName ?? '';
      const covers = hosts.every((h) => san.includes(`:${h}`));
      const signedByUs = cert.checkIssued(ca.material.intermediate) && cert.verify(ca.material.intermediate.publicKey);
      const key = readFileSync(keyPath, 'utf8');
      // Written as two files: a key from one writer beside another's certificate (workers starting together) would
      // make every TLS handshake fail, so the pair must match to be used.
      const matches = cert.checkPrivateKey(createPrivateKey(key));
      if (covers && signedByUs && matches && to - Date.now() > (to - from) / 3) {
        return { key, cert: readFileSync(certPath, 'utf8') };
      }
    } catch {
      // unreadable: issue a fresh one below
    }
  }
  const issued = await ca.issueServer(hosts);
  writeFileAtomic(keyPath, issued.keyPem, PRIVATE_KEY_MODE);
  const chain = issued.pem + ca.material.intermediate.toString();
  writeFileAtomic(certPath, chain);
  log.info({ serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'issued server certificate');
  return { key: issued.keyPem, cert: chain };
}

function listen(server: Server | TlsServer | HttpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The sync runs beside the broker: same policies, same CA (so it can refresh Mosquitto's CRL and certificate). */
async function startGatewayMosquittoSync(
  options: GatewayOptions,
  section: MosquittoSection,
  credentials: ReturnType<typeof readSyncCredentials>,
  policies: PolicyRule[],
  ca: CertificateAuthority,
  view: FleetView,
): Promise<MosquittoSync> {
  const sync = await startMosquittoSync({
    url: section.url,
    key: credentials.key,
    cert: credentials.cert,
    ca: credentials.ca,
    view,
    authority: ca,
    policies,
    initialScore: options.initialScore,
    onDowngrade: options.onDowngrade,
    ...(section.dir ? { mosquittoDir: resolve(section.dir) } : {}),
    ...(section.reloadCommand ? { reloadCommand: section.reloadCommand } : {}),
    log: options.log,
  });
  options.log.info({ mosquitto: section.url, identity: credentials.identity }, 'Mosquitto sync started');
  return sync;
}

/**
 * Caps what one source may hold of a listener: open connections and new connections per window (then refused for
 * a while). Refusals are logged in summary, never one line each.
 */
function gateConnections(server: Server, limits: HttpsLimits, log: Logger, name: string): void {
  const open = new OpenCounter();
  const rate = new RateLimiter(limits.connectRate);
  const refusals = new LogThrottle(log);
  const prune = setInterval(() => rate.prune(), limits.connectRate.windowMs);
  prune.unref();
  server.on('close', () => {
    clearInterval(prune);
    refusals.close();
  });
  server.on('connection', (socket: Socket) => {
    const source = sourceKey(socket.remoteAddress);
    const banned = rate.hit(source);
    if (banned || open.count(source) >= limits.maxConnectionsPerSource) {
      refusals.warn(`${name}:${source}`, { remote: source, reason: banned ? 'connect rate' : 'connection cap' }, `${name} connection refused`);
      socket.destroy();
      return;
    }
    open.open(source);
    socket.once('close', () => open.close(source));
  });
}

/**
 * Feeds the API's in-memory insights from the broker itself (so scores from a scoring service elsewhere count too):
 * score messages (factors), the arrival of state reports (only the device may publish its telemetry topic, so the
 * time is the device's), and behaviour events. Parsing is cheap and bounded; telemetry payloads are not parsed.
 */
async function followForInsights(
  broker: Aedes,
  plugin: WottPlugin,
  insights: FleetInsights,
  known: (device: string) => boolean,
  log: Logger,
  onBehaviour: (event: BehaviourEvent) => void,
  onLateral: (notice: LateralNoticeMessage) => void,
): Promise<void> {
  const follow = (filter: string, handle: (topic: string, payload: Buffer) => void) =>
    new Promise<void>((resolve) =>
      broker.subscribe(
        filter,
        (packet, cb) => {
          try {
            handle(packet.topic, packet.payload as Buffer);
          } catch (err) {
            log.debug({ topic: packet.topic, err: (err as Error).message }, 'insights: ignored a message');
          }
          cb();
        },
        resolve,
      ),
    );
  // Score messages are parsed and checked once, by the plugin; insights take what it accepted.
  plugin.onScore((message) => {
    if (known(message.device)) insights.onScore(message);
  });
  await follow(topicFilters.telemetry, (topic) => {
    const parsed = parseTopic(topic);
    if (parsed?.kind === 'telemetry') insights.onReport(parsed.device, Date.now());
  });
  await follow(topicFilters.events, (topic, payload) => {
    const parsed = parseTopic(topic);
    const event = parseBehaviourEvent(payload);
    // Auth failures name whatever CN a forged certificate carried: only devices of ours get a ring, or anyone could
    // grow this map with made-up names.
    if (parsed?.kind === 'events' && event.device === parsed.device && known(event.device)) {
      insights.onEvent(event);
      onBehaviour(event);
    }
  });
  // Scoring's lateral-movement notices: scoring runs on one node of a cluster (or its own host), and the fleet events
  // of every node show them. Only the scoring identity may publish here (broker/namespace.ts).
  await follow(topicFilters.lateral, (topic, payload) => {
    const parsed = parseTopic(topic);
    const notice = parseMessage(lateralNoticeSchema, payload);
    if (parsed?.kind === 'lateral' && notice.device === parsed.device && known(notice.device)) onLateral(notice);
  });
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { log } = options;
  // A shared PostgreSQL inventory when configured (a cluster node); otherwise the CA opens its own SQLite file.
  const inventory = await openSelectedInventory(options.store);
  const ca = await CertificateAuthority.open({
    dataDir: options.dataDir,
    ...(inventory ? { inventory } : {}),
    passphrase: options.passphrase,
    certLifetimeMs: options.certLifetimeMs,
    crlValidityMs: options.crlValidityMs,
    ...(options.now ? { now: options.now } : {}),
    ...(options.trustPollMs !== undefined ? { inventoryPollMs: options.trustPollMs } : {}),
    onWarning: (message) => log.warn(message),
  }).catch(async (err: unknown) => {
    await inventory?.close(); // its connections would keep the process from exiting
    throw err;
  });
  const tls = await serverCredentials(ca, options.dataDir, options.hosts, log);
  const metrics = createMetrics();
  // The one read model of the fleet: what the broker, scoring and the metrics route know of revocations and device
  // states. Changes made by other processes (the CLI) wake it through the store's signal; this process's own writes
  // wake it at once.
  const view = await FleetView.open(ca.inventory);
  // Operators' snooze/ignore decisions on recommended actions (its own small database beside the inventory).
  const actionStore = await openSelectedActionStore(options.store, options.dataDir);
  const fleet = new FleetService(ca, 'gateway', actionStore);
  // What the API shows of each device beyond the inventory, in memory: fed below by the broker and scoring.
  const insights = new FleetInsights({ initialScore: options.initialScore });
  insights.loadDecisions(await fleet.actionDecisions());
  const credentials = await openGatewayCredentials(options.store, options.dataDir, options.passphrase, ca, view, fleet, insights, log, options.credentials).catch(async (err: unknown) => {
    // A refused credential key (another node's) must not leave open connections keeping the process alive.
    await view.close();
    await actionStore.close();
    await ca.close();
    throw err;
  });
  /** Why the caller of an HTTPS request is not a service (an operator or service certificate of ours), if it is not. */
  const serviceCaller = (req: IncomingMessage): string | undefined => {
    const socket = req.socket as TLSSocket;
    const cert = socket.getPeerCertificate?.();
    if (!cert?.raw || !socket.authorized) return 'metrics require a wott service certificate (or the loopback metrics listener)';
    const who = identityFromCertificate(cert);
    if ('error' in who || who.kind !== 'service') return 'metrics require a wott service certificate, not a device certificate';
    if (view.isRevoked(who.serial)) return 'certificate revoked';
    return undefined;
  };
  // Refused token enrollments go to the fleet event feed (created below, once the view exists).
  let onEnrollmentRefused: (device: string, reason: string, remote: string | undefined) => void = () => undefined;
  const est = createEstHandler(fleet, { claim: options.claim, log, ...(options.enrollment ? { limits: options.enrollment } : {}), onRefused: (r) => onEnrollmentRefused(r.device, r.reason, r.remoteAddress) });
  registerEstMetrics(metrics, est.stats);
  const ocsp = createOcspHandler(ca, { log, ...(options.ocspValidityMs ? { validityMs: options.ocspValidityMs } : {}) });
  const unclaimedSweeper = startUnclaimedSweeper(ca, options.enrollment, log);
  const httpsLimits = { ...DEFAULT_HTTPS_LIMITS, ...options.httpsLimits };
  const bind = { https: options.bind?.https ?? '0.0.0.0', mqtt: options.bind?.mqtt ?? '0.0.0.0', metrics: options.bind?.metrics ?? '127.0.0.1' };
  const serveMetrics = (res: ServerResponse) =>
    metrics.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': metrics.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  /**
   * Everything on the HTTPS listener that is not the API or the dashboard, and the handler of each: routed by
   * Fastify, answered by these handlers exactly as before the API (see DeviceEndpoints in api/app.ts). The router
   * matches decoded paths; each handler still goes by the raw URL, so a path the router decodes into one of these
   * (/%63rl) is answered as it always was (EST's 404).
   */
  const otherwise = (req: IncomingMessage, res: ServerResponse): void => (isOcspPath(req.url) ? ocsp(req, res) : est(req, res));
  const devices: DeviceEndpoints = {
    routes: [
      ...[...Object.values(EST_PATHS), CRL_PATH].map((url) => ({ url, handler: est })),
      // Device credentials over mutual TLS (the agent's fallback when MQTT is down); a device certificate opens nothing else.
      { url: CREDENTIAL_FETCH_PATH, handler: (req, res) => credentials.fetchHandler(req, res) },
      { url: OCSP_PATH, handler: otherwise },
      { url: `${OCSP_PATH}/*`, handler: otherwise },
      {
        url: '/metrics',
        methods: ['GET'],
        handler: (req, res) => {
          if (req.url !== '/metrics') return est(req, res);
          // Devices use this port: metrics are for operators and services (their certificates), or the loopback listener.
          const refusal = serviceCaller(req);
          if (refusal) return void res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${refusal}\n`);
          return void serveMetrics(res);
        },
      },
    ],
    // Other paths and methods, and URLs the router cannot decode: EST's plain-text 404 (or OCSP's own answer).
    fallback: otherwise,
    ownPath: isDashboardPath,
  };
  let httpsPort = 0;
  const publicUrl = () => options.publicUrl ?? `https://${options.hosts[0] ?? 'localhost'}:${httpsPort}`;
  const sessionStore = await openSelectedSessionStore(options.store, options.dataDir);
  // Trust for services: scores from the broker plugin (attached below, once it exists), facts from the view.
  const trust = new TrustCache(view, ca.inventory, ca.caCertificates());
  // What happened to the fleet, for operators watching (the API's /events/stream): from the view's changes, the
  // trust cache's scores (drops) and the broker's behaviour events (auth failures), below once the broker exists.
  let rulesInUse: () => readonly number[] = () => policyThresholds(options.policies);
  const fleetEvents = new FleetEvents(view, { thresholds: () => rulesInUse() });
  onEnrollmentRefused = (device, reason, remote) => fleetEvents.onEnrollmentRefused(device, reason, remote);
  trust.onEvent((e) => {
    if (e.kind === 'score') fleetEvents.onScore(e.data.device, e.data.score, e.data.state);
  });
  // Fastify owns the HTTPS listener and routes every request on it: the API, the dashboard, and the device
  // endpoints above. The server is ours (same TLS options and limits as before the API).
  const api = await createApi({
    fleet: new FleetAdapter(fleet, view, { tokenTtlMs: options.api?.tokenTtlMs ?? 86_400_000 }, insights),
    sessions: new Sessions(sessionStore, { ...(options.api?.sessionTtlMs ? { sessionTtlMs: options.api.sessionTtlMs } : {}) }),
    publicUrl,
    trust,
    ...(options.api?.trustStream ? { trustStream: options.api.trustStream } : {}),
    events: fleetEvents,
    ...(options.api?.eventStream ? { eventStream: options.api.eventStream } : {}),
    isRevoked: (serial) => view.isRevoked(serial),
    credentials: credentials.service,
    audit: {
      get latest() {
        return auditScheduler?.latest;
      },
      get nextRunAt() {
        return auditScheduler?.nextRunAt;
      },
      run: () => auditScheduler.run(),
    },
    reports: { render: (format) => reports.render(format) },
    log,
    ...(options.api?.refusalLimits ? { refusalLimits: options.api.refusalLimits } : {}),
    afterSignIn: '/',
    devices,
    serverFactory: (handler) =>
      createServer(
        {
          ...tls,
          ca: ca.caCertificates().map((c) => c.toString()),
          // Renewal authenticates with the current certificate; other endpoints do not need one, and the EST handler
          // and the API decide per request (they read socket.authorized), so the handshake itself must not insist.
          requestCert: true,
          rejectUnauthorized: false,
          minVersion: 'TLSv1.2',
          handshakeTimeout: httpsLimits.handshakeTimeoutMs,
          headersTimeout: httpsLimits.headersTimeoutMs,
          requestTimeout: httpsLimits.requestTimeoutMs,
        },
        handler,
      ),
  });
  // The fleet dashboard (dashboard/): its pages and assets on the same listener, its data from /api/v1 only.
  await api.register(serveDashboard, {});
  const https = api.server;
  https.maxConnections = httpsLimits.maxConnections;
  gateConnections(https, httpsLimits, log, 'HTTPS');
  https.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message }, 'TLS handshake failed');
    socket.destroy();
  });
  await api.listen({ port: options.httpsPort, host: bind.https });
  httpsPort = (https.address() as AddressInfo).port;

  // MQTT over TLS. The handshake accepts any certificate so that the plugin can record who failed (by CN) before
  // refusing; nothing reaches MQTT unless acceptTls() has verified chain, identity and revocation.
  const plugin = new WottPlugin({
    policies: options.policies,
    initialScore: options.initialScore,
    onDowngrade: options.onDowngrade,
    eventIntervalMs: options.eventIntervalMs,
    // In a cluster the retained limits hold for all nodes together: the ledger is in Redis.
    ...(options.cluster ? { nodeId: options.cluster.nodeId, retainedLedger: (limits: RetainedLimits) => new RedisRetainedLedger(redisConnectionOptions(options.cluster!.redis), limits) } : {}),
    trust: credentials.guard(fleetTrustSource(view)),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.now ? { now: () => options.now!().getTime() } : {}),
    log,
    metrics,
  });
  const limits = plugin.limits;
  // Redis down or restarting: the bus and persistence reconnect by themselves; say so, at most a few lines a minute.
  const redisErrors = options.cluster ? new LogThrottle(log) : undefined;
  const clusterParts = options.cluster
    ? clusterBrokerParts({
        url: options.cluster.redis,
        ...(options.cluster.busMaxLength ? { busMaxLength: options.cluster.busMaxLength } : {}),
        ...(options.cluster.qos0InFlight ? { qos0InFlight: options.cluster.qos0InFlight } : {}),
        onError: (err) =>
          err.message.startsWith('cluster bus')
            ? redisErrors!.warn('bus', { err: err.message }, 'cluster: message bus')
            : redisErrors!.warn('redis', { err: err.message }, 'cluster: Redis connection error (reconnecting)'),
      })
    : undefined;
  // The bus delivers what is appended after it found the stream's end: find it before devices can subscribe.
  if (clusterParts) await clusterParts.ready;
  const broker = await Aedes.createBroker({
    connectTimeout: limits.connectTimeoutMs,
    ...(clusterParts && options.cluster
      ? { mq: clusterParts.mq, persistence: clusterParts.persistence, id: options.cluster.nodeId }
      : { mq: localBus() as unknown as NonNullable<AedesOptions['mq']> }),
  });
  await plugin.attach(broker);
  credentials.attach(broker, plugin);
  insights.setBroker({
    effectiveScore: (device) => plugin.effectiveScore(device),
    sessionsOf: (device) => plugin.sessionsOf(device),
    explain: (device, topic, action) => plugin.explain(device, topic, action),
    rules: () => plugin.policy.rules,
  });
  rulesInUse = () => policyThresholds(plugin.policy.rules);
  await followForInsights(broker, plugin, insights, (device) => view.device(device) !== undefined, log, (event) => fleetEvents.onBehaviour(event), (notice) => fleetEvents.onLateralMovement(notice.device, notice.reporters, notice.text));
  // Devices leave the fleet (unclaimed ones are swept): what the API held about them goes too.
  const insightsPrune = setInterval(() => insights.prune((device) => view.device(device) !== undefined), 3_600_000);
  insightsPrune.unref();
  trust.attach(plugin);
  const mqtt = createTlsServer(
    {
      ...tls,
      ca: ca.caCertificates().map((c) => c.toString()),
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      handshakeTimeout: limits.handshakeTimeoutMs,
    },
    (socket: TLSSocket) => {
      if (plugin.acceptTls(socket)) broker.handle(socket);
    },
  );
  mqtt.maxConnections = limits.maxConnections;
  // With a listener here Node leaves the socket open (a handshake timeout included): close it ourselves.
  mqtt.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message }, 'MQTT TLS handshake failed');
    socket.destroy();
  });
  // Every raw connection, so that shutdown can end the ones no MQTT client owns (mid-handshake, taken over); the
  // plugin refuses sources over their connection cap or connect rate before any TLS work.
  const sockets = new Set<Socket>();
  mqtt.on('connection', (socket: Socket) => {
    if (!plugin.acceptConnection(socket)) return;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const mqttPort = await listen(mqtt, options.mqttPort, bind.mqtt);
  let metricsServer: HttpServer | undefined;
  let metricsPort: number | undefined;
  if (options.metricsPort !== undefined) {
    // Plain HTTP for Prometheus, on loopback unless bound elsewhere on purpose.
    metricsServer = createHttpServer((req, res) => {
      if (req.url === '/metrics' && req.method === 'GET') return void serveMetrics(res);
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('only GET /metrics here\n');
    });
    metricsServer.maxConnections = 64;
    metricsPort = await listen(metricsServer, options.metricsPort, bind.metrics);
  }
  if (options.policies.length === 0) {
    log.warn('no policies configured: every topic outside wott/ is denied (see wott.example.yaml)');
  }
  // In a cluster scoring closes the sessions of a node whose heartbeat record vanished (a SIGKILLed node sends no
  // disconnect events, and its devices' addresses would stay theirs forever).
  const liveNodes = options.cluster ? new LiveNodes(redisConnectionOptions(options.cluster.redis)) : undefined;
  const startScoringHere = (scoringOptions: GatewayScoringOptions, fencing?: { epoch: number; onDeposed: NonNullable<StartScoringOptions['onDeposed']> }) =>
    startScoring({
      ...scoringOptions,
      ...(fencing ?? {}),
      dataDir: options.dataDir,
      ...(options.store ? { store: options.store } : {}),
      bus: aedesBus(broker),
      thresholds: policyThresholds(currentPolicies),
      caFacts: fleetCaFacts(view),
      sessions: { node: options.cluster?.nodeId ?? '', list: () => plugin.deviceSessions() },
      ...(liveNodes ? { nodes: { local: options.cluster!.nodeId, alive: () => liveNodes.ids() } } : {}),
      log,
      onScore: (message, findings) => {
        if (findings) insights.onFindings(message.device, findings);
      },
    });
  let currentPolicies = options.policies;
  // Work done once per fleet: scoring, the periodic CRL refresh and the Mosquitto sync. Alone, a gateway does it all
  // itself; in a cluster only the holder of the lease does (gateway/leader.ts), and a new leader takes it over.
  // Scores reach every node through the shared bus, retained in Redis.
  let scoring: ScoringService | undefined;
  const followScoring = (service: ScoringService) => {
    insights.setHistory((device, o) => service.history(device, o));
    // Last reports from before a restart (the broker only sees new ones); newer ones replace them as they come.
    for (const [device, at] of service.lastReports()) if (insights.lastReport(device) === undefined && view.device(device)) insights.onReport(device, at);
  };
  // Read at start, leader or not: a bad credentials file fails the start, not a later change of leader.
  const syncCredentials = options.mosquitto ? readSyncCredentials(resolve(options.mosquitto.credentials)) : undefined;
  let mosquittoSync: MosquittoSync | undefined;
  const startSync = async () => {
    if (options.mosquitto) mosquittoSync = await startGatewayMosquittoSync(options, options.mosquitto, syncCredentials!, currentPolicies, ca, view);
  };
  const crlRuns = registerCrlMetrics(metrics);
  let crlTimer: NodeJS.Timeout | undefined;
  // Keep the CRL fresh before its nextUpdate even when nothing is revoked.
  const startCrlRefresh = () => {
    clearInterval(crlTimer);
    crlTimer = setInterval(
      () => {
        crlRuns.inc();
        void ca.refreshCrl().catch((err: Error) => log.error({ err: err.message }, 'CRL refresh failed'));
      },
      Math.min(options.crlValidityMs / 4, 3_600_000),
    );
    crlTimer.unref();
  };
  let lease: Lease | undefined;
  if (options.scoring) registerScoringMetrics(metrics, () => scoring, options.scoring.influx !== undefined);
  if (options.cluster) {
    const scoringOptions = options.scoring;
    if (!scoringOptions) log.warn('cluster: scoring is off on this node; while it holds the lease no node scores (give every node the same scoring setting)');
    // Fencing (gateway/leader.ts): the highest epoch the score store has refused us with; the lease's next token
    // goes above it and above every epoch the broker has seen in scores.
    let storeFence = 0;
    const onDeposed = (err: StaleEpochError) => {
      storeFence = Math.max(storeFence, err.fence);
      lease?.resign(`the score store has seen a newer scoring epoch (${err.fence})`);
    };
    lease = new Lease({
      redis: redisConnectionOptions(options.cluster.redis),
      // The key keeps its name (`wott cluster status` reads it): it was scoring's before it led the rest too.
      name: 'scoring',
      nodeId: options.cluster.nodeId,
      ttlMs: options.cluster.leaseMs,
      log,
      floor: () => Math.max(storeFence, plugin.scoreFence.highest),
      onAcquire: async (epoch) => {
        if (scoringOptions) {
          try {
            scoring = await startScoringHere(scoringOptions, { epoch, onDeposed });
          } catch (err) {
            if (err instanceof StaleEpochError) storeFence = Math.max(storeFence, err.fence);
            throw err;
          }
          followScoring(scoring);
        }
        startCrlRefresh();
        await startSync();
      },
      onLose: async () => {
        clearInterval(crlTimer);
        crlTimer = undefined;
        const stopping = { sync: mosquittoSync, scoring };
        mosquittoSync = undefined;
        scoring = undefined;
        await stopping.sync?.close();
        await stopping.scoring?.close();
      },
    });
    // A deposed scorer's late score was ignored here: the leader publishes the device's score again, so the retained
    // copy (which a later node loads) is the leader's, not the stale one. Only a newer epoch repairs, or a deposed
    // node would answer its own stale scores forever.
    plugin.onStaleScore((message) => {
      if (scoring?.epoch !== undefined && message.epoch !== undefined && message.epoch < scoring.epoch) scoring.recompute(message.device, true);
    });
    // A newer leader's score reached this node while it still scores: it was deposed without noticing (paused).
    plugin.onScore((message) => {
      if (scoring?.epoch !== undefined && message.epoch !== undefined && message.epoch > scoring.epoch) lease?.resign(`a newer scoring leader (epoch ${message.epoch}) publishes scores`);
    });
  } else {
    if (options.scoring) {
      scoring = await startScoringHere(options.scoring);
      followScoring(scoring);
    }
    await startSync();
  }
  // The fleet audit: facts through the fleet core and the live broker; a new critical finding is a fleet event.
  const gatewayStarted = Date.now();
  const collectLive = (): LiveFacts => {
    const sessions = new Map<string, Array<{ clientId: string; since: number; remoteAddress: string | null }>>();
    const events = new Map<string, Behaviour[]>();
    for (const d of view.allDevices()) {
      const s = plugin.sessionsOf(d.id);
      if (s.length) sessions.set(d.id, s);
      const e = insights.recentEvents(d.id);
      if (e.length) events.set(d.id, e.reverse());
    }
    const stats = scoring?.influxStats;
    return { since: gatewayStarted, sessions, events, ...(stats ? { influx: { failures: stats.failures, spooledBatches: stats.spooledBatches, dropped: stats.dropped, written: stats.written } } : {}) };
  };
  const collectAuditFacts = async (): Promise<AuditFacts> => {
    const vuln = await openSelectedVulnStore(options.store, options.dataDir);
    try {
      return await collectFacts({
        fleet,
        dataDir: options.dataDir,
        source: 'gateway',
        settings: {
          policies: currentPolicies,
          initialScore: options.initialScore,
          claim: options.claim,
          metrics: { port: metricsPort ?? false, bind: bind.metrics },
          influx: Boolean(options.scoring?.influx),
          apiRoutes: ROUTES.map((r) => ({ method: r.method, path: r.path, role: r.access?.role ?? null })),
        },
        scores: {
          latest: async (device) => {
            const latest = insights.latest(device);
            return latest && { score: latest.score, time: latest.time, factors: latest.factors, findings: insights.findings(device) };
          },
          lastReport: (device) => insights.lastReport(device),
        },
        vuln,
        live: collectLive(),
      });
    } finally {
      await vuln.close();
    }
  };
  const auditScheduler: AuditScheduler = new AuditScheduler({
    ...(options.audit?.intervalMs !== undefined ? { intervalMs: options.audit.intervalMs } : {}),
    ...(options.audit?.firstRunMs !== undefined ? { firstRunMs: options.audit.firstRunMs } : {}),
    collect: collectAuditFacts,
    onRun: (run, newCritical) => {
      scoring?.writePoints(auditPoints(run));
      for (const f of newCritical) {
        const device = f.objects.find((o) => o.startsWith('device:'))?.slice('device:'.length) ?? null;
        fleetEvents.onAuditFinding(device, `audit (critical): ${f.title}`);
      }
      log.info({ audit: run.id, findings: run.findings.length, ...run.counts }, 'fleet audit done');
    },
    onError: (err) => log.error({ err: err.message }, 'fleet audit failed'),
  });
  if (options.audit?.schedule !== false) auditScheduler.start();
  const reports = new ComplianceReports({
    collect: collectAuditFacts,
    history: openReportHistory(options.dataDir),
    ...(options.reports?.cacheMs !== undefined ? { cacheMs: options.reports.cacheMs } : {}),
    ...(options.reports?.maxWaiting !== undefined ? { maxWaiting: options.reports.maxWaiting } : {}),
  });
  ca.setCrlUrl(`${publicUrl()}${CRL_PATH}`);
  ca.setOcspUrl(`${publicUrl()}${OCSP_PATH}`);
  // Every node adopts the current CRL (making one only when there is none fresh) before it serves; in a cluster the
  // leader keeps it fresh from then on.
  await ca.refreshCrl();
  if (lease) lease.start();
  else startCrlRefresh();
  const startedAt = new Date().toISOString();
  const nodeRecord = options.cluster
    ? new NodeRecord(redisConnectionOptions(options.cluster.redis), () => ({
        node: options.cluster!.nodeId,
        host: hostname(),
        pid: process.pid,
        startedAt,
        mqttPort,
        httpsPort,
        connections: broker.connectedClients,
        feedPosition: view.position,
        scoring: scoring !== undefined,
      }))
    : undefined;
  log.info({ https: httpsPort, mqtt: mqttPort, metrics: metricsPort, bind, dataDir: options.dataDir, claim: options.claim, policies: options.policies.length, certLifetime: ms(ca.certLifetimeMs) }, 'gateway listening');
  // What devices pin (`wott agent enroll --ca-fingerprint`, curl's walk-through): printed at every start.
  log.info({ rootFingerprint: ca.material.root.fingerprint256 }, `CA root SHA-256 fingerprint ${ca.material.root.fingerprint256}`);

  let closing: Promise<void> | undefined;
  return {
    ca,
    fleet,
    view,
    credentials: credentials.service,
    credentialDelivery: credentials,
    trust,
    events: fleetEvents,
    broker,
    plugin,
    metrics,
    httpsPort,
    mqttPort,
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    get scoring() {
      return scoring;
    },
    ...(lease ? { lease } : {}),
    audit: auditScheduler,
    reports,
    async reloadPolicies(rules: PolicyRule[], actor: string) {
      const audit = fleet.as(actor);
      try {
        plugin.setPolicies(rules); // validates first: throws before anything changed
      } catch (err) {
        await audit.recordPolicyReload('refused', (err as Error).message);
        throw err;
      }
      currentPolicies = rules;
      scoring?.setThresholds(policyThresholds(rules));
      mosquittoSync?.setPolicies(rules);
      await audit.recordPolicyReload('ok', `${rules.length} rule(s): ${rules.map((r) => r.topic).join(', ')}`);
      log.info({ rules: rules.length, actor }, 'policies reloaded');
    },
    close() {
      // Idempotent: a second call (a test's teardown after its own close) waits for the first.
      return (closing ??= shutdown());
    },
  };

  async function shutdown(): Promise<void> {
    await auditScheduler.close();
    await credentials.close(); // first: no delivery runs into a closing broker
    clearInterval(insightsPrune);
    unclaimedSweeper.close();
    await nodeRecord?.close();
    // The lease's close stops the led work (scoring, CRL refresh, Mosquitto sync) when this node leads.
    if (lease) await lease.close();
    clearInterval(crlTimer);
    await mosquittoSync?.close();
    await scoring?.close();
    liveNodes?.close();
    await new Promise<void>((resolve) => {
      mqtt.close(() => resolve());
      // Ending a connection ends its Aedes client (Aedes closes a client when its stream finishes); broker.close()
      // below closes any client still registered. Aedes 1.2 has no public list of its clients to walk here.
      for (const socket of sockets) socket.destroy();
    });
    // The persistence goes first: its close unsubscribes through the bus, which broker.close() ends.
    await clusterParts?.close();
    redisErrors?.close();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    plugin.close();
    trust.close();
    fleetEvents.close();
    const apiClosed = api.close();
    https.closeAllConnections();
    await apiClosed;
    await sessionStore.close();
    if (metricsServer) {
      await new Promise<void>((resolve) => {
        metricsServer!.close(() => resolve());
        metricsServer!.closeAllConnections();
      });
    }
    est.close();
    ocsp.close();
    await view.close();
    await actionStore.close();
    await ca.close();
    log.info('gateway stopped');
  }
}
