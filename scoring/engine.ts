/**
 * The scoring engine: validated inputs (telemetry, behaviour events, peer reports) fold into per-device records,
 * and `compute` turns a record into an explained Trust Score. In memory and clock-injected; the service around
 * it does the MQTT, persistence and InfluxDB.
 */
import { createHash } from 'node:crypto';
import FlatQueue from 'flatqueue';
import {
  parseBehaviourEvent,
  MAX_FACTOR_TEXT,
  parseMessage,
  peerReportSchema,
  telemetrySchema,
  type BehaviourEvent,
  type PackageEntry,
  type ScoreFactor,
  type ScoreMessage,
  type Telemetry,
} from '../protocol/index.js';
import { applyEvent, behaviourPenalties, emptyBehaviour, movesBehaviour, PENALTY_IDS, type BehaviourState } from './behaviour.js';
import { combineState, stateFactors, type CaFacts, type CveFindingInput, type StateFactor } from './factors.js';
import type { ScoreModel } from './model.js';
import { stateCeiling } from '../policy/index.js';
import { peerPenalty, prunePeers, type PeerEntry } from './peers.js';
import { AddressBook, normalizeAddress } from './addresses.js';
import { addLateral, lastHour, lateralPenalty, pruneLateral, type LateralEntry } from './lateral.js';
import { CounterWindows } from './counters.js';

/** Matches a device's packages against the loaded vulnerability data (vuln/). */
export interface VulnerabilityMatcher {
  /** Changes whenever the loaded data changes, so cached findings are re-matched. */
  readonly generation: number;
  /** False while no data is loaded: the CVE factor is then left out instead of claiming "no CVEs". */
  readonly loaded?: boolean;
  match(packages: PackageEntry[], os: Telemetry['os'], listening: Telemetry['listening']): CveFindingInput[];
}

export interface EngineOptions {
  model: ScoreModel;
  now?: () => number;
  caFacts?: (device: string) => CaFacts | undefined;
  vulnerabilities?: VulnerabilityMatcher;
  /** Policy thresholds: crossing one is always a change worth publishing. */
  thresholds?: number[];
  /** Smaller score moves are not republished (except periodically). */
  minChange?: number;
  /** Who held which address (default: one sized by the model's lateralMovement.addresses). */
  addresses?: AddressBook;
}

export interface DeviceRecord {
  telemetry?: Telemetry;
  /** Scoring's clock when the latest accepted telemetry arrived. */
  telemetryAt?: number;
  lastReportId: number;
  lastReportTime: number;
  packages?: { hash: string; list: PackageEntry[] };
  behaviour: BehaviourState;
  peers: Map<string, PeerEntry>;
  /** Lateral movement seen by other devices, per reporter. */
  lateral: Map<string, LateralEntry>;
  /** This device's latest report of sources that blamed nobody (shared or unheld addresses): shown, costs nothing. */
  unattributed?: { at: number; reason: string };
  /** `stored`: a digest of the factors and findings, to tell a republish of the same thing (nothing to store). */
  lastPublished?: { score: number; key: string; at: number; stored?: string };
  cveCache?: { key: string; findings: CveFindingInput[] };
}

/** Why a peer report (or a telemetry report's intrusion sources) was refused: the label of wott_peer_reports_refused_total. */
export type RefusalCode = 'schema' | 'huge' | 'topic' | 'self' | 'unknown_device' | 'future' | 'too_old' | 'replay' | 'rate';

/** What became of one intrusion source of a telemetry report. */
export type IntrusionOutcome = 'attributed' | 'shared' | 'unheld' | 'self' | 'unknown_device' | 'rate';

/** An intrusion source attributed to a device: a lateral-movement observation against `subject`. */
export interface LateralObservation {
  subject: string;
  reporter: string;
  address: string;
  logins: number;
  dropped: number;
  services: string[];
}

export interface IntrusionResult {
  address: string;
  outcome: IntrusionOutcome;
  /** 'shared': how many devices held the address. */
  holders?: number;
  detail: string;
}

/**
 * `event`: the parsed behaviour event, so that callers (the InfluxDB writer) need not parse it again. `lateral`:
 * observations against other devices (they need scoring again); `intrusions`: what became of each source.
 */
export type IngestResult =
  | {
      accepted: true;
      device: string;
      event?: BehaviourEvent;
      lateral?: LateralObservation[];
      intrusions?: IntrusionResult[];
      /** Nothing in the device's record changed (a disconnect, an uncounted connect): no new score, nothing to store. */
      unchanged?: true;
    }
  | { accepted: false; device?: string; reason: string; code?: RefusalCode };

/** A peer report is a few hundred bytes; anything much larger is refused before it is parsed. */
export const MAX_PEER_REPORT_BYTES = 2048;

/** How long a report's unattributed intrusion sources stay among the reporter's factors. */
const UNATTRIBUTED_SHOWN_MS = 3_600_000;

/** Slack added before a report's window: agents send a little after their window closes, and events arrive late. */
const WINDOW_SLACK_MS = 60_000;

export interface ScoreResult {
  message: ScoreMessage;
  findings?: CveFindingInput[];
  /** From the CA inventory, for the fleet's certificate board. */
  certificateNotAfter?: number;
  /** A forced republish of exactly the score, factors and findings last published: it refreshes the retained copy,
   * and there is nothing new to store (no history row every republish interval for every steady device). */
  republishOnly?: true;
}

/** Reports this far ahead of scoring's clock are refused: a device must not pin its replay window in the future. */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export class ScoreEngine {
  readonly model: ScoreModel;
  private readonly records = new Map<string, DeviceRecord>();
  /** Per reporter, about anyone: the last reportId, so replays across subjects are caught too. */
  private readonly reporterIds = new Map<string, number>();
  /** Cluster nodes' counters events waiting for the other nodes' of the same interval (not persisted: at most one interval). */
  private readonly counterWindows = new CounterWindows();
  private readonly now: () => number;
  private thresholds: number[];
  private readonly minChange: number;
  /** Per reporter: reports (peer reports and intrusion reports) in the current rate window. */
  private readonly reportWindows = new Map<string, { start: number; count: number }>();
  readonly addresses: AddressBook;
  /**
   * Devices whose score might move with time alone (see `volatile`), so that the service's tick asks these and not
   * every device: a 5 s tick that visited all of them cost ~30 ms of the event loop at 10,000 devices (and ten times
   * that at 100,000). Every change to a record goes through `record()`, which adds the device; a device leaves when
   * `volatileDevices` finds it steady. Time alone makes a steady device volatile only when its state report goes
   * stale: `staleAt` and `staleQueue` bring it back then.
   */
  private readonly mayMove = new Set<string>();
  /** Per device, when its latest state report goes stale (only devices waiting in `staleQueue`). */
  private readonly staleAt = new Map<string, number>();
  private readonly staleQueue = new FlatQueue<string>();

  constructor(private readonly options: EngineOptions) {
    this.model = options.model;
    this.now = options.now ?? Date.now;
    this.thresholds = [...(options.thresholds ?? [])].sort((a, b) => a - b);
    this.minChange = options.minChange ?? 0.01;
    this.addresses = options.addresses ?? new AddressBook({ limit: this.model.lateralMovement.addresses, retainMs: this.model.lateralMovement.maxAge });
  }

  /** New policy thresholds (a policy reload): crossing one of them is a change worth publishing from now on. */
  setThresholds(thresholds: readonly number[]): void {
    this.thresholds = [...thresholds].sort((a, b) => a - b);
  }

  /**
   * With the CA inventory at hand, only its devices get a record: anyone can put any name in a self-made
   * certificate (an auth_failure event) or in a peer report, and must not make scoring keep and publish a score
   * for every name it invents.
   */
  private unknown(device: string): boolean {
    return this.options.caFacts !== undefined && this.options.caFacts(device) === undefined;
  }

  record(device: string): DeviceRecord {
    let r = this.records.get(device);
    if (!r) {
      r = { lastReportId: -1, lastReportTime: -Infinity, behaviour: emptyBehaviour(), peers: new Map(), lateral: new Map() };
      this.records.set(device, r);
    }
    this.mayMove.add(device);
    return r;
  }

  /** The state report accepted at `telemetryAt` makes `device` volatile once it is older than staleness.after. */
  private watchStaleness(device: string, telemetryAt: number): void {
    // Strictly older (see volatile), so one millisecond later.
    const at = telemetryAt + this.model.staleness.after + 1;
    // A device waits in the queue once: a newer report moves its time, and the entry is queued again when it comes up early.
    if (!this.staleAt.has(device)) this.staleQueue.push(device, at);
    this.staleAt.set(device, at);
  }

  /**
   * The devices whose score may have moved since the last call with nothing having happened to them (decaying
   * penalties and peer reports, a state report gone stale): what the service's tick scores again. Costs the number
   * of such devices, not of all devices.
   */
  volatileDevices(): string[] {
    const now = this.now();
    while (this.staleQueue.length > 0 && this.staleQueue.peekValue()! <= now) {
      const device = this.staleQueue.pop()!;
      const at = this.staleAt.get(device);
      if (at === undefined) continue;
      if (at > now) this.staleQueue.push(device, at);
      else {
        this.staleAt.delete(device);
        this.mayMove.add(device);
      }
    }
    const out: string[] = [];
    for (const device of this.mayMove) {
      if (this.volatile(device)) out.push(device);
      else this.mayMove.delete(device);
    }
    return out;
  }

  has(device: string): boolean {
    return this.records.has(device);
  }

  devices(): string[] {
    return [...this.records.keys()];
  }

  /** When the last state report of `device` was accepted (ms), if ever: it is kept in the stored record. */
  lastReportAt(device: string): number | undefined {
    return this.records.get(device)?.telemetryAt;
  }

  /** wott/v1/telemetry/{device}. Replayed, out-of-order and future-dated reports are ignored. */
  ingestTelemetry(topicDevice: string, payload: Buffer | string): IngestResult {
    let t: Telemetry;
    try {
      t = parseMessage(telemetrySchema, payload);
    } catch (err) {
      return { accepted: false, device: topicDevice, reason: (err as Error).message };
    }
    if (t.device !== topicDevice) return { accepted: false, device: topicDevice, reason: `report is about "${t.device}", topic about "${topicDevice}"` };
    if (this.unknown(t.device)) return { accepted: false, reason: `no device "${t.device}" in the CA inventory` };
    const now = this.now();
    const time = Date.parse(t.time);
    if (time > now + MAX_CLOCK_SKEW_MS) return { accepted: false, device: t.device, reason: 'report dated in the future' };
    const r = this.record(t.device);
    if (time < r.lastReportTime) return { accepted: false, device: t.device, reason: `out of order: report ${t.reportId} is older than the last accepted one` };
    if (t.reportId <= r.lastReportId && time <= r.lastReportTime) return { accepted: false, device: t.device, reason: `replayed report ${t.reportId}` };
    // A lower reportId with a newer time is an agent whose state was reset (re-installed): accepted.
    r.lastReportId = t.reportId;
    r.lastReportTime = time;
    if (t.packages.list) {
      r.packages = { hash: t.packages.hash, list: t.packages.list };
      // Keep the record small: the list lives in `packages`, the telemetry keeps count and hash.
      t = { ...t, packages: { count: t.packages.count, hash: t.packages.hash } };
    }
    r.telemetry = t;
    r.telemetryAt = now;
    this.watchStaleness(t.device, now);
    if (!t.intrusions || t.intrusions.sources.length === 0) return { accepted: true, device: t.device };
    return { accepted: true, device: t.device, ...this.ingestIntrusions(t.device, t.intrusions, now) };
  }

  /**
   * Each source address → the one device that held it during the report's window (scoring's clock: a reporter can
   * not move the window). Several holders (NAT) or none (spoofed, or not ours) blame nobody; the reporter itself
   * can not be blamed by its own report; one intrusion report counts against the reporter's rate like a peer report.
   */
  private ingestIntrusions(reporter: string, intrusions: NonNullable<Telemetry['intrusions']>, now: number): { lateral: LateralObservation[]; intrusions: IntrusionResult[] } {
    const lateral: LateralObservation[] = [];
    const results: IntrusionResult[] = [];
    if (!this.takeReportSlot(reporter, now)) {
      for (const s of intrusions.sources) results.push({ address: s.address, outcome: 'rate', detail: `${reporter} reports faster than ${this.model.peers.rate.max} per ${Math.round(this.model.peers.rate.per / 1000)} s` });
      return { lateral, intrusions: results };
    }
    const from = now - intrusions.windowSeconds * 1000 - WINDOW_SLACK_MS;
    const notAttributed: string[] = [];
    for (const s of intrusions.sources) {
      const address = normalizeAddress(s.address);
      if (s.failedLogins + s.dropped === 0) continue;
      const holders = this.addresses.holders(address, from, now);
      if (holders.length === 0) {
        results.push({ address, outcome: 'unheld', detail: `${address}: no fleet device held it: not attributed` });
        notAttributed.push(`${s.failedLogins + s.dropped} from ${address} (no fleet device held it)`);
      } else if (holders.length > 1) {
        results.push({ address, outcome: 'shared', holders: holders.length, detail: `${address} shared by ${holders.length} devices: not attributed` });
        notAttributed.push(`${s.failedLogins + s.dropped} from ${address} (shared by ${holders.length} devices)`);
      } else if (holders[0] === reporter) {
        results.push({ address, outcome: 'self', detail: `${address} is ${reporter}'s own: a device can not report itself` });
      } else if (this.unknown(holders[0]!)) {
        results.push({ address, outcome: 'unknown_device', detail: `${address}: held by "${holders[0]}", not in the CA inventory` });
      } else {
        const subject = holders[0]!;
        addLateral(this.record(subject).lateral, reporter, s.failedLogins, s.dropped, s.services, this.model, now);
        lateral.push({ subject, reporter, address, logins: s.failedLogins, dropped: s.dropped, services: [...s.services] });
        results.push({ address, outcome: 'attributed', detail: `${address} is ${subject}` });
      }
    }
    if (notAttributed.length > 0) {
      const more = notAttributed.length > 3 ? ` and ${notAttributed.length - 3} more sources` : '';
      this.record(reporter).unattributed = { at: now, reason: `login/connection attempts not attributed to any device: ${notAttributed.slice(0, 3).join(', ')}${more}`.slice(0, 300) };
    }
    return { lateral, intrusions: results };
  }

  /** Counts one report against the reporter's rate (peers.rate); false when over it. */
  private takeReportSlot(reporter: string, now: number): boolean {
    const { max, per } = this.model.peers.rate;
    let w = this.reportWindows.get(reporter);
    if (!w || now - w.start >= per) this.reportWindows.set(reporter, (w = { start: now, count: 0 }));
    if (w.count >= max) return false;
    w.count++;
    return true;
  }

  /** Who reported lateral movement by `subject` in the last hour, and how much (all reporters, whatever their score). */
  lateralSummary(subject: string): { reporters: string[]; logins: number; dropped: number } {
    const now = this.now();
    const reporters: string[] = [];
    let logins = 0;
    let dropped = 0;
    for (const e of this.records.get(subject)?.lateral.values() ?? []) {
      const recent = lastHour(e, now);
      if (recent.logins + recent.dropped === 0) continue;
      reporters.push(e.reporter);
      logins += recent.logins;
      dropped += recent.dropped;
    }
    return { reporters: reporters.sort(), logins, dropped };
  }

  /** wott/v1/events/{device} from the broker (trusted: only the broker identity may publish there). */
  ingestEvent(topicDevice: string, payload: Buffer | string): IngestResult {
    try {
      const event = parseBehaviourEvent(payload);
      if (event.device !== topicDevice) return { accepted: false, device: topicDevice, reason: `event is about "${event.device}", topic about "${topicDevice}"` };
      if (this.unknown(event.device)) return { accepted: false, reason: `no device "${event.device}" in the CA inventory` };
      const now = this.now();
      // Sessions' addresses, from every node: who holds which address, for attributing intrusion sources.
      if (event.type === 'connect' && event.remoteAddress) this.addresses.connect(event.device, event.remoteAddress, event.node ?? '', now);
      else if (event.type === 'disconnect') this.addresses.disconnect(event.device, event.remoteAddress, event.node ?? '', now);
      // A gateway restart brings every device back at once: the connects it causes (and disconnects, always) leave
      // a known device's record as it was, so they cost no computation and no store write.
      if (!movesBehaviour(event) && this.records.has(event.device)) {
        return { accepted: true, device: event.device, event, unchanged: true };
      }
      if (event.type === 'counters' && event.counters && event.node !== undefined) {
        // A cluster node's share of the device's traffic: summed with the other nodes' before it becomes a sample.
        for (const summed of this.counterWindows.add(event, now)) applyEvent(this.record(summed.device).behaviour, summed, this.model, now);
        this.record(event.device);
      } else {
        applyEvent(this.record(event.device).behaviour, event, this.model, now);
      }
      return { accepted: true, device: event.device, event };
    } catch (err) {
      return { accepted: false, device: topicDevice, reason: (err as Error).message };
    }
  }

  /**
   * Applies the per-node counters whose interval is over (see scoring/counters.ts); returns the devices they changed.
   * The service calls it on every tick.
   */
  flushCounters(): string[] {
    const now = this.now();
    const devices: string[] = [];
    for (const summed of this.counterWindows.due(now)) {
      applyEvent(this.record(summed.device).behaviour, summed, this.model, now);
      devices.push(summed.device);
    }
    return devices;
  }

  /** wott/v1/reports/{reporter}/{subject}; the broker made sure the reporter is who published it. */
  ingestReport(reporter: string, subject: string, payload: Buffer | string): IngestResult {
    const refuse = (code: RefusalCode, reason: string): IngestResult => ({ accepted: false, device: subject, reason, code });
    if (Buffer.byteLength(payload) > MAX_PEER_REPORT_BYTES) return refuse('huge', `peer report of ${Buffer.byteLength(payload)} bytes (at most ${MAX_PEER_REPORT_BYTES})`);
    let report;
    try {
      report = parseMessage(peerReportSchema, payload);
    } catch (err) {
      return refuse('schema', (err as Error).message);
    }
    if (report.reporter !== reporter || report.subject !== subject) return refuse('topic', 'report names other devices than its topic');
    if (reporter === subject) return refuse('self', 'a device can not report about itself');
    if (this.unknown(subject) || this.unknown(reporter)) return { accepted: false, reason: `no device "${this.unknown(subject) ? subject : reporter}" in the CA inventory`, code: 'unknown_device' };
    const now = this.now();
    const time = Date.parse(report.time);
    if (time > now + MAX_CLOCK_SKEW_MS) return refuse('future', 'report dated in the future');
    if (now - time > this.model.peers.maxAge) return refuse('too_old', 'peer report too old');
    const last = this.reporterIds.get(reporter) ?? -1;
    if (report.reportId <= last) return refuse('replay', `replayed or out-of-order peer report ${report.reportId} from ${reporter}`);
    if (!this.takeReportSlot(reporter, now)) return refuse('rate', `${reporter} reports faster than ${this.model.peers.rate.max} per ${Math.round(this.model.peers.rate.per / 1000)} s`);
    this.reporterIds.set(reporter, report.reportId);
    const r = this.record(subject);
    r.peers.set(reporter, { reporter, reportId: report.reportId, rating: report.rating, reason: report.reason.slice(0, 120), at: now });
    prunePeers(r.peers, this.model, now);
    return { accepted: true, device: subject };
  }

  /** The generation of the loaded vulnerability data (undefined without a matcher). */
  vulnerabilityGeneration(): number | undefined {
    return this.options.vulnerabilities?.generation;
  }

  /** The latest computed (or, before any, the prior) score: used to weigh this device's own peer reports. */
  private currentScore(device: string): number {
    const r = this.records.get(device);
    return r?.lastPublished?.score ?? this.model.prior;
  }

  private findings(r: DeviceRecord): CveFindingInput[] | 'unknown' | undefined {
    const matcher = this.options.vulnerabilities;
    const t = r.telemetry;
    if (!matcher || !t || matcher.loaded === false) return undefined;
    if (!r.packages || r.packages.hash !== t.packages.hash) return 'unknown';
    const key = `${r.packages.hash}|${matcher.generation}|${t.listening.map((s) => `${s.address}:${s.port}:${s.process ?? ''}`).join(',')}|${t.os.versionCodename ?? t.os.versionId ?? ''}`;
    if (r.cveCache?.key !== key) r.cveCache = { key, findings: matcher.match(r.packages.list, t.os, t.listening) };
    return r.cveCache.findings;
  }

  /** The explained score of one device at this moment. */
  compute(device: string): ScoreResult {
    const m = this.model;
    const now = this.now();
    const r = this.record(device);
    const ca = this.options.caFacts?.(device);
    const factors: ScoreFactor[] = [];
    let score: number;
    let findings: CveFindingInput[] | undefined;
    let defaultCredentials = false;

    if (!r.telemetry) {
      score = m.prior;
      factors.push({ id: 'telemetry', contribution: round(m.prior - 1), reason: 'no state report from the agent yet', fix: 'install and run the wott agent (wott agent enroll, wott agent run)' });
    } else {
      const cves = this.findings(r);
      if (Array.isArray(cves)) findings = cves;
      const state = stateFactors(m, { telemetry: r.telemetry, cves, ca, now });
      defaultCredentials = r.telemetry.defaultCredentials.length > 0;
      const combined = combineState(m, state);
      score = combined.score;
      for (const f of state) factors.push(factorOf(f, combined.contributions.get(f.id) ?? 0));
      // Staleness: a silent device drifts down toward the prior, never up.
      const age = now - (r.telemetryAt ?? now);
      if (age > m.staleness.after && score > m.prior) {
        const stale = m.prior + (score - m.prior) * Math.pow(2, -(age - m.staleness.after) / m.staleness.halfLife);
        factors.push({ id: 'staleness', contribution: round(stale - score), reason: `no state report for ${Math.round(age / 60_000)} min`, fix: 'check that the agent runs and reaches the broker' });
        score = stale;
      }
    }

    for (const p of behaviourPenalties(r.behaviour, m, now)) {
      factors.push({ id: p.id, contribution: -p.penalty, reason: p.reason, fix: p.fix });
      score -= p.penalty;
    }
    prunePeers(r.peers, m, now);
    const peers = peerPenalty(r.peers.values(), m, now, (reporter) => this.currentScore(reporter));
    if (peers) {
      factors.push({ id: 'peers', contribution: -peers.penalty, reason: peers.reason, fix: 'investigate what the reporting devices observed' });
      score -= peers.penalty;
    }
    // Intrusions this device saw that blamed nobody: said, not counted (the attempts are in its failedLogins factor).
    if (r.unattributed && now - r.unattributed.at <= UNATTRIBUTED_SHOWN_MS) factors.push({ id: 'intrusions', contribution: 0, reason: r.unattributed.reason });
    pruneLateral(r.lateral, m, now);
    const lateral = r.lateral.size > 0 ? lateralPenalty(device, r.lateral.values(), m, now, (reporter) => this.currentScore(reporter)) : undefined;
    if (lateral) {
      factors.push({ id: 'lateralMovement', contribution: -lateral.penalty, reason: lateral.reason, fix: lateral.fix });
      score -= lateral.penalty;
    }

    const ceilings: Array<{ id: string; value: number; reason: string; fix: string }> = [];
    if (!r.telemetry) ceilings.push({ id: 'ceiling:noTelemetry', value: m.ceilings.noTelemetry, reason: 'capped until the first state report', fix: 'run the wott agent' });
    if (defaultCredentials) ceilings.push({ id: 'ceiling:defaultCredentials', value: m.ceilings.defaultCredentials, reason: 'capped: a default password lets anyone in', fix: 'change every default password' });
    // The CA state's ceiling is the broker's, not the model's: the published score must be the one enforced.
    const cap = stateCeiling(ca?.state);
    if (cap) ceilings.push({ id: `ceiling:${cap.state}`, value: cap.ceiling, reason: cap.reason, fix: cap.fix });
    for (const c of ceilings.sort((a, b) => a.value - b.value)) {
      if (score > c.value) {
        factors.push({ id: c.id, contribution: round(c.value - score), reason: c.reason, fix: c.fix });
        score = c.value;
      }
    }

    const final = round(Math.min(1, Math.max(0, score)));
    factors.sort((a, b) => a.contribution - b.contribution);
    // Reasons quote what the device sent (CPU flaw names, services, users, ports): up to 64 of each may be long.
    for (const f of factors) {
      f.reason = clipText(f.reason);
      if (f.fix !== undefined) f.fix = clipText(f.fix);
    }
    return {
      message: { device, score: final, factors, modelVersion: m.version, time: new Date(now).toISOString() },
      ...(findings ? { findings } : {}),
      ...(ca?.certificate ? { certificateNotAfter: ca.certificate.notAfter } : {}),
    };
  }

  /**
   * The score if it changed enough to publish: by minChange, across a policy threshold, or in which factors
   * cost points; `force` publishes regardless (the periodic refresh). Marks it as published.
   */
  changed(device: string, force = false): ScoreResult | undefined {
    const result = this.compute(device);
    const r = this.record(device);
    const { score } = result.message;
    const key = result.message.factors
      .filter((f) => f.contribution < -0.005)
      .map((f) => `${f.id}:${f.contribution.toFixed(2)}`)
      .join(',');
    const last = r.lastPublished;
    const meaningful = !last || Math.abs(score - last.score) >= this.minChange || this.crossesThreshold(last.score, score) || key !== last.key;
    if (!meaningful && !force) return undefined;
    // Exactly the same score, factors (reasons included) and findings, not merely close: small drifts stay in the
    // history, so that they cannot add up unrecorded, and the stored latest score shows every current reason.
    const stored = createHash('sha256').update(JSON.stringify([result.message.factors, result.findings ?? null])).digest('base64url').slice(0, 22);
    r.lastPublished = { score, key, at: this.now(), stored };
    return last && score === last.score && stored === last.stored ? { ...result, republishOnly: true } : result;
  }

  private crossesThreshold(a: number, b: number): boolean {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    return this.thresholds.some((t) => t > lo && t <= hi);
  }

  /** True when the score may change with no new input: penalties decaying, peers fading, a report going stale. */
  volatile(device: string): boolean {
    const r = this.records.get(device);
    if (!r) return false;
    const now = this.now();
    if (r.peers.size > 0 || r.lateral.size > 0 || behaviourPenalties(r.behaviour, this.model, now).length > 0) return true;
    // A penalty that has just decayed away must still be published once without it.
    const last = r.lastPublished;
    if (last && PENALTY_IDS.some((id) => last.key.includes(`${id}:`))) return true;
    return r.telemetryAt !== undefined && now - r.telemetryAt > this.model.staleness.after && (last?.score ?? 1) > this.model.prior;
  }

  /** Serializable snapshot of a record (for the embedded store). */
  exportRecord(device: string): string | undefined {
    const r = this.records.get(device);
    if (!r) return undefined;
    const { cveCache: _c, peers, lateral, ...rest } = r;
    return JSON.stringify({ ...rest, lastReportTime: Number.isFinite(r.lastReportTime) ? r.lastReportTime : null, peers: [...peers.values()], lateral: [...lateral.values()] });
  }

  importRecord(device: string, json: string): void {
    const data = JSON.parse(json) as Omit<DeviceRecord, 'peers' | 'lateral' | 'lastReportTime'> & { peers: PeerEntry[]; lateral?: LateralEntry[]; lastReportTime: number | null };
    const { peers, lateral, lastReportTime, ...rest } = data;
    // Records stored before lateral movement existed have none.
    this.records.set(device, { ...rest, lastReportTime: lastReportTime ?? -Infinity, peers: new Map(peers.map((p) => [p.reporter, p])), lateral: new Map((lateral ?? []).map((e) => [e.reporter, e])) });
    this.mayMove.add(device);
    if (rest.telemetryAt !== undefined) this.watchStaleness(device, rest.telemetryAt);
    // A reporter's replay floor is the newest of its reports still kept; older ones are refused by age anyway.
    for (const p of peers) this.reporterIds.set(p.reporter, Math.max(this.reporterIds.get(p.reporter) ?? -1, p.reportId));
  }
}

function factorOf(f: StateFactor, contribution: number): ScoreFactor {
  const c = round(contribution);
  const out: ScoreFactor = { id: f.id, contribution: c, reason: f.excluded ? `${f.reason} (not counted)` : f.reason };
  if (f.fix && c < 0) out.fix = f.fix;
  return out;
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** `text` cut to MAX_FACTOR_TEXT characters with an ellipsis (never splitting a surrogate pair). */
function clipText(text: string): string {
  if (text.length <= MAX_FACTOR_TEXT) return text;
  let cut = text.slice(0, MAX_FACTOR_TEXT - 1);
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…`;
}
