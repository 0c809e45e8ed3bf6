/** CredentialStore on SQLite, in its own file `<dataDir>/credentials.db` (WAL, private modes, versioned schema). */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import type { CredentialRow, CredentialStore, DeliveryRow, ExposureRow } from '../credentials.js';
import { migrate, type Migration } from './migrate.js';
import { openPrivateDatabase } from './open.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'credentials, exposures, deliveries',
    up: `
      CREATE TABLE IF NOT EXISTS credentials (
        name TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        tags TEXT NOT NULL,
        min_score REAL NOT NULL,
        linux_user TEXT,
        ttl_ms INTEGER,
        expires_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        sealed BLOB NOT NULL
      );
      CREATE TABLE IF NOT EXISTS credential_exposures (
        name TEXT NOT NULL,
        device TEXT NOT NULL,
        version INTEGER NOT NULL,
        reason TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (name, device)
      );
      CREATE TABLE IF NOT EXISTS credential_deliveries (
        device TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        serial TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (device, name)
      );
      CREATE TABLE IF NOT EXISTS credential_generation (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
      INSERT OR IGNORE INTO credential_generation (id, n) VALUES (1, 0);
    `,
  },
  {
    version: 2,
    name: 'the highest version each name ever had (never reused, also after removal); the id of the sealing key',
    up: `
      CREATE TABLE IF NOT EXISTS credential_versions (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
      INSERT OR IGNORE INTO credential_versions (name, last) SELECT name, version FROM credentials;
      CREATE TABLE IF NOT EXISTS credential_key (id INTEGER PRIMARY KEY CHECK (id = 1), key_id TEXT NOT NULL);
    `,
  },
];

type Raw = Record<string, unknown>;
const asCredential = (r: Raw): CredentialRow => ({
  name: r.name as string,
  version: r.version as number,
  tags: JSON.parse(r.tags as string) as string[],
  minScore: r.min_score as number,
  linuxUser: (r.linux_user as string | null) ?? null,
  ttlMs: (r.ttl_ms as number | null) ?? null,
  expiresAt: (r.expires_at as string | null) ?? null,
  createdAt: r.created_at as string,
  updatedAt: r.updated_at as string,
  size: r.size as number,
  sealed: r.sealed as Buffer,
});

export class SqliteCredentialStore implements CredentialStore {
  private readonly db: Database.Database;
  readonly modeProblems: string[];
  /** Prepared once each: delivery asks for all(), deliveries() and generation() on every score and state change. */
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly location: string) {
    ({ db: this.db, modeProblems: this.modeProblems } = openPrivateDatabase(location, 'credential database', (db) => {
      db.pragma('busy_timeout = 10000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // Deleted rows held ciphertext only, but leave no pages of it behind either.
      db.pragma('secure_delete = ON');
      migrate(db, MIGRATIONS, `credential database ${location}`);
    }));
  }

  static open(dataDir: string): SqliteCredentialStore {
    return new SqliteCredentialStore(join(dataDir, 'credentials.db'));
  }

  private bump(): void {
    this.stmt('UPDATE credential_generation SET n = n + 1 WHERE id = 1').run();
  }

  private stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  async all(): Promise<CredentialRow[]> {
    return (this.stmt('SELECT * FROM credentials ORDER BY name').all() as Raw[]).map(asCredential);
  }

  async get(name: string): Promise<CredentialRow | undefined> {
    const r = this.stmt('SELECT * FROM credentials WHERE name = ?').get(name) as Raw | undefined;
    return r && asCredential(r);
  }

  async writeVersion(name: string, build: (current: CredentialRow | undefined, version: number) => CredentialRow): Promise<CredentialRow> {
    // BEGIN IMMEDIATE takes the write lock before the read: another writer (another process too) waits for the
    // commit (busy_timeout) and then reads this version, so a read-then-write can never hand out a number twice.
    return this.db.transaction(() => {
      const raw = this.stmt('SELECT * FROM credentials WHERE name = ?').get(name) as Raw | undefined;
      const current = raw && asCredential(raw);
      const last = (this.stmt('SELECT last FROM credential_versions WHERE name = ?').get(name) as { last: number } | undefined)?.last ?? 0;
      const version = Math.max(last, current?.version ?? 0) + 1;
      const row = build(current, version);
      if (row.name !== name || row.version !== version) throw new Error(`credential ${name}: a write of version ${version} returned ${row.name} v${row.version}`);
      this
        .stmt(
          `INSERT INTO credentials (name, version, tags, min_score, linux_user, ttl_ms, expires_at, created_at, updated_at, size, sealed)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET version = excluded.version, tags = excluded.tags, min_score = excluded.min_score,
             linux_user = excluded.linux_user, ttl_ms = excluded.ttl_ms, expires_at = excluded.expires_at,
             updated_at = excluded.updated_at, size = excluded.size, sealed = excluded.sealed`,
        )
        .run(row.name, row.version, JSON.stringify(row.tags), row.minScore, row.linuxUser, row.ttlMs, row.expiresAt, row.createdAt, row.updatedAt, row.size, row.sealed);
      this.stmt('INSERT INTO credential_versions (name, last) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET last = excluded.last').run(name, version);
      this.stmt('DELETE FROM credential_exposures WHERE name = ?').run(name);
      this.bump();
      return row;
    }).immediate();
  }

  async remove(name: string): Promise<boolean> {
    return this.db.transaction(() => {
      const gone = this.stmt('DELETE FROM credentials WHERE name = ?').run(name).changes === 1;
      this.stmt('DELETE FROM credential_exposures WHERE name = ?').run(name);
      if (gone) this.bump();
      return gone;
    }).immediate();
  }

  async exposures(name?: string): Promise<ExposureRow[]> {
    const rows = name === undefined ? this.stmt('SELECT * FROM credential_exposures ORDER BY name, device').all() : this.stmt('SELECT * FROM credential_exposures WHERE name = ? ORDER BY device').all(name);
    return rows as ExposureRow[];
  }

  async markExposed(row: ExposureRow): Promise<void> {
    this.db
      .prepare('INSERT INTO credential_exposures (name, device, version, reason, time) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, device) DO UPDATE SET version = excluded.version, reason = excluded.reason, time = excluded.time')
      .run(row.name, row.device, row.version, row.reason, row.time);
  }

  async deliveries(device?: string): Promise<DeliveryRow[]> {
    const rows = device === undefined ? this.stmt('SELECT * FROM credential_deliveries ORDER BY device, name').all() : this.stmt('SELECT * FROM credential_deliveries WHERE device = ? ORDER BY name').all(device);
    return rows as DeliveryRow[];
  }

  async recordDelivery(row: DeliveryRow): Promise<void> {
    this.db
      .prepare('INSERT INTO credential_deliveries (device, name, version, serial, time) VALUES (?, ?, ?, ?, ?) ON CONFLICT (device, name) DO UPDATE SET version = excluded.version, serial = excluded.serial, time = excluded.time')
      .run(row.device, row.name, row.version, row.serial, row.time);
  }

  async removeDelivery(device: string, name: string): Promise<void> {
    this.stmt('DELETE FROM credential_deliveries WHERE device = ? AND name = ?').run(device, name);
  }

  async generation(): Promise<number> {
    return (this.stmt('SELECT n FROM credential_generation WHERE id = 1').get() as { n: number }).n;
  }

  async bindKey(keyId: string): Promise<string> {
    this.stmt('INSERT OR IGNORE INTO credential_key (id, key_id) VALUES (1, ?)').run(keyId);
    return (this.stmt('SELECT key_id FROM credential_key WHERE id = 1').get() as { key_id: string }).key_id;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
