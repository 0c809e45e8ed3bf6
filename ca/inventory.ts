/**
 * The CA inventory: an embedded SQLite database in WAL mode with synchronous=FULL, so a committed issuance survives
 * a crash or power loss, and an uncommitted one leaves no trace. Several processes (the gateway and CLI commands)
 * share it; SQLite's locking serialises their writes.
 */
import Database from 'better-sqlite3';
import { openPrivateDatabase } from '../lib/sqlite.js';
import type { DeviceState } from '../protocol/index.js';
import type { CertificateKind } from './profile.js';

export type CertificateStatus = 'active' | 'superseded' | 'revoked';

export interface DeviceRow {
  id: string;
  state: DeviceState;
  tags: string[];
  createdAt: string;
  updatedAt: string;
}

export interface CertificateRow {
  serial: string;
  deviceId: string | null;
  kind: CertificateKind;
  commonName: string;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  status: CertificateStatus;
  replacedBy: string | null;
  issuedAt: string;
  der: Buffer;
}

export interface TokenRow {
  hash: string;
  deviceId: string;
  expiresAt: string;
  usedAt: string | null;
}

export interface RevocationRow {
  serial: string;
  revokedAt: string;
  reason: string;
}

export interface CrlRow {
  number: number;
  thisUpdate: string;
  nextUpdate: string;
  der: Buffer;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('unclaimed','active','quarantined','revoked')),
  tags TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  tpm_key BLOB
);
CREATE TABLE IF NOT EXISTS certificates (
  serial TEXT PRIMARY KEY,
  device_id TEXT REFERENCES devices(id),
  kind TEXT NOT NULL CHECK (kind IN ('device','server','service')),
  common_name TEXT NOT NULL,
  not_before TEXT NOT NULL,
  not_after TEXT NOT NULL,
  fingerprint TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL CHECK (status IN ('active','superseded','revoked')),
  replaced_by TEXT REFERENCES certificates(serial),
  issued_at TEXT NOT NULL,
  der BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_device ON certificates(device_id);
CREATE TABLE IF NOT EXISTS tokens (
  hash TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT
);
CREATE TABLE IF NOT EXISTS revocations (
  serial TEXT PRIMARY KEY REFERENCES certificates(serial),
  revoked_at TEXT NOT NULL,
  reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crls (
  number INTEGER PRIMARY KEY,
  this_update TEXT NOT NULL,
  next_update TEXT NOT NULL,
  der BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_state ON devices(state, created_at);
-- The change feed: every write to what followers (the broker's trust source, the Mosquitto sync) mirror appends
-- (seq, kind, key) in the same transaction. Triggers, so that no code path, CLI or recovery, can forget it.
-- AUTOINCREMENT: seq never goes back, and a rolled-back write leaves no gap (the sequence rolls back with it).
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL CHECK (kind IN ('device','certificate','revocation','crl')),
  key TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS device_inserted AFTER INSERT ON devices BEGIN INSERT INTO changes (kind, key) VALUES ('device', NEW.id); END;
CREATE TRIGGER IF NOT EXISTS device_updated AFTER UPDATE ON devices BEGIN INSERT INTO changes (kind, key) VALUES ('device', NEW.id); END;
CREATE TRIGGER IF NOT EXISTS certificate_inserted AFTER INSERT ON certificates BEGIN INSERT INTO changes (kind, key) VALUES ('certificate', NEW.serial); END;
CREATE TRIGGER IF NOT EXISTS certificate_updated AFTER UPDATE ON certificates BEGIN INSERT INTO changes (kind, key) VALUES ('certificate', NEW.serial); END;
CREATE TRIGGER IF NOT EXISTS revocation_inserted AFTER INSERT ON revocations BEGIN INSERT INTO changes (kind, key) VALUES ('revocation', NEW.serial); END;
CREATE TRIGGER IF NOT EXISTS crl_inserted AFTER INSERT ON crls BEGIN INSERT INTO changes (kind, key) VALUES ('crl', NEW.number); END;
`;

const AUDIT_SCHEMA = `
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  device TEXT,
  target TEXT,
  outcome TEXT NOT NULL CHECK (outcome IN ('ok','refused')),
  detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_device ON audit(device, seq);
-- Append-only: an audit log that can be edited proves nothing.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

export interface AuditEntry {
  seq: number;
  time: string;
  /** Who: `local:{os user}` for the CLI on the gateway's host (certificate identities later). */
  actor: string;
  action: string;
  device: string | null;
  /** What else the action was about (a serial, a service name), never a secret. */
  target: string | null;
  outcome: 'ok' | 'refused';
  detail: string | null;
}

/** Feed rows kept; a follower further behind than this reloads everything (ca/feed.ts says so). */
export const CHANGES_KEPT = 100_000;

type Raw = Record<string, unknown>;
const asDevice = (r: Raw): DeviceRow => ({
  id: r.id as string,
  state: r.state as DeviceState,
  tags: JSON.parse(r.tags as string) as string[],
  createdAt: r.created_at as string,
  updatedAt: r.updated_at as string,
});
const asCertificate = (r: Raw): CertificateRow => ({
  serial: r.serial as string,
  deviceId: (r.device_id as string | null) ?? null,
  kind: r.kind as CertificateKind,
  commonName: r.common_name as string,
  notBefore: r.not_before as string,
  notAfter: r.not_after as string,
  fingerprint: r.fingerprint as string,
  status: r.status as CertificateStatus,
  replacedBy: (r.replaced_by as string | null) ?? null,
  issuedAt: r.issued_at as string,
  der: r.der as Buffer,
});

export class Inventory {
  readonly db: Database.Database;

  /** Files wott could not make private (0600), for a warning. */
  readonly modeProblems: string[];

  constructor(readonly path: string) {
    ({ db: this.db, modeProblems: this.modeProblems } = openPrivateDatabase(path, 'CA inventory', (db) => {
      db.pragma('busy_timeout = 10000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.exec(SCHEMA);
      db.exec(AUDIT_SCHEMA);
      const columns = db.prepare('PRAGMA table_info(devices)').all() as Array<{ name: string }>;
      if (!columns.some((c) => c.name === 'tpm_key')) db.exec('ALTER TABLE devices ADD COLUMN tpm_key BLOB');
    }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Runs `fn` in one IMMEDIATE transaction (takes the write lock first, so concurrent writers queue, not fail). */
  transaction<T>(fn: () => T): T {
    const result = this.db.transaction(fn).immediate();
    // Followers in this process (the broker's trust source) are woken at once, not at their next poll. Deferred, so
    // that their enforcement never runs inside the writer's own call.
    if (this.commitListeners.length > 0 && !this.db.inTransaction) setImmediate(() => this.commitListeners.forEach((l) => l()));
    return result;
  }

  private readonly commitListeners: Array<() => void> = [];

  /** Called (deferred) after each transaction this connection commits. */
  onCommit(listener: () => void): void {
    this.commitListeners.push(listener);
  }

  /** Changes whenever another connection commits: a cheap way for the gateway to notice CLI commands. */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  // --- devices
  device(id: string): DeviceRow | undefined {
    const row = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as Raw | undefined;
    return row && asDevice(row);
  }

  devices(): DeviceRow[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY id').all() as Raw[]).map(asDevice);
  }

  /** How many devices are in `state` (indexed). */
  countDevices(state: DeviceState): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM devices WHERE state = ?').get(state) as { n: number }).n;
  }

  /** Ids of devices in `state` created at or before `createdBefore` (ISO time), oldest first. */
  devicesCreatedBefore(state: DeviceState, createdBefore: string): string[] {
    return (
      this.db.prepare('SELECT id FROM devices WHERE state = ? AND created_at <= ? ORDER BY created_at, id').all(state, createdBefore) as Array<{ id: string }>
    ).map((r) => r.id);
  }

  /** Creation time (ISO) of the oldest device in `state`, if any. */
  oldestCreated(state: DeviceState): string | undefined {
    const r = this.db.prepare('SELECT MIN(created_at) AS at FROM devices WHERE state = ?').get(state) as { at: string | null };
    return r.at ?? undefined;
  }

  upsertDevice(id: string, state: DeviceState, now: string): void {
    this.db
      .prepare(
        `INSERT INTO devices (id, state, created_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
      )
      .run(id, state, now, now);
  }

  /** The device's recorded TPM public key (DER SPKI), if it enrolled with one. */
  tpmKey(id: string): Buffer | undefined {
    const row = this.db.prepare('SELECT tpm_key FROM devices WHERE id = ?').get(id) as { tpm_key: Buffer | null } | undefined;
    return row?.tpm_key ?? undefined;
  }

  setTpmKey(id: string, spki: Buffer | null): void {
    this.db.prepare('UPDATE devices SET tpm_key = ? WHERE id = ?').run(spki, id);
  }

  setDeviceTags(id: string, tags: string[], now: string): void {
    this.db.prepare('UPDATE devices SET tags = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(tags), now, id);
  }

  // --- certificates
  insertCertificate(row: Omit<CertificateRow, 'replacedBy' | 'status'>): void {
    this.db
      .prepare(
        `INSERT INTO certificates (serial, device_id, kind, common_name, not_before, not_after, fingerprint, status,
           replaced_by, issued_at, der) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', NULL, ?, ?)`,
      )
      .run(row.serial, row.deviceId, row.kind, row.commonName, row.notBefore, row.notAfter, row.fingerprint, row.issuedAt, row.der);
  }

  certificate(serial: string): CertificateRow | undefined {
    const row = this.db.prepare('SELECT * FROM certificates WHERE serial = ?').get(serial) as Raw | undefined;
    return row && asCertificate(row);
  }

  certificates(filter: { deviceId?: string; status?: CertificateStatus } = {}): CertificateRow[] {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.deviceId !== undefined) (where.push('device_id = ?'), args.push(filter.deviceId));
    if (filter.status !== undefined) (where.push('status = ?'), args.push(filter.status));
    const sql = `SELECT * FROM certificates ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY issued_at, serial`;
    return (this.db.prepare(sql).all(...args) as Raw[]).map(asCertificate);
  }

  supersede(serial: string, replacedBy: string): void {
    this.db
      .prepare(`UPDATE certificates SET status = 'superseded', replaced_by = ? WHERE serial = ? AND status = 'active'`)
      .run(replacedBy, serial);
  }

  // --- revocation
  revoke(serial: string, reason: string, now: string): boolean {
    const changed = this.db
      .prepare(`UPDATE certificates SET status = 'revoked' WHERE serial = ? AND status != 'revoked'`)
      .run(serial).changes;
    if (changed) this.db.prepare('INSERT INTO revocations (serial, revoked_at, reason) VALUES (?, ?, ?)').run(serial, now, reason);
    return changed > 0;
  }

  revocations(): RevocationRow[] {
    return (this.db.prepare('SELECT serial, revoked_at, reason FROM revocations ORDER BY revoked_at, serial').all() as Raw[]).map(
      (r) => ({ serial: r.serial as string, revokedAt: r.revoked_at as string, reason: r.reason as string }),
    );
  }

  revocation(serial: string): RevocationRow | undefined {
    const r = this.db.prepare('SELECT serial, revoked_at, reason FROM revocations WHERE serial = ?').get(serial) as Raw | undefined;
    return r && { serial: r.serial as string, revokedAt: r.revoked_at as string, reason: r.reason as string };
  }

  revocationCount(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM revocations').get() as { n: number }).n;
  }

  // --- tokens
  insertToken(hash: string, deviceId: string, now: string, expiresAt: string): void {
    this.db.prepare('INSERT INTO tokens (hash, device_id, created_at, expires_at) VALUES (?, ?, ?, ?)').run(hash, deviceId, now, expiresAt);
  }

  token(hash: string): TokenRow | undefined {
    const r = this.db.prepare('SELECT * FROM tokens WHERE hash = ?').get(hash) as Raw | undefined;
    return r && { hash: r.hash as string, deviceId: r.device_id as string, expiresAt: r.expires_at as string, usedAt: (r.used_at as string | null) ?? null };
  }

  markTokenUsed(hash: string, now: string): void {
    this.db.prepare('UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL').run(now, hash);
  }

  // --- audit log
  appendAudit(entry: Omit<AuditEntry, 'seq'>): void {
    this.db
      .prepare('INSERT INTO audit (time, actor, action, device, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(entry.time, entry.actor, entry.action, entry.device, entry.target, entry.outcome, entry.detail);
  }

  auditEntries(filter: { device?: string } = {}): AuditEntry[] {
    const rows =
      filter.device === undefined
        ? this.db.prepare('SELECT * FROM audit ORDER BY seq').all()
        : this.db.prepare('SELECT * FROM audit WHERE device = ? ORDER BY seq').all(filter.device);
    return rows as AuditEntry[];
  }

  // --- CRLs
  latestCrl(): CrlRow | undefined {
    const r = this.db.prepare('SELECT * FROM crls ORDER BY number DESC LIMIT 1').get() as Raw | undefined;
    return r && { number: r.number as number, thisUpdate: r.this_update as string, nextUpdate: r.next_update as string, der: r.der as Buffer };
  }

  insertCrl(row: CrlRow): void {
    this.db.prepare('INSERT INTO crls (number, this_update, next_update, der) VALUES (?, ?, ?, ?)').run(row.number, row.thisUpdate, row.nextUpdate, row.der);
    // Old CRLs are not needed once a newer one exists; keep a few for forensics.
    this.db.prepare('DELETE FROM crls WHERE number < ?').run(row.number - 10);
    // The feed is pruned as the CRL is refreshed (at least daily): followers this far behind reload in full.
    this.db.prepare('DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes) - ?').run(CHANGES_KEPT);
  }
}
