/**
 * FleetOperations, the API's port, over the fleet core: every mutation is a FleetService use case acting as the
 * caller (so it is audited in the action's own transaction), every list and count is read from the FleetView in
 * memory, and a device's details come through FleetService. No route reaches the CA or a store.
 */
import { CaError } from '../ca/index.js';
import { FleetInsights as FleetInsightsClass } from '../fleet/insights.js';
import { isRestricted } from '../policy/index.js';
import type { DeviceFacts, FleetInsights, FleetService, FleetView, LatestScore, OperatorCertificateRow } from '../fleet/index.js';
import {
  DEVICE_STATES,
  VULN_SEVERITIES,
  type ActionDecision,
  type ActionList,
  type AuditEntryInfo,
  type DeviceDetail,
  type DeviceListItem,
  type DevicePage,
  type DeviceSummary,
  type ExplainResult,
  type FindingInfo,
  type FleetSummary,
  type HistoryPoint,
  type OperatorCertificate,
  type OperatorList,
  type OperatorRole,
  type PolicyList,
  type VulnCounts,
  type VulnList,
  type VulnSeverityName,
} from '../protocol/index.js';
import { FleetRefusal, type DeviceFilter, type FleetOperations, type RevocationReasonName } from './fleet-port.js';
import { historyFactors, type StoredFinding } from '../store/index.js';

const EXPIRY_WINDOW_MS = 48 * 3_600_000;

function operatorOf(o: OperatorCertificateRow, now: number): OperatorCertificate {
  const c = o.certificate;
  return {
    name: o.name,
    role: o.role,
    serial: c.serial,
    commonName: c.commonName,
    issuedAt: c.issuedAt,
    notAfter: c.notAfter,
    status: c.status === 'revoked' ? 'revoked' : Date.parse(c.notAfter) <= now ? 'expired' : 'active',
    revokedAt: o.revocation?.revokedAt ?? null,
    revocationReason: o.revocation?.reason ?? null,
  };
}
const OPERATOR_STATUS_ORDER = { active: 0, expired: 1, revoked: 2 } as const;

function summaryOf(device: DeviceFacts): DeviceSummary {
  return {
    id: device.id,
    state: device.state,
    tags: device.tags,
    createdAt: device.createdAt,
    updatedAt: device.updatedAt,
    certificateExpiry: device.certificate ? new Date(device.certificate.notAfter).toISOString() : null,
  };
}

/** A sort key: text (ids, states, ISO times) or a number (scores, report times); one kind per sort key. */
type SortValue = string | number;
/** A keyset cursor: the sort value and id of the last item of a page, base64url JSON (opaque to clients). */
function encodeCursor(value: SortValue, id: string): string {
  return Buffer.from(JSON.stringify([value, id])).toString('base64url');
}

function decodeCursor(cursor: string): [SortValue, string] {
  // A cursor of one sort key used with another merely starts the page at a different place: values are only compared.
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new FleetRefusal(400, 'cursor is not one this API returned (use nextCursor as it is)');
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || !(typeof parsed[0] === 'string' || Number.isFinite(parsed[0])) || typeof parsed[1] !== 'string') {
    throw new FleetRefusal(400, 'cursor is not one this API returned (use nextCursor as it is)');
  }
  return [parsed[0], parsed[1]];
}

/** Fleet refusals (404 no such device, 409 wrong state, 400 bad input) keep their status and message; other errors stay errors. */
function asRefusal(err: unknown): unknown {
  if (err instanceof CaError && (err.status === 400 || err.status === 403 || err.status === 404 || err.status === 409)) return new FleetRefusal(err.status, err.message);
  if (err instanceof Error && (err.name === 'InvalidDeviceIdError' || err.name === 'InvalidTagsError')) return new FleetRefusal(400, err.message);
  return err;
}

export interface FleetAdapterOptions {
  /** Default lifetime of an enrollment token (the enrollment.tokenTtl setting). */
  tokenTtlMs: number;
}

/**
 * The stored history has a row per change of score; a steady device's last row may be days old. Its current score
 * (republished every few minutes) ends the series, so that the history, and a chart of it, reaches the present.
 */
function withCurrent(points: HistoryPoint[], latest: LatestScore | undefined): HistoryPoint[] {
  const last = points.at(-1);
  if (!latest || (last && Date.parse(latest.time) <= Date.parse(last.time))) return points;
  return [...points, { time: latest.time, score: latest.score, model: latest.modelVersion, factors: historyFactors(latest.factors) }];
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
const SEVERITY_RANK: Record<VulnSeverityName, number> = { critical: 0, high: 1, medium: 2, low: 3, unknown: 4 };
const findingInfo = (f: StoredFinding): FindingInfo => ({ cve: f.cve, package: f.source, installed: f.installed, fixed: f.fixed, severity: f.severity, remote: f.remote, exposed: f.exposed, fixCommand: f.action });

export class FleetAdapter implements FleetOperations {
  constructor(
    private readonly fleet: FleetService,
    private readonly view: FleetView,
    private readonly options: FleetAdapterOptions,
    /** Scores, findings, sessions, events and action decisions, in memory (the gateway feeds it). */
    private readonly insights: FleetInsights = new FleetInsightsClass(),
  ) {}

  /** What the list shows of a device beyond its inventory facts, all from memory. */
  private live(d: DeviceFacts): Omit<DeviceListItem, keyof DeviceSummary> {
    const sessions = this.insights.sessions(d.id);
    const first = sessions.reduce<(typeof sessions)[number] | undefined>((a, b) => (a && a.since <= b.since ? a : b), undefined);
    return {
      score: this.insights.effectiveScore(d.id, d.state),
      worstFactor: this.insights.worstFactor(d.id),
      lastReport: iso(this.insights.lastReport(d.id)),
      connected: first ? { since: new Date(first.since).toISOString(), remoteAddress: first.remoteAddress, sessions: sessions.length } : null,
      vulnerabilities: this.insights.vulnCounts(d.id),
    };
  }

  /** The rule a `below` filter names, and its threshold for the action (undefined: the rule denies it). */
  private ruleRef(ref: string): { action: 'publish' | 'subscribe'; topic: string; threshold: number | undefined } {
    const colon = ref.indexOf(':');
    const action = ref.slice(0, colon) as 'publish' | 'subscribe';
    const topic = ref.slice(colon + 1);
    const rule = this.insights.rules().find((r) => r.topic === topic);
    if (!rule) throw new FleetRefusal(400, `no policy rule "${topic.slice(0, 100)}" (GET /api/v1/policies lists them)`);
    return { action, topic, threshold: rule[action] };
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw asRefusal(err);
    }
  }

  /** The device as it is after a change this caller just committed (the view may not have applied it yet). */
  private async summaryById(id: string): Promise<DeviceSummary> {
    await this.view.refresh();
    const device = this.view.device(id);
    if (!device) throw new FleetRefusal(404, `no device "${id}" in the inventory`);
    return summaryOf(device);
  }

  async listDevices(filter: DeviceFilter): Promise<DevicePage> {
    const after = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor);
    const q = filter.q?.toLowerCase();
    const below = filter.below === undefined ? undefined : this.ruleRef(filter.below);
    const needScore = filter.minScore !== undefined || filter.maxScore !== undefined || below !== undefined || filter.sort === 'score';
    const sign = filter.order === 'desc' ? -1 : 1;
    const compare = (av: SortValue, aid: string, bv: SortValue, bid: string) => sign * (av < bv ? -1 : av > bv ? 1 : aid < bid ? -1 : aid > bid ? 1 : 0);
    // One page out of a fleet of 100,000 on every call: keep only the best limit + 1 (the extra one says whether a
    // next page exists) in a small sorted buffer instead of sorting the whole fleet; whole items for the page only.
    const keep = filter.limit + 1;
    const top: Array<{ d: DeviceFacts; v: SortValue }> = [];
    for (const d of this.view.allDevices()) {
      if (filter.state !== undefined && d.state !== filter.state) continue;
      if (filter.tag !== undefined && !d.tags.includes(filter.tag)) continue;
      if (q !== undefined && !d.id.includes(q) && !d.tags.some((t) => t.toLowerCase().includes(q))) continue;
      let score = 0;
      if (needScore) {
        score = this.insights.effectiveScore(d.id, d.state);
        if (filter.minScore !== undefined && score < filter.minScore) continue;
        if (filter.maxScore !== undefined && score > filter.maxScore) continue;
        if (below && below.threshold !== undefined && score >= below.threshold) continue;
      }
      const v = this.sortValue(d, filter.sort, score);
      if (after && compare(v, d.id, after[0], after[1]) <= 0) continue;
      if (top.length === keep) {
        const worst = top[keep - 1]!;
        if (compare(v, d.id, worst.v, worst.d.id) >= 0) continue;
      }
      let lo = 0;
      let hi = top.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const m = top[mid]!;
        if (compare(m.v, m.d.id, v, d.id) < 0) lo = mid + 1;
        else hi = mid;
      }
      top.splice(lo, 0, { d, v });
      if (top.length > keep) top.pop();
    }
    const page = top.slice(0, filter.limit);
    const last = page.at(-1);
    return {
      items: page.map(({ d }) => ({ ...summaryOf(d), ...this.live(d) })),
      nextCursor: top.length > filter.limit && last ? encodeCursor(last.v, last.d.id) : null,
    };
  }

  private sortValue(d: DeviceFacts, key: DeviceFilter['sort'], score: number): SortValue {
    switch (key) {
      case 'certificateExpiry':
        return d.certificate ? new Date(d.certificate.notAfter).toISOString() : '';
      case 'score':
        return score;
      case 'lastReport':
        return this.insights.lastReport(d.id) ?? -1; // never reported: before every report
      default:
        return d[key];
    }
  }

  async device(id: string): Promise<DeviceDetail | undefined> {
    const device = await this.fleet.show(id);
    if (!device) return undefined;
    const audit = (await this.fleet.auditLog({ device: id })).slice(-50).reverse() as AuditEntryInfo[];
    // The facts as the store has them now (the view may lag a change just made), the newest active certificate included.
    const newest = device.certificates
      .filter((c) => c.kind === 'device' && c.status === 'active')
      .reduce<(typeof device.certificates)[number] | undefined>((a, c) => (a && a.notAfter >= c.notAfter ? a : c), undefined);
    const facts: DeviceFacts = {
      id: device.id,
      state: device.state,
      tags: device.tags,
      tpm: device.tpmKey !== null,
      createdAt: device.createdAt,
      updatedAt: device.updatedAt,
      ...(newest ? { certificate: { serial: newest.serial, fingerprint: newest.fingerprint, notBefore: Date.parse(newest.notBefore), notAfter: Date.parse(newest.notAfter) } } : {}),
    };
    const latest = this.insights.latest(id);
    const history = await this.insights.history(id, 500);
    return {
      ...summaryOf(facts),
      ...this.live(facts),
      certificates: device.certificates.map((c) => ({ serial: c.serial, status: c.status, notBefore: c.notBefore, notAfter: c.notAfter, issuedAt: c.issuedAt, fingerprint: c.fingerprint, replacedBy: c.replacedBy })),
      audit,
      scoredAt: latest?.time ?? null,
      modelVersion: latest?.modelVersion ?? null,
      factors: [...(latest?.factors ?? [])].sort((a, b) => a.contribution - b.contribution).map((f) => ({ id: f.id, contribution: f.contribution, reason: f.reason, fix: f.fix ?? null })),
      history: withCurrent(
        history.map((h) => ({ time: new Date(h.time).toISOString(), score: h.score, model: h.model, factors: h.factors })),
        latest,
      ),
      sessions: this.insights.sessions(id).map((x) => ({ clientId: x.clientId, since: new Date(x.since).toISOString(), remoteAddress: x.remoteAddress })),
      events: this.insights.recentEvents(id).map((e) => ({ type: e.type, time: e.time, topic: e.topic ?? null, reason: e.reason ?? null, remoteAddress: e.remoteAddress ?? null })),
      findings: this.insights.findings(id).map(findingInfo),
      actions: this.insights.actions(id),
    };
  }

  quarantine(id: string, actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet.as(actor).quarantine(id), this.summaryById(id)));
  }

  release(id: string, actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet.as(actor).release(id), this.summaryById(id)));
  }

  claim(id: string, actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet.as(actor).claim(id), this.summaryById(id)));
  }

  reject(id: string, actor: string): Promise<{ device: DeviceSummary; revoked: string[] }> {
    return this.run(async () => {
      const { revoked } = await this.fleet.as(actor).reject(id);
      return { device: await this.summaryById(id), revoked };
    });
  }

  revoke(id: string, reason: RevocationReasonName, actor: string): Promise<{ device: DeviceSummary; revoked: string[] }> {
    return this.run(async () => {
      const revoked = await this.fleet.as(actor).revoke({ deviceId: id }, reason);
      return { device: await this.summaryById(id), revoked };
    });
  }

  setTags(id: string, tags: string[], actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet.as(actor).setTags(id, tags), this.summaryById(id)));
  }

  changeTags(id: string, change: { add?: string[]; remove?: string[] }, actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet.as(actor).changeTags(id, change), this.summaryById(id)));
  }

  createToken(device: string, ttlMs: number | undefined, actor: string): Promise<{ token: string; expiresAt: Date }> {
    return this.run(() => this.fleet.as(actor).createToken(device, ttlMs ?? this.options.tokenTtlMs));
  }

  async auditLog(query: { device?: string; limit: number; before?: number }): Promise<{ items: AuditEntryInfo[]; nextCursor: string | null }> {
    const all = (await this.fleet.auditLog(query.device === undefined ? {} : { device: query.device })) as AuditEntryInfo[];
    const newestFirst = all.filter((e) => query.before === undefined || e.seq < query.before).reverse();
    const items = newestFirst.slice(0, query.limit);
    return { items, nextCursor: newestFirst.length > query.limit ? String(items.at(-1)!.seq) : null };
  }

  async summary(): Promise<FleetSummary> {
    const byState = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as FleetSummary['devices']['byState'];
    const now = this.fleet.now().getTime();
    let total = 0;
    let expiring = 0;
    const bands = Array.from({ length: 10 }, () => 0);
    const thresholds = this.thresholds();
    const below = thresholds.map(() => 0);
    const vulnerabilities: VulnCounts = { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 };
    const actions = new Map<string, { title: string; devices: number }>();
    for (const d of this.view.allDevices()) {
      total++;
      byState[d.state]++;
      const notAfter = d.certificate?.notAfter;
      if (d.state !== 'revoked' && notAfter !== undefined && notAfter > now && notAfter <= now + EXPIRY_WINDOW_MS) expiring++;
      const score = this.insights.effectiveScore(d.id, d.state);
      bands[Math.min(9, Math.floor(score * 10))]!++;
      thresholds.forEach((t, i) => {
        if (score < t.threshold) below[i]!++;
      });
      const counts = this.insights.vulnCounts(d.id);
      for (const s of VULN_SEVERITIES) vulnerabilities[s] += counts[s];
      this.insights.eachOpenAction(d.id, (id, title) => {
        const entry = actions.get(id);
        if (entry) entry.devices++;
        else actions.set(id, { title, devices: 1 });
      });
    }
    return {
      devices: { total, byState },
      certificatesExpiringWithin48h: expiring,
      scoreHistogram: bands.map((devices, i) => ({ from: i / 10, to: (i + 1) / 10, devices })),
      belowThreshold: thresholds.map((t, i) => ({ ...t, devices: below[i]! })),
      vulnerabilities,
      topActions: [...actions].map(([id, a]) => ({ id, title: a.title, devices: a.devices })).sort((a, b) => b.devices - a.devices || a.id.localeCompare(b.id)).slice(0, 10),
    };
  }

  /** Every rule's threshold per action (rules that deny an action have none to be below). */
  private thresholds(): Array<{ topic: string; action: 'publish' | 'subscribe'; threshold: number }> {
    const out: Array<{ topic: string; action: 'publish' | 'subscribe'; threshold: number }> = [];
    for (const r of this.insights.rules()) for (const action of ['publish', 'subscribe'] as const) if (r[action] !== undefined) out.push({ topic: r.topic, action, threshold: r[action] });
    return out;
  }

  async actions(query: { status: 'open' | 'snoozed' | 'ignored' | 'all'; limit: number; devices: number }): Promise<ActionList> {
    const groups = new Map<string, ActionList['items'][number]>();
    for (const d of this.view.allDevices()) {
      for (const a of this.insights.actions(d.id)) {
        if (query.status !== 'all' && a.status !== query.status) continue;
        let g = groups.get(a.id);
        if (!g) groups.set(a.id, (g = { id: a.id, title: a.title, fix: a.fix, devices: [], affected: 0, open: 0 }));
        g.devices.push({ id: d.id, cost: a.cost, status: a.status, snoozedUntil: a.snoozedUntil });
        g.affected++;
        if (a.status === 'open') g.open++;
      }
    }
    const items = [...groups.values()].sort((a, b) => b.affected - a.affected || (a.id < b.id ? -1 : 1)).slice(0, query.limit);
    for (const g of items) g.devices = g.devices.sort((a, b) => b.cost - a.cost || (a.id < b.id ? -1 : 1)).slice(0, query.devices);
    return { items };
  }

  decideAction(device: string, action: string, decision: { kind: 'snooze'; forMs: number } | { kind: 'ignore' } | { kind: 'clear' }, actor: string): Promise<ActionDecision> {
    return this.run(async () => {
      const until = decision.kind === 'snooze' ? new Date(this.fleet.now().getTime() + decision.forMs) : undefined;
      const row = await this.fleet.as(actor).decideAction(device, action, until ? { kind: 'snooze', until } : decision.kind === 'ignore' ? { kind: 'ignore' } : { kind: 'clear' });
      if (row) this.insights.setDecision(row);
      else this.insights.clearDecision(device, action);
      return { device, action, status: row ? (row.kind === 'ignore' ? 'ignored' : 'snoozed') : 'open', snoozedUntil: row?.until ?? null };
    });
  }

  async vulnerabilities(query: { severity?: VulnSeverityName; q?: string; limit: number }): Promise<VulnList> {
    const q = query.q?.toLowerCase();
    const byCve = new Map<string, VulnList['items'][number]>();
    for (const [device, { findings }] of this.insights.allFindings()) {
      if (!this.view.device(device)) continue; // a device gone from the inventory
      for (const f of findings) {
        if (query.severity !== undefined && f.severity !== query.severity) continue;
        if (q !== undefined && !f.cve.toLowerCase().includes(q) && !f.source.toLowerCase().includes(q)) continue;
        let e = byCve.get(f.cve);
        if (!e) byCve.set(f.cve, (e = { cve: f.cve, severity: f.severity, devices: [] }));
        if (SEVERITY_RANK[f.severity] < SEVERITY_RANK[e.severity]) e.severity = f.severity;
        e.devices.push({ id: device, package: f.source, installed: f.installed, fixed: f.fixed, fixCommand: f.action });
      }
    }
    const items = [...byCve.values()].sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || b.devices.length - a.devices.length || a.cve.localeCompare(b.cve));
    for (const e of items) e.devices.sort((a, b) => a.id.localeCompare(b.id) || a.package.localeCompare(b.package));
    return { items: items.slice(0, query.limit), total: items.length };
  }

  async policies(): Promise<PolicyList> {
    const rules = this.insights.rules();
    const passing = rules.map(() => ({ publish: 0, subscribe: 0 }));
    let devices = 0;
    for (const d of this.view.allDevices()) {
      devices++;
      if (isRestricted(d.state)) continue; // unclaimed, quarantined, revoked: only their own telemetry, whatever the rules
      const score = this.insights.effectiveScore(d.id, d.state);
      rules.forEach((r, i) => {
        if (r.publish !== undefined && score >= r.publish) passing[i]!.publish++;
        if (r.subscribe !== undefined && score >= r.subscribe) passing[i]!.subscribe++;
      });
    }
    return { devices, items: rules.map((r, i) => ({ topic: r.topic, publish: r.publish ?? null, subscribe: r.subscribe ?? null, passing: passing[i]! })) };
  }

  async explain(device: string, topic: string, action: 'publish' | 'subscribe'): Promise<ExplainResult> {
    const decision = this.insights.explain(device, topic, action);
    if (!decision) throw new FleetRefusal(409, 'no broker in this process to explain a decision');
    return { allowed: decision.allowed, score: decision.score, state: decision.state ?? null, rule: decision.rule?.topic ?? null, threshold: decision.threshold ?? null, reason: decision.reason };
  }

  async record(entry: { actor: string; action: string; device?: string; target?: string; outcome: 'ok' | 'refused'; detail?: string }): Promise<void> {
    const { actor, ...rest } = entry;
    await this.fleet.as(actor).record(rest);
  }

  rootFingerprint(): string {
    return this.fleet.rootFingerprint();
  }

  issueOperator(role: OperatorRole, name: string, actor: string) {
    return this.run(() => this.fleet.as(actor).issueOperator(role, name));
  }

  async operators(): Promise<OperatorList> {
    const now = this.fleet.now().getTime();
    const items = (await this.fleet.operatorCertificates()).map((o) => operatorOf(o, now));
    items.sort((a, b) => OPERATOR_STATUS_ORDER[a.status] - OPERATOR_STATUS_ORDER[b.status] || a.name.localeCompare(b.name) || b.issuedAt.localeCompare(a.issuedAt));
    return { items };
  }

  revokeOperator(serial: string, reason: RevocationReasonName, actor: string): Promise<OperatorCertificate> {
    return this.run(async () => {
      const row = await this.fleet.as(actor).revokeOperator(serial, reason);
      // The API checks revocation in this view: apply the commit before answering, so the next request is refused.
      await this.view.refresh();
      return operatorOf(row, this.fleet.now().getTime());
    });
  }
}
