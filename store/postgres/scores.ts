/**
 * The score store on PostgreSQL (tables score_records, score_latest, score_history beside the inventory's). Calls on
 * one store object run one at a time, in order (a promise queue), as the contract asks; each commit is one
 * transaction. Times are milliseconds since the epoch (BIGINT), scores double precision, as on SQLite.
 */
import type pg from 'pg';
import type { ScoreMessage } from '../../protocol/index.js';
import { DEFAULT_HISTORY_RETENTION_MS, historyFactors, type HistoryRow, type ScoreStore, type ScoreStoreOptions, type ScoringRecord, type StoredFinding, type StoredScore } from '../scores.js';
import { migratePostgres, type PgMigration } from './migrate.js';
import { StaleEpochError } from '../errors.js';
import { inTransaction, openPool, safeLocation, Serial, type PostgresOptions } from './pool.js';

const MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'records, latest scores, history',
    up: `
CREATE TABLE score_records (device TEXT COLLATE "C" PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE score_latest (device TEXT COLLATE "C" PRIMARY KEY, message TEXT NOT NULL, findings TEXT);
CREATE TABLE score_history (device TEXT COLLATE "C" NOT NULL, time BIGINT NOT NULL, score DOUBLE PRECISION NOT NULL, model TEXT NOT NULL, factors TEXT NOT NULL);
CREATE INDEX score_history_device_time ON score_history(device, time);
CREATE INDEX score_history_time ON score_history(time);
`,
  },
  {
    version: 2,
    name: 'scoring lease fence',
    // One row: the highest scoring lease epoch a commit came with (see ScoreStore.commit).
    up: `CREATE TABLE score_fence (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL);
INSERT INTO score_fence (id, epoch) VALUES (1, 0);`,
  },
];

class PostgresScoreStore implements ScoreStore {
  private readonly serial = new Serial();
  private closed = false;

  constructor(
    readonly location: string,
    private readonly pool: pg.Pool,
    private readonly retentionMs: number,
  ) {}

  private run<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial.run(() => (this.closed ? Promise.reject(new Error(`the scoring store ${this.location} is closed`)) : fn()));
  }

  commit(records: readonly ScoringRecord[], scores: readonly StoredScore[], epoch?: number): Promise<void> {
    return this.run(() =>
      inTransaction(this.pool, async (client) => {
        if (epoch !== undefined) {
          // The row lock orders scorers of every node: a deposed one waits here, then sees the newer epoch.
          const fence = Number((await client.query<{ epoch: string }>('SELECT epoch FROM score_fence WHERE id = 1 FOR UPDATE')).rows[0]!.epoch);
          if (epoch < fence) throw new StaleEpochError(epoch, fence);
          if (epoch > fence) await client.query('UPDATE score_fence SET epoch = $1 WHERE id = 1', [epoch]);
        }
        for (const [device, data] of records) {
          await client.query('INSERT INTO score_records (device, data) VALUES ($1, $2) ON CONFLICT (device) DO UPDATE SET data = excluded.data', [device, data]);
        }
        for (const s of scores) {
          const m = s.message;
          await client.query('INSERT INTO score_latest (device, message, findings) VALUES ($1, $2, $3) ON CONFLICT (device) DO UPDATE SET message = excluded.message, findings = excluded.findings', [
            m.device,
            JSON.stringify(m),
            s.findings ? JSON.stringify(s.findings) : null,
          ]);
          await client.query('INSERT INTO score_history (device, time, score, model, factors) VALUES ($1, $2, $3, $4, $5)', [m.device, Date.parse(m.time), m.score, m.modelVersion, JSON.stringify(historyFactors(m.factors))]);
        }
      }),
    );
  }

  records(): Promise<Array<[string, string]>> {
    return this.run(async () => (await this.pool.query<{ device: string; data: string }>('SELECT device, data FROM score_records')).rows.map((r) => [r.device, r.data]));
  }

  latest(device: string): Promise<StoredScore | undefined> {
    return this.run(async () => {
      const row = (await this.pool.query<{ message: string; findings: string | null }>('SELECT message, findings FROM score_latest WHERE device = $1', [device])).rows[0];
      if (!row) return undefined;
      return { message: JSON.parse(row.message) as ScoreMessage, ...(row.findings ? { findings: JSON.parse(row.findings) as StoredFinding[] } : {}) };
    });
  }

  allLatest(): Promise<ScoreMessage[]> {
    return this.run(async () => (await this.pool.query<{ message: string }>('SELECT message FROM score_latest')).rows.map((r) => JSON.parse(r.message) as ScoreMessage));
  }

  history(device: string, options: { since?: number; limit?: number } = {}): Promise<HistoryRow[]> {
    return this.run(async () => {
      const rows = (
        await this.pool.query<{ time: string; score: number; model: string; factors: string }>(
          'SELECT time, score, model, factors FROM score_history WHERE device = $1 AND time >= $2 ORDER BY time DESC LIMIT $3',
          [device, options.since ?? 0, options.limit ?? 1000],
        )
      ).rows;
      return rows.reverse().map((r) => ({ time: Number(r.time), score: r.score, model: r.model, factors: JSON.parse(r.factors) as HistoryRow['factors'] }));
    });
  }

  prune(now = Date.now()): Promise<number> {
    return this.run(async () => (await this.pool.query('DELETE FROM score_history WHERE time < $1', [now - this.retentionMs])).rowCount ?? 0);
  }

  close(): Promise<void> {
    return this.serial.run(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.pool.end();
    });
  }
}

/** Opens (creating and migrating when needed) the score store in the PostgreSQL database at `url`. */
export async function openPostgresScoreStore(url: string, options: ScoreStoreOptions & PostgresOptions = {}): Promise<ScoreStore> {
  const location = safeLocation(url);
  const pool = openPool(url, options);
  try {
    await migratePostgres(pool, 'scores', MIGRATIONS, `scoring store ${location}`);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return new PostgresScoreStore(location, pool, options.retentionMs ?? DEFAULT_HISTORY_RETENTION_MS);
}
