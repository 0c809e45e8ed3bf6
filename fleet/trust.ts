/**
 * Trust for services, answered from memory: the latest score message per device (fed in-process by the broker
 * plugin, which already parsed it for its own cache), the effective score the broker enforces, and the FleetView's
 * states and certificate facts. It also turns the inventory's change feed into trust events (device state and
 * current certificate, revocations), live and replayed from a feed position, for the API's SSE stream.
 *
 * Memory: one score message per device the FleetView knows; messages for devices the view has not seen yet (it
 * follows the feed a moment later) wait in a small bounded map until it has.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import type { Action } from '../policy/index.js';
import { enforcedScoreMessage } from '../policy/index.js';
import {
  identityFromNames,
  normalizeSerial,
  type DeviceState,
  type DeviceTrust,
  type ScoreMessage,
  type TrustCertificate,
  type TrustCheckResult,
  type TrustDeviceEvent,
  type TrustRevokedEvent,
  type TrustScoreEvent,
} from '../protocol/index.js';
import type { InventoryStore } from '../store/index.js';
import type { DeviceFacts, FleetView } from './view.js';

/** What the trust cache needs of the broker: its score cache and decisions (the wott plugin is one). */
export interface ScoreSource {
  effectiveScore(device: string): number;
  deviceState(device: string): DeviceState | undefined;
  onScore(listener: (message: ScoreMessage) => void): () => void;
  explain(device: string, topic: string, action: Action): { allowed: boolean; reason: string };
}

/** Trust events in the order they happened; `feed` groups carry the feed position they bring the reader to. */
export type TrustEvent =
  | { kind: 'score'; seq: number; data: TrustScoreEvent }
  | { kind: 'feed'; position: number; events: FeedEvent[] };
export type FeedEvent = { name: 'device'; data: TrustDeviceEvent } | { name: 'revoked'; data: TrustRevokedEvent };

export interface TrustCacheOptions {
  /** Score changes remembered for resuming streams (older ones: the resuming client gets every current score). */
  scoreRing?: number;
  /** Score messages held for devices the view does not know yet. */
  maxPending?: number;
  now?: () => number;
}

export const DEFAULT_SCORE_RING = 10_000;

const certificateOf = (d: DeviceFacts | undefined): TrustCertificate | null =>
  d?.certificate ? { serial: d.certificate.serial, fingerprint: d.certificate.fingerprint, notAfter: new Date(d.certificate.notAfter).toISOString() } : null;

function firstPem(text: string): string | undefined {
  return /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]{1,16000}?-----END CERTIFICATE-----/.exec(text)?.[0];
}

export class TrustCache {
  private readonly messages = new Map<string, ScoreMessage>();
  private readonly pending = new Map<string, ScoreMessage>();
  /** Score changes: ring[i % size] = device of change seq i. */
  private readonly ring: string[];
  private scoreSeqValue = 0;
  /** Tells streams resuming with an id from another gateway process that its score seqs mean nothing here. */
  readonly boot = randomBytes(6).toString('base64url');
  private readonly listeners = new Set<(event: TrustEvent) => void>();
  private source?: ScoreSource;
  private readonly stops: Array<() => void> = [];
  private readonly now: () => number;
  private readonly maxPending: number;

  constructor(
    private readonly view: FleetView,
    private readonly store: InventoryStore,
    /** The CA certificates device certificates are issued by (the issuing intermediate first). */
    private readonly issuers: X509Certificate[],
    options: TrustCacheOptions = {},
  ) {
    this.ring = new Array<string>(options.scoreRing ?? DEFAULT_SCORE_RING);
    this.now = options.now ?? Date.now;
    this.maxPending = options.maxPending ?? 1024;
    this.stops.push(view.onChange((change) => this.onViewChange(change.devices, change.updated, change.revoked)));
  }

  /** Starts taking score messages from the broker (the plugin exists after the API in the gateway). */
  attach(source: ScoreSource): void {
    this.source = source;
    this.stops.push(source.onScore((message) => this.onScore(message)));
  }

  get scoreSeq(): number {
    return this.scoreSeqValue;
  }

  /** The feed position the live events have reached. */
  get position(): number {
    return this.view.position;
  }

  onEvent(listener: (event: TrustEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: TrustEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private effective(device: string): number {
    return this.source?.effectiveScore(device) ?? 0;
  }

  private onScore(message: ScoreMessage): void {
    if (!this.view.device(message.device)) {
      // Bounded: the oldest waiting message goes first.
      if (this.pending.size >= this.maxPending && !this.pending.has(message.device)) this.pending.delete(this.pending.keys().next().value!);
      this.pending.set(message.device, message);
      return;
    }
    this.take(message);
  }

  private take(message: ScoreMessage): void {
    this.messages.set(message.device, message);
    const seq = ++this.scoreSeqValue;
    this.ring[seq % this.ring.length] = message.device;
    if (this.listeners.size) this.emit({ kind: 'score', seq, data: this.scoreEvent(message) });
  }

  private scoreEvent(message: ScoreMessage): TrustScoreEvent {
    return {
      device: message.device,
      score: this.effective(message.device),
      rawScore: message.score,
      state: this.view.deviceState(message.device) ?? null,
      modelVersion: message.modelVersion,
      scoredAt: message.time,
    };
  }

  private deviceEvent(id: string): TrustDeviceEvent {
    const d = this.view.device(id);
    return { device: id, state: d?.state ?? null, score: this.effective(id), certificate: certificateOf(d) };
  }

  private onViewChange(devices: string[], updated: string[], revoked: Array<{ serial: string; deviceId: string | null }>): void {
    for (const id of [...devices, ...updated]) {
      const waiting = this.pending.get(id);
      if (waiting && this.view.device(id)) {
        this.pending.delete(id);
        this.take(waiting);
      }
    }
    if (!this.listeners.size) return;
    const events: FeedEvent[] = [...new Set([...devices, ...updated])].map((id) => ({ name: 'device', data: this.deviceEvent(id) }));
    for (const r of revoked) events.push({ name: 'revoked', data: { serial: r.serial, device: r.deviceId } });
    if (events.length) this.emit({ kind: 'feed', position: this.view.position, events });
  }

  // ------------------------------------------------------------------ answers

  /** GET /trust/{device}: undefined when the inventory has no such device. */
  device(id: string): DeviceTrust | undefined {
    const d = this.view.device(id);
    if (!d) return undefined;
    const message = this.messages.get(id);
    // The factors as the broker enforces them: a state ceiling shows as a factor of its own.
    const enforced = message ? enforcedScoreMessage(message, d.state) : undefined;
    return {
      device: id,
      score: this.effective(id),
      rawScore: message?.score ?? null,
      state: d.state,
      factors: enforced?.factors ?? [],
      modelVersion: message?.modelVersion ?? null,
      scoredAt: message?.time ?? null,
      certificate: certificateOf(d),
      time: new Date(this.now()).toISOString(),
    };
  }

  /**
   * POST /trust/check: is `pem` a device certificate we issued, valid now, unrevoked, the device's current one, and
   * does the device pass `requirement` right now. Never throws on hostile input: every failure is a verdict.
   */
  check(pem: string, requirement: { minScore: number } | { topic: string; action: Action }): TrustCheckResult {
    const time = new Date(this.now()).toISOString();
    const answer = (verdict: TrustCheckResult['verdict'], reason: string, extra: Partial<TrustCheckResult> = {}): TrustCheckResult => ({
      trusted: verdict === 'trusted',
      verdict,
      reason,
      device: null,
      score: null,
      state: null,
      serial: null,
      fingerprint: null,
      time,
      ...extra,
    });
    const block = firstPem(pem);
    if (!block) return answer('malformed', 'no PEM certificate (-----BEGIN CERTIFICATE-----) in the body');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      return answer('malformed', `not a readable X.509 certificate: ${(err as Error).message.slice(0, 120)}`);
    }
    const serial = normalizeSerial(cert.serialNumber);
    const fingerprint = X509CertificateFingerprint(cert);
    const facts = { serial, fingerprint };
    const issuer = this.issuers.find((ca) => safe(() => cert.checkIssued(ca) && cert.verify(ca.publicKey)));
    if (!issuer) return answer('not-ours', 'not issued by this CA (its signature does not verify against our issuing CA)', facts);
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
    const uris = (cert.subjectAltName ?? '').split(/,\s*/).filter((e) => e.startsWith('URI:')).map((e) => e.slice(4));
    const who = identityFromNames(cn, uris);
    if ('error' in who || who.kind !== 'device') return answer('not-a-device', `not a device certificate: ${'error' in who ? who.error : `it names the service ${who.id}`}`, facts);
    const device = who.id;
    const now = this.now();
    const base = { ...facts, device };
    if (Date.parse(cert.validFrom) > now) return answer('not-yet-valid', `certificate not valid before ${new Date(cert.validFrom).toISOString()}`, base);
    if (Date.parse(cert.validTo) <= now) return answer('expired', `certificate expired at ${new Date(cert.validTo).toISOString()}`, base);
    const d = this.view.device(device);
    if (!d) return answer('unknown-device', `no device "${device}" in the inventory`, base);
    const live = { ...base, state: d.state, score: this.effective(device) };
    if (this.view.isRevoked(serial)) return answer('revoked', 'certificate revoked', live);
    if (d.state === 'revoked') return answer('revoked', 'device revoked', live);
    if (this.view.isSuperseded(serial)) return answer('superseded', 'certificate superseded by a newer one (the device renewed)', live);
    if (d.certificate?.fingerprint !== fingerprint) return answer('not-current', "not the device's current certificate", live);
    if (d.state !== 'active') return answer('state', `device is ${d.state}`, live);
    if ('minScore' in requirement) {
      if (live.score < requirement.minScore) return answer('score', `score ${live.score.toFixed(2)} is below ${requirement.minScore}`, live);
      return answer('trusted', `score ${live.score.toFixed(2)} meets ${requirement.minScore}`, live);
    }
    const decision = this.source?.explain(device, requirement.topic, requirement.action) ?? { allowed: false, reason: 'no broker attached' };
    if (!decision.allowed) return answer('policy', decision.reason || `${requirement.action} on ${requirement.topic} denied`, live);
    return answer('trusted', decision.reason || `may ${requirement.action} on ${requirement.topic}`, live);
  }

  // ------------------------------------------------------------------ resuming streams

  /**
   * The current score of every device whose score changed after `scoreSeq` (of this process, `boot`); every
   * current score when that is not known here any more (another process, or older than the ring).
   */
  scoresSince(boot: string | undefined, scoreSeq: number): TrustScoreEvent[] {
    const oldest = this.scoreSeqValue - this.ring.length;
    let devices: Iterable<string>;
    if (boot === this.boot && scoreSeq >= oldest && scoreSeq <= this.scoreSeqValue) {
      const set = new Set<string>();
      for (let s = scoreSeq + 1; s <= this.scoreSeqValue; s++) set.add(this.ring[s % this.ring.length]!);
      devices = set;
    } else devices = this.messages.keys();
    const out: TrustScoreEvent[] = [];
    for (const id of devices) {
      const message = this.messages.get(id);
      if (message) out.push(this.scoreEvent(message));
    }
    return out;
  }

  /**
   * Trust events for the feed changes in (from, to], read from the store (a resuming stream): the current facts
   * of each device that changed, and each revocation. 'reset' when the feed no longer holds them.
   */
  async replay(from: number, to: number): Promise<FeedEvent[] | 'reset'> {
    const devices = new Set<string>();
    const serials = new Set<string>();
    let at = from;
    while (at < to) {
      const batch = await this.store.feed.after(at, 1000);
      if (batch === 'reload') return 'reset';
      if (batch.length === 0) break;
      for (const c of batch) {
        if (c.seq > to) break;
        if (c.kind === 'device') devices.add(c.key);
        else if (c.kind === 'certificate' || c.kind === 'revocation') serials.add(c.key);
        at = c.seq;
      }
      if (batch[batch.length - 1]!.seq > to) break;
    }
    const revoked: FeedEvent[] = [];
    for (const c of await this.store.certificateSummaries([...serials])) {
      if (c.kind === 'device' && c.deviceId) devices.add(c.deviceId);
      if (c.status === 'revoked') revoked.push({ name: 'revoked', data: { serial: c.serial, device: c.deviceId } });
    }
    return [...[...devices].map((id): FeedEvent => ({ name: 'device', data: this.deviceEvent(id) })), ...revoked];
  }

  close(): void {
    this.stops.splice(0).forEach((stop) => stop());
    this.listeners.clear();
  }
}

function safe(fn: () => boolean): boolean {
  try {
    return fn();
  } catch {
    return false;
  }
}

/** SHA-256 of the DER, lower-case hex: how the inventory stores fingerprints. */
function X509CertificateFingerprint(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, '').toLowerCase();
}
