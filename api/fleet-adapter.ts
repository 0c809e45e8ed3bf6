/**
 * FleetOperations over today's CA and FleetService (a thin stopgap: FleetService is being rewritten over store/ and
 * is to implement FleetOperations itself). Lists are filtered, sorted and paged in memory from the inventory.
 *
 * Tagging and operator certificates have no FleetService method yet, so they are recorded in the audit log here,
 * the way FleetService records its own actions (after the action's transaction, refused ones too).
 */
import { CaError, type CertificateAuthority, type CertificateRow, type DeviceRow } from '../ca/index.js';
import { FleetService } from '../fleet/index.js';
import { DEVICE_STATES, type AuditEntryInfo, type DeviceDetail, type DevicePage, type DeviceSummary, type FleetSummary, type OperatorRole } from '../protocol/index.js';
import { FleetRefusal, type DeviceFilter, type FleetOperations, type RevocationReasonName } from './fleet-port.js';

const EXPIRY_WINDOW_MS = 48 * 3_600_000;

function summaryOf(device: DeviceRow, certificates: CertificateRow[]): DeviceSummary {
  const active = certificates.filter((c) => c.kind === 'device' && c.status === 'active').map((c) => c.notAfter).sort();
  return {
    id: device.id,
    state: device.state,
    tags: device.tags,
    createdAt: device.createdAt,
    updatedAt: device.updatedAt,
    certificateExpiry: active.at(-1) ?? null,
  };
}

type SortValue = string;
const sortValue = (d: DeviceSummary, key: DeviceFilter['sort']): SortValue => (key === 'certificateExpiry' ? (d.certificateExpiry ?? '') : d[key]);

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

/** CA refusals (404 no such device, 409 wrong state) keep their status and message; other errors stay errors. */
function asRefusal(err: unknown): unknown {
  if (err instanceof CaError && (err.status === 400 || err.status === 403 || err.status === 404 || err.status === 409)) return new FleetRefusal(err.status, err.message);
  if (err instanceof Error && err.name === 'InvalidDeviceIdError') return new FleetRefusal(400, err.message);
  return err;
}

export interface FleetAdapterOptions {
  /** Default lifetime of an enrollment token (the enrollment.tokenTtl setting). */
  tokenTtlMs: number;
}

export class FleetAdapter implements FleetOperations {
  constructor(
    private readonly ca: CertificateAuthority,
    private readonly options: FleetAdapterOptions,
  ) {}

  private fleet(actor: string): FleetService {
    return new FleetService(this.ca, actor);
  }

  private async run<T>(fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw asRefusal(err);
    }
  }

  private summaryById(id: string): DeviceSummary {
    const device = this.ca.inventory.device(id);
    if (!device) throw new FleetRefusal(404, `no device "${id}" in the inventory`);
    return summaryOf(device, this.ca.inventory.certificates({ deviceId: id }));
  }

  /** Records an action FleetService has no method for yet, as FleetService records its own. */
  private async audited<T>(actor: string, action: string, about: { device?: string; target?: string }, fn: () => T, detail?: (r: T) => string): Promise<T> {
    const record = (outcome: 'ok' | 'refused', text: string | null) =>
      this.ca.inventory.transaction(() =>
        this.ca.inventory.appendAudit({ time: new Date().toISOString(), actor, action, device: about.device ?? null, target: about.target ?? null, outcome, detail: text?.slice(0, 500) ?? null }),
      );
    let result: T;
    try {
      result = fn();
    } catch (err) {
      record('refused', err instanceof Error ? err.message : String(err));
      throw asRefusal(err);
    }
    record('ok', detail ? detail(result) : null);
    return result;
  }

  async listDevices(filter: DeviceFilter): Promise<DevicePage> {
    const after = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor);
    const q = filter.q?.toLowerCase();
    let items = this.ca
      .list()
      .map((d) => summaryOf(d, d.certificates))
      .filter((d) => (filter.state === undefined || d.state === filter.state) && (filter.tag === undefined || d.tags.includes(filter.tag)))
      .filter((d) => q === undefined || d.id.includes(q) || d.tags.some((t) => t.toLowerCase().includes(q)));
    const sign = filter.order === 'desc' ? -1 : 1;
    const compare = (a: [SortValue, string], b: [SortValue, string]) => sign * (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
    const keyOf = (d: DeviceSummary): [SortValue, string] => [sortValue(d, filter.sort), d.id];
    items.sort((a, b) => compare(keyOf(a), keyOf(b)));
    if (after) items = items.filter((d) => compare(keyOf(d), after) > 0);
    const page = items.slice(0, filter.limit);
    const last = page.at(-1);
    return { items: page, nextCursor: items.length > filter.limit && last ? encodeCursor(...keyOf(last)) : null };
  }

  async device(id: string): Promise<DeviceDetail | undefined> {
    const device = this.ca.inventory.device(id);
    if (!device) return undefined;
    const certificates = this.ca.inventory.certificates({ deviceId: id });
    const audit = this.ca.inventory.auditEntries({ device: id }).slice(-50).reverse() as AuditEntryInfo[];
    return {
      ...summaryOf(device, certificates),
      certificates: certificates.map((c) => ({ serial: c.serial, status: c.status, notBefore: c.notBefore, notAfter: c.notAfter, issuedAt: c.issuedAt, fingerprint: c.fingerprint, replacedBy: c.replacedBy })),
      audit,
    };
  }

  quarantine(id: string, actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet(actor).quarantine(id), this.summaryById(id)));
  }

  release(id: string, actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet(actor).release(id), this.summaryById(id)));
  }

  claim(id: string, actor: string): Promise<DeviceSummary> {
    return this.run(async () => (await this.fleet(actor).claim(id), this.summaryById(id)));
  }

  revoke(id: string, reason: RevocationReasonName, actor: string): Promise<{ device: DeviceSummary; revoked: string[] }> {
    return this.run(async () => {
      const revoked = await this.fleet(actor).revoke({ deviceId: id }, reason);
      return { device: this.summaryById(id), revoked };
    });
  }

  setTags(id: string, tags: string[], actor: string): Promise<DeviceSummary> {
    return this.audited(actor, 'device.tag', { device: id }, () => {
      this.ca.inventory.transaction(() => {
        if (!this.ca.inventory.device(id)) throw new FleetRefusal(404, `no device "${id}" in the inventory`);
        this.ca.inventory.setDeviceTags(id, tags, this.ca.now().toISOString());
      });
      return this.summaryById(id);
    }, (d) => `tags ${d.tags.join(', ') || '(none)'}`);
  }

  createToken(device: string, ttlMs: number | undefined, actor: string): Promise<{ token: string; expiresAt: Date }> {
    return this.run(() => this.fleet(actor).createToken(device, ttlMs ?? this.options.tokenTtlMs));
  }

  async auditLog(query: { device?: string; limit: number; before?: number }): Promise<{ items: AuditEntryInfo[]; nextCursor: string | null }> {
    const all = this.ca.inventory.auditEntries(query.device === undefined ? {} : { device: query.device }) as AuditEntryInfo[];
    const newestFirst = all.filter((e) => query.before === undefined || e.seq < query.before).reverse();
    const items = newestFirst.slice(0, query.limit);
    return { items, nextCursor: newestFirst.length > query.limit ? String(items.at(-1)!.seq) : null };
  }

  async summary(): Promise<FleetSummary> {
    const byState = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as FleetSummary['devices']['byState'];
    const devices = this.ca.list();
    for (const d of devices) byState[d.state]++;
    const now = this.ca.now().getTime();
    const expiring = devices
      .filter((d) => d.state !== 'revoked')
      .flatMap((d) => d.certificates)
      .filter((c) => c.kind === 'device' && c.status === 'active' && Date.parse(c.notAfter) > now && Date.parse(c.notAfter) <= now + EXPIRY_WINDOW_MS).length;
    return { devices: { total: devices.length, byState }, certificatesExpiringWithin48h: expiring };
  }

  async record(entry: { actor: string; action: string; device?: string; target?: string; outcome: 'ok' | 'refused'; detail?: string }): Promise<void> {
    this.ca.inventory.transaction(() =>
      this.ca.inventory.appendAudit({ time: new Date().toISOString(), actor: entry.actor, action: entry.action, device: entry.device ?? null, target: entry.target ?? null, outcome: entry.outcome, detail: entry.detail?.slice(0, 500) ?? null }),
    );
  }

  rootFingerprint(): string {
    return this.ca.material.root.fingerprint256;
  }

  async issueOperator(role: OperatorRole, name: string, actor: string) {
    return this.audited(actor, 'operator.issue', { target: `operator:${role}:${name}` }, () => this.ca.issueOperator(role, name), (c) => `serial ${c.serial}`);
  }
}
