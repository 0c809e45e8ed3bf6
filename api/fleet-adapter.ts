/**
 * FleetOperations, the API's port, over the fleet core: every mutation is a FleetService use case acting as the
 * caller (so it is audited in the action's own transaction), every list and count is read from the FleetView in
 * memory, and a device's details come through FleetService. No route reaches the CA or a store.
 */
import { CaError } from '../ca/index.js';
import type { DeviceFacts, FleetService, FleetView } from '../fleet/index.js';
import { DEVICE_STATES, type AuditEntryInfo, type DeviceDetail, type DevicePage, type DeviceSummary, type FleetSummary, type OperatorRole } from '../protocol/index.js';
import { FleetRefusal, type DeviceFilter, type FleetOperations, type RevocationReasonName } from './fleet-port.js';

const EXPIRY_WINDOW_MS = 48 * 3_600_000;

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

type SortValue = string;

/** A keyset cursor: the sort value and id of the last item of a page, base64url JSON (opaque to clients). */
function encodeCursor(value: SortValue, id: string): string {
  return Buffer.from(JSON.stringify([value, id])).toString('base64url');
}

function decodeCursor(cursor: string): [SortValue, string] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new FleetRefusal(400, 'cursor is not one this API returned (use nextCursor as it is)');
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string') {
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

export class FleetAdapter implements FleetOperations {
  constructor(
    private readonly fleet: FleetService,
    private readonly view: FleetView,
    private readonly options: FleetAdapterOptions,
  ) {}

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
    const sign = filter.order === 'desc' ? -1 : 1;
    const compare = (a: [SortValue, string], b: [SortValue, string]) => sign * (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
    const keyOf = (d: DeviceFacts): [SortValue, string] => [
      filter.sort === 'certificateExpiry' ? (d.certificate ? new Date(d.certificate.notAfter).toISOString() : '') : d[filter.sort],
      d.id,
    ];
    // One page of a large fleet: keep only the first limit + 1 in order (a bounded insertion), not a sort of every
    // match; summaries are made for the page only. O(matches) for the usual case where few candidates displace the tail.
    const k = filter.limit + 1;
    const top: Array<{ key: [SortValue, string]; d: DeviceFacts }> = [];
    for (const d of this.view.allDevices()) {
      if (filter.state !== undefined && d.state !== filter.state) continue;
      if (filter.tag !== undefined && !d.tags.includes(filter.tag)) continue;
      if (q !== undefined && !d.id.includes(q) && !d.tags.some((t) => t.includes(q))) continue;
      const key = keyOf(d);
      if (after && compare(key, after) <= 0) continue;
      if (top.length === k && compare(key, top[k - 1]!.key) >= 0) continue;
      let lo = 0;
      let hi = top.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (compare(top[mid]!.key, key) < 0) lo = mid + 1;
        else hi = mid;
      }
      top.splice(lo, 0, { key, d });
      if (top.length > k) top.pop();
    }
    const page = top.slice(0, filter.limit);
    const last = page.at(-1);
    return { items: page.map((e) => summaryOf(e.d)), nextCursor: top.length > filter.limit && last ? encodeCursor(...last.key) : null };
  }

  async device(id: string): Promise<DeviceDetail | undefined> {
    const device = await this.fleet.show(id);
    if (!device) return undefined;
    const audit = (await this.fleet.auditLog({ device: id })).slice(-50).reverse() as AuditEntryInfo[];
    const active = device.certificates.filter((c) => c.kind === 'device' && c.status === 'active').map((c) => c.notAfter).sort();
    return {
      id: device.id,
      state: device.state,
      tags: device.tags,
      createdAt: device.createdAt,
      updatedAt: device.updatedAt,
      certificateExpiry: active.at(-1) ?? null,
      certificates: device.certificates.map((c) => ({ serial: c.serial, status: c.status, notBefore: c.notBefore, notAfter: c.notAfter, issuedAt: c.issuedAt, fingerprint: c.fingerprint, replacedBy: c.replacedBy })),
      audit,
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

  revoke(id: string, reason: RevocationReasonName, actor: string): Promise<{ device: DeviceSummary; revoked: string[] }> {
    return this.run(async () => {
      const revoked = await this.fleet.as(actor).revoke({ deviceId: id }, reason);
      return { device: await this.summaryById(id), revoked };
    });
  }

  setTags(id: string, tags: string[], actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet.as(actor).setTags(id, tags), this.summaryById(id)));
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
    for (const d of this.view.allDevices()) {
      total++;
      byState[d.state]++;
      const notAfter = d.certificate?.notAfter;
      if (d.state !== 'revoked' && notAfter !== undefined && notAfter > now && notAfter <= now + EXPIRY_WINDOW_MS) expiring++;
    }
    return { devices: { total, byState }, certificatesExpiringWithin48h: expiring };
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
}
