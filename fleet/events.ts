/**
 * FleetEvents: what happened to the fleet, as one line each, for people watching (the dashboard's live feed, the
 * API's /events/stream). It derives events from what the gateway already follows, never from a store of its own:
 *  - the FleetView's changes: a device that appears (enrolled), a new current certificate (renewed or re-enrolled),
 *    state changes (claimed, quarantined, released, revoked — rejected from the claim queue, or never claimed in
 *    time, included), revoked certificates. Devices never leave the inventory (nothing deletes one: a revoked
 *    device keeps its id so that nobody re-enrolls it without credentials), so there is no "removed" event;
 *  - effective scores (the trust cache's score events): a drop below a policy threshold in use, or by `dropDelta`
 *    or more, of a device that is active (a quarantine's ceiling is its own event);
 *  - the broker's behaviour events: authentication failures of certificates we issued (a certificate we did not
 *    issue names no device of ours: anyone can put a CN in one); EST's refused token enrollments naming a device
 *    of ours; at most one per device per `authFailureQuietMs`, the others counted into the next;
 *  - scoring's lateral-movement notices (telemetry naming a source address another device held): one event on the
 *    attacker and one on each device it tried, at most once per attacker per `authFailureQuietMs` unless a new
 *    device reports it.
 * The newest `ring` events are kept in memory for streams that resume or ask for a backlog; memory per device is
 * its state, current serial and last score.
 */
import { randomBytes } from 'node:crypto';
import type { BehaviourEvent, DeviceState, FleetEvent, FleetEventType } from '../protocol/index.js';
import type { FleetChange, FleetView } from './view.js';

export interface FleetEventsOptions {
  /** Events kept for resuming streams and backlogs. */
  ring?: number;
  /** A score drop this large is an event even when it crosses no threshold. */
  dropDelta?: number;
  /** The score thresholds of the policy rules in use (a drop below one is an event). */
  thresholds?: () => readonly number[];
  /** Authentication failures of one device closer together than this are counted into the next event (default 10 s). */
  authFailureQuietMs?: number;
  now?: () => number;
}

export const DEFAULT_EVENT_RING = 1000;

const score2 = (n: number) => n.toFixed(2);

export class FleetEvents {
  private readonly known = new Map<string, { state: DeviceState; serial: string | undefined }>();
  private readonly scores = new Map<string, number>();
  private readonly lastAuthFailure = new Map<string, { at: number; suppressed: number }>();
  private readonly lastLateral = new Map<string, { at: number; reporters: string }>();
  private readonly ringSize: number;
  private readonly ring: FleetEvent[] = [];
  private seqValue = 0;
  private readonly listeners = new Set<(event: FleetEvent) => void>();
  private readonly stop: () => void;
  private readonly now: () => number;
  /** Tells streams resuming with an id from another gateway process that its seqs mean nothing here. */
  readonly boot = randomBytes(6).toString('base64url');

  constructor(
    private readonly view: FleetView,
    private readonly options: FleetEventsOptions = {},
  ) {
    this.ringSize = options.ring ?? DEFAULT_EVENT_RING;
    this.now = options.now ?? Date.now;
    for (const d of view.allDevices()) this.known.set(d.id, { state: d.state, serial: d.certificate?.serial });
    this.stop = view.onChange((change) => this.onViewChange(change));
  }

  /** The seq of the newest event (0: none yet). */
  get seq(): number {
    return this.seqValue;
  }

  onEvent(listener: (event: FleetEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Events after `seq`, oldest first; undefined when the ring no longer holds all of them. */
  since(seq: number): FleetEvent[] | undefined {
    if (seq >= this.seqValue) return [];
    const first = this.ring[0]?.seq ?? this.seqValue + 1;
    if (seq + 1 < first) return undefined;
    return this.ring.filter((e) => e.seq > seq);
  }

  /** The newest `n` events, oldest first. */
  recent(n: number): FleetEvent[] {
    return n <= 0 ? [] : this.ring.slice(-n);
  }

  private emit(type: FleetEventType, device: string | null, text: string, extra: Partial<Pick<FleetEvent, 'score' | 'previousScore' | 'serial' | 'remoteAddress'>> = {}): void {
    const event: FleetEvent = {
      seq: ++this.seqValue,
      time: new Date(this.now()).toISOString(),
      type,
      device,
      text,
      score: extra.score ?? null,
      previousScore: extra.previousScore ?? null,
      serial: extra.serial ?? null,
      remoteAddress: extra.remoteAddress ?? null,
    };
    this.ring.push(event);
    if (this.ring.length > this.ringSize) this.ring.shift();
    for (const listener of this.listeners) listener(event);
  }

  private onViewChange(change: FleetChange): void {
    const revokedNow = new Set<string>();
    for (const id of new Set([...change.devices, ...change.updated])) {
      const before = this.known.get(id);
      const d = this.view.device(id);
      if (!d) {
        // Not reached today (no store deletes a device); forget it rather than keep memory for it.
        this.known.delete(id);
        this.scores.delete(id);
        this.lastAuthFailure.delete(id);
        this.lastLateral.delete(id);
        continue;
      }
      const serial = d.certificate?.serial;
      this.known.set(id, { state: d.state, serial });
      if (!before) {
        this.emit('enrolled', id, d.state === 'unclaimed' ? 'enrolled without a token: waits to be claimed' : `enrolled (${d.state})`, serial ? { serial } : {});
        continue;
      }
      if (before.state !== d.state) {
        if (d.state === 'revoked') {
          revokedNow.add(id);
          // From the claim queue: an operator rejected it, or nobody claimed it in time (both revoke it).
          this.emit('revoked', id, before.state === 'unclaimed' ? 'rejected (never claimed): its certificate is on the CRL and its sessions closed' : 'revoked: its certificates are on the CRL and its sessions closed');
        } else if (d.state === 'quarantined') this.emit('quarantined', id, 'quarantined: score ceiling 0 in the broker');
        else if (before.state === 'quarantined' && d.state === 'active') this.emit('released', id, 'released from quarantine');
        else if (before.state === 'unclaimed' && d.state === 'active') this.emit('claimed', id, 'claimed: active');
        else if (d.state === 'active') this.emit('enrolled', id, `enrolled again (was ${before.state})`, serial ? { serial } : {});
      } else if (serial && before.serial && serial !== before.serial) {
        this.emit('renewed', id, 'new certificate (renewal)', { serial });
      } else if (serial && !before.serial) {
        this.emit('enrolled', id, 'certificate issued', { serial });
      }
    }
    for (const r of change.revoked) {
      if (r.kind !== 'device' || (r.deviceId && revokedNow.has(r.deviceId))) continue;
      this.emit('revoked', r.deviceId, `certificate ${r.serial} revoked`, { serial: r.serial });
    }
  }

  /** An effective score (the trust cache's score event) of `device` in `state`. */
  onScore(device: string, score: number, state: DeviceState | null): void {
    const previous = this.scores.get(device);
    this.scores.set(device, score);
    if (previous === undefined || state !== 'active' || score >= previous) return;
    const crossed = (this.options.thresholds?.() ?? []).filter((t) => t > 0 && score < t && previous >= t);
    const delta = this.options.dropDelta ?? 0.1;
    if (crossed.length === 0 && previous - score < delta - 1e-9) return;
    const below = crossed.length ? `, below ${crossed.map((t) => String(t)).join(' and ')}` : '';
    this.emit('score_drop', device, `score ${score2(previous)} → ${score2(score)}${below}`, { score, previousScore: previous });
  }

  /** A behaviour event the broker published (only authentication failures of our devices are fleet events). */
  onBehaviour(event: BehaviourEvent): void {
    if (event.type !== 'auth_failure' || !event.verified) return;
    this.authFailure(event.device, `connection refused: ${event.reason ?? 'authentication failed'}`, event.remoteAddress);
  }

  /**
   * Scoring attributed lateral movement to `subject` (`text`: "dev-x tried to log in to dev-y and dev-z 240
   * times"): the same line on the attacker and on each device it tried, so each device's feed shows it.
   */
  onLateralMovement(subject: string, reporters: readonly string[], text: string): void {
    if (!this.known.has(subject)) return;
    const now = this.now();
    const key = [...reporters].sort().join(',');
    const last = this.lastLateral.get(subject);
    if (last && last.reporters === key && now - last.at < (this.options.authFailureQuietMs ?? 10_000)) return;
    this.lastLateral.set(subject, { at: now, reporters: key });
    this.emit('lateral_movement', subject, text);
    for (const r of reporters) if (r !== subject && this.known.has(r)) this.emit('lateral_movement', r, text);
  }

  /** An enrollment refused at EST (a wrong, used or expired token) naming a device of ours. */
  onEnrollmentRefused(device: string, reason: string, remoteAddress: string | undefined): void {
    this.authFailure(device, `enrollment refused: ${reason}`, remoteAddress);
  }

  /**
   * At most one authentication failure event per device per `authFailureQuietMs`; the ones in between are counted
   * into the next, so a storm of attempts is a line every few seconds, not a feed that hides everything else.
   */
  private authFailure(device: string, text: string, remoteAddress: string | undefined): void {
    if (!this.known.has(device)) return; // any name can be claimed; only our devices' failures are news
    const now = this.now();
    const last = this.lastAuthFailure.get(device);
    if (last && now - last.at < (this.options.authFailureQuietMs ?? 10_000)) {
      last.suppressed++;
      return;
    }
    const more = last?.suppressed ? ` (and ${last.suppressed} more since the last one shown)` : '';
    this.lastAuthFailure.set(device, { at: now, suppressed: 0 });
    this.emit('auth_failure', device, `${text}${more}`, remoteAddress ? { remoteAddress } : {});
  }

  /** A new critical finding of a fleet audit (audit/): one event each, about its device when it names one. */
  onAuditFinding(device: string | null, text: string): void {
    this.emit('audit_finding', device, text);
  }

  close(): void {
    this.stop();
    this.listeners.clear();
  }
}
