/**
 * The inventory on PostgreSQL, for several gateways sharing one fleet.
 *
 * Concurrency, chosen: every write transaction first takes one transaction-scoped advisory lock
 * (`pg_advisory_xact_lock(WOTT, 2)`) and then runs at READ COMMITTED. Inventory writers therefore run one at a
 * time across every pool and node, exactly as SQLite's BEGIN IMMEDIATE makes them, and each of their statements
 * sees every write committed before it: the credential checks done inside a transaction (token unused, certificate
 * still active and not yet renewed, CRL number = latest + 1) cannot be raced by another node, serials are unique by
 * primary key, and the change feed gets gap-free sequence numbers in commit order (a counter row, updated by
 * triggers, is held until commit). SERIALIZABLE would also be correct, but it fails conflicting transactions at
 * commit and the issuer would have to sign certificates again on every retry; one short lock per write costs less
 * here (a write transaction is a few statements) and never fails. Retries on 40001/40P01 stay (pool.ts), for a
 * database whose administrator set a stricter default.
 *
 * The feed: triggers append (seq, kind, key) to `changes` in the writing transaction and call pg_notify, which
 * PostgreSQL delivers at commit to every session that LISTENs. The notification is only a wake-up: followers read
 * from their seq, so one lost while a listener reconnects costs nothing (a reconnect wakes them too).
 *
 * Reads through the store (not `tx`) wait for the transactions this store object is running, as they do on SQLite:
 * a caller that wrote and then reads sees its own write.
 */
import pg from 'pg';
import type { DeviceState } from '../../protocol/index.js';
import { CHANGES_KEPT, type Change, type ChangeFeed, type ChangeKind } from '../feed.js';
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
import { LOCK_CLASS, migratePostgres, type PgMigration } from './migrate.js';
import { inTransaction, openPool, safeLocation, unavailable, type PostgresOptions } from './pool.js';

/** The inventory's write lock: (LOCK_CLASS, 2). */
export const LOCK_INVENTORY_WRITE = 2;
/** The NOTIFY channel (per database, as PostgreSQL scopes them). */
export const FEED_CHANNEL = 'wott_inventory_feed';

// Text columns compared or sorted use COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
const MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'devices, certificates, tokens, revocations, CRLs, change feed, audit log',
    up: `
CREATE TABLE devices (
  id TEXT COLLATE "C" PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('unclaimed','active','quarantined','revoked')),
  tags TEXT NOT NULL DEFAULT '[]',
  created_at TEXT COLLATE "C" NOT NULL,
  updated_at TEXT COLLATE "C" NOT NULL,
  tpm_key BYTEA
);
CREATE INDEX devices_state ON devices(state, created_at);
CREATE TABLE certificates (
  serial TEXT COLLATE "C" PRIMARY KEY,
  device_id TEXT COLLATE "C" REFERENCES devices(id),
  kind TEXT NOT NULL CHECK (kind IN ('device','server','service')),
  common_name TEXT NOT NULL,
  not_before TEXT COLLATE "C" NOT NULL,
  not_after TEXT COLLATE "C" NOT NULL,
  fingerprint TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL CHECK (status IN ('active','superseded','revoked')),
  replaced_by TEXT COLLATE "C" REFERENCES certificates(serial),
  issued_at TEXT COLLATE "C" NOT NULL,
  der BYTEA NOT NULL
);
CREATE INDEX certificates_device ON certificates(device_id);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE tokens (
  hash TEXT COLLATE "C" PRIMARY KEY,
  device_id TEXT COLLATE "C" NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL,
  expires_at TEXT COLLATE "C" NOT NULL,
  used_at TEXT
);
CREATE TABLE revocations (
  serial TEXT COLLATE "C" PRIMARY KEY REFERENCES certificates(serial),
  revoked_at TEXT COLLATE "C" NOT NULL,
  reason TEXT NOT NULL
);
CREATE TABLE crls (
  number BIGINT PRIMARY KEY,
  this_update TEXT NOT NULL,
  next_update TEXT NOT NULL,
  der BYTEA NOT NULL
);
-- A CRL number only grows, whoever writes.
CREATE FUNCTION wott_crl_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.number <= (SELECT coalesce(max(number), 0) FROM crls) THEN
    RAISE EXCEPTION 'CRL number % is not above the newest one: a CRL number only grows', NEW.number USING ERRCODE = 'unique_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER crl_grows BEFORE INSERT ON crls FOR EACH ROW EXECUTE FUNCTION wott_crl_grows();

-- The change feed. The counter row is locked by the first change of a transaction until its commit, so seqs are
-- gap-free (a rollback takes its seqs back) and in commit order.
CREATE TABLE feed_head (one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one), seq BIGINT NOT NULL);
INSERT INTO feed_head (seq) VALUES (0);
CREATE TABLE changes (
  seq BIGINT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('device','certificate','revocation','crl')),
  key TEXT NOT NULL
);
CREATE FUNCTION wott_feed_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE next BIGINT;
BEGIN
  UPDATE feed_head SET seq = seq + 1 RETURNING seq INTO next;
  INSERT INTO changes (seq, kind, key) VALUES (next, TG_ARGV[0], to_jsonb(NEW) ->> TG_ARGV[1]);
  -- One wake-up per transaction (same channel and payload are folded), delivered at commit.
  PERFORM pg_notify('${FEED_CHANNEL}', '');
  RETURN NULL;
END $$;
CREATE TRIGGER device_changed AFTER INSERT OR UPDATE ON devices FOR EACH ROW EXECUTE FUNCTION wott_feed_append('device', 'id');
CREATE TRIGGER certificate_changed AFTER INSERT OR UPDATE ON certificates FOR EACH ROW EXECUTE FUNCTION wott_feed_append('certificate', 'serial');
CREATE TRIGGER revocation_inserted AFTER INSERT ON revocations FOR EACH ROW EXECUTE FUNCTION wott_feed_append('revocation', 'serial');
CREATE TRIGGER crl_inserted AFTER INSERT ON crls FOR EACH ROW EXECUTE FUNCTION wott_feed_append('crl', 'number');

CREATE TABLE audit (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  device TEXT COLLATE "C",
  target TEXT,
  outcome TEXT NOT NULL CHECK (outcome IN ('ok','refused')),
  detail TEXT
);
CREATE INDEX audit_device ON audit(device, seq);
-- Append-only: an audit log that can be edited proves nothing.
CREATE FUNCTION wott_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION wott_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION wott_audit_append_only();
`,
  },
];

type Raw = Record<string, unknown>;
type Exec = (text: string, values?: unknown[]) => Promise<Raw[]>;

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
const asRevocation = (r: Raw): RevocationRow => ({ serial: r.serial as string, revokedAt: r.revoked_at as string, reason: r.reason as string });
const asToken = (r: Raw): TokenRow => ({ hash: r.hash as string, deviceId: r.device_id as string, expiresAt: r.expires_at as string, usedAt: (r.used_at as string | null) ?? null });
const asAudit = (r: Raw): AuditEntry => ({
  seq: Number(r.seq),
  time: r.time as string,
  actor: r.actor as string,
  action: r.action as string,
  device: (r.device as string | null) ?? null,
  target: (r.target as string | null) ?? null,
  outcome: r.outcome as AuditEntry['outcome'],
  detail: (r.detail as string | null) ?? null,
});
const SUMMARY_COLUMNS = 'serial, device_id, kind, common_name, not_before, not_after, fingerprint, status, replaced_by, issued_at';

/** The queries, on whatever runs them: the pool (reads outside a transaction) or one transaction's connection. */
class Queries implements InventoryReads {
  constructor(private readonly exec: Exec) {}

  async device(id: string) {
    const [row] = await this.exec('SELECT * FROM devices WHERE id = $1', [id]);
    return row && asDevice(row);
  }
  async devices() {
    return (await this.exec('SELECT * FROM devices ORDER BY id')).map(asDevice);
  }
  async countDevices(state: DeviceState) {
    return Number((await this.exec('SELECT count(*) AS n FROM devices WHERE state = $1', [state]))[0]!.n);
  }
  async devicesCreatedBefore(state: DeviceState, createdBefore: string) {
    return (await this.exec('SELECT id FROM devices WHERE state = $1 AND created_at <= $2 ORDER BY created_at, id', [state, createdBefore])).map((r) => r.id as string);
  }
  async oldestCreated(state: DeviceState) {
    return ((await this.exec('SELECT min(created_at) AS at FROM devices WHERE state = $1', [state]))[0]!.at as string | null) ?? undefined;
  }
  async certificate(serial: string) {
    const [row] = await this.exec('SELECT * FROM certificates WHERE serial = $1', [serial]);
    return row && asCertificate(row);
  }
  async certificates(filter: CertificateFilter = {}) {
    const where: string[] = [];
    const args: string[] = [];
    const add = (column: string, value: string) => (args.push(value), where.push(`${column} = $${args.length}`));
    if (filter.deviceId !== undefined) add('device_id', filter.deviceId);
    if (filter.status !== undefined) add('status', filter.status);
    if (filter.kind !== undefined) add('kind', filter.kind);
    const sql = `SELECT * FROM certificates ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY issued_at, serial`;
    return (await this.exec(sql, args)).map(asCertificate);
  }
  async certificateSummaries(serials: string[]) {
    if (serials.length === 0) return [];
    const rows = await this.exec(`SELECT ${SUMMARY_COLUMNS} FROM certificates WHERE serial = ANY($1::text[])`, [serials]);
    const bySerial = new Map(rows.map((r) => [r.serial as string, asSummary(r)]));
    // In the order asked for, as SQLite answers.
    return serials.flatMap((s) => (bySerial.has(s) ? [bySerial.get(s)!] : []));
  }
  async revocation(serial: string) {
    const [row] = await this.exec('SELECT serial, revoked_at, reason FROM revocations WHERE serial = $1', [serial]);
    return row && asRevocation(row);
  }
  async revocations() {
    return (await this.exec('SELECT serial, revoked_at, reason FROM revocations ORDER BY revoked_at, serial')).map(asRevocation);
  }
  async revocationCount() {
    return Number((await this.exec('SELECT count(*) AS n FROM revocations'))[0]!.n);
  }
  async token(hash: string) {
    const [row] = await this.exec('SELECT * FROM tokens WHERE hash = $1', [hash]);
    return row && asToken(row);
  }
  async tokens(filter: { deviceId?: string } = {}) {
    const rows =
      filter.deviceId === undefined
        ? await this.exec('SELECT * FROM tokens ORDER BY created_at, hash')
        : await this.exec('SELECT * FROM tokens WHERE device_id = $1 ORDER BY created_at, hash', [filter.deviceId]);
    return rows.map(asToken);
  }
  async latestCrl() {
    const [r] = await this.exec('SELECT * FROM crls ORDER BY number DESC LIMIT 1');
    return r && { number: Number(r.number), thisUpdate: r.this_update as string, nextUpdate: r.next_update as string, der: r.der as Buffer };
  }
  async auditEntries(filter: { device?: string } = {}) {
    const rows = filter.device === undefined ? await this.exec('SELECT * FROM audit ORDER BY seq') : await this.exec('SELECT * FROM audit WHERE device = $1 ORDER BY seq', [filter.device]);
    return rows.map(asAudit);
  }
  async isEmpty() {
    return (await this.exec('SELECT 1 FROM certificates UNION ALL SELECT 1 FROM devices UNION ALL SELECT 1 FROM tokens LIMIT 1')).length === 0;
  }
  async feedHead() {
    return Number((await this.exec('SELECT seq FROM feed_head'))[0]!.seq);
  }
  async changesAfter(seq: number, limit: number): Promise<Change[] | 'reload'> {
    const rows = (await this.exec('SELECT seq, kind, key FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2', [seq, limit])).map((r) => ({
      seq: Number(r.seq),
      kind: r.kind as ChangeKind,
      key: r.key as string,
    }));
    // Seqs have no gaps (see the migration), so a gap right after `seq` means the rows were pruned.
    if (rows.length > 0 && rows[0]!.seq !== seq + 1) return 'reload';
    return rows;
  }
  async snapshotRows(now: string): Promise<InventorySnapshot> {
    return {
      seq: await this.feedHead(),
      devices: await this.devices(),
      certificates: (await this.exec(`SELECT ${SUMMARY_COLUMNS} FROM certificates WHERE not_after > $1`, [now])).map(asSummary),
    };
  }

  // writes
  async upsertDevice(id: string, state: DeviceState, now: string) {
    await this.exec(
      `INSERT INTO devices (id, state, created_at, updated_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
      [id, state, now],
    );
  }
  async setTpmKey(id: string, spki: Buffer | null) {
    await this.exec('UPDATE devices SET tpm_key = $1 WHERE id = $2', [spki, id]);
  }
  async setDeviceTags(id: string, tags: string[], now: string) {
    await this.exec('UPDATE devices SET tags = $1, updated_at = $2 WHERE id = $3', [JSON.stringify(tags), now, id]);
  }
  async insertCertificate(row: Omit<CertificateRow, 'replacedBy' | 'status'>) {
    await this.exec(
      `INSERT INTO certificates (serial, device_id, kind, common_name, not_before, not_after, fingerprint, status, replaced_by, issued_at, der)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', NULL, $8, $9)`,
      [row.serial, row.deviceId, row.kind, row.commonName, row.notBefore, row.notAfter, row.fingerprint, row.issuedAt, row.der],
    );
  }
  async supersede(serial: string, replacedBy: string) {
    await this.exec(`UPDATE certificates SET status = 'superseded', replaced_by = $1 WHERE serial = $2 AND status = 'active'`, [replacedBy, serial]);
  }
  async revoke(serial: string, reason: string, now: string) {
    const changed = await this.exec(`UPDATE certificates SET status = 'revoked' WHERE serial = $1 AND status <> 'revoked' RETURNING serial`, [serial]);
    if (changed.length) await this.exec('INSERT INTO revocations (serial, revoked_at, reason) VALUES ($1, $2, $3)', [serial, now, reason]);
    return changed.length > 0;
  }
  async insertToken(hash: string, deviceId: string, now: string, expiresAt: string) {
    await this.exec('INSERT INTO tokens (hash, device_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', [hash, deviceId, now, expiresAt]);
  }
  async useToken(hash: string, now: string) {
    // Guarded update: of two racing users only one changes the row, even without the write lock.
    return (await this.exec('UPDATE tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL RETURNING hash', [now, hash])).length === 1;
  }
  async appendAudit(e: Omit<AuditEntry, 'seq'>) {
    await this.exec('INSERT INTO audit (time, actor, action, device, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      e.time,
      e.actor,
      e.action,
      e.device,
      e.target,
      e.outcome,
      e.detail,
    ]);
  }
  async insertCrl(row: CrlRow) {
    await this.exec('INSERT INTO crls (number, this_update, next_update, der) VALUES ($1, $2, $3, $4)', [row.number, row.thisUpdate, row.nextUpdate, row.der]);
    // Old CRLs are not needed once a newer one exists; keep a few for forensics.
    await this.exec('DELETE FROM crls WHERE number < $1', [row.number - 10]);
    // The feed is pruned as the CRL is refreshed (at least daily): followers this far behind reload in full.
    await this.exec('DELETE FROM changes WHERE seq <= (SELECT seq FROM feed_head) - $1', [CHANGES_KEPT]);
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

export interface PostgresInventoryOptions extends PostgresOptions {
  /** Longest wait before the feed's listener connects again after losing its connection (ms, default 5000). */
  maxReconnectMs?: number;
}

export class PostgresInventoryStore implements InventoryStore {
  readonly feed: ChangeFeed;
  readonly location: string;
  private readonly pool: pg.Pool;
  private readonly q: Queries;
  private closed = false;
  /** This store object's transactions now running: reads wait for them. */
  private readonly running = new Set<Promise<unknown>>();
  private readonly wakeListeners = new Set<() => void>();
  private listener: { client: pg.Client | undefined; timer: NodeJS.Timeout | undefined; stopped: boolean } | undefined;

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

  private constructor(
    private readonly url: string,
    private readonly options: PostgresInventoryOptions,
  ) {
    this.location = safeLocation(url);
    this.pool = openPool(url, options);
    this.q = new Queries(async (text, values) => (await this.pool.query(text, values)).rows as Raw[]);
    const store = this as unknown as Record<string, unknown>;
    for (const name of READS) {
      const query = (this.q[name] as (...a: unknown[]) => Promise<unknown>).bind(this.q);
      store[name] = (...args: unknown[]) => this.read(() => query(...args));
    }
    this.feed = {
      head: () => this.read(() => this.q.feedHead()),
      after: (seq, limit = 10_000) => this.read(() => this.q.changesAfter(seq, limit)),
      onWake: (listener) => this.onWake(listener),
    };
  }

  /** Connects, migrates (once, whichever node starts first) and returns the store. */
  static async open(url: string, options: PostgresInventoryOptions = {}): Promise<PostgresInventoryStore> {
    const store = new PostgresInventoryStore(url, options);
    try {
      await migratePostgres(store.pool, 'inventory', MIGRATIONS, `CA inventory ${store.location}`);
    } catch (err) {
      await store.pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  private async read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error(`the CA inventory ${this.location} is closed`);
    if (this.running.size > 0) await Promise.allSettled([...this.running]);
    try {
      return await fn();
    } catch (err) {
      throw unavailable(err, `CA inventory ${this.location}`);
    }
  }

  transaction<T>(fn: (tx: InventoryTransaction) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`the CA inventory ${this.location} is closed`));
    const run = inTransaction(this.pool, async (client) => {
      let live = true;
      const q = new Queries(async (text, values) => (await client.query(text, values)).rows as Raw[]);
      const tx: Record<string, unknown> = {};
      for (const name of [...READS, ...WRITES]) {
        const query = (q[name] as (...a: unknown[]) => Promise<unknown>).bind(q);
        // A transaction object used after its transaction ended would write outside any transaction.
        tx[name] = (...args: unknown[]) => (live ? query(...args) : Promise.reject(new Error(`inventory: ${name}() called outside its transaction`)));
      }
      try {
        return await fn(tx as unknown as InventoryTransaction);
      } finally {
        live = false;
      }
    }, { lock: [LOCK_CLASS, LOCK_INVENTORY_WRITE] });
    this.running.add(run);
    const done = () => this.running.delete(run);
    run.then(done, done);
    return run.then(
      (result) => {
        this.wake();
        return result;
      },
      (err: unknown) => {
        throw unavailable(err, `CA inventory ${this.location}`);
      },
    );
  }

  snapshot(now: Date): Promise<InventorySnapshot> {
    // One REPEATABLE READ transaction: the rows are exactly those of the feed position read with them.
    return this.read(() =>
      inTransaction(this.pool, (client) => new Queries(async (text, values) => (await client.query(text, values)).rows as Raw[]).snapshotRows(now.toISOString()), {
        isolation: 'REPEATABLE READ',
        readOnly: true,
      }),
    );
  }

  certificateSummaries(serials: string[]): Promise<CertificateSummary[]> {
    return this.read(() => this.q.certificateSummaries(serials));
  }

  integrityCheck(): Promise<string[]> {
    // PostgreSQL enforces keys and checks itself; what is left to check is what wott's own rules say.
    return this.read(async () => {
      const problems: string[] = [];
      const count = async (sql: string) => Number((await this.pool.query<{ n: string }>(sql)).rows[0]!.n);
      const unrecorded = await count(`SELECT count(*) AS n FROM certificates c WHERE status = 'revoked' AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)`);
      if (unrecorded) problems.push(`${unrecorded} revoked certificate(s) without a revocation record`);
      const unrevoked = await count(`SELECT count(*) AS n FROM revocations r JOIN certificates c USING (serial) WHERE c.status <> 'revoked'`);
      if (unrevoked) problems.push(`${unrevoked} revocation record(s) of a certificate not marked revoked`);
      const ahead = await count('SELECT count(*) AS n FROM changes WHERE seq > (SELECT seq FROM feed_head)');
      if (ahead) problems.push(`${ahead} change(s) beyond the feed head`);
      return problems;
    });
  }

  /** Followers in this process are woken at once (deferred, so that they never run inside the writer's call). */
  private wake(): void {
    if (this.wakeListeners.size > 0) setImmediate(() => this.wakeListeners.forEach((l) => l()));
  }

  private onWake(listener: () => void): () => void {
    this.wakeListeners.add(listener);
    if (!this.listener && !this.closed) this.listen();
    return () => {
      this.wakeListeners.delete(listener);
      if (this.wakeListeners.size === 0) this.unlisten();
    };
  }

  /** One connection of its own that LISTENs (a pooled one would be handed to others); connects again when lost. */
  private listen(): void {
    const state: NonNullable<typeof this.listener> = { client: undefined, timer: undefined, stopped: false };
    this.listener = state;
    let pause = 50;
    const connect = async () => {
      state.timer = undefined;
      if (state.stopped) return;
      const client = new pg.Client({ connectionString: this.url });
      state.client = client;
      const retry = () => {
        if (state.stopped || state.client !== client || state.timer) return;
        state.client = undefined;
        client.end().catch(() => undefined);
        state.timer = setTimeout(() => void connect(), pause);
        pause = Math.min(pause * 2, this.options.maxReconnectMs ?? 5000);
      };
      client.on('error', retry);
      client.on('end', retry);
      client.on('notification', () => this.wakeListeners.forEach((l) => l()));
      try {
        await client.connect();
        await client.query(`LISTEN ${FEED_CHANNEL}`);
      } catch {
        retry();
        return;
      }
      if (state.stopped) {
        await client.end().catch(() => undefined);
        return;
      }
      pause = 50;
      // Commits made before LISTEN took effect sent their wake-up to nobody: followers look now.
      this.wakeListeners.forEach((l) => l());
    };
    void connect();
  }

  private unlisten(): void {
    const state = this.listener;
    if (!state) return;
    this.listener = undefined;
    state.stopped = true;
    if (state.timer) clearTimeout(state.timer);
    const client = state.client;
    state.client = undefined;
    client?.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeListeners.clear();
    this.unlisten();
    await Promise.allSettled([...this.running]);
    await this.pool.end();
  }
}

/** Opens (creating and migrating when needed) the inventory in the PostgreSQL database at `url`. */
export function openPostgresInventory(url: string, options: PostgresInventoryOptions = {}): Promise<PostgresInventoryStore> {
  return PostgresInventoryStore.open(url, options);
}
