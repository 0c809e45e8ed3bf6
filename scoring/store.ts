/**
 * Scoring's embedded store (SQLite, WAL): per-device scoring state so a restart keeps replay protection,
 * penalties and package lists; the latest score with its CVE findings (for `wott score show`); and a score
 * history with bounded retention, so the gateway keeps history with no InfluxDB.
 */
import Database from 'better-sqlite3';
import { openPrivateDatabase } from '../lib/sqlite.js';
import type { ScoreMessage } from '../protocol/index.js';
import type { CveFindingInput } from './factors.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS records (device TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latest (device TEXT PRIMARY KEY, message TEXT NOT NULL, findings TEXT);
CREATE TABLE IF NOT EXISTS history (device TEXT NOT NULL, time INTEGER NOT NULL, score REAL NOT NULL, model TEXT NOT NULL, factors TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_device_time ON history(device, time);
CREATE INDEX IF NOT EXISTS history_time ON history(time);
`;

export interface StoredScore {
  message: ScoreMessage;
  findings?: CveFindingInput[];
}

export interface HistoryRow {
  time: number;
  score: number;
  model: string;
  factors: Array<{ id: string; contribution: number }>;
}

export class ScoringStore {
  private readonly db: Database.Database;
  private readonly upsertRecord: Database.Statement;
  private readonly upsertLatest: Database.Statement;
  private readonly insertHistory: Database.Statement;

  constructor(
    readonly path: string,
    private readonly retentionMs = 30 * 86_400_000,
  ) {
    // Folder 0700, database 0600 (also when made by an older version).
    this.db = openPrivateDatabase(path, 'scoring store', (db) => {
      db.pragma('journal_mode = WAL');
      // Scoring state is derived data: losing the last commit in a power cut costs at most one recomputation.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    }).db;
    this.upsertRecord = this.db.prepare('INSERT INTO records (device, data) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET data = excluded.data');
    this.upsertLatest = this.db.prepare('INSERT INTO latest (device, message, findings) VALUES (?, ?, ?) ON CONFLICT(device) DO UPDATE SET message = excluded.message, findings = excluded.findings');
    this.insertHistory = this.db.prepare('INSERT INTO history (device, time, score, model, factors) VALUES (?, ?, ?, ?, ?)');
  }

  /** One transaction for a batch of changed records and published scores. */
  commit(records: Array<[string, string]>, scores: StoredScore[]): void {
    this.db.transaction(() => {
      for (const [device, data] of records) this.upsertRecord.run(device, data);
      for (const s of scores) {
        const m = s.message;
        this.upsertLatest.run(m.device, JSON.stringify(m), s.findings ? JSON.stringify(s.findings) : null);
        const compact = m.factors.filter((f) => f.contribution !== 0).map((f) => ({ id: f.id, contribution: f.contribution }));
        this.insertHistory.run(m.device, Date.parse(m.time), m.score, m.modelVersion, JSON.stringify(compact));
      }
    })();
  }

  records(): Array<[string, string]> {
    return (this.db.prepare('SELECT device, data FROM records').all() as Array<{ device: string; data: string }>).map((r) => [r.device, r.data]);
  }

  latest(device: string): StoredScore | undefined {
    const row = this.db.prepare('SELECT message, findings FROM latest WHERE device = ?').get(device) as { message: string; findings: string | null } | undefined;
    if (!row) return undefined;
    return { message: JSON.parse(row.message) as ScoreMessage, ...(row.findings ? { findings: JSON.parse(row.findings) as CveFindingInput[] } : {}) };
  }

  allLatest(): ScoreMessage[] {
    return (this.db.prepare('SELECT message FROM latest').all() as Array<{ message: string }>).map((r) => JSON.parse(r.message) as ScoreMessage);
  }

  history(device: string, sinceMs = 0, limit = 1000): HistoryRow[] {
    const rows = this.db
      .prepare('SELECT time, score, model, factors FROM history WHERE device = ? AND time >= ? ORDER BY time DESC LIMIT ?')
      .all(device, sinceMs, limit) as Array<{ time: number; score: number; model: string; factors: string }>;
    return rows.reverse().map((r) => ({ ...r, factors: JSON.parse(r.factors) as HistoryRow['factors'] }));
  }

  /** Deletes history older than the retention; returns how many rows went. */
  prune(now = Date.now()): number {
    return this.db.prepare('DELETE FROM history WHERE time < ?').run(now - this.retentionMs).changes;
  }

  close(): void {
    this.db.close();
  }
}
