/**
 * The vulnerability store on PostgreSQL (tables vuln_entries, vuln_descriptions, vuln_feeds, vuln_loads), per named
 * feed as the interface says: a load replaces only the feeds it names, in one transaction, so readers on any node
 * see the previous data or the new data, never a mix; loads from several processes are serialised by an advisory
 * lock taken first (the second waits instead of failing half-way). Entries go in batches through unnest() (one
 * statement per few thousand rows, not one per row).
 */
import type pg from 'pg';
import { SchemaError } from '../sqlite/migrate.js';
import { CveStoreError, FEED_NAME, type FeedLoad, type FeedOrigin, type FeedRecord, type LoadRecord, type MatchingData, type VulnEntry, type VulnSeverity, type VulnStore } from '../vuln.js';
import { LOCK_CLASS, migratePostgres, type PgMigration } from './migrate.js';
import { inTransaction, openPool, safeLocation, Serial, type PostgresOptions } from './pool.js';

const LOCK_VULN_LOAD = 3;
const BATCH = 5000;

const MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'entries, descriptions, feeds, loads',
    up: `
CREATE TABLE vuln_entries (
  feed TEXT COLLATE "C" NOT NULL, release TEXT COLLATE "C" NOT NULL, source TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
  introduced TEXT COLLATE "C" NOT NULL DEFAULT '', fixed TEXT, severity TEXT NOT NULL, remote BOOLEAN, advisory TEXT,
  PRIMARY KEY (feed, release, source, id, introduced));
CREATE TABLE vuln_descriptions (feed TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, text TEXT NOT NULL, PRIMARY KEY (feed, id));
CREATE TABLE vuln_feeds (name TEXT COLLATE "C" PRIMARY KEY, seq BIGINT NOT NULL, loaded_at TEXT NOT NULL, origins TEXT NOT NULL);
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

const KEY = `release || chr(1) || source || chr(1) || id || chr(1) || introduced`;

type Db = pg.Pool | pg.PoolClient;

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

  private static async generationOf(db: Db): Promise<number> {
    return Number((await db.query<{ g: string | null }>('SELECT max(seq) AS g FROM vuln_loads')).rows[0]!.g ?? 0);
  }

  /** The record of the data as `db` sees it (inside the caller's transaction when it needs one). */
  private static async record(db: Db): Promise<LoadRecord | null> {
    const feedRows = (await db.query<{ name: string; seq: string; loaded_at: string; origins: string }>('SELECT name, seq, loaded_at, origins FROM vuln_feeds ORDER BY name')).rows;
    if (feedRows.length === 0) return null;
    const counts = new Map(
      (await db.query<{ feed: string; n: string; fixed: string }>('SELECT feed, count(*) AS n, count(fixed) AS fixed FROM vuln_entries GROUP BY feed')).rows.map((r) => [r.feed, r]),
    );
    const feeds: FeedRecord[] = feedRows.map((f) => {
      const c = counts.get(f.name);
      const n = Number(c?.n ?? 0);
      const fixed = Number(c?.fixed ?? 0);
      return { name: f.name, generation: Number(f.seq), loadedAt: f.loaded_at, origins: JSON.parse(f.origins) as FeedOrigin[], entries: n, fixed, open: n - fixed };
    });
    // A key is "fixed" when any feed knows a fix: merging keeps a known fix over "no fix" (vuln/feed.ts mergeEntries).
    const totals = (
      await db.query<{ n: string; fixed: string; sources: string }>(
        `SELECT count(DISTINCT ${KEY}) AS n, count(DISTINCT CASE WHEN fixed IS NOT NULL THEN ${KEY} END) AS fixed, count(DISTINCT source) AS sources FROM vuln_entries`,
      )
    ).rows[0]!;
    const releases = (await db.query<{ release: string }>('SELECT DISTINCT release FROM vuln_entries ORDER BY release')).rows.map((r) => r.release);
    const last = (await db.query<{ seq: string; loaded_at: string }>('SELECT seq, loaded_at FROM vuln_loads ORDER BY seq DESC LIMIT 1')).rows[0]!;
    const n = Number(totals.n);
    const fixed = Number(totals.fixed);
    return {
      generation: Number(last.seq),
      loadedAt: last.loaded_at,
      origins: feeds.flatMap((f) => f.origins),
      feeds,
      entries: n,
      fixed,
      open: n - fixed,
      releases,
      sources: Number(totals.sources),
    };
  }

  generation(): Promise<number> {
    return this.run(() => PostgresVulnStore.generationOf(this.pool));
  }

  status(): Promise<LoadRecord | null> {
    return this.run(() => inTransaction(this.pool, (client) => PostgresVulnStore.record(client), { isolation: 'REPEATABLE READ', readOnly: true }));
  }

  replace(loads: readonly FeedLoad[], now = new Date()): Promise<LoadRecord> {
    const names = loads.map((l) => l.feed);
    const bad = names.find((n) => !FEED_NAME.test(n));
    if (bad !== undefined) return Promise.reject(new CveStoreError(`invalid feed name ${JSON.stringify(bad.slice(0, 80))}: lowercase letters, digits, . _ - (at most 64); the previous data is unchanged`));
    if (new Set(names).size !== names.length) return Promise.reject(new CveStoreError(`a feed is named twice in one load (${names.join(', ')}); the previous data is unchanged`));
    const loadedAt = now.toISOString();
    return this.run(async () => {
      try {
        return await inTransaction(this.pool, async (client) => {
          await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_VULN_LOAD]);
          const summary = JSON.stringify({ loadedAt, feeds: loads.map((l) => ({ name: l.feed, origins: l.origins, entries: l.entries.length })) });
          const seq = Number((await client.query<{ seq: string }>('INSERT INTO vuln_loads (loaded_at, record) VALUES ($1, $2) RETURNING seq', [loadedAt, summary])).rows[0]!.seq);
          for (const l of loads) {
            await client.query('DELETE FROM vuln_entries WHERE feed = $1', [l.feed]);
            await client.query('DELETE FROM vuln_descriptions WHERE feed = $1', [l.feed]);
            for (let i = 0; i < l.entries.length; i += BATCH) {
              const batch = l.entries.slice(i, i + BATCH);
              await client.query(
                `INSERT INTO vuln_entries (feed, release, source, id, introduced, fixed, severity, remote, advisory)
                 SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[], $9::text[])`,
                [
                  l.feed,
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
                await client.query('INSERT INTO vuln_descriptions (feed, id, text) SELECT $1, * FROM unnest($2::text[], $3::text[]) ON CONFLICT (feed, id) DO NOTHING', [
                  l.feed,
                  described.map((e) => e.id),
                  described.map((e) => e.description!),
                ]);
              }
            }
            await client.query(
              'INSERT INTO vuln_feeds (name, seq, loaded_at, origins) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, loaded_at = excluded.loaded_at, origins = excluded.origins',
              [l.feed, seq, loadedAt, JSON.stringify(l.origins)],
            );
          }
          return (await PostgresVulnStore.record(client))!;
        });
      } catch (err) {
        throw new CveStoreError(`writing the CVE store ${this.location} failed; the previous data is unchanged: ${(err as Error).message}`);
      }
    });
  }

  remove(feed: string, now = new Date()): Promise<LoadRecord | null> {
    const loadedAt = now.toISOString();
    return this.run(async () => {
      try {
        return await inTransaction(this.pool, async (client) => {
          await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_VULN_LOAD]);
          if ((await client.query('SELECT 1 FROM vuln_feeds WHERE name = $1', [feed])).rowCount === 0) {
            const known = (await client.query<{ name: string }>('SELECT name FROM vuln_feeds ORDER BY name')).rows.map((r) => r.name);
            throw new CveStoreError(`no feed named ${JSON.stringify(feed.slice(0, 80))} in ${this.location} (stored: ${known.join(', ') || 'none'})`);
          }
          await client.query('DELETE FROM vuln_entries WHERE feed = $1', [feed]);
          await client.query('DELETE FROM vuln_descriptions WHERE feed = $1', [feed]);
          await client.query('DELETE FROM vuln_feeds WHERE name = $1', [feed]);
          // A removal is a new generation, so every matcher rebuilds without the feed.
          await client.query('INSERT INTO vuln_loads (loaded_at, record) VALUES ($1, $2)', [loadedAt, JSON.stringify({ loadedAt, removed: feed })]);
          return PostgresVulnStore.record(client);
        });
      } catch (err) {
        if (err instanceof CveStoreError) throw err;
        throw new CveStoreError(`writing the CVE store ${this.location} failed; the previous data is unchanged: ${(err as Error).message}`);
      }
    });
  }

  entries(feed?: string): Promise<VulnEntry[]> {
    return this.run(async () => {
      const rows = (
        await this.pool.query<EntryRow>(
          `SELECT e.release, e.source, e.id, e.introduced, e.fixed, e.severity, e.remote, e.advisory, d.text AS description
           FROM vuln_entries e LEFT JOIN vuln_descriptions d ON d.feed = e.feed AND d.id = e.id
           ${feed === undefined ? '' : 'WHERE e.feed = $1'} ORDER BY e.release, e.source, e.id, e.introduced, e.feed`,
          feed === undefined ? [] : [feed],
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
          // Feeds in name order: the first feed that describes an id gives its description.
          for (const r of (await client.query<{ id: string; text: string }>('SELECT id, text FROM vuln_descriptions ORDER BY feed')).rows) if (!descriptions.has(r.id)) descriptions.set(r.id, r.text);
          const rows = (await client.query<EntryRow>('SELECT release, source, id, introduced, fixed, severity, remote, advisory FROM vuln_entries WHERE fixed IS NOT NULL ORDER BY feed')).rows;
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
