/**
 * The scoring engine: validated inputs (telemetry, behaviour events, peer reports) fold into per-device records,
 * and `compute` turns a record into an explained Trust Score. In memory and clock-injected; the service around
 * it does the MQTT, persistence and InfluxDB.
 */
import {
  behaviourEventSchema,
  parseMessage,
  peerReportSchema,
  telemetrySchema,
  type BehaviourEvent,
  type PackageEntry,
  type ScoreFactor,
  type ScoreMessage,
  type Telemetry,
} from '../protocol/index.js';
import { applyEvent, behaviourPenalties, emptyBehaviour, PENALTY_IDS, type BehaviourState } from './behaviour.js';
import { combineState, stateFactors, type CaFacts, type CveFindingInput, type StateFactor } from './factors.js';
import type { ScoreModel } from './model.js';
import { stateCeiling } from '../policy/index.js';
import { peerPenalty, prunePeers, type PeerEntry } from './peers.js';
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
  lastPublished?: { score: number; key: string; at: number };
  cveCache?: { key: string; findings: CveFindingInput[] };
}

/** `event`: the parsed behaviour event, so that callers (the InfluxDB writer) need not parse it again. */
export type IngestResult = { accepted: true; device: string; event?: BehaviourEvent } | { accepted: false; device?: string; reason: string };

export interface ScoreResult {
  message: ScoreMessage;
  findings?: CveFindingInput[];
  /** From the CA inventory, for the fleet's certificate board. */
  certificateNotAfter?: number;
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

  constructor(private readonly options: EngineOptions) {
    this.model = options.model;
    this.now = options.now ?? Date.now;
    this.thresholds = [...(options.thresholds ?? [])].sort((a, b) => a - b);
    this.minChange = options.minChange ?? 0.01;
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
      r = { lastReportId: -1, lastReportTime: -Infinity, behaviour: emptyBehaviour(), peers: new Map() };
      this.records.set(device, r);
    }
    return r;
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
    return { accepted: true, device: t.device };
  }

  /** wott/v1/events/{device} from the broker (trusted: only the broker identity may publish there). */
  ingestEvent(topicDevice: string, payload: Buffer | string): IngestResult {
    try {
      const event = parseMessage(behaviourEventSchema, payload);
      if (event.device !== topicDevice) return { accepted: false, device: topicDevice, reason: `event is about "${event.device}", topic about "${topicDevice}"` };
      if (this.unknown(event.device)) return { accepted: false, reason: `no device "${event.device}" in the CA inventory` };
      const now = this.now();
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
    try {
      const report = parseMessage(peerReportSchema, payload);
      if (report.reporter !== reporter || report.subject !== subject) return { accepted: false, device: subject, reason: 'report names other devices than its topic' };
      if (reporter === subject) return { accepted: false, device: subject, reason: 'a device can not report about itself' };
      if (this.unknown(subject)) return { accepted: false, reason: `no device "${subject}" in the CA inventory` };
      const now = this.now();
      const time = Date.parse(report.time);
      if (time > now + MAX_CLOCK_SKEW_MS) return { accepted: false, device: subject, reason: 'report dated in the future' };
      if (now - time > this.model.peers.maxAge) return { accepted: false, device: subject, reason: 'peer report too old' };
      const last = this.reporterIds.get(reporter) ?? -1;
      if (report.reportId <= last) return { accepted: false, device: subject, reason: `replayed or out-of-order peer report ${report.reportId} from ${reporter}` };
      this.reporterIds.set(reporter, report.reportId);
      const r = this.record(subject);
      r.peers.set(reporter, { reporter, reportId: report.reportId, rating: report.rating, reason: report.reason.slice(0, 120), at: now });
      prunePeers(r.peers, this.model, now);
      return { accepted: true, device: subject };
    } catch (err) {
      return { accepted: false, device: subject, reason: (err as Error).message };
    }
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
    const meaningful =
      force ||
      !last ||
      Math.abs(score - last.score) >= this.minChange ||
      this.crossesThreshold(last.score, score) ||
      key !== last.key;
    if (!meaningful) return undefined;
    r.lastPublished = { score, key, at: this.now() };
    return result;
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
    if (r.peers.size > 0 || behaviourPenalties(r.behaviour, this.model, now).length > 0) return true;
    // A penalty that has just decayed away must still be published once without it.
    const last = r.lastPublished;
    if (last && PENALTY_IDS.some((id) => last.key.includes(`${id}:`))) return true;
    return r.telemetryAt !== undefined && now - r.telemetryAt > this.model.staleness.after && (last?.score ?? 1) > this.model.prior;
  }

  /** Serializable snapshot of a record (for the embedded store). */
  exportRecord(device: string): string | undefined {
    const r = this.records.get(device);
    if (!r) return undefined;
    const { cveCache: _c, peers, ...rest } = r;
    return JSON.stringify({ ...rest, lastReportTime: Number.isFinite(r.lastReportTime) ? r.lastReportTime : null, peers: [...peers.values()] });
  }

  importRecord(device: string, json: string): void {
    const data = JSON.parse(json) as Omit<DeviceRecord, 'peers' | 'lastReportTime'> & { peers: PeerEntry[]; lastReportTime: number | null };
    const { peers, lastReportTime, ...rest } = data;
    this.records.set(device, { ...rest, lastReportTime: lastReportTime ?? -Infinity, peers: new Map(peers.map((p) => [p.reporter, p])) });
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
