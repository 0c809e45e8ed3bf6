/**
 * The wott Aedes plugin: mTLS identity, Trust Score topic policies, live enforcement and behaviour events.
 * Mount it on any Aedes 1.x instance with `plugin.attach(broker)` and let it vet TLS sockets with `acceptTls`.
 *
 * Every hook decides from memory only (policy trie, score cache, trust snapshot); the only I/O is the broker's own
 * publishing of behaviour events, which happens after the decision.
 */
import type { Aedes, Client, AedesPublishPacket, PublishPacket, Subscription } from 'aedes';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
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
} from '../protocol/index.js';
import { identityFromCertificate, type Identity } from './identity.js';
import { namespaceForward, namespacePublish, namespaceSubscribe } from './namespace.js';
import { PolicyEngine, type Action, type Decision, type PolicyRule } from './policy.js';
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
  /** Individual denial events per device per interval before they are only counted. */
  maxDenialEventsPerInterval?: number;
  log?: PluginLogger;
  metrics?: Registry;
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
const CEILING_ZERO: ReadonlySet<DeviceState | undefined> = new Set(['unclaimed', 'quarantined', 'revoked']);
const MAX_TIMER_MS = 2_147_483_647;
/** Aedes' AuthErrorCode is a const enum (unusable under isolatedModules): 2 = identifier rejected, 5 = not authorized. */
const IDENTIFIER_REJECTED = 2;
const NOT_AUTHORIZED = 5;

function payloadBytes(packet: { payload?: Buffer | string }): number {
  const p = packet.payload;
  return p === undefined ? 0 : typeof p === 'string' ? Buffer.byteLength(p) : p.length;
}

export class WottPlugin {
  readonly policy: PolicyEngine;
  readonly trust: TrustSource;
  private readonly scores = new Map<string, number>();
  private readonly identities = new WeakMap<Client, Identity>();
  /** Clients that sent an empty client id: Aedes generates a random one, which cannot collide with anyone's. */
  private readonly generatedIds = new WeakSet<Client>();
  private readonly sessions = new Map<string, Set<Client>>();
  private readonly expiryTimers = new WeakMap<Client, NodeJS.Timeout>();
  private readonly activity = new Map<string, Activity>();
  private readonly initialScore: number;
  private readonly eventTimer: NodeJS.Timeout;
  private broker?: Aedes;
  private readonly metrics?: {
    connections: Gauge;
    handshakeFailures: Counter;
    denials: Counter;
    scoreCache: Gauge;
  };
  /** Per-message counts are plain numbers, read by the metrics collector at scrape time: prom-client's labelled
   * inc() on every delivery cost several percent of broker throughput. */
  private readonly messageCounts = { in: 0, out: 0 };

  constructor(private readonly options: WottPluginOptions) {
    this.policy = new PolicyEngine(options.policies);
    this.trust = options.trust ?? staticTrustSource();
    this.initialScore = options.initialScore ?? 0.5;
    this.trust.onChange(() => this.enforceTrust());
    this.eventTimer = setInterval(() => this.flushCounters(), options.eventIntervalMs ?? 10_000);
    this.eventTimer.unref();
    if (options.metrics) {
      const registers = [options.metrics];
      this.metrics = {
        connections: new Gauge({ name: 'wott_mqtt_connections', help: 'Connected MQTT sessions', registers }),
        handshakeFailures: new Counter({ name: 'wott_mqtt_handshake_failures_total', help: 'Refused TLS/identity checks', labelNames: ['reason'], registers }),
        denials: new Counter({ name: 'wott_mqtt_denials_total', help: 'Denied operations', labelNames: ['action', 'reason'], registers }),
        scoreCache: new Gauge({ name: 'wott_score_cache_size', help: 'Devices with a cached Trust Score', registers, collect: () => undefined }),
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

  /** The score decisions use: the cached score, capped at 0 for unclaimed, quarantined and revoked devices. */
  effectiveScore(device: string): number {
    const state = this.trust.deviceState(device);
    if (CEILING_ZERO.has(state)) return 0;
    return this.scores.get(device) ?? this.initialScore;
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

  identityOf(client: Client): Identity | undefined {
    return this.identities.get(client);
  }

  /** Decision for a concrete topic, with the reason (used by `wott policy explain` and the hooks alike). */
  explain(device: string, topic: string, action: Action): Decision & { state?: DeviceState } {
    const who: Identity = { kind: 'device', id: device, serial: '', notAfter: Infinity };
    const ns = action === 'publish' ? namespacePublish(who, topic) : namespaceSubscribe(who, topic);
    const score = this.effectiveScore(device);
    const state = this.trust.deviceState(device);
    if (ns.applies) return { allowed: ns.allowed, score, reason: ns.reason, state };
    const decision = action === 'publish' ? this.policy.decide(topic, action, device, score) : this.policy.decideSubscribe(topic, device, score);
    return { ...decision, state };
  }

  /**
   * Vets a TLS socket before MQTT starts: the certificate must chain to the CA (checked by TLS), name a device or
   * service, and not be revoked. Returns false (and destroys the socket) otherwise.
   */
  acceptTls(socket: TLSSocket): boolean {
    const verdict = this.checkSocket(socket);
    if ('error' in verdict) {
      this.metrics?.handshakeFailures.inc({ reason: verdict.metric });
      const cn = verdict.cn;
      if (cn && isDeviceId(cn)) this.emitEvent(cn, 'auth_failure', { reason: verdict.error, verified: verdict.verified, remoteAddress: socket.remoteAddress });
      this.options.log?.info({ cn, reason: verdict.error, remote: socket.remoteAddress }, 'TLS client refused');
      socket.destroy();
      return false;
    }
    return true;
  }

  private checkSocket(socket: TLSSocket): Identity | { error: string; metric: string; cn?: string; verified: boolean } {
    const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    const cn = cert && !Array.isArray(cert.subject?.CN) ? cert.subject?.CN : undefined;
    if (!cert || !cert.raw) return { error: 'no client certificate', metric: 'no_certificate', verified: false };
    if (!socket.authorized) return { error: `certificate not trusted: ${String(socket.authorizationError)}`, metric: 'untrusted', cn, verified: false };
    const identity = identityFromCertificate(cert);
    if ('error' in identity) return { error: identity.error, metric: 'bad_identity', cn, verified: false };
    if (this.trust.isRevoked(identity.serial)) return { error: 'certificate revoked', metric: 'revoked', cn, verified: true };
    if (identity.kind === 'device' && this.trust.deviceState(identity.id) === 'revoked') return { error: 'device revoked', metric: 'revoked', cn, verified: true };
    if (identity.notAfter <= Date.now()) return { error: 'certificate expired', metric: 'expired', cn, verified: true };
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
      if (!packet.clientId) this.generatedIds.add(client);
      done(null, true);
    };
    broker.authenticate = (client, _username, _password, done) => {
      // Identity comes from the certificate (preConnect); user names and passwords are ignored.
      const who = this.identities.get(client);
      if (!who) return done(Object.assign(new Error('no verified client certificate'), { returnCode: NOT_AUTHORIZED }), false);
      // A client id is the identity, or the identity plus ':suffix' (or broker-generated): nobody can take over
      // another device's session by reusing its client id.
      const id = client.id;
      if (id && id !== who.id && !id.startsWith(`${who.id}:`) && !this.generatedIds.has(client)) {
        this.metrics?.handshakeFailures.inc({ reason: 'client_id' });
        this.identities.delete(client);
        return done(Object.assign(new Error(`client id must be "${who.id}" or start with "${who.id}:"`), { returnCode: IDENTIFIER_REJECTED }), false);
      }
      done(null, true);
    };
    broker.authorizePublish = (client, packet, done) => this.authorizePublish(client, packet, done);
    broker.authorizeSubscribe = (client, sub, done) => this.authorizeSubscribe(client, sub, done);
    broker.authorizeForward = (client, packet) => this.authorizeForward(client, packet);
    broker.on('clientReady', (client) => this.onReady(client));
    broker.on('clientDisconnect', (client) => this.onGone(client));
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
  }

  private onScoreMessage(packet: AedesPublishPacket): void {
    const parsed = parseTopic(packet.topic);
    if (parsed?.kind !== 'scores') return;
    try {
      const message = parseMessage(scoreMessageSchema, packet.payload as Buffer);
      if (message.device !== parsed.device) throw new Error(`message is about "${message.device}", topic about "${parsed.device}"`);
      this.setScore(parsed.device, message.score);
    } catch (err) {
      this.options.log?.warn({ topic: packet.topic, err: (err as Error).message }, 'ignored malformed score message');
    }
  }

  private onReady(client: Client): void {
    const who = this.identities.get(client);
    if (!who) return void client.close();
    let set = this.sessions.get(who.id);
    if (!set) this.sessions.set(who.id, (set = new Set()));
    set.add(client);
    this.metrics?.connections.inc();
    this.armExpiry(client, who.notAfter);
    if (who.kind === 'device') this.emitEvent(who.id, 'connect', { verified: true, remoteAddress: (client.conn as TLSSocket).remoteAddress });
  }

  /** Closes the session when its certificate expires (re-arming for lifetimes beyond a timer's range). */
  private armExpiry(client: Client, notAfter: number): void {
    const wait = notAfter - Date.now();
    const timer = setTimeout(() => {
      if (notAfter - Date.now() > 0) return this.armExpiry(client, notAfter);
      this.options.log?.info({ client: client.id }, 'certificate expired: closing session');
      client.close();
    }, Math.max(0, Math.min(wait, MAX_TIMER_MS)));
    timer.unref();
    this.expiryTimers.set(client, timer);
  }

  private onGone(client: Client): void {
    const who = this.identities.get(client);
    clearTimeout(this.expiryTimers.get(client));
    if (!who) return;
    const set = this.sessions.get(who.id);
    if (set?.delete(client)) {
      this.metrics?.connections.dec();
      if (set.size === 0) this.sessions.delete(who.id);
      if (who.kind === 'device') this.emitEvent(who.id, 'disconnect', { verified: true });
    }
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    if (!client) return done(null); // the broker's own publishes (behaviour events, in-process scoring)
    const who = this.identities.get(client);
    if (!who) return done(new Error('no identity'));
    const ns = namespacePublish(who, packet.topic);
    let allowed: boolean;
    let reason: string;
    if (ns.applies) ({ allowed, reason } = ns);
    else if (who.kind === 'service') (allowed = false), (reason = `services publish only in the wott/ namespace`);
    else {
      const score = this.effectiveScore(who.id);
      allowed = this.policy.allows(packet.topic, 'publish', who.id, score);
      reason = allowed ? '' : this.policy.decide(packet.topic, 'publish', who.id, score).reason;
    }
    if (allowed) {
      if (who.kind === 'device') {
        const a = this.activityOf(who.id);
        a.messagesIn++;
        a.bytesIn += payloadBytes(packet);
      }
      this.messageCounts.in++;
      return done(null);
    }
    this.recordDenial(who, 'publish', packet.topic, reason, ns.applies);
    done(new Error(reason));
  }

  private authorizeSubscribe(client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void {
    const who = this.identities.get(client);
    if (!who) return done(new Error('no identity'));
    const ns = namespaceSubscribe(who, sub.topic);
    let allowed: boolean;
    let reason: string;
    if (ns.applies) ({ allowed, reason } = ns);
    else if (who.kind === 'service') (allowed = who.role === 'admin'), (reason = 'only the admin role reads topics outside wott/');
    else ({ allowed, reason } = this.policy.decideSubscribe(sub.topic, who.id, this.effectiveScore(who.id)));
    if (allowed) return done(null, sub);
    this.recordDenial(who, 'subscribe', sub.topic, reason, ns.applies);
    done(null, null); // SUBACK 0x80 for this filter; the session stays up
  }

  /** Runs on every delivery: the subscriber's current score must still meet the topic's threshold. */
  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const who = this.identities.get(client);
    if (!who) return null;
    const ns = namespaceForward(who, packet.topic);
    let allowed: boolean;
    if (ns.applies) allowed = ns.allowed;
    else if (who.kind === 'service') allowed = who.role === 'admin';
    else allowed = this.policy.allows(packet.topic, 'subscribe', who.id, this.effectiveScore(who.id));
    if (!allowed) return null;
    if (who.kind === 'device') {
      const a = this.activityOf(who.id);
      a.messagesOut++;
      a.bytesOut += payloadBytes(packet);
    }
    this.messageCounts.out++;
    return packet;
  }

  /** Metrics, per-device counters, a behaviour event and a debug line for one denied operation. */
  private recordDenial(who: Identity, action: Action, topic: string, reason: string, byNamespace: boolean): void {
    this.metrics?.denials.inc({ action, reason: byNamespace ? 'namespace' : 'policy' });
    if (who.kind === 'device') {
      const a = this.activityOf(who.id);
      if (action === 'publish') a.publishDenied++;
      else a.subscribeDenied++;
      this.denialEvent(who.id, action === 'publish' ? 'publish_denied' : 'subscribe_denied', topic, reason);
    }
    this.options.log?.debug({ id: who.id, topic, reason }, `${action} denied`);
  }

  // ------------------------------------------------------------------ live enforcement

  /** After a CA change: close sessions of revoked certificates or devices. Quarantine needs no kick: its score is 0. */
  enforceTrust(): void {
    for (const [id, clients] of this.sessions) {
      for (const client of clients) {
        const who = this.identities.get(client)!;
        if (this.trust.isRevoked(who.serial) || (who.kind === 'device' && this.trust.deviceState(id) === 'revoked')) {
          this.options.log?.info({ id, serial: who.serial }, 'certificate revoked: closing session');
          client.close();
        }
      }
    }
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
    const event: BehaviourEvent = { device, type, time: new Date().toISOString(), ...extra };
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
  }

  close(): void {
    clearInterval(this.eventTimer);
    this.trust.close();
  }
}
