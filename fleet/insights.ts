/**
 * FleetInsights: what the API knows about each device beyond the inventory, held in memory so that a page of a
 * 100,000-device list never waits on a store: the latest score message (factors), the CVE findings scoring matched,
 * when the broker last accepted a state report, a small ring of recent behaviour events, and operators' snooze and
 * ignore decisions on recommended actions. The gateway feeds it from the broker (score, telemetry and event topics,
 * in-process) and from in-process scoring (findings); the broker's own facts (effective score, sessions, policy)
 * are read through `BrokerFacts`, never copied.
 */
import { effectiveScore, type Action, type Decision, type PolicyRule } from '../policy/index.js';
import type { BehaviourEvent, DeviceState, ScoreFactor, ScoreMessage, VulnCounts, VulnSeverityName } from '../protocol/index.js';
import type { ActionDecisionRow, HistoryRow, StoredFinding } from '../store/index.js';

/** What the broker knows now; the Aedes plugin answers it. */
export interface BrokerFacts {
  effectiveScore(device: string): number;
  sessionsOf(device: string): Array<{ clientId: string; since: number; remoteAddress: string | null }>;
  explain(device: string, topic: string, action: Action): Decision & { state?: DeviceState };
  rules(): readonly PolicyRule[];
}

export interface LatestScore {
  score: number;
  time: string;
  modelVersion: string;
  factors: ScoreFactor[];
}

export interface RecommendedAction {
  id: string;
  title: string;
  fix: string;
  cost: number;
  status: 'open' | 'snoozed' | 'ignored';
  snoozedUntil: string | null;
}

/** Recent behaviour events kept per device (counters events are not kept: they come every interval). */
export const EVENT_RING = 20;
/** Ceilings that follow from the device's state, which operators change with their own commands, not an action. */
const STATE_CEILING_FACTORS = new Set(['ceiling:quarantined', 'ceiling:unclaimed', 'ceiling:revoked']);
const SEVERITY_RANK: Record<VulnSeverityName, number> = { critical: 0, high: 1, medium: 2, low: 3, unknown: 4 };
const SEVERITY_WEIGHT: Record<VulnSeverityName, number> = { critical: 4, high: 3, medium: 2, low: 1, unknown: 1 };
const emptyCounts = (): VulnCounts => ({ critical: 0, high: 0, medium: 0, low: 0, unknown: 0 });

export class FleetInsights {
  private readonly scores = new Map<string, LatestScore>();
  private readonly findingsOf = new Map<string, { findings: StoredFinding[]; counts: VulnCounts }>();
  private readonly reports = new Map<string, number>();
  private readonly events = new Map<string, BehaviourEvent[]>();
  private readonly decisions = new Map<string, Map<string, ActionDecisionRow>>();
  /** Device → credentials it held and then lost trust for (issue 17): each one a "rotate it" action. */
  private credentialExposures = new Map<string, Array<{ name: string; reason: string }>>();
  private broker?: BrokerFacts;
  private historySource?: (device: string, options: { limit: number }) => Promise<HistoryRow[]>;

  constructor(
    private readonly options: { initialScore?: number; now?: () => number } = {},
  ) {}

  // ------------------------------------------------------------------ feeding

  setBroker(broker: BrokerFacts): void {
    this.broker = broker;
  }

  setHistory(source: (device: string, options: { limit: number }) => Promise<HistoryRow[]>): void {
    this.historySource = source;
  }

  /** A score message as the broker routed it (already validated by the caller). */
  onScore(message: ScoreMessage): void {
    this.scores.set(message.device, { score: message.score, time: message.time, modelVersion: message.modelVersion, factors: message.factors });
  }

  /** Replaces the credential exposures (the credential store's, after each change). */
  setCredentialExposures(rows: ReadonlyArray<{ name: string; device: string; reason: string }>): void {
    const next = new Map<string, Array<{ name: string; reason: string }>>();
    for (const r of rows) {
      let list = next.get(r.device);
      if (!list) next.set(r.device, (list = []));
      list.push({ name: r.name, reason: r.reason });
    }
    this.credentialExposures = next;
  }

  onFindings(device: string, findings: readonly StoredFinding[]): void {
    const counts = emptyCounts();
    for (const f of findings) counts[f.severity]++;
    this.findingsOf.set(device, { findings: [...findings], counts });
  }

  /** A state report the broker accepted from `device` (only the device may publish its telemetry topic). */
  onReport(device: string, time: number): void {
    this.reports.set(device, time);
  }

  onEvent(event: BehaviourEvent): void {
    if (event.type === 'counters') return;
    let ring = this.events.get(event.device);
    if (!ring) this.events.set(event.device, (ring = []));
    ring.push(event);
    if (ring.length > EVENT_RING) ring.shift();
  }

  /** Replaces every decision (load at start). */
  loadDecisions(rows: readonly ActionDecisionRow[]): void {
    this.decisions.clear();
    for (const row of rows) this.setDecision(row);
  }

  setDecision(row: ActionDecisionRow): void {
    let m = this.decisions.get(row.device);
    if (!m) this.decisions.set(row.device, (m = new Map()));
    m.set(row.action, row);
  }

  clearDecision(device: string, action: string): void {
    this.decisions.get(device)?.delete(action);
  }

  /** Forgets devices that left the fleet (the unclaimed sweeper deletes devices); returns how many. */
  prune(known: (device: string) => boolean): number {
    let dropped = 0;
    for (const map of [this.scores, this.findingsOf, this.reports, this.events] as Array<Map<string, unknown>>) {
      for (const device of map.keys()) {
        if (known(device)) continue;
        map.delete(device);
        dropped++;
      }
    }
    return dropped;
  }

  // ------------------------------------------------------------------ reading

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** The score the broker enforces now (without a broker: the cached score under the state's ceiling). */
  effectiveScore(device: string, state: DeviceState | undefined): number {
    if (this.broker) return this.broker.effectiveScore(device);
    return effectiveScore(this.scores.get(device)?.score ?? this.options.initialScore ?? 0.5, state);
  }

  latest(device: string): LatestScore | undefined {
    return this.scores.get(device);
  }

  worstFactor(device: string): { id: string; contribution: number; reason: string } | null {
    let worst: ScoreFactor | undefined;
    for (const f of this.scores.get(device)?.factors ?? []) if (f.contribution < 0 && (!worst || f.contribution < worst.contribution)) worst = f;
    return worst ? { id: worst.id, contribution: worst.contribution, reason: worst.reason } : null;
  }

  lastReport(device: string): number | undefined {
    return this.reports.get(device);
  }

  sessions(device: string): Array<{ clientId: string; since: number; remoteAddress: string | null }> {
    return this.broker?.sessionsOf(device) ?? [];
  }

  vulnCounts(device: string): VulnCounts {
    return this.findingsOf.get(device)?.counts ?? emptyCounts();
  }

  findings(device: string): StoredFinding[] {
    return [...(this.findingsOf.get(device)?.findings ?? [])].sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || a.cve.localeCompare(b.cve));
  }

  /** Every device with findings. */
  allFindings(): IterableIterator<[string, { findings: StoredFinding[]; counts: VulnCounts }]> {
    return this.findingsOf.entries();
  }

  /** Newest first. */
  recentEvents(device: string): BehaviourEvent[] {
    return [...(this.events.get(device) ?? [])].reverse();
  }

  history(device: string, limit: number): Promise<HistoryRow[]> {
    return this.historySource ? this.historySource(device, { limit }) : Promise.resolve([]);
  }

  rules(): readonly PolicyRule[] {
    return this.broker?.rules() ?? [];
  }

  explain(device: string, topic: string, action: Action): (Decision & { state?: DeviceState }) | undefined {
    return this.broker?.explain(device, topic, action);
  }

  /**
   * The device's recommended actions, costliest first: each factor that costs points and says how to fix it (not
   * the state ceilings, which operators lift with their own commands), and one per CVE finding with its command
   * (then in place of the summary `cves` factor). Snoozed and ignored ones are listed with their status.
   */
  actions(device: string): RecommendedAction[] {
    const out: RecommendedAction[] = [];
    const decided = this.decisions.get(device);
    const now = decided ? this.now() : 0;
    this.eachAction(device, (id, title, fix, cost) => {
      const d = decided?.get(id);
      if (d?.kind === 'ignore') out.push({ id, title, fix, cost, status: 'ignored', snoozedUntil: null });
      else if (d?.kind === 'snooze' && d.until && Date.parse(d.until) > now) out.push({ id, title, fix, cost, status: 'snoozed', snoozedUntil: d.until });
      else out.push({ id, title, fix, cost, status: 'open', snoozedUntil: null });
    });
    return out.length > 1 ? out.sort((a, b) => b.cost - a.cost || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)) : out;
  }

  /** Calls `visit` with each open action's id and title (the summary counts them for 100,000 devices: no objects). */
  eachOpenAction(device: string, visit: (id: string, title: string) => void): void {
    const decided = this.decisions.get(device);
    const now = decided ? this.now() : 0;
    this.eachAction(device, (id, title) => {
      const d = decided?.get(id);
      if (d && (d.kind === 'ignore' || (d.until !== null && Date.parse(d.until) > now))) return;
      visit(id, title);
    });
  }

  private eachAction(device: string, visit: (id: string, title: string, fix: string, cost: number) => void): void {
    // Not a cost to this device's score, but the operator's move: the device held the secret when it lost trust.
    for (const e of this.credentialExposures.get(device) ?? []) {
      visit(`credential:${e.name}`, `credential ${e.name} was exposed to this device, which lost trust (${e.reason})`, `wott credential rotate ${e.name} --from-file NEW-VALUE`, 0);
    }
    const factors = this.scores.get(device)?.factors;
    const findings = this.findingsOf.get(device)?.findings;
    let cveCost = 0;
    if (factors) {
      for (const f of factors) {
        if (f.id === 'cves') cveCost = Math.max(0, -f.contribution);
        if (f.contribution >= 0 || !f.fix || STATE_CEILING_FACTORS.has(f.id)) continue;
        if (f.id === 'cves' && findings && findings.length > 0) continue;
        visit(f.id, f.reason, f.fix, -f.contribution);
      }
    }
    if (!findings || findings.length === 0) return;
    // The CVE factor's cost shared by its findings by severity weight, so they sort among the other actions.
    let total = 0;
    const counted = new Set<string>();
    for (const f of findings) if (!counted.has(f.cve) && counted.add(f.cve)) total += SEVERITY_WEIGHT[f.severity];
    const seen = new Set<string>();
    for (const f of findings) {
      if (seen.has(f.cve)) continue;
      seen.add(f.cve);
      const cost = cveCost > 0 && total > 0 ? Math.round((cveCost * SEVERITY_WEIGHT[f.severity] * 1000) / total) / 1000 : 0;
      visit(`cve:${f.cve}`, `${f.cve} (${f.severity}) in ${f.source} ${f.installed}, fixed in ${f.fixed}`, f.action, cost);
    }
  }
}
