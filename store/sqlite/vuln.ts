/**
 * The vulnerability store in SQLite: <dataDir>/cve/cve.db, WAL, synchronous FULL (the data is slow to reload). Every
 * method runs its statements, and its transaction, synchronously inside one call of better-sqlite3, so two calls on
 * one connection can not interleave even though the interface is asynchronous.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { ensurePrivateDir } from '../../lib/private.js';
import { openPrivateDatabase } from './open.js';
import { CveStoreError, type FeedOrigin, type LoadRecord, type MatchingData, type VulnEntry, type VulnSeverity, type VulnStore } from '../vuln.js';
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

class SqliteVulnStore implements VulnStore {
  constructor(
    readonly location: string,
    private readonly db: Database.Database,
  ) {}

  private currentGeneration(): number {
    const row = this.db.prepare('SELECT MAX(seq) AS g FROM loads').get() as { g: number | null };
    return row.g ?? 0;
  }

  async generation(): Promise<number> {
    return this.currentGeneration();
  }

  async status(): Promise<LoadRecord | null> {
    const row = this.db.prepare('SELECT seq, record FROM loads ORDER BY seq DESC LIMIT 1').get() as { seq: number; record: string } | undefined;
    if (!row) return null;
    return { ...(JSON.parse(row.record) as Omit<LoadRecord, 'generation'>), generation: row.seq };
  }

  async replace(entries: readonly VulnEntry[], origins: readonly FeedOrigin[], now = new Date()): Promise<LoadRecord> {
    const record: Omit<LoadRecord, 'generation'> = {
      loadedAt: now.toISOString(),
      origins: [...origins],
      entries: entries.length,
      fixed: entries.filter((e) => e.fixed !== null).length,
      open: entries.filter((e) => e.fixed === null).length,
      releases: [...new Set(entries.map((e) => e.release))].sort(),
      sources: new Set(entries.map((e) => e.source)).size,
    };
    let generation: number;
    try {
      const insert = this.db.prepare('INSERT INTO entries (release, source, id, introduced, fixed, severity, remote, advisory) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      const describe = this.db.prepare('INSERT OR IGNORE INTO descriptions (id, text) VALUES (?, ?)');
      const run = this.db.transaction(() => {
        this.db.exec('DELETE FROM entries; DELETE FROM descriptions;');
        for (const e of entries) {
          insert.run(e.release, e.source, e.id, e.introduced ?? '', e.fixed, e.severity, e.remote === null ? null : e.remote ? 1 : 0, e.advisory ?? null);
          if (e.description) describe.run(e.id, e.description);
        }
        return Number(this.db.prepare('INSERT INTO loads (loaded_at, record) VALUES (?, ?)').run(record.loadedAt, JSON.stringify(record)).lastInsertRowid);
      });
      // IMMEDIATE: take the write lock first, so a concurrent load waits instead of failing half-way.
      generation = run.immediate();
    } catch (err) {
      throw new CveStoreError(`writing the CVE store ${this.location} failed; the previous data is unchanged: ${(err as Error).message}`);
    }
    return { ...record, generation };
  }

  async entries(): Promise<VulnEntry[]> {
    const rows = this.db
      .prepare(
        `SELECT e.release, e.source, e.id, e.introduced, e.fixed, e.severity, e.remote, e.advisory, d.text AS description
         FROM entries e LEFT JOIN descriptions d ON d.id = e.id ORDER BY e.release, e.source, e.id, e.introduced`,
      )
      .all() as EntryRow[];
    return rows.map(entryOf);
  }

  async matchingData(): Promise<MatchingData> {
    // One read transaction, so a load from another process can not land between the generation and the rows.
    return this.db.transaction(() => {
      const generation = this.currentGeneration();
      const descriptions = new Map<string, string>();
      for (const r of this.db.prepare('SELECT id, text FROM descriptions').iterate() as Iterable<{ id: string; text: string }>) descriptions.set(r.id, r.text);
      const rows = this.db.prepare('SELECT release, source, id, introduced, fixed, severity, remote, advisory FROM entries WHERE fixed IS NOT NULL').all() as EntryRow[];
      return { generation, fixed: rows.map(entryOf), descriptions };
    })();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
