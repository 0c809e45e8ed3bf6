/**
 * What the broker needs to know from the CA, kept in memory so that no decision ever waits on I/O:
 * each device's lifecycle state and the set of revoked serials.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { DeviceState } from '../protocol/index.js';
import { changesAfter, feedHead, type Change } from '../ca/index.js';

export interface TrustSource {
  /** undefined: the device is not known to the CA (treated as active by the broker). */
  deviceState(id: string): DeviceState | undefined;
  isRevoked(serial: string): boolean;
  /** A certificate replaced by a newer one (renewed, or the device enrolled again): it no longer connects. */
  isSuperseded(serial: string): boolean;
  /** Called after the source has changed (a revocation, a quarantine, a claim ...), with the devices whose state changed. */
  onChange(listener: (devices: string[]) => void): void;
  close(): void;
}

/** For Aedes users without a wott CA inventory: every device active, nothing revoked. */
export function staticTrustSource(states: Record<string, DeviceState> = {}, revoked: string[] = [], superseded: string[] = []): TrustSource {
  const set = new Set(revoked);
  const replaced = new Set(superseded);
  return { deviceState: (id) => states[id], isRevoked: (s) => set.has(s), isSuperseded: (s) => replaced.has(s), onChange: () => {}, close: () => {} };
}

/**
 * Follows the CA inventory (SQLite) read-only through its change feed: polls `PRAGMA data_version` every `pollMs`
 * and, when another connection has committed, applies the feed's entries after the last one applied (re-reading
 * the rows they name). CLI commands (revoke, quarantine, release, claim) thus reach the broker within about
 * `pollMs`, in order, whatever the clocks of the processes that made them.
 */
export class InventoryTrustSource implements TrustSource {
  private readonly db: Database.Database;
  private readonly states = new Map<string, DeviceState>();
  private readonly revoked = new Set<string>();
  private readonly superseded = new Set<string>();
  private readonly listeners: Array<(devices: string[]) => void> = [];
  /** Devices whose state changed during the current refresh. */
  private changedDevices: string[] = [];
  private version = -1;
  /** The last feed entry applied; -1 before the first full load. */
  private seq = -1;
  private readonly timer: NodeJS.Timeout;
  private readonly deviceState_: Database.Statement;
  private readonly certificateStatus: Database.Statement;

  constructor(dataDir: string, pollMs = 200) {
    const path = join(dataDir, 'inventory.db');
    try {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
      this.db.pragma('busy_timeout = 2000');
      this.db.pragma('schema_version'); // reads the header: a damaged file fails here, with its name below
    } catch (err) {
      throw new Error(`cannot open the CA inventory ${path}: ${(err as Error).message}`);
    }
    this.deviceState_ = this.db.prepare('SELECT state FROM devices WHERE id = ?');
    this.certificateStatus = this.db.prepare('SELECT status FROM certificates WHERE serial = ?');
    this.refresh();
    this.timer = setInterval(() => this.refresh(), pollMs);
    this.timer.unref();
  }

  /** Applies what changed; returns whether anything the broker enforces did. */
  refresh(): boolean {
    if (!this.db.open) return false; // closed while a wake-up was pending
    const version = this.db.pragma('data_version', { simple: true }) as number;
    if (version === this.version) return false;
    this.version = version;
    let changed = false;
    this.changedDevices = [];
    for (;;) {
      const batch = this.seq < 0 ? 'reload' : changesAfter(this.db, this.seq);
      if (batch === 'reload') {
        changed = this.loadAll() || changed;
        continue;
      }
      for (const change of batch) {
        changed = this.apply(change) || changed;
        this.seq = change.seq;
      }
      if (batch.length < 10_000) break;
    }
    if (changed) for (const listener of this.listeners) listener(this.changedDevices);
    return changed;
  }

  /** Everything, read in one snapshot together with the feed position it corresponds to. */
  private loadAll(): boolean {
    return this.db.transaction(() => {
      this.seq = feedHead(this.db);
      let changed = false;
      for (const d of this.db.prepare('SELECT id, state FROM devices').all() as Array<{ id: string; state: DeviceState }>) {
        if (this.states.get(d.id) !== d.state) (changed = true), this.changedDevices.push(d.id);
        this.states.set(d.id, d.state);
      }
      for (const c of this.db.prepare("SELECT serial, status FROM certificates WHERE status != 'active'").all() as Array<{ serial: string; status: string }>) {
        changed = this.setStatus(c.serial, c.status) || changed;
      }
      return changed;
    })();
  }

  private apply(change: Change): boolean {
    switch (change.kind) {
      case 'device': {
        const row = this.deviceState_.get(change.key) as { state: DeviceState } | undefined;
        if (!row || this.states.get(change.key) === row.state) return false;
        this.states.set(change.key, row.state);
        this.changedDevices.push(change.key);
        return true;
      }
      case 'certificate':
      case 'revocation': {
        const row = this.certificateStatus.get(change.key) as { status: string } | undefined;
        return row ? this.setStatus(change.key, row.status) : false;
      }
      case 'crl':
        return false;
    }
  }

  private setStatus(serial: string, status: string): boolean {
    const set = status === 'revoked' ? this.revoked : status === 'superseded' ? this.superseded : undefined;
    if (!set || set.has(serial)) return false;
    set.add(serial);
    return true;
  }

  deviceState(id: string): DeviceState | undefined {
    return this.states.get(id);
  }

  isRevoked(serial: string): boolean {
    return this.revoked.has(serial);
  }

  isSuperseded(serial: string): boolean {
    return this.superseded.has(serial);
  }

  onChange(listener: (devices: string[]) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    clearInterval(this.timer);
    if (this.db.open) this.db.close();
  }
}
