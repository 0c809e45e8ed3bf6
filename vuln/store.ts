/**
 * The embedded CVE store: one SQLite database under <dataDir>/cve/cve.db (better-sqlite3, as the CA inventory).
 * A load replaces everything in a single transaction, after the new feed has been fully parsed and validated,
 * so a reader (or a crash) sees the previous data or the new data, never a mix. Every load is recorded: when,
 * from where, what format, how many entries. The in-memory matching index is rebuilt when the load changes.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ensurePrivateDir } from '../lib/private.js';
import { openPrivateDatabase } from '../lib/sqlite.js';
import type { ListeningSocket } from '../protocol/index.js';
import type { CveEntry, FeedFormat, FeedStats, Severity } from './feed.js';
import { buildIndex, matchPackages, type CveFinding, type CveIndex, type InventoryEntry, type OsRelease } from './match.js';

const SCHEMA_VERSION = 1;

export interface FeedOrigin {
  /** File path or URL as given. */
  from: string;
  format: FeedFormat;
  bytes: number;
  sha256: string;
  stats: FeedStats;
}

export interface LoadRecord {
  /** Increases with every successful load. */
  generation: number;
  loadedAt: string;
  origins: FeedOrigin[];
  /** Entries stored after merging duplicates across feeds. */
  entries: number;
  fixed: number;
  open: number;
  releases: string[];
  sources: number;
}

export class CveStoreError extends Error {
  override name = 'CveStoreError';
}

export class CveStore {
  private cached: CveIndex | undefined;

  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {}

  static open(dataDir: string): CveStore {
    const dir = join(dataDir, 'cve');
    ensurePrivateDir(dataDir);
    const path = join(dir, 'cve.db');
    // Folder 0700, database 0600 (also when made by an older version).
    const { db } = openPrivateDatabase(
      path,
      'CVE store',
      (db) => {
        db.pragma('busy_timeout = 10000');
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
      },
      { folder: dir, fail: (message) => new CveStoreError(message) },
    );
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new CveStoreError(`the CVE store ${path} was written by a newer wott (schema ${version}); upgrade wott`);
    }
    db.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        release TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, introduced TEXT NOT NULL DEFAULT '',
        fixed TEXT, severity TEXT NOT NULL, remote INTEGER, advisory TEXT,
        PRIMARY KEY (release, source, id, introduced)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS descriptions (id TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS loads (seq INTEGER PRIMARY KEY AUTOINCREMENT, loaded_at TEXT NOT NULL, record TEXT NOT NULL);
    `);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return new CveStore(path, db);
  }

  close(): void {
    this.db.close();
  }

  /** The generation of the current data (0 when nothing was ever loaded). */
  generation(): number {
    const row = this.db.prepare('SELECT MAX(seq) AS g FROM loads').get() as { g: number | null };
    return row.g ?? 0;
  }

  /** What is loaded now, or null when the store is empty. */
  status(): LoadRecord | null {
    const row = this.db.prepare('SELECT seq, record FROM loads ORDER BY seq DESC LIMIT 1').get() as { seq: number; record: string } | undefined;
    if (!row) return null;
    return { ...(JSON.parse(row.record) as Omit<LoadRecord, 'generation'>), generation: row.seq };
  }

  /**
   * Replaces all data with `entries` (already merged: one per release/source/id/introduced) in one transaction.
   * Throws without changing anything if the write fails.
   */
  replace(entries: readonly CveEntry[], origins: FeedOrigin[], now = new Date()): LoadRecord {
    const insert = this.db.prepare('INSERT INTO entries (release, source, id, introduced, fixed, severity, remote, advisory) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const describe = this.db.prepare('INSERT OR IGNORE INTO descriptions (id, text) VALUES (?, ?)');
    const record: Omit<LoadRecord, 'generation'> = {
      loadedAt: now.toISOString(),
      origins,
      entries: entries.length,
      fixed: entries.filter((e) => e.fixed !== null).length,
      open: entries.filter((e) => e.fixed === null).length,
      releases: [...new Set(entries.map((e) => e.release))].sort(),
      sources: new Set(entries.map((e) => e.source)).size,
    };
    const run = this.db.transaction(() => {
      this.db.exec('DELETE FROM entries; DELETE FROM descriptions;');
      for (const e of entries) {
        insert.run(e.release, e.source, e.id, e.introduced ?? '', e.fixed, e.severity, e.remote === null ? null : e.remote ? 1 : 0, e.advisory ?? null);
        if (e.description) describe.run(e.id, e.description);
      }
      return Number(this.db.prepare('INSERT INTO loads (loaded_at, record) VALUES (?, ?)').run(record.loadedAt, JSON.stringify(record)).lastInsertRowid);
    });
    let generation: number;
    try {
      generation = run.immediate();
    } catch (err) {
      throw new CveStoreError(`writing the CVE store ${this.path} failed; the previous data is unchanged: ${(err as Error).message}`);
    }
    this.cached = undefined;
    return { ...record, generation };
  }

  /** Every stored entry (descriptions joined back in). */
  *entries(): Generator<CveEntry> {
    const rows = this.db
      .prepare(
        `SELECT e.release, e.source, e.id, e.introduced, e.fixed, e.severity, e.remote, e.advisory, d.text AS description
         FROM entries e LEFT JOIN descriptions d ON d.id = e.id ORDER BY e.release, e.source, e.id`,
      )
      .iterate() as Iterable<{ release: string; source: string; id: string; introduced: string; fixed: string | null; severity: Severity; remote: number | null; advisory: string | null; description: string | null }>;
    for (const r of rows) {
      const e: CveEntry = { id: r.id, source: r.source, release: r.release, fixed: r.fixed, severity: r.severity, remote: r.remote === null ? null : r.remote === 1 };
      if (r.introduced) e.introduced = r.introduced;
      if (r.advisory) e.advisory = r.advisory;
      if (r.description) e.description = r.description;
      yield e;
    }
  }

  /** The matching index for the current data; rebuilt only when another load happened (here or in another process). */
  index(): CveIndex {
    const generation = this.generation();
    if (this.cached && this.cached.generation === generation) return this.cached;
    // Read in one transaction so a concurrent load cannot interleave with the scan.
    const read = this.db.transaction(() => {
      const g = this.generation();
      const descriptions = new Map<string, string>();
      for (const r of this.db.prepare('SELECT id, text FROM descriptions').iterate() as Iterable<{ id: string; text: string }>) descriptions.set(r.id, r.text);
      const rows = this.db.prepare('SELECT release, source, id, introduced, fixed, severity, remote, advisory FROM entries WHERE fixed IS NOT NULL').iterate() as Iterable<{
        release: string;
        source: string;
        id: string;
        introduced: string;
        fixed: string;
        severity: Severity;
        remote: number | null;
        advisory: string | null;
      }>;
      const index = buildIndex(
        (function* () {
          for (const r of rows) {
            const e: CveEntry = { id: r.id, source: r.source, release: r.release, fixed: r.fixed, severity: r.severity, remote: r.remote === null ? null : r.remote === 1 };
            if (r.introduced) e.introduced = r.introduced;
            if (r.advisory) e.advisory = r.advisory;
            yield e;
          }
        })(),
        g,
      );
      for (const [id, text] of descriptions) index.descriptions.set(id, text);
      return index;
    });
    this.cached = read();
    return this.cached;
  }
}

/**
 * The scoring engine's view of the store (VulnerabilityMatcher in scoring/engine.ts): `generation` changes when
 * `wott cve update` loads new data (in this process or another), and `match` uses the index of the current data.
 */
export class StoreMatcher {
  constructor(readonly store: CveStore) {}

  get generation(): number {
    return this.store.generation();
  }

  /** False until something was loaded: the score then leaves the CVE factor out rather than claiming "no CVEs". */
  get loaded(): boolean {
    return this.store.generation() > 0;
  }

  match(packages: readonly InventoryEntry[], os: OsRelease, listening: readonly ListeningSocket[] = []): CveFinding[] {
    return matchPackages(this.store.index(), packages, os, listening);
  }
}
