/**
 * What the broker needs to know from the CA, kept in memory so that no decision ever waits on I/O:
 * each device's lifecycle state and the set of revoked serials.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { DeviceState } from '../protocol/index.js';

export interface TrustSource {
  /** undefined: the device is not known to the CA (treated as active by the broker). */
  deviceState(id: string): DeviceState | undefined;
  isRevoked(serial: string): boolean;
  /** A certificate replaced by a newer one (renewed, or the device enrolled again): it no longer connects. */
  isSuperseded(serial: string): boolean;
  /** Called after the source has changed (a revocation, a quarantine, a claim ...). */
  onChange(listener: () => void): void;
  close(): void;
}

/** For Aedes users without a wott CA inventory: every device active, nothing revoked. */
export function staticTrustSource(states: Record<string, DeviceState> = {}, revoked: string[] = [], superseded: string[] = []): TrustSource {
  const set = new Set(revoked);
  const replaced = new Set(superseded);
  return { deviceState: (id) => states[id], isRevoked: (s) => set.has(s), isSuperseded: (s) => replaced.has(s), onChange: () => {}, close: () => {} };
}

/**
 * Follows the CA inventory (SQLite) read-only: polls `PRAGMA data_version` every `pollMs` and, when another
 * connection has committed, reloads the rows changed since the last load. CLI commands (revoke, quarantine,
 * release, claim) thus reach the broker within about `pollMs`.
 */
export class InventoryTrustSource implements TrustSource {
  private readonly db: Database.Database;
  private readonly states = new Map<string, DeviceState>();
  private readonly revoked = new Set<string>();
  private readonly superseded = new Set<string>();
  /** Highest certificates rowid seen: a certificate is superseded in the transaction that inserts its successor. */
  private lastCertificate = 0;
  private readonly listeners: Array<() => void> = [];
  private version = -1;
  private lastDeviceUpdate = '';
  private lastRevocation = '';
  private readonly timer: NodeJS.Timeout;

  constructor(dataDir: string, pollMs = 200) {
    const path = join(dataDir, 'inventory.db');
    try {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
      this.db.pragma('busy_timeout = 2000');
      this.db.pragma('schema_version'); // reads the header: a damaged file fails here, with its name below
    } catch (err) {
      throw new Error(`cannot open the CA inventory ${path}: ${(err as Error).message}`);
    }
    this.refresh();
    this.timer = setInterval(() => this.refresh(), pollMs);
    this.timer.unref();
  }

  /** Reloads if the inventory changed; returns whether anything was reloaded. */
  refresh(): boolean {
    const version = this.db.pragma('data_version', { simple: true }) as number;
    if (version === this.version) return false;
    this.version = version;
    const devices = this.db
      .prepare('SELECT id, state, updated_at FROM devices WHERE updated_at >= ? ORDER BY updated_at')
      .all(this.lastDeviceUpdate) as Array<{ id: string; state: DeviceState; updated_at: string }>;
    const revocations = this.db
      .prepare('SELECT serial, revoked_at FROM revocations WHERE revoked_at >= ? ORDER BY revoked_at')
      .all(this.lastRevocation) as Array<{ serial: string; revoked_at: string }>;
    // Successors inserted since the last load name the certificates they replaced.
    // (The bound is read first: a renewal committed between the two statements is then picked up next time.)
    const newest = (this.db.prepare('SELECT max(rowid) AS n FROM certificates').get() as { n: number | null }).n ?? 0;
    const replaced = this.db
      .prepare(
        `SELECT old.serial AS serial FROM certificates new JOIN certificates old ON old.replaced_by = new.serial
         WHERE new.rowid > ? AND new.rowid <= ?`,
      )
      .all(this.lastCertificate, newest) as Array<{ serial: string }>;
    let changed = false;
    for (const r of replaced) {
      if (!this.superseded.has(r.serial)) changed = true;
      this.superseded.add(r.serial);
    }
    this.lastCertificate = Math.max(this.lastCertificate, newest);
    for (const d of devices) {
      if (this.states.get(d.id) !== d.state) changed = true;
      this.states.set(d.id, d.state);
      this.lastDeviceUpdate = d.updated_at;
    }
    for (const r of revocations) {
      if (!this.revoked.has(r.serial)) changed = true;
      this.revoked.add(r.serial);
      this.lastRevocation = r.revoked_at;
    }
    if (changed) for (const listener of this.listeners) listener();
    return changed;
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

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    clearInterval(this.timer);
    if (this.db.open) this.db.close();
  }
}
