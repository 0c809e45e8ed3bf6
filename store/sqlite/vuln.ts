/**
 * The vulnerability store in SQLite: <dataDir>/cve/cve.db, WAL, synchronous FULL (the data is slow to reload). Every
 * method runs its statements, and its transaction, synchronously inside one call of better-sqlite3, so two calls on
 * one connection can not interleave even though the interface is asynchronous.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { ensurePrivateDir } from '../../lib/private.js';
import { openPrivateDatabase } from './open.js';
import { CveStoreError, FEED_NAME, type FeedLoad, type FeedOrigin, type FeedRecord, type LoadRecord, type MatchingData, type VulnEntry, type VulnSeverity, type VulnStore } from '../vuln.js';
import { migrate, SchemaError, type Migration } from './migrate.js';

export const VULN_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    // The schema the CVE store has had since it set user_version = 1 itself, so those files need nothing.
    name: 'entries, descriptions, loads',
    up: `
CREATE TABLE IF NOT EXISTS entries (
  release TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, introduced TEXT NOT NULL DEFAULT '',
  fixed TEXT, severity TEXT NOT NULL, remote INTEGER, advisory TEXT,
  PRIMARY KEY (release, source, id, introduced)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS descriptions (id TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS loads (seq INTEGER PRIMARY KEY AUTOINCREMENT, loaded_at TEXT NOT NULL, record TEXT NOT NULL);
`,
  },
  {
    version: 2,
    // Feeds merge by name: entries and descriptions carry their feed, and `feeds` records each feed's last load.
    // Data loaded before is one feed, named after its format when the last load had one format ("legacy"
    // otherwise), so the next load of that format replaces it instead of leaving stale entries behind.
    name: 'entries per named feed',
    up: (db) => {
      const last = db.prepare('SELECT seq, loaded_at, record FROM loads ORDER BY seq DESC LIMIT 1').get() as { seq: number; loaded_at: string; record: string } | undefined;
      let origins: FeedOrigin[] = [];
      try {
        origins = last ? ((JSON.parse(last.record) as { origins?: FeedOrigin[] }).origins ?? []) : [];
      } catch {
        origins = [];
      }
      const formats = [...new Set(origins.map((o) => o.format))];
      const feed = formats.length === 1 ? formats[0]! : 'legacy';
      db.exec(`
CREATE TABLE entries_v2 (
  feed TEXT NOT NULL, release TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, introduced TEXT NOT NULL DEFAULT '',
  fixed TEXT, severity TEXT NOT NULL, remote INTEGER, advisory TEXT,
  PRIMARY KEY (feed, release, source, id, introduced)) WITHOUT ROWID;
CREATE TABLE descriptions_v2 (feed TEXT NOT NULL, id TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (feed, id)) WITHOUT ROWID;
CREATE TABLE feeds (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, loaded_at TEXT NOT NULL, origins TEXT NOT NULL) WITHOUT ROWID;`);
      db.prepare('INSERT INTO entries_v2 SELECT ?, release, source, id, introduced, fixed, severity, remote, advisory FROM entries').run(feed);
      db.prepare('INSERT INTO descriptions_v2 SELECT ?, id, text FROM descriptions').run(feed);
      const count = (db.prepare('SELECT COUNT(*) AS n FROM entries_v2').get() as { n: number }).n;
      if (last && count > 0) db.prepare('INSERT INTO feeds (name, seq, loaded_at, origins) VALUES (?, ?, ?, ?)').run(feed, last.seq, last.loaded_at, JSON.stringify(origins));
      db.exec(`
DROP TABLE entries; ALTER TABLE entries_v2 RENAME TO entries;
DROP TABLE descriptions; ALTER TABLE descriptions_v2 RENAME TO descriptions;`);
    },
  },
];

export const vulnStorePath = (dataDir: string) => join(dataDir, 'cve', 'cve.db');

/** Opens (or creates) <dataDir>/cve/cve.db: folders 0700, files 0600 (also when made by an older version). */
export async function openSqliteVulnStore(dataDir: string): Promise<VulnStore> {
  const path = vulnStorePath(dataDir);
  ensurePrivateDir(dataDir);
  const { db } = openPrivateDatabase(
    path,
    'CVE store',
    (db) => {
      db.pragma('busy_timeout = 10000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
    },
    { folder: join(dataDir, 'cve'), fail: (message) => new CveStoreError(message) },
  );
  try {
    migrate(db, VULN_MIGRATIONS, `CVE store ${path}`);
  } catch (err) {
    db.close();
    // `wott cve` prints a CveStoreError plainly: "… written by a newer wott …; upgrade wott".
    throw err instanceof SchemaError ? new CveStoreError(err.message) : err;
  }
  return new SqliteVulnStore(path, db);
}

interface EntryRow {
  release: string;
  source: string;
  id: string;
  introduced: string;
  fixed: string | null;
  severity: VulnSeverity;
  remote: number | null;
  advisory: string | null;
  description?: string | null;
}

function entryOf(r: EntryRow): VulnEntry {
  const e: VulnEntry = { id: r.id, source: r.source, release: r.release, fixed: r.fixed, severity: r.severity, remote: r.remote === null ? null : r.remote === 1 };
  if (r.introduced) e.introduced = r.introduced;
  if (r.advisory) e.advisory = r.advisory;
  if (r.description) e.description = r.description;
  return e;
}

interface FeedRow {
  name: string;
  seq: number;
  loaded_at: string;
  origins: string;
}

const KEY = `release || char(0) || source || char(0) || id || char(0) || introduced`;

class SqliteVulnStore implements VulnStore {
  constructor(
    readonly location: string,
    private readonly db: Database.Database,
  ) {}

  private currentGeneration(): number {
    const row = this.db.prepare('SELECT MAX(seq) AS g FROM loads').get() as { g: number | null };
    return row.g ?? 0;
  }

  /** The record of the data as it is now (run inside the caller's transaction when it needs one). */
  private record(): LoadRecord | null {
    const feedRows = this.db.prepare('SELECT name, seq, loaded_at, origins FROM feeds ORDER BY name').all() as FeedRow[];
    if (feedRows.length === 0) return null;
    const perFeed = this.db.prepare('SELECT COUNT(*) AS n, COUNT(fixed) AS fixed FROM entries WHERE feed = ?');
    const feeds: FeedRecord[] = feedRows.map((f) => {
      const c = perFeed.get(f.name) as { n: number; fixed: number };
      return { name: f.name, generation: f.seq, loadedAt: f.loaded_at, origins: JSON.parse(f.origins) as FeedOrigin[], entries: c.n, fixed: c.fixed, open: c.n - c.fixed };
    });
    // A key is "fixed" when any feed knows a fix: merging keeps a known fix over "no fix" (vuln/feed.ts mergeEntries).
    const totals = this.db.prepare(`SELECT COUNT(DISTINCT ${KEY}) AS n, COUNT(DISTINCT CASE WHEN fixed IS NOT NULL THEN ${KEY} END) AS fixed, COUNT(DISTINCT source) AS sources FROM entries`).get() as {
      n: number;
      fixed: number;
      sources: number;
    };
    const releases = (this.db.prepare('SELECT DISTINCT release FROM entries ORDER BY release').all() as Array<{ release: string }>).map((r) => r.release);
    const last = this.db.prepare('SELECT seq, loaded_at FROM loads ORDER BY seq DESC LIMIT 1').get() as { seq: number; loaded_at: string };
    return {
      generation: last.seq,
      loadedAt: last.loaded_at,
      origins: feeds.flatMap((f) => f.origins),
      feeds,
      entries: totals.n,
      fixed: totals.fixed,
      open: totals.n - totals.fixed,
      releases,
      sources: totals.sources,
    };
  }

  async generation(): Promise<number> {
    return this.currentGeneration();
  }

  async status(): Promise<LoadRecord | null> {
    return this.db.transaction(() => this.record())();
  }

  async replace(loads: readonly FeedLoad[], now = new Date()): Promise<LoadRecord> {
    const names = loads.map((l) => l.feed);
    const bad = names.find((n) => !FEED_NAME.test(n));
    if (bad !== undefined) throw new CveStoreError(`invalid feed name ${JSON.stringify(bad.slice(0, 80))}: lowercase letters, digits, . _ - (at most 64); the previous data is unchanged`);
    if (new Set(names).size !== names.length) throw new CveStoreError(`a feed is named twice in one load (${names.join(', ')}); the previous data is unchanged`);
    const loadedAt = now.toISOString();
    let record: LoadRecord;
    try {
      const insert = this.db.prepare('INSERT INTO entries (feed, release, source, id, introduced, fixed, severity, remote, advisory) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
      const describe = this.db.prepare('INSERT OR IGNORE INTO descriptions (feed, id, text) VALUES (?, ?, ?)');
      const run = this.db.transaction(() => {
        const seq = Number(
          this.db.prepare('INSERT INTO loads (loaded_at, record) VALUES (?, ?)').run(loadedAt, JSON.stringify({ loadedAt, feeds: loads.map((l) => ({ name: l.feed, origins: l.origins, entries: l.entries.length })) })).lastInsertRowid,
        );
        for (const l of loads) {
          this.db.prepare('DELETE FROM entries WHERE feed = ?').run(l.feed);
          this.db.prepare('DELETE FROM descriptions WHERE feed = ?').run(l.feed);
          for (const e of l.entries) {
            insert.run(l.feed, e.release, e.source, e.id, e.introduced ?? '', e.fixed, e.severity, e.remote === null ? null : e.remote ? 1 : 0, e.advisory ?? null);
            if (e.description) describe.run(l.feed, e.id, e.description);
          }
          this.db.prepare('INSERT OR REPLACE INTO feeds (name, seq, loaded_at, origins) VALUES (?, ?, ?, ?)').run(l.feed, seq, loadedAt, JSON.stringify(l.origins));
        }
        return this.record()!;
      });
      // IMMEDIATE: take the write lock first, so a concurrent load waits instead of failing half-way.
      record = run.immediate();
    } catch (err) {
      throw new CveStoreError(`writing the CVE store ${this.location} failed; the previous data is unchanged: ${(err as Error).message}`);
    }
    return record;
  }

  async remove(feed: string, now = new Date()): Promise<LoadRecord | null> {
    const loadedAt = now.toISOString();
    const run = this.db.transaction(() => {
      if (!this.db.prepare('SELECT 1 FROM feeds WHERE name = ?').get(feed)) {
        const known = (this.db.prepare('SELECT name FROM feeds ORDER BY name').all() as Array<{ name: string }>).map((r) => r.name);
        throw new CveStoreError(`no feed named ${JSON.stringify(feed.slice(0, 80))} in ${this.location} (stored: ${known.join(', ') || 'none'})`);
      }
      this.db.prepare('DELETE FROM entries WHERE feed = ?').run(feed);
      this.db.prepare('DELETE FROM descriptions WHERE feed = ?').run(feed);
      this.db.prepare('DELETE FROM feeds WHERE name = ?').run(feed);
      // A removal is a new generation, so every matcher rebuilds without the feed.
      this.db.prepare('INSERT INTO loads (loaded_at, record) VALUES (?, ?)').run(loadedAt, JSON.stringify({ loadedAt, removed: feed }));
      return this.record();
    });
    try {
      return run.immediate();
    } catch (err) {
      if (err instanceof CveStoreError) throw err;
      throw new CveStoreError(`writing the CVE store ${this.location} failed; the previous data is unchanged: ${(err as Error).message}`);
    }
  }

  async entries(feed?: string): Promise<VulnEntry[]> {
    const rows = this.db
      .prepare(
        `SELECT e.release, e.source, e.id, e.introduced, e.fixed, e.severity, e.remote, e.advisory, d.text AS description
         FROM entries e LEFT JOIN descriptions d ON d.feed = e.feed AND d.id = e.id
         ${feed === undefined ? '' : 'WHERE e.feed = ?'} ORDER BY e.release, e.source, e.id, e.introduced, e.feed`,
      )
      .all(...(feed === undefined ? [] : [feed])) as EntryRow[];
    return rows.map(entryOf);
  }

  async matchingData(): Promise<MatchingData> {
    // One read transaction, so a load from another process can not land between the generation and the rows.
    return this.db.transaction(() => {
      const generation = this.currentGeneration();
      const descriptions = new Map<string, string>();
      // Feeds in name order: the first feed that describes an id gives its description.
      for (const r of this.db.prepare('SELECT id, text FROM descriptions ORDER BY feed').iterate() as Iterable<{ id: string; text: string }>) if (!descriptions.has(r.id)) descriptions.set(r.id, r.text);
      const rows = this.db.prepare('SELECT release, source, id, introduced, fixed, severity, remote, advisory FROM entries WHERE fixed IS NOT NULL ORDER BY feed').all() as EntryRow[];
      return { generation, fixed: rows.map(entryOf), descriptions };
    })();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
