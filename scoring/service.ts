/**
 * The scoring service: reads telemetry, behaviour events and peer reports from the bus, keeps the engine's
 * records, publishes retained scores on every meaningful change and periodically, and stores them (embedded
 * history; InfluxDB when configured).
 */
import type { Logger } from 'pino';
import { parseTopic, topicFilters, topics, type LateralNoticeMessage, type ScoreMessage } from '../protocol/index.js';
import type { ScoringBus } from './bus.js';
import type { IngestResult, IntrusionOutcome, RefusalCode, ScoreEngine, ScoreResult } from './engine.js';
import type { Point } from '@influxdata/influxdb-client';
import type { InfluxWriter } from './influx.js';
import { NodeWatch } from './addresses.js';
import { lateralEventText } from './lateral.js';
import { behaviourPoint, findingPoints, lateralPoint, scorePoint } from './points.js';
import { StaleEpochError, type HistoryRow, type ScoreStore } from '../store/index.js';

export interface ScoringServiceOptions {
  bus: ScoringBus;
  engine: ScoreEngine;
  store?: ScoreStore;
  influx?: InfluxWriter;
  log?: Logger;
  /** Recompute devices whose penalties decay or whose reports went stale. */
  tickMs?: number;
  /**
   * In a cluster: which nodes are alive (their heartbeat records). Sessions on a node gone for `graceMs` are closed
   * in the address book (a SIGKILLed node sends no disconnect events). A failing lookup changes nothing.
   */
  nodes?: { local: string; alive: () => Promise<ReadonlySet<string>>; checkMs?: number; graceMs?: number };
  /** Republish every score, changed or not (retained scores must outlive a broker restart). */
  republishMs?: number;
  /** Write changed records and scores to the store this often (in commits of at most PERSIST_CHUNK records). */
  persistMs?: number;
  /**
   * In a cluster: the scoring lease's epoch. Every score carries it and every store commit is fenced by it, so that
   * once a newer leader has written, nothing this service does can overwrite it (brokers and the store refuse it).
   */
  epoch?: number;
  /** Told when the store refused a commit because a newer leader has written (this service was deposed). */
  onDeposed?: (err: StaleEpochError) => void;
  /** Runs after close (releases what the service was built on). */
  onClose?: () => Promise<void> | void;
}

export interface ScoringCounters {
  accepted: number;
  rejected: number;
  published: number;
  /** Peer reports refused, by reason (intrusion reports over the rate count as 'rate' too). */
  refusedReports: Partial<Record<RefusalCode, number>>;
  /** Intrusion sources of telemetry reports, by what became of them. */
  intrusionSources: Partial<Record<IntrusionOutcome, number>>;
}

/** Lateral movement attributed to `subject`: the fleet event's line and who saw it (the last hour). */
export interface LateralNotice {
  subject: string;
  reporters: string[];
  logins: number;
  dropped: number;
  text: string;
}

/** Records per commit of the score store (scores: twice as many). */
const PERSIST_CHUNK = 256;

export class ScoringService {
  private readonly dirty = new Set<string>();
  private readonly changedRecords = new Set<string>();
  private pendingScores: Array<{ message: ScoreMessage; findings?: ScoreResult['findings'] }> = [];
  private scheduled = false;
  private timers: NodeJS.Timeout[] = [];
  private lastRepublish = Date.now();
  /** The commit in flight: the next one waits for it, so batches reach the store in order and one at a time. */
  private persisting: Promise<void> = Promise.resolve();
  private flushQueued = false;
  private cveGeneration: number | undefined;
  /** Devices to score again, a slice of the event loop at a time (`force`: publish even when unchanged). */
  private readonly recomputeQueue = new Map<string, boolean>();
  private slicing = false;
  /** Per device, the findings last written to InfluxDB (ids), so unchanged findings are not rewritten. */
  private readonly writtenFindings = new Map<string, string>();
  private readonly listeners: Array<(message: ScoreMessage, findings?: ScoreResult['findings']) => void> = [];
  private readonly lateralListeners: Array<(notice: LateralNotice) => void> = [];
  readonly counters: ScoringCounters = { accepted: 0, rejected: 0, published: 0, refusedReports: {}, intrusionSources: {} };

  constructor(private readonly options: ScoringServiceOptions) {}

  /** Policy thresholds changed (a reload): every device is scored again, so scores that now cross one are published. */
  setThresholds(thresholds: readonly number[]): void {
    this.options.engine.setThresholds(thresholds);
    for (const device of this.options.engine.devices()) this.recompute(device, false);
  }

  async start(): Promise<void> {
    const { engine, store, bus, epoch } = this.options;
    // A new leader raises the store's fence before it reads: a deposed scorer can write nothing after this point, so
    // the records read below are the last the store will take from anyone but this service.
    if (store && epoch !== undefined) await store.commit([], [], epoch);
    if (store) {
      for (const [device, data] of await store.records()) {
        try {
          engine.importRecord(device, data);
        } catch (err) {
          this.options.log?.warn({ device, err: (err as Error).message }, 'scoring: dropped an unreadable stored record');
        }
      }
    }
    await bus.subscribe([topicFilters.telemetry, topicFilters.events, topicFilters.reports], (topic, payload) => this.onMessage(topic, payload));
    // Retained scores may be gone (a broker restart): publish every known score once at start.
    this.cveGeneration = engine.vulnerabilityGeneration();
    for (const device of engine.devices()) this.recompute(device, true);
    const tick = setInterval(() => this.tick(), this.options.tickMs ?? 5000);
    const persist = setInterval(() => void this.persist(), this.options.persistMs ?? 1000);
    // History retention: prune at start and hourly.
    const prune = () =>
      void store?.prune().catch((err: Error) => this.options.log?.warn({ err: err.message }, 'scoring: could not prune the score history'));
    prune();
    const pruning = setInterval(prune, 3_600_000);
    for (const t of [tick, persist, pruning]) t.unref();
    this.timers.push(tick, persist, pruning);
    const nodes = this.options.nodes;
    if (nodes) {
      const watch = new NodeWatch(nodes.local, nodes.graceMs ?? 5000);
      let busy = false;
      const check = setInterval(() => {
        if (busy) return;
        busy = true;
        void this.checkNodes(watch, nodes.alive).finally(() => (busy = false));
      }, nodes.checkMs ?? 1000);
      check.unref();
      this.timers.push(check);
    }
  }

  /** Closes the address-book sessions of nodes whose heartbeat disappeared (see ScoringServiceOptions.nodes). */
  private async checkNodes(watch: NodeWatch, alive: () => Promise<ReadonlySet<string>>): Promise<void> {
    const { addresses } = this.options.engine;
    const holding = addresses.openNodes();
    if (holding.size === 0) return;
    let live: ReadonlySet<string>;
    try {
      live = await alive();
    } catch (err) {
      this.options.log?.debug({ err: (err as Error).message }, 'scoring: could not read the live nodes; sessions kept');
      return;
    }
    for (const { node, since } of watch.dead(addresses.openNodes(), live, Date.now())) {
      const closed = addresses.closeNode(node, since);
      this.options.log?.warn({ node, sessions: closed }, `scoring: node ${node} stopped sending heartbeats: its ${closed} device address(es) are no longer attributed to its devices`);
    }
  }

  /** Who held which address (diagnostics and tests). */
  get addresses(): ScoreEngine['addresses'] {
    return this.options.engine.addresses;
  }

  /** The scoring lease epoch this service writes with (in a cluster). */
  get epoch(): number | undefined {
    return this.options.epoch;
  }

  /** The InfluxDB writer's counters, when there is one. */
  get influxStats(): InfluxWriter['stats'] | undefined {
    return this.options.influx?.stats;
  }

  /** Writes other components' points (the fleet audit's) through the same InfluxDB writer; false without one. */
  writePoints(points: Point[]): boolean {
    if (!this.options.influx) return false;
    this.options.influx.add(points);
    return true;
  }

  /** Called with every published score and its CVE findings (the gateway uses it for metrics and the API's fleet view; tests to wait). */
  onScore(listener: (message: ScoreMessage, findings?: ScoreResult['findings']) => void): void {
    this.listeners.push(listener);
  }

  /** Called when telemetry attributes lateral movement to a device (the gateway turns it into a fleet event). */
  onLateral(listener: (notice: LateralNotice) => void): void {
    this.lateralListeners.push(listener);
  }

  /** Every device's last accepted state report (ms), from the engine's records (which survive a restart). */
  lastReports(): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const device of this.options.engine.devices()) {
      const at = this.options.engine.lastReportAt(device);
      if (at !== undefined) out.push([device, at]);
    }
    return out;
  }

  /** A device's stored score history (empty without a store), oldest first. */
  history(device: string, options?: { since?: number; limit?: number }): Promise<HistoryRow[]> {
    return this.options.store ? this.options.store.history(device, options) : Promise.resolve([]);
  }

  onMessage(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    if (!parsed) return;
    const { engine } = this.options;
    let result: IngestResult;
    switch (parsed.kind) {
      case 'telemetry':
        result = engine.ingestTelemetry(parsed.device, payload);
        if (result.accepted && result.intrusions) this.onIntrusions(result.device, result);
        break;
      case 'events':
        result = engine.ingestEvent(parsed.device, payload);
        if (result.accepted && result.event) this.options.influx?.add([behaviourPoint(result.event, Date.now())]);
        break;
      case 'reports':
        result = engine.ingestReport(parsed.reporter, parsed.subject, payload);
        break;
      case 'scores':
      case 'credentials':
      case 'lateral':
        return;
    }
    if (!result.accepted) {
      this.counters.rejected++;
      if (result.code) this.counters.refusedReports[result.code] = (this.counters.refusedReports[result.code] ?? 0) + 1;
      this.options.log?.warn({ topic, reason: result.reason }, 'scoring: ignored message');
      return;
    }
    this.counters.accepted++;
    if (result.unchanged) return;
    this.dirty.add(result.device);
    if (this.options.store) this.changedRecords.add(result.device);
    // Coalesce a burst (an auth-failure storm) into one computation per device.
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.processDirty());
    }
  }

  /** What a report's intrusion sources became: counted, logged when nobody is blamed, scored and announced when someone is. */
  private onIntrusions(reporter: string, result: Extract<IngestResult, { accepted: true }>): void {
    const c = this.counters.intrusionSources;
    for (const i of result.intrusions ?? []) {
      c[i.outcome] = (c[i.outcome] ?? 0) + 1;
      if (i.outcome === 'shared') this.options.log?.info({ reporter, address: i.address, holders: i.holders }, `scoring: intrusion source ${i.detail}`);
      else if (i.outcome !== 'attributed') this.options.log?.debug({ reporter, address: i.address, outcome: i.outcome }, `scoring: intrusion source ${i.detail}`);
    }
    // Over the rate, the whole report's sources are refused: one refused report.
    if (result.intrusions?.some((i) => i.outcome === 'rate')) {
      this.counters.refusedReports.rate = (this.counters.refusedReports.rate ?? 0) + 1;
      this.options.log?.warn({ reporter }, 'scoring: intrusion report refused: the reporter reports too fast');
    }
    const lateral = result.lateral ?? [];
    if (lateral.length === 0) return;
    const now = Date.now();
    this.options.influx?.add(lateral.map((o) => lateralPoint(o, now)));
    const subjects = new Set(lateral.map((o) => o.subject));
    for (const subject of subjects) {
      this.dirty.add(subject);
      if (this.options.store) this.changedRecords.add(subject);
      const summary = this.options.engine.lateralSummary(subject);
      const notice = { subject, ...summary, text: lateralEventText(subject, summary.reporters, summary.logins, summary.dropped) };
      this.options.log?.warn({ subject, reporters: summary.reporters, logins: summary.logins, dropped: summary.dropped }, `scoring: lateral movement: ${notice.text}`);
      for (const l of this.lateralListeners) l(notice);
      // Every gateway node's fleet events follow this topic (scoring runs on one node of a cluster, or on its own host).
      const message: LateralNoticeMessage = { device: subject, reporters: summary.reporters, logins: summary.logins, dropped: summary.dropped, text: notice.text, time: new Date(now).toISOString(), ...(this.options.epoch !== undefined ? { epoch: this.options.epoch } : {}) };
      this.options.bus.publish(topics.lateral(subject), Buffer.from(JSON.stringify(message)), false).catch((err: Error) => {
        this.options.log?.warn({ device: subject, err: err.message }, 'scoring: could not publish a lateral-movement notice');
      });
    }
  }

  private processDirty(): void {
    this.scheduled = false;
    const devices = [...this.dirty];
    this.dirty.clear();
    for (const device of devices) this.recompute(device, false);
  }

  /** Computes one device and publishes when it changed meaningfully (or `force`). */
  recompute(device: string, force: boolean): ScoreMessage | undefined {
    const result = this.options.engine.changed(device, force);
    if (!result) return undefined;
    const { findings, certificateNotAfter } = result;
    const message = this.options.epoch !== undefined ? { ...result.message, epoch: this.options.epoch } : result.message;
    this.options.bus.publish(topics.scores(device), Buffer.from(JSON.stringify(message)), true).catch((err: Error) => {
      this.options.log?.warn({ device, err: err.message }, 'scoring: could not publish a score');
    });
    this.counters.published++;
    if (this.options.store && !result.republishOnly) {
      this.changedRecords.add(device);
      this.pendingScores.push(findings ? { message, findings } : { message });
    }
    const influx = this.options.influx;
    if (influx) {
      influx.add([scorePoint(message, findings, certificateNotAfter)]);
      const key = findings?.map((f) => `${f.cve}/${f.source}/${f.installed}`).join(',');
      if (findings && key !== this.writtenFindings.get(device)) {
        this.writtenFindings.set(device, key!);
        influx.add(findingPoints(device, findings, message.time));
      }
    }
    for (const l of this.listeners) l(message, findings);
    return message;
  }

  /** Decay and staleness change scores with no new input; the periodic republish refreshes retained copies. */
  tick(): void {
    const now = Date.now();
    const republish = now - this.lastRepublish >= (this.options.republishMs ?? 300_000);
    if (republish) this.lastRepublish = now;
    const { engine } = this.options;
    // Per-node counters whose interval is over become one sample (a cluster's nodes' shares summed).
    // In slices: after a renewal storm or a broker restart every device has counters to flush, and scoring 10,000 of
    // them in one turn stalled the broker sharing this event loop for a third of a second.
    for (const device of engine.flushCounters()) {
      if (this.options.store) this.changedRecords.add(device);
      if (!republish) this.recomputeSoon(device, false);
    }
    for (const device of republish ? engine.devices() : engine.volatileDevices()) this.recomputeSoon(device, republish);
    if (republish) engine.addresses.prune(now);
    const generation = engine.vulnerabilityGeneration();
    if (generation !== this.cveGeneration) {
      this.cveGeneration = generation;
      this.options.log?.info({ generation, devices: engine.devices().length }, 'scoring: vulnerability data changed; re-matching every device');
      for (const device of engine.devices()) this.recomputeSoon(device, false);
    }
  }

  /**
   * Queues a device to be scored again in slices of ~20 ms (a re-match after a feed update, the tick's flushed
   * counters, the periodic republish), so that a fleet of thousands (a few ms each for a re-match) never blocks the
   * broker sharing this event loop. A device already queued is scored once (forced if either asked).
   */
  private recomputeSoon(device: string, force: boolean): void {
    this.recomputeQueue.set(device, force || this.recomputeQueue.get(device) === true);
    if (this.slicing) return;
    this.slicing = true;
    setImmediate(() => this.recomputeSlice());
  }

  private recomputeSlice(): void {
    const until = performance.now() + 20;
    for (const [device, force] of this.recomputeQueue) {
      if (performance.now() >= until) break;
      this.recomputeQueue.delete(device);
      this.recompute(device, force);
    }
    if (this.recomputeQueue.size > 0 && this.timers.length > 0) setImmediate(() => this.recomputeSlice());
    else this.slicing = false;
  }

  /**
   * Commits the changed records and new scores (those there now, and any that arrive meanwhile), after any commit
   * still in flight; resolves when they are stored.
   */
  persist(): Promise<void> {
    if (!this.options.store || this.flushQueued || (this.changedRecords.size === 0 && this.pendingScores.length === 0)) return this.persisting;
    this.flushQueued = true;
    this.persisting = this.persisting.then(() => {
      this.flushQueued = false;
      return this.flush();
    });
    return this.persisting;
  }

  /**
   * In chunks of PERSIST_CHUNK records, each its own transaction, with a turn of the event loop between them: the
   * store is synchronous on SQLite, and one commit of the 10,000 records a renewal storm changes held the broker's
   * event loop for 2.7 s (measured in the soak). Each device's record is whole in one commit; a restart scores every
   * device again, so a record and its score landing in different commits heal by themselves.
   */
  private async flush(): Promise<void> {
    const { store, engine, epoch } = this.options;
    // Bounded to what is there now (plus one chunk): a steady inflow must not keep a caller of persist() waiting.
    let rounds = Math.ceil(Math.max(this.changedRecords.size, this.pendingScores.length / 2) / PERSIST_CHUNK) + 1;
    while (store && rounds-- > 0 && (this.changedRecords.size > 0 || this.pendingScores.length > 0)) {
      const records: Array<[string, string]> = [];
      for (const device of this.changedRecords) {
        if (records.length >= PERSIST_CHUNK) break;
        this.changedRecords.delete(device);
        const data = engine.exportRecord(device);
        if (data) records.push([device, data]);
      }
      const scores = this.pendingScores.splice(0, PERSIST_CHUNK * 2);
      try {
        await store.commit(records, scores, epoch);
      } catch (err) {
        if (err instanceof StaleEpochError) {
          this.options.log?.warn({ epoch: err.epoch, fence: err.fence }, 'scoring: a newer scoring leader has written the store; this deposed scorer wrote nothing');
          this.options.onDeposed?.(err);
          return;
        }
        // The rest stays queued for the next attempt; this chunk is lost to the store (scored again at a restart).
        this.options.log?.error({ err: (err as Error).message }, 'scoring: could not persist state');
        return;
      }
      if (this.changedRecords.size > 0 || this.pendingScores.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.options.bus.close();
    this.processDirty();
    await this.persist();
    await this.options.influx?.close();
    await this.options.onClose?.();
  }
}
