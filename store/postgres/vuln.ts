/**
 * The vulnerability store on PostgreSQL (tables vuln_entries, vuln_descriptions, vuln_loads). A load replaces
 * everything in one transaction, so readers on any node see the previous data or the new data, never a mix; loads
 * from several processes are serialised by an advisory lock taken first (the second waits instead of failing
 * half-way). Entries go in batches through unnest() (one statement per few thousand rows, not one per row).
 */
import type pg from 'pg';
import { SchemaError } from '../sqlite/migrate.js';
import { CveStoreError, type FeedOrigin, type LoadRecord, type MatchingData, type VulnEntry, type VulnSeverity, type VulnStore } from '../vuln.js';
import { LOCK_CLASS, migratePostgres, type PgMigration } from './migrate.js';
import { inTransaction, openPool, safeLocation, Serial, type PostgresOptions } from './pool.js';

const LOCK_VULN_LOAD = 3;
const BATCH = 5000;

const MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'entries, descriptions, loads',
    up: `
CREATE TABLE vuln_entries (
  release TEXT COLLATE "C" NOT NULL, source TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, introduced TEXT COLLATE "C" NOT NULL DEFAULT '',
  fixed TEXT, severity TEXT NOT NULL, remote BOOLEAN, advisory TEXT,
  PRIMARY KEY (release, source, id, introduced));
CREATE TABLE vuln_descriptions (id TEXT COLLATE "C" PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE vuln_loads (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, loaded_at TEXT NOT NULL, record TEXT NOT NULL);
`,
  },
];

interface EntryRow {
  release: string;
  source: string;
  id: string;
  introduced: string;
  fixed: string | null;
  severity: VulnSeverity;
  remote: boolean | null;
  advisory: string | null;
  description?: string | null;
}

function entryOf(r: EntryRow): VulnEntry {
  const e: VulnEntry = { id: r.id, source: r.source, release: r.release, fixed: r.fixed, severity: r.severity, remote: r.remote };
  if (r.introduced) e.introduced = r.introduced;
  if (r.advisory) e.advisory = r.advisory;
  if (r.description) e.description = r.description;
  return e;
}

class PostgresVulnStore implements VulnStore {
  private readonly serial = new Serial();
  private closed = false;

  constructor(
    readonly location: string,
    private readonly pool: pg.Pool,
  ) {}

  private run<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial.run(() => (this.closed ? Promise.reject(new CveStoreError(`the CVE store ${this.location} is closed`)) : fn()));
  }

  private static async generationOf(db: pg.Pool | pg.PoolClient): Promise<number> {
    return Number((await db.query<{ g: string | null }>('SELECT max(seq) AS g FROM vuln_loads')).rows[0]!.g ?? 0);
  }

  generation(): Promise<number> {
    return this.run(() => PostgresVulnStore.generationOf(this.pool));
  }

  status(): Promise<LoadRecord | null> {
    return this.run(async () => {
      const row = (await this.pool.query<{ seq: string; record: string }>('SELECT seq, record FROM vuln_loads ORDER BY seq DESC LIMIT 1')).rows[0];
      if (!row) return null;
      return { ...(JSON.parse(row.record) as Omit<LoadRecord, 'generation'>), generation: Number(row.seq) };
    });
  }

  replace(entries: readonly VulnEntry[], origins: readonly FeedOrigin[], now = new Date()): Promise<LoadRecord> {
    const record: Omit<LoadRecord, 'generation'> = {
      loadedAt: now.toISOString(),
      origins: [...origins],
      entries: entries.length,
      fixed: entries.filter((e) => e.fixed !== null).length,
      open: entries.filter((e) => e.fixed === null).length,
      releases: [...new Set(entries.map((e) => e.release))].sort(),
      sources: new Set(entries.map((e) => e.source)).size,
    };
    return this.run(async () => {
      let generation: number;
      try {
        generation = await inTransaction(this.pool, async (client) => {
          await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_VULN_LOAD]);
          await client.query('DELETE FROM vuln_entries');
          await client.query('DELETE FROM vuln_descriptions');
          for (let i = 0; i < entries.length; i += BATCH) {
            const batch = entries.slice(i, i + BATCH);
            await client.query(
              `INSERT INTO vuln_entries (release, source, id, introduced, fixed, severity, remote, advisory)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[])`,
              [
                batch.map((e) => e.release),
                batch.map((e) => e.source),
                batch.map((e) => e.id),
                batch.map((e) => e.introduced ?? ''),
                batch.map((e) => e.fixed),
                batch.map((e) => e.severity),
                batch.map((e) => e.remote),
                batch.map((e) => e.advisory ?? null),
              ],
            );
            const described = batch.filter((e) => e.description);
            if (described.length) {
              await client.query('INSERT INTO vuln_descriptions (id, text) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (id) DO NOTHING', [
                described.map((e) => e.id),
                described.map((e) => e.description!),
              ]);
            }
          }
          return Number((await client.query<{ seq: string }>('INSERT INTO vuln_loads (loaded_at, record) VALUES ($1, $2) RETURNING seq', [record.loadedAt, JSON.stringify(record)])).rows[0]!.seq);
        });
      } catch (err) {
        throw new CveStoreError(`writing the CVE store ${this.location} failed; the previous data is unchanged: ${(err as Error).message}`);
      }
      return { ...record, generation };
    });
  }

  entries(): Promise<VulnEntry[]> {
    return this.run(async () => {
      const rows = (
        await this.pool.query<EntryRow>(
          `SELECT e.release, e.source, e.id, e.introduced, e.fixed, e.severity, e.remote, e.advisory, d.text AS description
           FROM vuln_entries e LEFT JOIN vuln_descriptions d ON d.id = e.id ORDER BY e.release, e.source, e.id, e.introduced`,
        )
      ).rows;
      return rows.map(entryOf);
    });
  }

  matchingData(): Promise<MatchingData> {
    // One REPEATABLE READ transaction, so a load from another process can not land between the generation and the rows.
    return this.run(() =>
      inTransaction(
        this.pool,
        async (client) => {
          const generation = await PostgresVulnStore.generationOf(client);
          const descriptions = new Map<string, string>();
          for (const r of (await client.query<{ id: string; text: string }>('SELECT id, text FROM vuln_descriptions')).rows) descriptions.set(r.id, r.text);
          const rows = (await client.query<EntryRow>('SELECT release, source, id, introduced, fixed, severity, remote, advisory FROM vuln_entries WHERE fixed IS NOT NULL')).rows;
          return { generation, fixed: rows.map(entryOf), descriptions };
        },
        { isolation: 'REPEATABLE READ', readOnly: true },
      ),
    );
  }

  close(): Promise<void> {
    return this.serial.run(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.pool.end();
    });
  }
}

/** Opens (creating and migrating when needed) the vulnerability store in the PostgreSQL database at `url`. */
export async function openPostgresVulnStore(url: string, options: PostgresOptions = {}): Promise<VulnStore> {
  const location = safeLocation(url);
  const pool = openPool(url, { max: 2, ...options });
  try {
    await migratePostgres(pool, 'vuln', MIGRATIONS, `CVE store ${location}`);
  } catch (err) {
    await pool.end().catch(() => undefined);
    // `wott cve` prints a CveStoreError plainly: "… written by a newer wott …; upgrade wott".
    throw err instanceof SchemaError ? new CveStoreError(err.message) : err;
  }
  return new PostgresVulnStore(location, pool);
}
