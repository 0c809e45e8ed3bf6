/**
 * The score store in SQLite (WAL), in one file (data/scoring/scores.db). Every method runs its statements, and its
 * transaction, synchronously inside one call of better-sqlite3, so two calls on one connection can not interleave
 * even though the interface is asynchronous.
 */
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from './open.js';
import type { ScoreMessage } from '../../protocol/index.js';
import { DEFAULT_HISTORY_RETENTION_MS, historyFactors, type HistoryRow, type ScoreStore, type ScoreStoreOptions, type ScoringRecord, type StoredFinding, type StoredScore } from '../scores.js';
import { migrate, type Migration } from './migrate.js';
import { StaleEpochError } from '../errors.js';

export const SCORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    // The schema of the files written before migrations existed, so that they are adopted as they are.
    name: 'records, latest scores, history',
    up: `
CREATE TABLE IF NOT EXISTS records (device TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latest (device TEXT PRIMARY KEY, message TEXT NOT NULL, findings TEXT);
CREATE TABLE IF NOT EXISTS history (device TEXT NOT NULL, time INTEGER NOT NULL, score REAL NOT NULL, model TEXT NOT NULL, factors TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_device_time ON history(device, time);
CREATE INDEX IF NOT EXISTS history_time ON history(time);
`,
  },
  {
    version: 2,
    name: 'scoring lease fence',
    // One row: the highest scoring lease epoch a commit came with (see ScoreStore.commit).
    up: `CREATE TABLE fence (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL);`,
  },
];

/** Opens (or creates) the score store at `path`: folder 0700, files 0600 (also when made by an older version). */
export async function openSqliteScoreStore(path: string, options: ScoreStoreOptions = {}): Promise<ScoreStore> {
  const what = `scoring store ${path}`;
  const { db } = openPrivateDatabase(path, 'scoring store', (db) => {
    db.pragma('journal_mode = WAL');
    // Scoring state is derived data: losing the last commit in a power cut costs at most one recomputation.
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
  });
  try {
    migrate(db, SCORE_MIGRATIONS, what);
  } catch (err) {
    db.close();
    throw err;
  }
  return new SqliteScoreStore(path, db, options.retentionMs ?? DEFAULT_HISTORY_RETENTION_MS);
}

class SqliteScoreStore implements ScoreStore {
  private readonly upsertRecord: Database.Statement;
  private readonly upsertLatest: Database.Statement;
  private readonly insertHistory: Database.Statement;
  private readonly readFence: Database.Statement;
  private readonly raiseFence: Database.Statement;

  constructor(
    readonly location: string,
    private readonly db: Database.Database,
    private readonly retentionMs: number,
  ) {
    this.upsertRecord = db.prepare('INSERT INTO records (device, data) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET data = excluded.data');
    this.upsertLatest = db.prepare('INSERT INTO latest (device, message, findings) VALUES (?, ?, ?) ON CONFLICT(device) DO UPDATE SET message = excluded.message, findings = excluded.findings');
    this.insertHistory = db.prepare('INSERT INTO history (device, time, score, model, factors) VALUES (?, ?, ?, ?, ?)');
    this.readFence = db.prepare('SELECT epoch FROM fence WHERE id = 1');
    this.raiseFence = db.prepare('INSERT INTO fence (id, epoch) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch');
  }

  async commit(records: readonly ScoringRecord[], scores: readonly StoredScore[], epoch?: number): Promise<void> {
    this.db.transaction(() => {
      if (epoch !== undefined) {
        // Read and raised under the write lock (an IMMEDIATE transaction): scorers of other processes wait here.
        const fence = (this.readFence.get() as { epoch: number } | undefined)?.epoch ?? 0;
        if (epoch < fence) throw new StaleEpochError(epoch, fence);
        if (epoch > fence) this.raiseFence.run(epoch);
      }
      for (const [device, data] of records) this.upsertRecord.run(device, data);
      for (const s of scores) {
        const m = s.message;
        this.upsertLatest.run(m.device, JSON.stringify(m), s.findings ? JSON.stringify(s.findings) : null);
        this.insertHistory.run(m.device, Date.parse(m.time), m.score, m.modelVersion, JSON.stringify(historyFactors(m.factors)));
      }
    }).immediate();
  }

  async records(): Promise<Array<[string, string]>> {
    return (this.db.prepare('SELECT device, data FROM records').all() as Array<{ device: string; data: string }>).map((r) => [r.device, r.data]);
  }

  async latest(device: string): Promise<StoredScore | undefined> {
    const row = this.db.prepare('SELECT message, findings FROM latest WHERE device = ?').get(device) as { message: string; findings: string | null } | undefined;
    if (!row) return undefined;
    return { message: JSON.parse(row.message) as ScoreMessage, ...(row.findings ? { findings: JSON.parse(row.findings) as StoredFinding[] } : {}) };
  }

  async allLatest(): Promise<ScoreMessage[]> {
    return (this.db.prepare('SELECT message FROM latest').all() as Array<{ message: string }>).map((r) => JSON.parse(r.message) as ScoreMessage);
  }

  async history(device: string, options: { since?: number; limit?: number } = {}): Promise<HistoryRow[]> {
    const rows = this.db
      .prepare('SELECT time, score, model, factors FROM history WHERE device = ? AND time >= ? ORDER BY time DESC LIMIT ?')
      .all(device, options.since ?? 0, options.limit ?? 1000) as Array<{ time: number; score: number; model: string; factors: string }>;
    return rows.reverse().map((r) => ({ ...r, factors: JSON.parse(r.factors) as HistoryRow['factors'] }));
  }

  async prune(now = Date.now()): Promise<number> {
    return this.db.prepare('DELETE FROM history WHERE time < ?').run(now - this.retentionMs).changes;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
