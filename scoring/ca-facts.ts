/**
 * What the CA inventory says about a device (state, TPM-held key, current certificate), read-only beside a
 * running CA. These are facts the device can not fake, so they override its own telemetry.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaFacts } from './factors.js';

export class InventoryFacts {
  private readonly db: Database.Database;
  private readonly deviceQuery: Database.Statement;
  private readonly certQuery: Database.Statement;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, 'inventory.db'), { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 2000');
    this.deviceQuery = this.db.prepare('SELECT state, tpm_key IS NOT NULL AS tpm FROM devices WHERE id = ?');
    this.certQuery = this.db.prepare("SELECT not_before, not_after FROM certificates WHERE device_id = ? AND kind = 'device' AND status = 'active' ORDER BY not_before DESC LIMIT 1");
  }

  /** undefined when the inventory does not exist (scoring running on a host without the CA). */
  static openIfPresent(dataDir: string): InventoryFacts | undefined {
    return existsSync(join(dataDir, 'inventory.db')) ? new InventoryFacts(dataDir) : undefined;
  }

  facts(device: string): CaFacts | undefined {
    const d = this.deviceQuery.get(device) as { state: CaFacts['state']; tpm: number } | undefined;
    if (!d) return undefined;
    const c = this.certQuery.get(device) as { not_before: string; not_after: string } | undefined;
    return {
      state: d.state,
      tpm: d.tpm === 1,
      ...(c ? { certificate: { notBefore: Date.parse(c.not_before), notAfter: Date.parse(c.not_after) } } : {}),
    };
  }

  close(): void {
    this.db.close();
  }
}
