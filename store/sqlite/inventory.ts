/**
 * The inventory on SQLite (better-sqlite3), WAL mode with synchronous=FULL: a committed transaction survives a
 * crash or power loss, an uncommitted one leaves no trace. Several processes (the gateway and CLI commands) share
 * the file; SQLite's locking serialises their writes (BEGIN IMMEDIATE waits up to busy_timeout for the lock).
 *
 * better-sqlite3 is synchronous and one connection has one transaction, so the asynchronous interface runs one
 * operation at a time per connection: a transaction holds the connection across its awaits, and reads from
 * outside it wait until it ends (they would otherwise see its uncommitted writes).
 */
import type Database from 'better-sqlite3';
import type { DeviceState } from '../../protocol/index.js';
import { openPrivateDatabase } from './open.js';
import { CHANGES_KEPT, type Change, type ChangeFeed } from '../feed.js';
import { StoreUnavailableError } from '../errors.js';
import type {
  AuditEntry,
  CertificateFilter,
  CertificateRow,
  CertificateSummary,
  CrlRow,
  DeviceRow,
  InventoryReads,
  InventorySnapshot,
  InventoryStore,
  InventoryTransaction,
  RevocationRow,
  TokenRow,
} from '../inventory.js';
import { migrate, type Migration } from './migrate.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'devices, certificates, tokens, revocations, CRLs, change feed, audit log',
    up: (db) => {
      db.exec(`
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
-- The change feed. Triggers, so that no code path can forget it. AUTOINCREMENT: seq never goes back, and a
-- rolled-back write leaves no gap (the sequence rolls back with it).
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
`);
      // Files from before the TPM column (made without migrations) get it here.
      const columns = db.prepare('PRAGMA table_info(devices)').all() as Array<{ name: string }>;
      if (!columns.some((c) => c.name === 'tpm_key')) db.exec('ALTER TABLE devices ADD COLUMN tpm_key BLOB');
    },
  },
];

type Raw = Record<string, unknown>;
const asDevice = (r: Raw): DeviceRow => ({
  id: r.id as string,
  state: r.state as DeviceState,
  tags: JSON.parse(r.tags as string) as string[],
  createdAt: r.created_at as string,
  updatedAt: r.updated_at as string,
  tpmKey: (r.tpm_key as Buffer | null) ?? null,
});
const asSummary = (r: Raw): CertificateSummary => ({
  serial: r.serial as string,
  deviceId: (r.device_id as string | null) ?? null,
  kind: r.kind as CertificateSummary['kind'],
  commonName: r.common_name as string,
  notBefore: r.not_before as string,
  notAfter: r.not_after as string,
  fingerprint: r.fingerprint as string,
  status: r.status as CertificateSummary['status'],
  replacedBy: (r.replaced_by as string | null) ?? null,
  issuedAt: r.issued_at as string,
});
const asCertificate = (r: Raw): CertificateRow => ({ ...asSummary(r), der: r.der as Buffer });
const SUMMARY_COLUMNS = 'serial, device_id, kind, common_name, not_before, not_after, fingerprint, status, replaced_by, issued_at';

/** How long a writer waits for another connection's write lock before giving up (ms). */
const LOCK_WAIT_MS = 10_000;

export interface SqliteInventoryOptions {
  /** How often other processes' commits are looked for while someone follows the feed (ms). */
  pollMs?: number;
}

/** The synchronous queries; the store wraps them in promises and the one-at-a-time rule. */
class Queries {
  private readonly statements = new Map<string, Database.Statement>();
  constructor(private readonly db: Database.Database) {}

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  device(id: string): DeviceRow | undefined {
    const row = this.stmt('SELECT * FROM devices WHERE id = ?').get(id) as Raw | undefined;
    return row && asDevice(row);
  }
  devices(): DeviceRow[] {
    return (this.stmt('SELECT * FROM devices ORDER BY id').all() as Raw[]).map(asDevice);
  }
  countDevices(state: DeviceState): number {
    return (this.stmt('SELECT COUNT(*) AS n FROM devices WHERE state = ?').get(state) as { n: number }).n;
  }
  devicesCreatedBefore(state: DeviceState, createdBefore: string): string[] {
    return (this.stmt('SELECT id FROM devices WHERE state = ? AND created_at <= ? ORDER BY created_at, id').all(state, createdBefore) as Array<{ id: string }>).map((r) => r.id);
  }
  oldestCreated(state: DeviceState): string | undefined {
    return (this.stmt('SELECT MIN(created_at) AS at FROM devices WHERE state = ?').get(state) as { at: string | null }).at ?? undefined;
  }
  certificate(serial: string): CertificateRow | undefined {
    const row = this.stmt('SELECT * FROM certificates WHERE serial = ?').get(serial) as Raw | undefined;
    return row && asCertificate(row);
  }
  certificates(filter: CertificateFilter = {}): CertificateRow[] {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.deviceId !== undefined) (where.push('device_id = ?'), args.push(filter.deviceId));
    if (filter.status !== undefined) (where.push('status = ?'), args.push(filter.status));
    if (filter.kind !== undefined) (where.push('kind = ?'), args.push(filter.kind));
    const sql = `SELECT * FROM certificates ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY issued_at, serial`;
    return (this.stmt(sql).all(...args) as Raw[]).map(asCertificate);
  }
  certificateSummaries(serials: string[]): CertificateSummary[] {
    const out: CertificateSummary[] = [];
    const one = this.stmt(`SELECT ${SUMMARY_COLUMNS} FROM certificates WHERE serial = ?`);
    for (const serial of serials) {
      const row = one.get(serial) as Raw | undefined;
      if (row) out.push(asSummary(row));
    }
    return out;
  }
  revocation(serial: string): RevocationRow | undefined {
    const r = this.stmt('SELECT serial, revoked_at, reason FROM revocations WHERE serial = ?').get(serial) as Raw | undefined;
    return r && { serial: r.serial as string, revokedAt: r.revoked_at as string, reason: r.reason as string };
  }
  revocations(): RevocationRow[] {
    return (this.stmt('SELECT serial, revoked_at, reason FROM revocations ORDER BY revoked_at, serial').all() as Raw[]).map((r) => ({
      serial: r.serial as string,
      revokedAt: r.revoked_at as string,
      reason: r.reason as string,
    }));
  }
  revocationCount(): number {
    return (this.stmt('SELECT COUNT(*) AS n FROM revocations').get() as { n: number }).n;
  }
  token(hash: string): TokenRow | undefined {
    const r = this.stmt('SELECT * FROM tokens WHERE hash = ?').get(hash) as Raw | undefined;
    return r && { hash: r.hash as string, deviceId: r.device_id as string, expiresAt: r.expires_at as string, usedAt: (r.used_at as string | null) ?? null };
  }
  tokens(filter: { deviceId?: string } = {}): TokenRow[] {
    const rows = (
      filter.deviceId === undefined
        ? this.stmt('SELECT * FROM tokens ORDER BY created_at, hash').all()
        : this.stmt('SELECT * FROM tokens WHERE device_id = ? ORDER BY created_at, hash').all(filter.deviceId)
    ) as Raw[];
    return rows.map((r) => ({ hash: r.hash as string, deviceId: r.device_id as string, expiresAt: r.expires_at as string, usedAt: (r.used_at as string | null) ?? null }));
  }
  latestCrl(): CrlRow | undefined {
    const r = this.stmt('SELECT * FROM crls ORDER BY number DESC LIMIT 1').get() as Raw | undefined;
    return r && { number: r.number as number, thisUpdate: r.this_update as string, nextUpdate: r.next_update as string, der: r.der as Buffer };
  }
  auditEntries(filter: { device?: string } = {}): AuditEntry[] {
    return (
      filter.device === undefined ? this.stmt('SELECT * FROM audit ORDER BY seq').all() : this.stmt('SELECT * FROM audit WHERE device = ? ORDER BY seq').all(filter.device)
    ) as AuditEntry[];
  }
  isEmpty(): boolean {
    return !this.stmt('SELECT 1 FROM certificates UNION ALL SELECT 1 FROM devices UNION ALL SELECT 1 FROM tokens LIMIT 1').get();
  }
  feedHead(): number {
    return (this.stmt('SELECT max(seq) AS seq FROM changes').get() as { seq: number | null }).seq ?? 0;
  }
  changesAfter(seq: number, limit: number): Change[] | 'reload' {
    const rows = this.stmt('SELECT seq, kind, key FROM changes WHERE seq > ? ORDER BY seq LIMIT ?').all(seq, limit) as Change[];
    // Seqs have no gaps (one writer at a time commits whole transactions, and a rollback takes its seqs back), so a
    // gap right after `seq` means the rows were pruned.
    if (rows.length > 0 && rows[0]!.seq !== seq + 1) return 'reload';
    return rows;
  }

  // writes
  upsertDevice(id: string, state: DeviceState, now: string): void {
    this.stmt(
      `INSERT INTO devices (id, state, created_at, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
    ).run(id, state, now, now);
  }
  setTpmKey(id: string, spki: Buffer | null): void {
    this.stmt('UPDATE devices SET tpm_key = ? WHERE id = ?').run(spki, id);
  }
  setDeviceTags(id: string, tags: string[], now: string): void {
    this.stmt('UPDATE devices SET tags = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(tags), now, id);
  }
  insertCertificate(row: Omit<CertificateRow, 'replacedBy' | 'status'>): void {
    this.stmt(
      `INSERT INTO certificates (serial, device_id, kind, common_name, not_before, not_after, fingerprint, status,
         replaced_by, issued_at, der) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', NULL, ?, ?)`,
    ).run(row.serial, row.deviceId, row.kind, row.commonName, row.notBefore, row.notAfter, row.fingerprint, row.issuedAt, row.der);
  }
  supersede(serial: string, replacedBy: string): void {
    this.stmt(`UPDATE certificates SET status = 'superseded', replaced_by = ? WHERE serial = ? AND status = 'active'`).run(replacedBy, serial);
  }
  revoke(serial: string, reason: string, now: string): boolean {
    const changed = this.stmt(`UPDATE certificates SET status = 'revoked' WHERE serial = ? AND status != 'revoked'`).run(serial).changes;
    if (changed) this.stmt('INSERT INTO revocations (serial, revoked_at, reason) VALUES (?, ?, ?)').run(serial, now, reason);
    return changed > 0;
  }
  insertToken(hash: string, deviceId: string, now: string, expiresAt: string): void {
    this.stmt('INSERT INTO tokens (hash, device_id, created_at, expires_at) VALUES (?, ?, ?, ?)').run(hash, deviceId, now, expiresAt);
  }
  useToken(hash: string, now: string): boolean {
    return this.stmt('UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL').run(now, hash).changes === 1;
  }
  appendAudit(e: Omit<AuditEntry, 'seq'>): void {
    this.stmt('INSERT INTO audit (time, actor, action, device, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
      e.time,
      e.actor,
      e.action,
      e.device,
      e.target,
      e.outcome,
      e.detail,
    );
  }
  insertCrl(row: CrlRow): void {
    this.stmt('INSERT INTO crls (number, this_update, next_update, der) VALUES (?, ?, ?, ?)').run(row.number, row.thisUpdate, row.nextUpdate, row.der);
    // Old CRLs are not needed once a newer one exists; keep a few for forensics.
    this.stmt('DELETE FROM crls WHERE number < ?').run(row.number - 10);
    // The feed is pruned as the CRL is refreshed (at least daily): followers this far behind reload in full.
    this.stmt('DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes) - ?').run(CHANGES_KEPT);
  }
  snapshot(now: string): InventorySnapshot {
    return this.db.transaction(() => ({
      seq: this.feedHead(),
      devices: this.devices(),
      certificates: (this.stmt(`SELECT ${SUMMARY_COLUMNS} FROM certificates WHERE not_after > ?`).all(now) as Raw[]).map(asSummary),
    }))();
  }
}

const READS = [
  'device',
  'devices',
  'countDevices',
  'devicesCreatedBefore',
  'oldestCreated',
  'certificate',
  'certificates',
  'revocation',
  'revocations',
  'revocationCount',
  'token',
  'tokens',
  'latestCrl',
  'auditEntries',
  'isEmpty',
] as const satisfies ReadonlyArray<keyof InventoryReads>;
const WRITES = ['upsertDevice', 'setTpmKey', 'setDeviceTags', 'insertCertificate', 'supersede', 'revoke', 'insertToken', 'useToken', 'appendAudit', 'insertCrl'] as const;

/** Most transactions sharing one COMMIT: bounds how long the first of a group waits for the last. */
const MAX_GROUP = 64;

interface PendingTransaction {
  fn: (tx: InventoryTransaction) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class SqliteInventoryStore implements InventoryStore {
  readonly feed: ChangeFeed;
  /** Files wott could not make private (0600), for a warning. */
  readonly modeProblems: string[];
  private readonly db: Database.Database;
  private readonly q: Queries;
  private readonly tx: InventoryTransaction;
  /** The end of the last operation queued on this connection. */
  private tail: Promise<unknown> = Promise.resolve();
  private busy = 0;
  /** Transactions waiting for the next group (see transaction). */
  private pending: PendingTransaction[] = [];
  private draining = false;
  private readonly wakeListeners = new Set<() => void>();
  private pollTimer: NodeJS.Timeout | undefined;
  private dataVersion = -1;
  private readonly pollMs: number;

  // Read methods, bound below (the interface's InventoryReads, each waiting for a running transaction).
  declare device: InventoryReads['device'];
  declare devices: InventoryReads['devices'];
  declare countDevices: InventoryReads['countDevices'];
  declare devicesCreatedBefore: InventoryReads['devicesCreatedBefore'];
  declare oldestCreated: InventoryReads['oldestCreated'];
  declare certificate: InventoryReads['certificate'];
  declare certificates: InventoryReads['certificates'];
  declare revocation: InventoryReads['revocation'];
  declare revocations: InventoryReads['revocations'];
  declare revocationCount: InventoryReads['revocationCount'];
  declare token: InventoryReads['token'];
  declare tokens: InventoryReads['tokens'];
  declare latestCrl: InventoryReads['latestCrl'];
  declare auditEntries: InventoryReads['auditEntries'];
  declare isEmpty: InventoryReads['isEmpty'];

  constructor(
    readonly location: string,
    options: SqliteInventoryOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 200;
    ({ db: this.db, modeProblems: this.modeProblems } = openPrivateDatabase(location, 'CA inventory', (db) => {
      db.pragma(`busy_timeout = ${LOCK_WAIT_MS}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db, MIGRATIONS, `CA inventory ${location}`);
    }));
    this.q = new Queries(this.db);
    const store = this as unknown as Record<string, unknown>;
    for (const name of READS) {
      const query = (this.q[name] as (...a: unknown[]) => unknown).bind(this.q);
      store[name] = (...args: unknown[]) => this.read(() => query(...args));
    }
    const tx: Record<string, unknown> = {};
    for (const name of [...READS, ...WRITES]) {
      const query = (this.q[name] as (...a: unknown[]) => unknown).bind(this.q);
      tx[name] = (...args: unknown[]) => {
        // A transaction object used after its transaction ended would write outside any transaction.
        if (!this.db.inTransaction) return Promise.reject(new Error(`inventory: ${name}() called outside its transaction`));
        try {
          return Promise.resolve(query(...args));
        } catch (err) {
          return Promise.reject(err as Error);
        }
      };
    }
    this.tx = tx as unknown as InventoryTransaction;
    this.feed = {
      head: () => this.read(() => this.q.feedHead()),
      after: (seq, limit = 10_000) => this.read(() => this.q.changesAfter(seq, limit)),
      onWake: (listener) => this.onWake(listener),
    };
  }

  /** Runs `fn` once no transaction holds the connection. */
  private exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = async () => {
      this.busy++;
      try {
        return await fn();
      } finally {
        this.busy--;
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private read<T>(fn: () => T): Promise<T> {
    if (!this.db.open) return Promise.reject(new Error(`the CA inventory ${this.location} is closed`));
    // Nothing running: answer now (committed data only, since no transaction is open on this connection).
    if (this.busy === 0 && !this.db.inTransaction) {
      try {
        return Promise.resolve(fn());
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return this.exclusive(fn);
  }

  /**
   * Group commit: transactions queued while one runs share its SQLite transaction and its one COMMIT (one fsync
   * with synchronous=FULL instead of one each). Each runs inside its own SAVEPOINT, so a failing one is rolled back
   * alone and rejects at once; the others resolve only after the shared COMMIT, so a caller still never sees a
   * result (e.g. a certificate to hand out) before it is durable. A failed COMMIT rejects every one of the group.
   */
  transaction<T>(fn: (tx: InventoryTransaction) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn: fn as (tx: InventoryTransaction) => Promise<unknown>, resolve: resolve as (v: unknown) => void, reject });
      this.startDrain();
    });
  }

  /**
   * Queues a drain now (so it keeps its place before a later close or read) that starts after this turn of the
   * event loop, so transactions queued by the other requests handled in this turn join its group.
   */
  private startDrain(): void {
    if (this.draining) return;
    this.draining = true;
    void this.exclusive(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      await this.drain();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) await this.runGroup();
    } finally {
      this.draining = false;
      if (this.pending.length > 0) this.startDrain();
    }
  }

  private async runGroup(): Promise<void> {
    const done: Array<{ job: PendingTransaction; value: unknown }> = [];
    const failAll = (err: unknown) => {
      for (const d of done) d.job.reject(err);
      done.length = 0;
    };
    try {
      if (!this.db.open) throw new Error(`the CA inventory ${this.location} is closed`);
      await this.begin();
    } catch (err) {
      for (const job of this.pending.splice(0)) job.reject(err);
      return;
    }
    // Taken once the write lock is held: whatever queued while waiting for it joins this group.
    const jobs = this.pending.splice(0, MAX_GROUP);
    for (const [i, job] of jobs.entries()) {
      if (!this.db.inTransaction) {
        // SQLite ended the transaction on an earlier failure (it does for some errors): the group's writes are
        // gone, so the finished ones fail too, and the rest start a new group.
        failAll(new Error('inventory: the shared transaction was rolled back by an error in another one'));
        this.pending.unshift(...jobs.slice(i));
        return;
      }
      this.db.exec('SAVEPOINT wott_tx');
      try {
        const value = await job.fn(this.tx);
        this.db.exec('RELEASE wott_tx');
        done.push({ job, value });
      } catch (err) {
        if (this.db.inTransaction) {
          this.db.exec('ROLLBACK TO wott_tx');
          this.db.exec('RELEASE wott_tx');
        }
        job.reject(err);
      }
    }
    try {
      if (this.db.inTransaction) this.db.exec('COMMIT');
      else if (done.length > 0) throw new Error('inventory: the shared transaction was rolled back by an error in another one');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      failAll(err);
      return;
    }
    this.wake();
    for (const d of done) d.job.resolve(d.value);
  }

  integrityCheck(): Promise<string[]> {
    return this.read(() => {
      const rows = this.db.pragma('integrity_check') as Array<{ integrity_check: string }>;
      const problems = rows.map((r) => r.integrity_check).filter((m) => m !== 'ok');
      const keys = this.db.pragma('foreign_key_check') as unknown[];
      if (keys.length) problems.push(`${keys.length} row(s) violate a foreign key`);
      return problems;
    });
  }

  async backup(destination: string): Promise<void> {
    // Outside the one-at-a-time queue's transactions: the backup API copies a consistent snapshot page by page.
    await this.exclusive(() => this.db.backup(destination));
  }

  /**
   * BEGIN IMMEDIATE (the write lock first, so concurrent writers queue rather than fail half-way). While another
   * connection holds the lock we wait without blocking the event loop: SQLite's own busy wait would stall this
   * whole process, and deadlock outright when the holder is another connection in this same process.
   */
  private async begin(): Promise<void> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
      this.db.pragma('busy_timeout = 0');
      try {
        this.db.exec('BEGIN IMMEDIATE');
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
        // Another process kept the write lock all that time (a long backup, a stuck tool): nothing was written,
        // so callers answer "later" (EST: 503 with Retry-After), as they do when PostgreSQL is unreachable.
        if (Date.now() >= deadline) throw new StoreUnavailableError(`the inventory database stayed locked by another connection for ${LOCK_WAIT_MS / 1000} s`);
      } finally {
        this.db.pragma(`busy_timeout = ${LOCK_WAIT_MS}`);
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  snapshot(now: Date): Promise<InventorySnapshot> {
    return this.read(() => this.q.snapshot(now.toISOString()));
  }

  certificateSummaries(serials: string[]): Promise<CertificateSummary[]> {
    return this.read(() => this.q.certificateSummaries(serials));
  }

  /** Followers in this process are woken at once (deferred, so that they never run inside the writer's call). */
  private wake(): void {
    if (this.wakeListeners.size > 0) setImmediate(() => this.wakeListeners.forEach((l) => l()));
  }

  private onWake(listener: () => void): () => void {
    this.wakeListeners.add(listener);
    if (!this.pollTimer) {
      this.dataVersion = this.db.pragma('data_version', { simple: true }) as number;
      // data_version changes when another connection (another process) commits; our own commits wake directly.
      this.pollTimer = setInterval(() => {
        if (!this.db.open) return;
        const version = this.db.pragma('data_version', { simple: true }) as number;
        if (version === this.dataVersion) return;
        this.dataVersion = version;
        this.wakeListeners.forEach((l) => l());
      }, this.pollMs);
      this.pollTimer.unref();
    }
    return () => {
      this.wakeListeners.delete(listener);
      if (this.wakeListeners.size === 0 && this.pollTimer) {
        clearInterval(this.pollTimer);
        this.pollTimer = undefined;
      }
    };
  }

  async close(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.wakeListeners.clear();
    await this.exclusive(() => {
      if (this.db.open) this.db.close();
    });
  }
}

/** Opens (creating and migrating) the inventory file at `path`. */
export function openSqliteInventory(path: string, options: SqliteInventoryOptions = {}): SqliteInventoryStore {
  return new SqliteInventoryStore(path, options);
}
