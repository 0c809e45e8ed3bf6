/**
 * CredentialStore on PostgreSQL (tables credentials, credential_exposures, credential_deliveries, beside the
 * inventory's), shared by every node of a cluster. A new version is written in one transaction that first bumps the
 * name's row in credential_versions (INSERT … ON CONFLICT DO UPDATE … RETURNING): the row lock it takes makes a
 * second writer of that name, on any node, wait for the commit and then count on from it.
 */
import type pg from 'pg';
import type { CredentialRow, CredentialStore, DeliveryRow, ExposureRow } from '../credentials.js';
import { migratePostgres, type PgMigration } from './migrate.js';
import { inTransaction, openPool, safeLocation, type PostgresOptions } from './pool.js';

const MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'credentials, versions, exposures, deliveries, generation, key id',
    up: `
      CREATE TABLE credentials (
        name TEXT COLLATE "C" PRIMARY KEY,
        version INTEGER NOT NULL,
        tags TEXT NOT NULL,
        min_score DOUBLE PRECISION NOT NULL,
        linux_user TEXT,
        ttl_ms BIGINT,
        expires_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        sealed BYTEA NOT NULL
      );
      CREATE TABLE credential_versions (name TEXT COLLATE "C" PRIMARY KEY, last INTEGER NOT NULL);
      CREATE TABLE credential_exposures (
        name TEXT COLLATE "C" NOT NULL,
        device TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        reason TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (name, device)
      );
      CREATE TABLE credential_deliveries (
        device TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        serial TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (device, name)
      );
      CREATE TABLE credential_generation (id INTEGER PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
      INSERT INTO credential_generation (id, n) VALUES (1, 0);
      CREATE TABLE credential_key (id INTEGER PRIMARY KEY CHECK (id = 1), key_id TEXT NOT NULL);
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
  ttlMs: r.ttl_ms === null || r.ttl_ms === undefined ? null : Number(r.ttl_ms),
  expiresAt: (r.expires_at as string | null) ?? null,
  createdAt: r.created_at as string,
  updatedAt: r.updated_at as string,
  size: r.size as number,
  sealed: r.sealed as Buffer,
});
const asExposure = (r: Raw): ExposureRow => ({ name: r.name as string, device: r.device as string, version: r.version as number, reason: r.reason as string, time: r.time as string });
const asDelivery = (r: Raw): DeliveryRow => ({ device: r.device as string, name: r.name as string, version: r.version as number, serial: r.serial as string, time: r.time as string });

export class PostgresCredentialStore implements CredentialStore {
  private closed = false;
  private constructor(
    readonly location: string,
    private readonly pool: pg.Pool,
  ) {}

  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresCredentialStore> {
    const location = safeLocation(url);
    const pool = openPool(url, { max: 4, ...options });
    try {
      await migratePostgres(pool, 'credentials', MIGRATIONS, `credential database ${location}`);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PostgresCredentialStore(location, pool);
  }

  private check(): void {
    if (this.closed) throw new Error(`the credential database ${this.location} is closed`);
  }

  private async query(text: string, values?: unknown[]): Promise<pg.QueryResult<Raw>> {
    this.check();
    return this.pool.query<Raw>(text, values);
  }

  async all(): Promise<CredentialRow[]> {
    return (await this.query('SELECT * FROM credentials ORDER BY name')).rows.map(asCredential);
  }

  async get(name: string): Promise<CredentialRow | undefined> {
    const r = (await this.query('SELECT * FROM credentials WHERE name = $1', [name])).rows[0];
    return r && asCredential(r);
  }

  async writeVersion(name: string, build: (current: CredentialRow | undefined, version: number) => CredentialRow): Promise<CredentialRow> {
    this.check();
    return inTransaction(this.pool, async (client) => {
      // First the version row: its lock serializes writers of this name until COMMIT. At READ COMMITTED the SELECT
      // below starts after the lock was granted, so it sees what the previous writer committed.
      const bumped = await client.query<{ last: number }>(
        'INSERT INTO credential_versions (name, last) VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET last = credential_versions.last + 1 RETURNING last',
        [name],
      );
      const raw = (await client.query<Raw>('SELECT * FROM credentials WHERE name = $1', [name])).rows[0];
      const current = raw && asCredential(raw);
      let version = bumped.rows[0]!.last;
      if (current && current.version >= version) {
        // A row from before this table knew the name (an import): count on from the row.
        version = current.version + 1;
        await client.query('UPDATE credential_versions SET last = $2 WHERE name = $1', [name, version]);
      }
      const row = build(current, version);
      if (row.name !== name || row.version !== version) throw new Error(`credential ${name}: a write of version ${version} returned ${row.name} v${row.version}`);
      await client.query(
        `INSERT INTO credentials (name, version, tags, min_score, linux_user, ttl_ms, expires_at, created_at, updated_at, size, sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, tags = excluded.tags, min_score = excluded.min_score,
           linux_user = excluded.linux_user, ttl_ms = excluded.ttl_ms, expires_at = excluded.expires_at,
           updated_at = excluded.updated_at, size = excluded.size, sealed = excluded.sealed`,
        [row.name, row.version, JSON.stringify(row.tags), row.minScore, row.linuxUser, row.ttlMs, row.expiresAt, row.createdAt, row.updatedAt, row.size, row.sealed],
      );
      await client.query('DELETE FROM credential_exposures WHERE name = $1', [name]);
      await client.query('UPDATE credential_generation SET n = n + 1 WHERE id = 1');
      return row;
    });
  }

  async remove(name: string): Promise<boolean> {
    this.check();
    return inTransaction(this.pool, async (client) => {
      const gone = (await client.query('DELETE FROM credentials WHERE name = $1', [name])).rowCount === 1;
      await client.query('DELETE FROM credential_exposures WHERE name = $1', [name]);
      if (gone) await client.query('UPDATE credential_generation SET n = n + 1 WHERE id = 1');
      return gone;
    });
  }

  async exposures(name?: string): Promise<ExposureRow[]> {
    const result = name === undefined ? await this.query('SELECT * FROM credential_exposures ORDER BY name, device') : await this.query('SELECT * FROM credential_exposures WHERE name = $1 ORDER BY device', [name]);
    return result.rows.map(asExposure);
  }

  async markExposed(row: ExposureRow): Promise<void> {
    await this.query(
      'INSERT INTO credential_exposures (name, device, version, reason, time) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, device) DO UPDATE SET version = excluded.version, reason = excluded.reason, time = excluded.time',
      [row.name, row.device, row.version, row.reason, row.time],
    );
  }

  async deliveries(device?: string): Promise<DeliveryRow[]> {
    const result = device === undefined ? await this.query('SELECT * FROM credential_deliveries ORDER BY device, name') : await this.query('SELECT * FROM credential_deliveries WHERE device = $1 ORDER BY name', [device]);
    return result.rows.map(asDelivery);
  }

  async recordDelivery(row: DeliveryRow): Promise<void> {
    await this.query(
      'INSERT INTO credential_deliveries (device, name, version, serial, time) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device, name) DO UPDATE SET version = excluded.version, serial = excluded.serial, time = excluded.time',
      [row.device, row.name, row.version, row.serial, row.time],
    );
  }

  async removeDelivery(device: string, name: string): Promise<void> {
    await this.query('DELETE FROM credential_deliveries WHERE device = $1 AND name = $2', [device, name]);
  }

  async generation(): Promise<number> {
    return Number((await this.query('SELECT n FROM credential_generation WHERE id = 1')).rows[0]!.n);
  }

  async bindKey(keyId: string): Promise<string> {
    await this.query('INSERT INTO credential_key (id, key_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING', [keyId]);
    return (await this.query('SELECT key_id FROM credential_key WHERE id = 1')).rows[0]!.key_id as string;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
