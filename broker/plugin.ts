/**
 * The wott Aedes plugin: mTLS identity, Trust Score topic policies, live enforcement and behaviour events.
 * Mount it on any Aedes 1.x instance with `plugin.attach(broker)` and let it vet TLS sockets with `acceptTls`.
 *
 * Every hook decides from memory only (policy trie, score cache, trust snapshot); the only I/O is the broker's own
 * publishing of behaviour events, which happens after the decision.
 */
import type { Aedes, Client, AedesPublishPacket, PublishPacket, Subscription } from 'aedes';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import { LogThrottle } from '../lib/log-throttle.js';
import { sourceKey } from '../lib/rate-limit.js';
import {
  parseMessage,
  parseTopic,
  scoreMessageSchema,
  topicFilters,
  topics,
  isDeviceId,
  type BehaviourEvent,
  type BehaviourEventType,
  type DeviceState,
  type ScoreMessage,
} from '../protocol/index.js';
import { identityFromCertificate, type Identity } from './identity.js';
import { OpenCounter, RateLimiter, RetainedLedger, resolveLimits, type BrokerLimits, type DeepPartial, type RetainedAdmission } from './limits.js';
import { PacketGuard } from './packet-guard.js';
import { ExpiryScheduler } from './expiry.js';
import { DeliveryGate, ScoreCache, type GateSource } from './delivery-gate.js';
import { namespaceForward, namespacePublish, namespaceSubscribe } from './namespace.js';
import { effectiveScore, isRestricted, PolicyEngine, ScoreFence, restrictedTopic, restrictionReason, type Action, type Decision, type PolicyRule } from '../policy/index.js';
import { staticTrustSource, type TrustSource } from './trust.js';

export interface PluginLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface WottPluginOptions {
  policies: PolicyRule[];
  /** Score of a device no score message has been seen for (scoring.initialScore). */
  initialScore?: number;
  /** 'filter' (default): a score drop suppresses deliveries; 'disconnect': also closes the device's sessions. */
  onDowngrade?: 'filter' | 'disconnect';
  trust?: TrustSource;
  /** Interval of the per-device counters event. */
  eventIntervalMs?: number;
  /** This broker's node id in a cluster; carried by its behaviour events. */
  nodeId?: string;
  /** Individual denial events per device per interval before they are only counted. */
  maxDenialEventsPerInterval?: number;
  /** What one client may consume; defaults in DEFAULT_LIMITS (broker/limits.ts). */
  limits?: DeepPartial<BrokerLimits>;
  log?: PluginLogger;
  metrics?: Registry;
  /** Clock for the rate limits (tests). */
  now?: () => number;
  /** The retained-message ledger (default: in this process); a cluster passes one shared by every node (Redis). */
  retainedLedger?: (limits: BrokerLimits['retained']) => RetainedAdmission;
}

interface Activity {
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  publishDenied: number;
  subscribeDenied: number;
  denialEvents: number;
  suppressedEvents: number;
}

const newActivity = (): Activity => ({ messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, publishDenied: 0, subscribeDenied: 0, denialEvents: 0, suppressedEvents: 0 });
/** Aedes' AuthErrorCode is a const enum (unusable under isolatedModules): 2 = identifier rejected, 5 = not authorized. */
const IDENTIFIER_REJECTED = 2;
const NOT_AUTHORIZED = 5;

function payloadBytes(packet: { payload?: Buffer | string }): number {
  const p = packet.payload;
  return p === undefined ? 0 : typeof p === 'string' ? Buffer.byteLength(p) : p.length;
}

/**
 * A connection's delivery cache lives on its Aedes client object under a symbol: authorizeForward reads it on every
 * delivery, and a property read is cheaper than the WeakMap lookup it replaced (issue 20: a few tens of ns of the
 * ~0.2 µs wott adds per delivery). Symbol-keyed, so it cannot clash with Aedes' own fields.
 */
const GATE = Symbol('wott.deliveryGate');
type Gated = Client & { [GATE]?: DeliveryGate<Activity> | undefined };
/** Resolves once `conn` holds fewer than `level` unwritten bytes (or has closed), leaving no listener behind. */
async function below(conn: TLSSocket, level: number): Promise<void> {
  while (!conn.destroyed && conn.writableLength >= level) {
    await new Promise<void>((resolve) => {
      const done = () => {
        conn.off('drain', done).off('close', done);
        resolve();
      };
      conn.on('drain', done).on('close', done);
    });
  }
}

/** Why an operation was denied, as wott_mqtt_denials_total{reason} counts it. */
type DenialCause = 'namespace' | 'policy' | 'limit';

export class WottPlugin {
  /** Replaced whole by setPolicies (a reload); every decision reads the current one. */
  get policy(): PolicyEngine {
    return this.gateSource.policy;
  }
  readonly trust: TrustSource;
  private readonly scores = new ScoreCache();
  /** Told of every score message the cache took (parsed once here, reused by the gateway's trust cache). */
  private readonly scoreListeners = new Set<(message: ScoreMessage) => void>();
  /** Per device, the scoring lease epoch of its current score: a deposed scorer's late score is ignored. */
  readonly scoreFence = new ScoreFence();
  /** Told of every score ignored as stale (the gateway's scorer, when it leads, republishes the device's score). */
  private readonly staleListeners = new Set<(message: ScoreMessage) => void>();
  private readonly identities = new WeakMap<Client, Identity>();
  /** A socket's identity as parsed from its chain-verified certificate (trust state is checked on each use). */
  private readonly peerIdentities = new WeakMap<TLSSocket, Identity>();
  /** What the gates read; its generation moves on a policy reload or any device's CA state change. */
  private readonly gateSource: GateSource;
  /** Bumped when the per-device counters are flushed: a gate's cached counters object is then replaced. */
  private activityEpoch = 0;
  /** Clients that sent an empty client id: Aedes generates a random one, which cannot collide with anyone's. */
  private readonly generatedIds = new WeakSet<Client>();
  private readonly sessions = new Map<string, Set<Client>>();
  /** The same live sessions by their certificate's serial: a revocation or renewal checks only its own sessions. */
  private readonly sessionsBySerial = new Map<string, Set<Client>>();
  /** Clients whose connection has ended: a late clientReady (Aedes can emit it after clientDisconnect) is ignored. */
  private readonly ended = new WeakSet<Client>();
  /** Clients that sent an empty client id with CleanSession = 0 (MQTT 3.1.1 §3.1.3-8: CONNACK 0x02). */
  private readonly persistentWithoutId = new WeakSet<Client>();
  /** Live sessions by their certificate's notAfter: one timer for all of them closes each at its expiry. */
  private readonly expiries = new ExpiryScheduler<Client>((client) => {
    this.options.log?.info({ client: client.id }, 'certificate expired: closing session');
    client.close();
  });
  /** Device sessions that became ready while the device was quarantined (or unclaimed): Aedes re-authorizes a
   * persistent session's stored subscriptions when it restores them, and skips (without deleting) those refused, so
   * such a session lacks them for as long as it lives. Closed at release: the reconnect restores them. */
  private readonly readyRestricted = new WeakSet<Client>();
  /** Topic filters each connection was granted, so it holds at most maxSubscriptionsPerConnection. */
  private readonly filters = new WeakMap<Client, Set<string>>();
  /** Devices that have had a session on this broker since it started: each one's first connect after a restart is
   * marked so that scoring does not count it as churn. One entry per device certified and connected during this
   * process's life, so bounded by the CA inventory. */
  private readonly connectedSinceStart = new Set<string>();
  /** When each live session became ready and from where (the API shows "connected since, from"). */
  private readonly sessionFacts = new WeakMap<Client, { since: number; remoteAddress: string | null }>();
  readonly limits: BrokerLimits;
  private readonly openPerSource = new OpenCounter();
  private readonly openPerIdentity = new OpenCounter();
  private readonly sourceRate: RateLimiter;
  private readonly identityRate: RateLimiter;
  private readonly telemetryRate: RateLimiter;
  readonly retained: RetainedAdmission;
  private readonly refusals: LogThrottle | undefined;
  private readonly activity = new Map<string, Activity>();
  private readonly initialScore: number;
  private readonly eventTimer: NodeJS.Timeout;
  private broker?: Aedes;
  private readonly metrics?: {
    connections: Gauge;
    handshakeFailures: Counter;
    refusedConnections: Counter;
    protocolViolations: Counter;
    denials: Counter;
    slowConsumers: Counter;
    scoreCache: Gauge;
    staleScores: Counter;
  };
  /** Per-message counts are plain numbers, read by the metrics collector at scrape time: prom-client's labelled
   * inc() on every delivery cost several percent of broker throughput. */
  private readonly messageCounts = { in: 0, out: 0 };

  constructor(private readonly options: WottPluginOptions) {
    this.trust = options.trust ?? staticTrustSource();
    this.initialScore = options.initialScore ?? 0.5;
    this.gateSource = { generation: 0, policy: new PolicyEngine(options.policies), scores: this.scores, initialScore: this.initialScore, trust: this.trust };
    this.limits = resolveLimits(options.limits);
    const now = options.now ?? Date.now;
    this.sourceRate = new RateLimiter(this.limits.sourceConnectRate, now);
    this.identityRate = new RateLimiter(this.limits.identityConnectRate, now);
    this.telemetryRate = new RateLimiter({ ...this.limits.restrictedTelemetry, banMs: 0 }, now);
    this.retained = options.retainedLedger?.(this.limits.retained) ?? new RetainedLedger(this.limits.retained);
    this.refusals = options.log && new LogThrottle(options.log);
    this.trust.onChange((devices, serials) => {
      // Before anything else: a quarantine or claim applies to the very next delivery.
      this.gateSource.generation++;
      this.enforceTrust(serials ? { devices, serials } : undefined);
    });
    this.eventTimer = setInterval(() => {
      this.flushCounters();
      this.sourceRate.prune();
      this.identityRate.prune();
      this.telemetryRate.prune();
    }, options.eventIntervalMs ?? 10_000);
    this.eventTimer.unref();
    if (options.metrics) {
      const registers = [options.metrics];
      this.metrics = {
        connections: new Gauge({ name: 'wott_mqtt_connections', help: 'Connected MQTT sessions', registers }),
        handshakeFailures: new Counter({ name: 'wott_mqtt_handshake_failures_total', help: 'Refused TLS/identity checks', labelNames: ['reason'], registers }),
        refusedConnections: new Counter({
          name: 'wott_mqtt_refused_connections_total',
          help: 'Connections refused by a limit (source or identity over its connection cap or connect rate)',
          labelNames: ['reason'],
          registers,
        }),
        protocolViolations: new Counter({
          name: 'wott_mqtt_protocol_violations_total',
          help: 'Connections closed for an oversized packet or a malformed string',
          labelNames: ['reason'],
          registers,
        }),
        denials: new Counter({ name: 'wott_mqtt_denials_total', help: 'Denied operations', labelNames: ['action', 'reason'], registers }),
        slowConsumers: new Counter({
          name: 'wott_mqtt_slow_consumers_total',
          help: 'Clients that did not take what the broker sent: QoS 0 deliveries dropped (action="drop"), connections closed (action="close"), QoS 1 messages not queued for a full persistent session (action="queue_full")',
          labelNames: ['action'],
          registers,
        }),
        scoreCache: new Gauge({ name: 'wott_score_cache_size', help: 'Devices with a cached Trust Score', registers, collect: () => undefined }),
        staleScores: new Counter({
          name: 'wott_stale_scores_total',
          help: 'Score messages ignored because a newer scoring leader had already scored the device (fencing)',
          registers,
        }),
      };
      const counts = this.messageCounts;
      new Counter({
        name: 'wott_mqtt_messages_total',
        help: 'Messages by direction (in: accepted publishes, out: deliveries)',
        labelNames: ['direction'],
        registers,
        collect() {
          this.reset();
          this.labels('in').inc(counts.in);
          this.labels('out').inc(counts.out);
        },
      });
    }
  }

  // ------------------------------------------------------------------ scores and identity

  /** The score decisions use: the cached score under its state's ceiling (policy/effective-score.ts). */
  effectiveScore(device: string): number {
    return this.scoreIn(device, this.trust.deviceState(device));
  }

  private scoreIn(device: string, state: DeviceState | undefined): number {
    return effectiveScore(this.scores.get(device) ?? this.initialScore, state);
  }

  deviceState(device: string): DeviceState | undefined {
    return this.trust.deviceState(device);
  }

  /** Updates the score cache (normally fed by retained wott/v1/scores/{device} messages). */
  setScore(device: string, score: number): void {
    const before = this.effectiveScore(device);
    this.scores.set(device, score);
    this.metrics?.scoreCache.set(this.scores.size);
    if (this.options.onDowngrade === 'disconnect' && this.effectiveScore(device) < before) {
      for (const client of this.sessions.get(device) ?? []) {
        this.options.log?.info({ device, before, after: score }, 'score dropped: closing session (onDowngrade: disconnect)');
        client.close();
      }
    }
  }

  /** Calls `listener` with each score message ignored as stale (an older lease epoch); returns the function that stops it. */
  onStaleScore(listener: (message: ScoreMessage) => void): () => void {
    this.staleListeners.add(listener);
    return () => this.staleListeners.delete(listener);
  }

  /** Calls `listener` with each valid score message after the cache took it; returns the function that stops it. */
  onScore(listener: (message: ScoreMessage) => void): () => void {
    this.scoreListeners.add(listener);
    return () => this.scoreListeners.delete(listener);
  }

  identityOf(client: Client): Identity | undefined {
    return this.identities.get(client);
  }

  /** Decision for a concrete topic, with the reason (used by `wott policy explain` and the hooks alike). */
  explain(device: string, topic: string, action: Action): Decision & { state?: DeviceState } {
    const who: Identity = { kind: 'device', id: device, serial: '', notAfter: Infinity };
    const ns = action === 'publish' ? namespacePublish(who, topic) : namespaceSubscribe(who, topic);
    const score = this.effectiveScore(device);
    const state = this.trust.deviceState(device);
    const decision: Decision = ns.applies
      ? { allowed: ns.allowed, score, reason: ns.reason }
      : action === 'publish'
        ? this.policy.decide(topic, action, device, score)
        : this.policy.decideSubscribe(topic, device, score);
    if (isRestricted(state)) {
      return { ...decision, allowed: topic === restrictedTopic(device, action), reason: restrictionReason(state), state };
    }
    return { ...decision, state };
  }

  /**
   * Vets a raw connection before TLS: the source address must be under its connection cap and its connect rate.
   * Returns false (and destroys the socket) otherwise. Call it from the server's 'connection' event.
   */
  acceptConnection(socket: Socket): boolean {
    const source = sourceKey(socket.remoteAddress); // IPv6 by its /64: one site, one source
    const banned = this.sourceRate.hit(source);
    let refusal: string | undefined;
    if (banned) refusal = `source connect rate over ${this.limits.sourceConnectRate.max} per ${this.limits.sourceConnectRate.windowMs} ms: refused for ${Math.ceil(banned / 1000)} s`;
    else if (this.openPerSource.count(source) >= this.limits.maxConnectionsPerSource) refusal = `source holds ${this.limits.maxConnectionsPerSource} connections already`;
    if (refusal) {
      this.metrics?.refusedConnections.inc({ reason: banned ? 'source_rate' : 'source_connections' });
      this.refusals?.warn(`source:${banned ? 'rate' : 'open'}:${source}`, { remote: source, reason: refusal }, 'MQTT connection refused');
      socket.destroy();
      return false;
    }
    this.openPerSource.open(source);
    socket.once('close', () => this.openPerSource.close(source));
    return true;
  }

  /**
   * Vets a TLS socket before MQTT starts: the certificate must chain to the CA (checked by TLS), name a device or
   * service, and be neither revoked nor superseded; the identity must be under its connection cap and connect rate.
   * Installs the packet guard (maximum packet size, well-formed strings). Returns false (and destroys the socket)
   * otherwise.
   *
   * A refused certificate that we did not issue proves nothing about the device it names (anyone can put a CN in a
   * self-signed certificate): such failures are accounted to their source address only (metrics, log), never to
   * the named device. A certificate we did issue (revoked, superseded, expired) is that device's failure.
   */
  acceptTls(socket: TLSSocket): boolean {
    const verdict = this.checkSocket(socket);
    const remote = socket.remoteAddress;
    if ('error' in verdict) {
      this.metrics?.handshakeFailures.inc({ reason: verdict.metric });
      if (verdict.device) this.emitEvent(verdict.device, 'auth_failure', { reason: verdict.error, verified: true, remoteAddress: remote });
      this.refusals?.info(`tls:${verdict.metric}:${remote}`, { cn: verdict.cn?.slice(0, 64), device: verdict.device, reason: verdict.error, remote }, 'TLS client refused');
      socket.destroy();
      return false;
    }
    const banned = this.identityRate.hit(verdict.id);
    let refusal: string | undefined;
    if (banned) refusal = `connect rate over ${this.limits.identityConnectRate.max} per ${this.limits.identityConnectRate.windowMs} ms: refused for ${Math.ceil(banned / 1000)} s`;
    else if (this.openPerIdentity.count(verdict.id) >= this.limits.maxConnectionsPerIdentity) refusal = `identity holds ${this.limits.maxConnectionsPerIdentity} connections already`;
    if (refusal) {
      this.metrics?.refusedConnections.inc({ reason: banned ? 'identity_rate' : 'identity_connections' });
      this.refusals?.warn(`identity:${banned ? 'rate' : 'open'}:${verdict.id}`, { id: verdict.id, remote, reason: refusal }, 'MQTT connection refused');
      socket.destroy();
      return false;
    }
    this.openPerIdentity.open(verdict.id);
    socket.once('close', () => this.openPerIdentity.close(verdict.id));
    this.guard(socket, verdict);
    return true;
  }

  /**
   * Puts a PacketGuard in front of Aedes' reads. Aedes pulls data with `conn.read()` on 'readable'; wrapping that one
   * method sees every byte before mqtt-packet does, without an extra stream per connection.
   */
  private guard(socket: TLSSocket, who: Identity): void {
    const guard = new PacketGuard(this.limits.maxPacketBytes);
    const read = socket.read;
    socket.read = (size?: number) => {
      const chunk = read.call(socket, size) as Buffer | null;
      if (chunk === null || chunk.length === 0) return chunk;
      const violation = guard.feed(chunk);
      if (violation === undefined) return chunk;
      this.metrics?.protocolViolations.inc({ reason: /maximum packet size/.test(violation) ? 'packet_size' : 'malformed' });
      this.refusals?.warn(`violation:${who.id}`, { id: who.id, remote: socket.remoteAddress, reason: violation }, 'MQTT connection closed: protocol violation');
      socket.destroy();
      return null;
    };
  }

  private checkSocket(socket: TLSSocket): Identity | { error: string; metric: string; cn?: string; device?: string } {
    // The identity acceptTls parsed from this socket's certificate: getPeerCertificate() builds a new object (and
    // three fingerprints) on every call, so CONNECT reuses it. The trust checks below run again either way: a
    // revocation between the handshake and CONNECT must still refuse the session.
    const parsed = this.peerIdentities.get(socket);
    if (parsed) return this.checkIdentity(parsed);
    // getPeerCertificate(), not getPeerX509Certificate(): on Node 20 the latter cost 7x as much CPU per connection
    // in a connect ramp's profile (X509Certificate's construction and each field getter are native calls).
    const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    const cn = cert && !Array.isArray(cert.subject?.CN) ? cert.subject?.CN : undefined;
    if (!cert || !cert.raw) return { error: 'no client certificate', metric: 'no_certificate' };
    if (!socket.authorized) return { error: `certificate not trusted: ${String(socket.authorizationError)}`, metric: 'untrusted', cn };
    const identity = identityFromCertificate(cert);
    if ('error' in identity) return { error: identity.error, metric: 'bad_identity', cn };
    // From here on the certificate is one we issued, presented by the holder of its key.
    this.peerIdentities.set(socket, identity);
    return this.checkIdentity(identity);
  }

  /** Revocation, supersession and expiry of an identity whose certificate chained to our CA. */
  private checkIdentity(identity: Identity): Identity | { error: string; metric: string; cn?: string; device?: string } {
    const device = identity.kind === 'device' ? identity.id : undefined;
    const cn = identity.kind === 'device' ? identity.id : `${identity.role}:${identity.name}`;
    if (this.trust.isRevoked(identity.serial)) return { error: 'certificate revoked', metric: 'revoked', cn, device };
    if (device && this.trust.deviceState(device) === 'revoked') return { error: 'device revoked', metric: 'revoked', cn, device };
    if (this.trust.isSuperseded(identity.serial)) return { error: 'certificate superseded by a newer one', metric: 'superseded', cn, device };
    if (identity.notAfter <= Date.now()) return { error: 'certificate expired', metric: 'expired', cn, device };
    return identity;
  }

  // ------------------------------------------------------------------ Aedes hooks

  /** Installs the hooks on `broker` and starts following score messages. */
  async attach(broker: Aedes): Promise<void> {
    this.broker = broker;
    broker.preConnect = (client, packet, done) => {
      const conn = client.conn as TLSSocket;
      const verdict = this.checkSocket(conn);
      if ('error' in verdict) {
        this.metrics?.handshakeFailures.inc({ reason: verdict.metric });
        return done(Object.assign(new Error(verdict.error), { returnCode: NOT_AUTHORIZED }), false);
      }
      this.identities.set(client, verdict);
      // Made here, not at the first delivery: every client object gets the property at the same point of its life.
      (client as Gated)[GATE] = new DeliveryGate<Activity>(verdict, this.gateSource);
      this.neverWaitForDrain(client, verdict);
      // From here on the client holds the identity: the socket's copy would only cost memory per connection.
      this.peerIdentities.delete(conn);
      if (!packet.clientId) {
        this.generatedIds.add(client);
        if (packet.clean === false) this.persistentWithoutId.add(client);
      }
      done(null, true);
    };
    broker.authenticate = (client, _username, _password, done) => {
      // Identity comes from the certificate (preConnect); user names and passwords are ignored.
      const who = this.identities.get(client);
      if (!who) return done(Object.assign(new Error('no verified client certificate'), { returnCode: NOT_AUTHORIZED }), false);
      if (this.persistentWithoutId.has(client)) {
        // Aedes would invent an id for a session nobody could ever resume.
        this.identities.delete(client);
        (client as Gated)[GATE] = undefined;
        return done(Object.assign(new Error('an empty client id requires CleanSession = 1'), { returnCode: IDENTIFIER_REJECTED }), false);
      }
      // A client id is the identity, or the identity plus ':suffix' (or broker-generated): nobody can take over
      // another device's session by reusing its client id.
      const id = client.id;
      if (id && id !== who.id && !id.startsWith(`${who.id}:`) && !this.generatedIds.has(client)) {
        this.metrics?.handshakeFailures.inc({ reason: 'client_id' });
        this.identities.delete(client);
        (client as Gated)[GATE] = undefined;
        // The device's own failure (its certificate verified): the audit tells a takeover attempt (another device's
        // id) from a misconfigured client, so the refused id goes along.
        if (who.kind === 'device') {
          const remote = (client.conn as TLSSocket).remoteAddress;
          this.emitEvent(who.id, 'auth_failure', { reason: `client id "${id.slice(0, 64)}" refused: not its own`, verified: true, ...(remote ? { remoteAddress: remote } : {}) });
        }
        this.refusals?.info(
          `client-id:${who.id}`,
          { id: who.id, clientId: id.slice(0, 64), remote: (client.conn as TLSSocket).remoteAddress },
          `MQTT connection refused: the client id must be "${who.id}", start with "${who.id}:", or be empty (random ids such as mqttjs_… are refused so that nobody takes over another device's session)`,
        );
        return done(Object.assign(new Error(`client id must be "${who.id}" or start with "${who.id}:"`), { returnCode: IDENTIFIER_REJECTED }), false);
      }
      done(null, true);
    };
    broker.authorizePublish = (client, packet, done) => this.authorizePublish(client, packet, done);
    broker.authorizeSubscribe = (client, sub, done) => this.authorizeSubscribe(client, sub, done);
    broker.authorizeForward = (client, packet) => this.authorizeForward(client, packet);
    broker.on('unsubscribe', (filters, client) => {
      const held = this.filters.get(client);
      for (const filter of filters) held?.delete(filter);
    });
    this.storeOnlyGranted(broker);
    this.paceOfflineQueue(broker);
    this.boundQueues(broker);
    broker.on('clientReady', (client) => this.onReady(client));
    broker.on('clientDisconnect', (client) => this.onGone(client));
    // Aedes closes a session by itself on a socket or protocol error and on a keepalive timeout, silently: the log
    // says so (throttled per identity), so that a session that ended without a line of ours is not a mystery.
    // Aedes passes on whatever its parts rejected with, not always an Error.
    broker.on('clientError', (client, err) => this.sessionEnded(client, 'client error', String((err as Error | undefined)?.message ?? err)));
    broker.on('keepaliveTimeout', (client) => this.sessionEnded(client, 'keepalive timeout', 'no packet within 1.5 x the keepalive'));
    await new Promise<void>((resolve) =>
      broker.subscribe(
        topicFilters.scores,
        (packet, cb) => {
          this.onScoreMessage(packet);
          cb();
        },
        resolve,
      ),
    );
    await this.loadRetainedScores(broker);
  }

  /**
   * The offline queue is sent on reconnect by writing message after message, and waits for a write only when the
   * socket says so: deliveries never wait here (neverWaitForDrain), so the queue's stream waits instead, while the
   * connection holds half of maxBufferedBytesPerConnection unread (the other half leaves room for live deliveries
   * meanwhile). Without it a queue of a few MB would be written at once, and the connection closed as a slow
   * consumer every time it came back.
   */
  private paceOfflineQueue(broker: Aedes): void {
    type Stream = (client: Client) => Readable;
    const persistence = (broker as unknown as { persistence: { outgoingStream: Stream } }).persistence;
    const stream = persistence.outgoingStream.bind(persistence);
    const pace = this.limits.maxBufferedBytesPerConnection / 2;
    persistence.outgoingStream = (client) => {
      const source = stream(client);
      const conn = client.conn as TLSSocket | undefined;
      if (!conn) return source;
      // The queue's own stream is held back, not wrapped: a stream and an async iterator more on every connection,
      // almost all of whose queues are empty, cost a measurable share of a connect ramp's CPU.
      const read = source._read;
      source._read = function (this: Readable, size: number) {
        if (conn.destroyed || conn.writableLength < pace) return read.call(this, size);
        below(conn, pace)
          .then(() => read.call(this, size))
          .catch((err: Error) => this.destroy(err));
      };
      return source;
    };
  }

  /**
   * Aedes queues every QoS 1 message for every persistent session that subscribed, for as long as it stays away, with
   * no limit: one device could subscribe with a second client id, disconnect it, and publish to its own topic until
   * the broker's memory (or Redis') ran out. At maxQueuedMessagesPerSession a session gets no more until it takes
   * some. The persistence counts its queues when it can (Redis: the cluster's nodes share them); otherwise the
   * count is kept here, from what is queued and what is cleared.
   */
  private boundQueues(broker: Aedes): void {
    type Sub = { clientId: string };
    type Queues = {
      outgoingEnqueue(sub: Sub, packet: unknown): Promise<void>;
      outgoingEnqueueCombi(subs: Sub[], packet: unknown): Promise<void>;
      outgoingClearMessageId(client: { id: string }, packet: unknown): Promise<unknown>;
      outgoingUpdate(client: { id: string }, packet: unknown): Promise<unknown>;
      /** broker/cluster.ts: the queues' lengths in Redis, shared by every node (it also keeps a delivery left out
       * of a full queue from being recorded). */
      queuedMessages?(clientIds: string[]): Promise<number[]>;
    };
    const persistence = (broker as unknown as { persistence: Queues }).persistence;
    const max = this.limits.maxQueuedMessagesPerSession;
    const enqueue = persistence.outgoingEnqueueCombi.bind(persistence);
    const counted = persistence.queuedMessages?.bind(persistence);
    // Without Redis: the queue lengths, counted here. With it: messages admitted here and not yet in Redis. Aedes
    // acknowledges a QoS 1 publish before it queues it, so one publisher has many enqueues in flight at once, and
    // each would read the same length.
    const local = new Map<string, number>();
    const add = (id: string, n: number) => {
      const v = (local.get(id) ?? 0) + n;
      if (v > 0) local.set(id, v);
      else local.delete(id);
    };
    persistence.outgoingEnqueueCombi = async (subs, packet) => {
      if (subs.length === 0) return;
      const stored = counted ? await counted(subs.map((s) => s.clientId)) : undefined;
      const admitted = subs.filter((sub, i) => {
        if ((stored?.[i] ?? 0) + (local.get(sub.clientId) ?? 0) < max) return true;
        this.metrics?.slowConsumers.inc({ action: 'queue_full' });
        this.refusals?.warn(`queue:${sub.clientId}`, { clientId: sub.clientId, max }, 'QoS 1 message dropped: the persistent session holds broker.limits.maxQueuedMessagesPerSession');
        return false;
      });
      for (const sub of admitted) add(sub.clientId, 1);
      if (admitted.length === 0) return;
      if (!counted) return enqueue(admitted, packet);
      try {
        await enqueue(admitted, packet);
      } finally {
        for (const sub of admitted) add(sub.clientId, -1);
      }
    };
    persistence.outgoingEnqueue = (sub, packet) => persistence.outgoingEnqueueCombi([sub], packet);
    if (counted) return;
    // A connected session gets its live delivery of a message left out of its full queue all the same (at most
    // once: it is not kept for a reconnect). Aedes records the delivery's message id in the queue first, and the
    // in-memory persistence throws for a message it does not hold, which would end the session.
    const update = persistence.outgoingUpdate.bind(persistence);
    persistence.outgoingUpdate = async (client, packet) => {
      try {
        return await update(client, packet);
      } catch (err) {
        // Resolve with nothing: Aedes takes any value it resolves with for an error.
        if ((err as Error).message === 'no such packet') return undefined;
        throw err;
      }
    };
    const clear = persistence.outgoingClearMessageId.bind(persistence);
    persistence.outgoingClearMessageId = async (client, packet) => {
      const removed = await clear(client, packet);
      if (removed) add(client.id, -1);
      return removed;
    };
  }

  /**
   * Aedes 1.2 stores every filter of a SUBSCRIBE in a persistent session as soon as one of them is granted, the
   * refused ones too (handlers/subscribe.js storeSubscriptions): refused filters would then count toward no limit,
   * fill the stored session, and queue offline QoS 1 messages the device may not read. Only granted filters are
   * stored.
   */
  private storeOnlyGranted(broker: Aedes): void {
    type Store = (client: Client, subs: Subscription[]) => Promise<void>;
    // Aedes' typings leave out its persistence; addSubscriptions is part of every aedes-persistence.
    const persistence = (broker as unknown as { persistence: { addSubscriptions: Store } }).persistence;
    const store = persistence.addSubscriptions.bind(persistence);
    persistence.addSubscriptions = (client, subs) => {
      const held = this.filters.get(client);
      const granted = subs.filter((sub) => held?.has(sub.topic));
      return granted.length > 0 ? store(client, granted) : Promise.resolve();
    };
  }

  /**
   * Scores already retained in the broker's persistence (another node's scorer, or this node before a restart with
   * a persistent store): the subscription above sees only new publishes. Read before the gateway accepts devices,
   * so no device is judged by the initial score while its real one sits in Redis. A score published meanwhile is
   * newer than the retained copy, which then must not overwrite it.
   */
  private async loadRetainedScores(broker: Aedes): Promise<void> {
    const seenLive = new Set<string>();
    const stopWatch = this.onScore((message) => seenLive.add(message.device));
    try {
      // Aedes' typings leave out its persistence; createRetainedStream is part of every aedes-persistence.
      const { persistence } = broker as unknown as { persistence: { createRetainedStream(pattern: string): AsyncIterable<AedesPublishPacket> } };
      const stream = persistence.createRetainedStream(topicFilters.scores);
      for await (const packet of stream) {
        const parsed = parseTopic(packet.topic);
        if (parsed?.kind === 'scores' && seenLive.has(parsed.device)) continue;
        this.onScoreMessage(packet);
      }
    } finally {
      stopWatch();
    }
  }

  private onScoreMessage(packet: AedesPublishPacket): void {
    const parsed = parseTopic(packet.topic);
    if (parsed?.kind !== 'scores') return;
    try {
      const message = parseMessage(scoreMessageSchema, packet.payload as Buffer);
      if (message.device !== parsed.device) throw new Error(`message is about "${message.device}", topic about "${parsed.device}"`);
      if (!this.scoreFence.admit(parsed.device, message.epoch)) {
        this.metrics?.staleScores.inc();
        // Throttled: a deposed scorer may publish for the whole fleet at once.
        this.refusals?.warn('stale-score', { device: parsed.device, epoch: message.epoch, current: this.scoreFence.epochOf(parsed.device) }, 'ignored a score from a deposed scorer (older lease epoch)');
        for (const listener of this.staleListeners) listener(message);
        return;
      }
      this.setScore(parsed.device, message.score);
      for (const listener of this.scoreListeners) listener(message);
    } catch (err) {
      this.options.log?.warn({ topic: packet.topic, err: (err as Error).message }, 'ignored malformed score message');
    }
  }

  /**
   * Session state follows the socket: Aedes can emit clientDisconnect before clientReady for the same client (and,
   * after a client-id takeover, none at all), so a session is registered only while its socket is open and is
   * removed when the socket closes, whichever event comes first.
   */
  private onReady(client: Client): void {
    const who = this.identities.get(client);
    if (!who) return void client.close();
    const conn = client.conn as TLSSocket;
    if (client.closed || this.ended.has(client) || conn.destroyed) return;
    let set = this.sessions.get(who.id);
    if (!set) this.sessions.set(who.id, (set = new Set()));
    set.add(client);
    let bySerial = this.sessionsBySerial.get(who.serial);
    if (!bySerial) this.sessionsBySerial.set(who.serial, (bySerial = new Set()));
    bySerial.add(client);
    this.sessionFacts.set(client, { since: Date.now(), remoteAddress: conn.remoteAddress ?? null });
    conn.once('close', () => this.onGone(client));
    this.metrics?.connections.inc();
    this.expiries.add(client, who.notAfter);
    if (who.kind === 'device' && isRestricted(this.trust.deviceState(who.id))) this.readyRestricted.add(client);
    if (who.kind === 'device') {
      const first = !this.connectedSinceStart.has(who.id);
      if (first) this.connectedSinceStart.add(who.id);
      this.emitEvent(who.id, 'connect', { verified: true, remoteAddress: conn.remoteAddress, ...(first ? { firstSinceStart: true } : {}) });
    }
  }

  private sessionEnded(client: Client, what: string, reason: string): void {
    const who = this.identities.get(client);
    const id = who?.id ?? '(not identified)';
    this.refusals?.info(`ended:${what}:${id}`, { id, client: client.id?.slice(0, 64), reason: reason.slice(0, 200) }, `MQTT session closed by the broker: ${what}`);
  }

  private onGone(client: Client): void {
    this.ended.add(client);
    const who = this.identities.get(client);
    if (!who) return;
    this.expiries.delete(client, who.notAfter);
    const bySerial = this.sessionsBySerial.get(who.serial);
    if (bySerial?.delete(client) && bySerial.size === 0) this.sessionsBySerial.delete(who.serial);
    const set = this.sessions.get(who.id);
    if (set?.delete(client)) {
      this.metrics?.connections.dec();
      if (set.size === 0) this.sessions.delete(who.id);
      // The address lets scoring close this session's holding of it (who held which address, for lateral movement).
      const remote = this.sessionFacts.get(client)?.remoteAddress;
      if (who.kind === 'device') this.emitEvent(who.id, 'disconnect', { verified: true, ...(remote ? { remoteAddress: remote } : {}) });
    }
  }

  /** Quarantined and unclaimed devices: their own telemetry (rate limited) and nothing else, whatever the rules. */
  private restrictedPublish(who: Identity, topic: string): { allowed: boolean; reason: string } {
    if (topic !== restrictedTopic(who.id, 'publish')) return { allowed: false, reason: `device "${who.id}" is ${this.trust.deviceState(who.id)}: it may only publish its own telemetry` };
    if (this.telemetryRate.hit(who.id)) {
      const r = this.limits.restrictedTelemetry;
      return { allowed: false, reason: `device "${who.id}" is ${this.trust.deviceState(who.id)}: telemetry limited to ${r.max} per ${r.windowMs} ms` };
    }
    return { allowed: true, reason: '' };
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    if (!client) return done(null); // the broker's own publishes (behaviour events, in-process scoring)
    const gate = (client as Gated)[GATE]; // made in preConnect with the identity it verified
    if (!gate) return done(new Error('no identity'));
    const who = gate.who;
    if (!packet.retain && gate.publishAllowed(packet.topic)) {
      // A device's ordinary publish, allowed by policy: the gate answered from its cache (below: the full check).
      const a = this.countersOf(gate);
      a.messagesIn++;
      a.bytesIn += payloadBytes(packet);
      this.messageCounts.in++;
      return done(null);
    }
    const ns = namespacePublish(who, packet.topic);
    let allowed: boolean;
    let reason: string;
    let cause: DenialCause = ns.applies ? 'namespace' : 'policy';
    const state = who.kind === 'device' ? this.trust.deviceState(who.id) : undefined;
    if (who.kind === 'device' && isRestricted(state)) ({ allowed, reason } = this.restrictedPublish(who, packet.topic)), (cause = 'namespace');
    else if (ns.applies) ({ allowed, reason } = ns);
    else if (who.kind === 'service') (allowed = false), (reason = `services publish only in the wott/ namespace`);
    else {
      const score = this.scoreIn(who.id, state);
      allowed = this.policy.allows(packet.topic, 'publish', who.id, score);
      reason = allowed ? '' : this.policy.decide(packet.topic, 'publish', who.id, score).reason;
    }
    if (allowed && packet.retain && who.kind === 'device') {
      const refused = this.retained.admit(who.id, packet.topic, payloadBytes(packet));
      if (refused instanceof Promise) {
        // The cluster's ledger answers asynchronously; the publish waits for it (Aedes' hook takes a callback).
        void refused.then((r) => this.settlePublish(who, packet, r === undefined, r ?? '', 'limit', done));
        return;
      }
      if (refused) (allowed = false), (reason = refused), (cause = 'limit');
    }
    this.settlePublish(who, packet, allowed, reason, cause, done);
  }

  private settlePublish(who: Identity, packet: PublishPacket, allowed: boolean, reason: string, cause: DenialCause, done: (err?: Error | null) => void): void {
    if (allowed) {
      if (who.kind === 'device') {
        const a = this.activityOf(who.id);
        a.messagesIn++;
        a.bytesIn += payloadBytes(packet);
      }
      this.messageCounts.in++;
      return done(null);
    }
    this.recordDenial(who, 'publish', packet.topic, reason, cause);
    done(new Error(reason));
  }

  private authorizeSubscribe(client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void {
    const who = this.identities.get(client);
    if (!who) return done(new Error('no identity'));
    const ns = namespaceSubscribe(who, sub.topic);
    let allowed: boolean;
    let reason: string;
    let cause: DenialCause = ns.applies ? 'namespace' : 'policy';
    if (who.kind === 'device' && isRestricted(this.trust.deviceState(who.id))) {
      allowed = sub.topic === restrictedTopic(who.id, 'subscribe') || sub.topic === topics.credentials(who.id);
      reason = allowed ? '' : `device "${who.id}" is ${this.trust.deviceState(who.id)}: it may only read its own score`;
      cause = 'namespace';
    } else if (ns.applies) ({ allowed, reason } = ns);
    else if (who.kind === 'service') (allowed = who.role === 'admin'), (reason = 'only the admin role reads topics outside wott/');
    else ({ allowed, reason } = this.policy.decideSubscribe(sub.topic, who.id, this.effectiveScore(who.id)));
    if (allowed) {
      // Counted here, as each filter is granted: Aedes lists a filter in client.subscriptions only once it has been
      // stored, and the filters of one SUBSCRIBE go through that in parallel.
      let held = this.filters.get(client);
      if (!held) this.filters.set(client, (held = new Set()));
      const max = this.limits.maxSubscriptionsPerConnection;
      if (held.has(sub.topic) || held.size < max) {
        held.add(sub.topic);
        return done(null, sub);
      }
      (allowed = false), (reason = `subscription limit: a connection may hold ${max} topic filters`), (cause = 'limit');
    }
    this.recordDenial(who, 'subscribe', sub.topic, reason, cause);
    done(null, null); // SUBACK 0x80 for this filter; the session stays up
  }

  /** Runs on every delivery: the subscriber's current score must still meet the topic's threshold. */
  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const gate = (client as Gated)[GATE]; // made in preConnect with the identity, cleared with it
    if (!gate?.allows(packet.topic)) return null;
    if (gate.who.kind === 'device') {
      const a = this.countersOf(gate);
      a.messagesOut++;
      a.bytesOut += payloadBytes(packet);
    }
    this.messageCounts.out++;
    return packet;
  }

  /**
   * Aedes waits for a socket to drain before it calls a delivery done, and its bus holds at most 100 messages in
   * progress: one subscriber that stops reading stalled every delivery in the broker until Aedes' drainTimeout (60 s)
   * cut it off. Here a delivery is done once it is in the socket's buffer; the buffer is bounded by the deliver0 and
   * deliverQoS wrappers below (deliveries) and by waitForDrain (everything else the broker writes, e.g. PUBACKs to a
   * publisher that does not read), and a connection that takes nothing for drainTimeoutMs is closed, as Aedes would.
   */
  private neverWaitForDrain(client: Client, who: Identity): void {
    const conn = client.conn as TLSSocket;
    const limit = this.limits.maxBufferedBytesPerConnection;
    const hardLimit = limit + this.limits.maxPacketBytes;
    // QoS 0 deliveries (Aedes' deliver0 serves QoS 0 subscriptions, and QoS 0 messages to any) may be lost (MQTT
    // 3.1.1 §4.3.1): past the limit they are dropped. Wrapped here, before any subscription binds it.
    type Deliver = (packet: AedesPublishPacket, done: () => void) => void;
    const withDeliver = client as unknown as { deliver0: Deliver };
    const deliver0 = withDeliver.deliver0;
    withDeliver.deliver0 = (packet, done) => {
      if (conn.writableLength < limit) return deliver0(packet, done);
      this.metrics?.slowConsumers.inc({ action: 'drop' });
      setImmediate(done);
    };
    // A QoS 1 delivery past the limit goes on (a persistent session has it stored already, and gets it again on
    // reconnect) and the connection closes before it is written.
    const withQoS = client as unknown as { deliverQoS: Deliver };
    const deliverQoS = withQoS.deliverQoS;
    withQoS.deliverQoS = (packet, done) => {
      if (packet.brokerId === null && packet.retain) {
        // The retained messages a SUBSCRIBE is answered with (Aedes' sendRetained marks them so: no broker id),
        // one after the other through this callback, on no one else's path: they wait for the socket, at half the
        // limit, rather than be dropped or close the subscriber (10,000 retained scores are ~3 MB).
        if (conn.writableLength < limit / 2) return deliverQoS(packet, done);
        void below(conn, limit / 2).then(() => deliverQoS(packet, done));
        return;
      }
      if (packet.qos > 0 && conn.writableLength >= limit) setImmediate(() => this.closeSlow(client, who, 'its unread bytes reached broker.limits.maxBufferedBytesPerConnection'));
      deliverQoS(packet, done);
    };
    let timer: NodeJS.Timeout | undefined;
    const drained = () => {
      clearTimeout(timer);
      timer = undefined;
    };
    // Node says 'drain' only once the buffer is empty: a subscriber reading steadily near its link's speed may never
    // empty it. Closed only if it took nothing at all during drainTimeout.
    const sent = () => conn.bytesWritten - conn.writableLength;
    const arm = (progress: number) => {
      timer = setTimeout(() => {
        if (sent() > progress) return arm(sent());
        this.closeSlow(client, who, 'its socket took nothing within broker.limits.drainTimeout');
      }, this.limits.drainTimeoutMs);
      timer.unref();
    };
    (client as unknown as { waitForDrain(done: (err: Error | null, client: Client) => void): void }).waitForDrain = (done) => {
      if (conn.writableLength > hardLimit) this.closeSlow(client, who, 'its unread bytes passed broker.limits.maxBufferedBytesPerConnection + maxPacketSize');
      else if (!timer) {
        conn.once('drain', drained);
        arm(sent());
      }
      setImmediate(done, null, client);
    };
  }

  private closeSlow(client: Client, who: Identity, reason: string): void {
    const conn = client.conn as TLSSocket;
    if (conn.destroyed) return;
    this.metrics?.slowConsumers.inc({ action: 'close' });
    this.refusals?.warn(`slow:${who.id}`, { id: who.id, clientId: client.id, buffered: conn.writableLength, reason }, 'MQTT connection closed: slow consumer');
    conn.destroy();
  }

  /** The device's counters of this flush interval, through its gate: one map lookup per interval, not per message. */
  private countersOf(gate: DeliveryGate<Activity>): Activity {
    if (gate.countersEpoch !== this.activityEpoch) (gate.counters = this.activityOf(gate.who.id)), (gate.countersEpoch = this.activityEpoch);
    return gate.counters!;
  }

  /** A delivery check with the connection's cache, for `who` (the decision benchmark; tests). */
  deliveryGate(who: Identity): DeliveryGate {
    return new DeliveryGate(who, this.gateSource);
  }

  /** Metrics, per-device counters, a behaviour event and a log line (throttled per device) for one denied operation. */
  private recordDenial(who: Identity, action: Action, topic: string, reason: string, cause: DenialCause): void {
    this.metrics?.denials.inc({ action, reason: cause });
    if (who.kind === 'device') {
      const a = this.activityOf(who.id);
      if (action === 'publish') a.publishDenied++;
      else a.subscribeDenied++;
      this.denialEvent(who.id, action === 'publish' ? 'publish_denied' : 'subscribe_denied', topic, reason);
    }
    // So that an operator sees why in the gateway's output, not only in metrics; a flood becomes a summary line.
    const score = who.kind === 'device' ? this.effectiveScore(who.id) : undefined;
    this.refusals?.info(`denied:${action}:${who.id}`, { id: who.id, topic: topic.slice(0, 200), reason, ...(score !== undefined ? { score } : {}) }, `${action} denied`);
  }

  // ------------------------------------------------------------------ live enforcement

  /**
   * After a CA change: close sessions of revoked or superseded certificates and revoked devices. Quarantine needs no
   * kick: its restrictions apply to the live session at once. A release closes only sessions opened while the device
   * was restricted (their stored subscriptions were refused at the restore; the reconnect brings them back).
   *
   * With `changed` (what the trust source says changed: devices whose state moved, certificates revoked or
   * superseded) only those sessions are checked; without it, every session. A renewal storm is one change per
   * renewal, and a pass over 10,000 sessions for each was most of the gateway's CPU in the 10,000-device soak.
   */
  enforceTrust(changed?: { devices: readonly string[]; serials: readonly string[] }): void {
    if (!changed) {
      for (const clients of this.sessions.values()) for (const client of clients) this.enforceOn(client);
      return;
    }
    const targets = new Set<Client>();
    for (const id of changed.devices) for (const client of this.sessions.get(id) ?? []) targets.add(client);
    for (const serial of changed.serials) for (const client of this.sessionsBySerial.get(serial) ?? []) targets.add(client);
    for (const client of targets) this.enforceOn(client);
  }

  private enforceOn(client: Client): void {
    const who = this.identities.get(client)!;
    const id = who.id;
    const revoked = this.trust.isRevoked(who.serial) || (who.kind === 'device' && this.trust.deviceState(id) === 'revoked');
    if (revoked || this.trust.isSuperseded(who.serial)) {
      this.options.log?.info({ id, serial: who.serial }, `certificate ${revoked ? 'revoked' : 'superseded'}: closing session`);
      client.close();
      // Aedes ends the socket only after its persistence has dropped the session's subscriptions: in a cluster
      // with Redis down that waits for Redis. The device is cut off now; the bookkeeping follows.
      (client.conn as Socket).destroy();
    } else if (this.readyRestricted.has(client) && !isRestricted(this.trust.deviceState(id))) {
      this.readyRestricted.delete(client);
      this.options.log?.info({ id }, 'device released: closing the session it opened while restricted, so that its reconnect restores its stored subscriptions');
      client.close();
    }
  }

  /**
   * Replaces the topic policies (a reload). Throws, changing nothing, when a rule is invalid. Deliveries are checked
   * per message (authorizeForward), so live subscriptions follow the new rules from the next message on.
   */
  setPolicies(rules: PolicyRule[]): void {
    this.gateSource.policy = new PolicyEngine(rules);
    this.gateSource.generation++;
  }

  /** The live sessions of a device or service id: client id, connected since (ms), remote address. */
  sessionsOf(id: string): Array<{ clientId: string; since: number; remoteAddress: string | null }> {
    const out: Array<{ clientId: string; since: number; remoteAddress: string | null }> = [];
    for (const client of this.sessions.get(id) ?? []) {
      const facts = this.sessionFacts.get(client);
      if (facts) out.push({ clientId: client.id, ...facts });
    }
    return out;
  }

  /** Every live device session's remote address (scoring seeds its address map with them when it starts). */
  deviceSessions(): Array<{ device: string; remoteAddress: string | null; since: number }> {
    const out: Array<{ device: string; remoteAddress: string | null; since: number }> = [];
    for (const [id, clients] of this.sessions) {
      for (const client of clients) {
        if (this.identities.get(client)?.kind !== 'device') continue;
        const facts = this.sessionFacts.get(client);
        if (facts) out.push({ device: id, ...facts });
      }
    }
    return out;
  }

  /** Connected client count for a device or service id. */
  sessionCount(id: string): number {
    return this.sessions.get(id)?.size ?? 0;
  }

  // ------------------------------------------------------------------ behaviour events

  private activityOf(device: string): Activity {
    let a = this.activity.get(device);
    if (!a) this.activity.set(device, (a = newActivity()));
    return a;
  }

  private denialEvent(device: string, type: BehaviourEventType, topic: string, reason: string): void {
    const a = this.activityOf(device);
    if (a.denialEvents >= (this.options.maxDenialEventsPerInterval ?? 10)) {
      a.suppressedEvents++;
      return;
    }
    a.denialEvents++;
    this.emitEvent(device, type, { topic: topic.slice(0, 1024), reason: reason.slice(0, 300), verified: true });
  }

  private emitEvent(device: string, type: BehaviourEventType, extra: Partial<BehaviourEvent> & { verified: boolean }): void {
    if (!this.broker || this.broker.closed) return;
    const event: BehaviourEvent = { device, type, time: new Date().toISOString(), ...extra, ...(this.options.nodeId ? { node: this.options.nodeId } : {}) };
    this.broker.publish({ cmd: 'publish', topic: topics.events(device), payload: Buffer.from(JSON.stringify(event)), qos: 0, retain: false, dup: false }, () => {});
  }

  /** Publishes and resets the per-device counters for the interval. */
  flushCounters(): void {
    const intervalMs = this.options.eventIntervalMs ?? 10_000;
    for (const [device, a] of this.activity) {
      const { denialEvents: _d, ...counters } = a;
      this.emitEvent(device, 'counters', { verified: true, counters: { intervalMs, ...counters } });
    }
    this.activity.clear();
    this.activityEpoch++;
  }

  close(): void {
    clearInterval(this.eventTimer);
    this.expiries.close();
    this.retained.close?.();
    this.refusals?.close();
    this.trust.close();
  }
}
