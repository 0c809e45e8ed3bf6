/**
 * FleetView: the one in-memory read model of the fleet, fed by the inventory's change feed. The broker's trust
 * source, scoring's CA facts, the Mosquitto sync and the API read it instead of each polling the database; no
 * decision waits on I/O.
 *
 * It loads a snapshot with its feed position, then applies the feed in order (none lost, none twice, across
 * restarts of either side). Commits through the same store wake it at once; other processes' commits wake it on
 * the store's own signal. Certificates are kept only while they matter: each device's current certificate, and
 * superseded or revoked certificates until they expire (an expired certificate fails at the TLS handshake anyway).
 */
import { parseServiceCommonName, type DeviceState, type ServiceRole } from '../protocol/index.js';
import type { Change, CertificateSummary, CrlRow, DeviceRow, InventoryStore } from '../store/index.js';

export interface DeviceFacts {
  id: string;
  state: DeviceState;
  tags: string[];
  /** The device enrolled with a TPM-held key. */
  tpm: boolean;
  createdAt: string;
  updatedAt: string;
  /** Its newest active device certificate, if any. */
  certificate?: { serial: string; fingerprint: string; notBefore: number; notAfter: number };
}

export interface ServiceIdentity {
  role: ServiceRole;
  name: string;
  /** Holds at least one active, unexpired certificate. */
  active: boolean;
}

export interface RevokedCertificate {
  serial: string;
  kind: CertificateSummary['kind'];
  deviceId: string | null;
  commonName: string;
}

/** What one refresh changed. */
export interface FleetChange {
  /** Devices whose state changed (or that appeared). */
  devices: string[];
  /** Devices whose tags or certificate facts changed (state unchanged). */
  updated: string[];
  /** Certificates revoked since the last refresh (none on the first load). */
  revoked: RevokedCertificate[];
  /** Certificates superseded since the last refresh. */
  superseded: string[];
  /** Service common names whose active status changed. */
  services: string[];
  /** A new CRL was recorded. */
  crl: boolean;
}

interface KeptCertificate {
  status: 'superseded' | 'revoked';
  notAfter: number;
}

/** How often expired superseded and revoked certificates are dropped from memory, by default. */
export const PRUNE_INTERVAL_MS = 60_000;

export interface FleetViewOptions {
  now?: () => number;
  /** How often certificates that expired are dropped from memory (ms; default a minute). */
  pruneMs?: number;
}

export class FleetView {
  private readonly devices = new Map<string, DeviceFacts>();
  /** Superseded and revoked certificates not yet expired. */
  private readonly inactive = new Map<string, KeptCertificate>();
  /** Service CN → its active certificates' serial → notAfter. */
  private readonly serviceCerts = new Map<string, Map<string, number>>();
  private readonly serviceActive = new Map<string, boolean>();
  private readonly listeners = new Set<(change: FleetChange) => void>();
  /**
   * Moves as soon as some device's state changes here, before listeners hear of it (they are told after the whole
   * refresh): the broker's per-connection delivery cache compares it on every delivery.
   */
  stateVersion = 0;
  private seq = -1;
  private crl = 0;
  private refreshing?: Promise<FleetChange | undefined>;
  private again = false;
  private stopWake?: () => void;
  private readonly pruneTimer: NodeJS.Timeout;
  private readonly now: () => number;
  private closed = false;

  private constructor(
    private readonly store: InventoryStore,
    options: FleetViewOptions,
  ) {
    this.now = options.now ?? Date.now;
    // Every renewal leaves its superseded certificate here until it expires. Pruned hourly, a fleet renewing fast
    // (10,000 devices on 10-minute certificates: ~100,000 renewals an hour) held an hour of them, a slope in the soak's
    // memory; each pass is one walk over what is kept, ~1 ms for 10,000.
    this.pruneTimer = setInterval(() => this.pruneExpired(), options.pruneMs ?? PRUNE_INTERVAL_MS);
    this.pruneTimer.unref();
  }

  /** Loads the fleet from `store` and follows its feed from then on. */
  static async open(store: InventoryStore, options: FleetViewOptions = {}): Promise<FleetView> {
    const view = new FleetView(store, options);
    await view.refresh();
    view.stopWake = store.feed.onWake(() => void view.refresh().catch(() => undefined));
    return view;
  }

  // ------------------------------------------------------------------ reading

  deviceState(id: string): DeviceState | undefined {
    return this.devices.get(id)?.state;
  }

  device(id: string): DeviceFacts | undefined {
    return this.devices.get(id);
  }

  /** Every device, in no particular order. */
  allDevices(): IterableIterator<DeviceFacts> {
    return this.devices.values();
  }

  get deviceCount(): number {
    return this.devices.size;
  }

  isRevoked(serial: string): boolean {
    return this.inactive.get(serial)?.status === 'revoked';
  }

  isSuperseded(serial: string): boolean {
    return this.inactive.get(serial)?.status === 'superseded';
  }

  /** Service identities by common name. */
  services(): Map<string, ServiceIdentity> {
    const out = new Map<string, ServiceIdentity>();
    for (const [cn, active] of this.serviceActive) {
      const parsed = parseServiceCommonName(cn);
      if (parsed) out.set(cn, { ...parsed, active });
    }
    return out;
  }

  /** The newest CRL number recorded (0: none). */
  get crlNumber(): number {
    return this.crl;
  }

  /** The newest CRL recorded, with its DER (read from the store). */
  latestCrl(): Promise<CrlRow | undefined> {
    return this.store.latestCrl();
  }

  /** The feed position applied. */
  get position(): number {
    return this.seq;
  }

  /** Called after each refresh that changed something. Returns the function that stops it. */
  onChange(listener: (change: FleetChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ------------------------------------------------------------------ following the feed

  /**
   * Applies what the feed holds beyond the last position; resolves with what changed (undefined: nothing). Calls
   * made while one runs share a following run, so a wake-up is never lost.
   */
  refresh(): Promise<FleetChange | undefined> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    const run = async (): Promise<FleetChange | undefined> => {
      let total: FleetChange | undefined;
      do {
        this.again = false;
        const change = await this.applyPending();
        if (change) total = total ? merge(total, change) : change;
      } while (this.again && !this.closed);
      return total;
    };
    this.refreshing = run().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async applyPending(): Promise<FleetChange | undefined> {
    if (this.closed) return undefined;
    const change: FleetChange = { devices: [], updated: [], revoked: [], superseded: [], services: [], crl: false };
    const first = this.seq < 0;
    for (;;) {
      const batch = first && this.seq < 0 ? 'reload' : await this.store.feed.after(this.seq, 10_000);
      if (batch === 'reload') {
        await this.loadSnapshot(change, first);
        continue;
      }
      if (batch.length === 0) break;
      await this.applyBatch(batch, change);
      this.seq = batch[batch.length - 1]!.seq;
      if (batch.length < 10_000) break;
    }
    const changed = change.devices.length + change.updated.length + change.revoked.length + change.superseded.length + change.services.length > 0 || change.crl;
    if (!changed) return undefined;
    for (const listener of this.listeners) listener(change);
    return change;
  }

  /** Everything, from one snapshot; on a reload after a gap, differences are reported as changes. */
  private async loadSnapshot(change: FleetChange, first: boolean): Promise<void> {
    const snapshot = await this.store.snapshot(new Date(this.now()));
    this.seq = snapshot.seq;
    const seen = new Set<string>();
    for (const d of snapshot.devices) {
      seen.add(d.id);
      this.setDevice(d, change);
    }
    for (const id of [...this.devices.keys()]) if (!seen.has(id)) this.devices.delete(id), this.stateVersion++;
    for (const c of snapshot.certificates) this.applyCertificate(c, change, !first);
    const crl = await this.store.latestCrl();
    if ((crl?.number ?? 0) !== this.crl) {
      this.crl = crl?.number ?? 0;
      change.crl = !first;
    }
  }

  private async applyBatch(batch: Change[], change: FleetChange): Promise<void> {
    const devices = new Set<string>();
    const certificates = new Set<string>();
    let crl = false;
    for (const c of batch) {
      if (c.kind === 'device') devices.add(c.key);
      else if (c.kind === 'certificate' || c.kind === 'revocation') certificates.add(c.key);
      else crl = true;
    }
    for (const id of devices) {
      const row = await this.store.device(id);
      if (row) this.setDevice(row, change);
    }
    // Certificates after devices: a device's new certificate refers to the device.
    for (const summary of await this.store.certificateSummaries([...certificates])) this.applyCertificate(summary, change, true);
    if (crl) {
      const latest = await this.store.latestCrl();
      if ((latest?.number ?? 0) > this.crl) {
        this.crl = latest!.number;
        change.crl = true;
      }
    }
  }

  private setDevice(row: DeviceRow, change: FleetChange): void {
    const old = this.devices.get(row.id);
    const facts: DeviceFacts = {
      id: row.id,
      state: row.state,
      tags: row.tags,
      tpm: row.tpmKey !== null,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      ...(old?.certificate ? { certificate: old.certificate } : {}),
    };
    this.devices.set(row.id, facts);
    if (old?.state !== row.state) change.devices.push(row.id), this.stateVersion++;
    else if (old.tpm !== facts.tpm || old.tags.join('\n') !== facts.tags.join('\n')) change.updated.push(row.id);
  }

  private applyCertificate(c: CertificateSummary, change: FleetChange, report: boolean): void {
    const notAfter = Date.parse(c.notAfter);
    if (c.kind === 'service') this.applyService(c, notAfter, change);
    if (c.status === 'active') {
      if (c.kind === 'device' && c.deviceId) {
        const device = this.devices.get(c.deviceId);
        if (device && (!device.certificate || Date.parse(c.notBefore) >= device.certificate.notBefore)) {
          device.certificate = { serial: c.serial, fingerprint: c.fingerprint, notBefore: Date.parse(c.notBefore), notAfter };
          change.updated.push(device.id);
        }
      }
      return;
    }
    const kept = this.inactive.get(c.serial);
    if (kept?.status === c.status) return;
    if (notAfter > this.now()) this.inactive.set(c.serial, { status: c.status, notAfter });
    if (c.kind === 'device' && c.deviceId) {
      const device = this.devices.get(c.deviceId);
      if (device?.certificate?.serial === c.serial) {
        delete device.certificate;
        change.updated.push(device.id);
      }
    }
    if (!report) return;
    if (c.status === 'revoked') change.revoked.push({ serial: c.serial, kind: c.kind, deviceId: c.deviceId, commonName: c.commonName });
    else change.superseded.push(c.serial);
  }

  private applyService(c: CertificateSummary, notAfter: number, change: FleetChange): void {
    let certs = this.serviceCerts.get(c.commonName);
    if (!certs) this.serviceCerts.set(c.commonName, (certs = new Map()));
    if (c.status === 'active') certs.set(c.serial, notAfter);
    else certs.delete(c.serial);
    this.updateServiceActive(c.commonName, change);
  }

  private updateServiceActive(cn: string, change: FleetChange): void {
    const now = this.now();
    const active = [...(this.serviceCerts.get(cn)?.values() ?? [])].some((notAfter) => notAfter > now);
    if (this.serviceActive.get(cn) !== active) {
      this.serviceActive.set(cn, active);
      change.services.push(cn);
    }
  }

  /** Superseded and revoked certificates held now (not yet expired, or not yet pruned). */
  get inactiveCount(): number {
    return this.inactive.size;
  }

  /** Drops certificates that expired; a service whose last certificate expired becomes inactive. */
  private pruneExpired(): void {
    const now = this.now();
    for (const [serial, kept] of this.inactive) if (kept.notAfter <= now) this.inactive.delete(serial);
    const change: FleetChange = { devices: [], updated: [], revoked: [], superseded: [], services: [], crl: false };
    for (const [cn, certs] of this.serviceCerts) {
      for (const [serial, notAfter] of certs) if (notAfter <= now) certs.delete(serial);
      this.updateServiceActive(cn, change);
    }
    if (change.services.length) for (const listener of this.listeners) listener(change);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pruneTimer);
    this.stopWake?.();
    this.listeners.clear();
    await this.refreshing?.catch(() => undefined);
  }
}

function merge(a: FleetChange, b: FleetChange): FleetChange {
  return {
    devices: [...a.devices, ...b.devices],
    updated: [...a.updated, ...b.updated],
    revoked: [...a.revoked, ...b.revoked],
    superseded: [...a.superseded, ...b.superseded],
    services: [...a.services, ...b.services],
    crl: a.crl || b.crl,
  };
}
