/** ActionDecisionStore on PostgreSQL (table action_decisions beside the inventory's). */
import type pg from 'pg';
import type { ActionDecisionRow, ActionDecisionStore } from '../actions.js';
import { migratePostgres, type PgMigration } from './migrate.js';
import { openPool, safeLocation, type PostgresOptions } from './pool.js';

const MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'action decisions (snooze, ignore)',
    up: `
      CREATE TABLE action_decisions (
        device TEXT COLLATE "C" NOT NULL,
        action TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('snooze','ignore')),
        until TEXT COLLATE "C",
        actor TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (device, action)
      );
    `,
  },
];

type Raw = Record<string, unknown>;
const asRow = (r: Raw): ActionDecisionRow => ({
  device: r.device as string,
  action: r.action as string,
  kind: r.kind as ActionDecisionRow['kind'],
  until: (r.until as string | null) ?? null,
  actor: r.actor as string,
  time: r.time as string,
});

export class PostgresActionDecisionStore implements ActionDecisionStore {
  private closed = false;
  private constructor(
    readonly location: string,
    private readonly pool: pg.Pool,
  ) {}

  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresActionDecisionStore> {
    const location = safeLocation(url);
    const pool = openPool(url, { max: 2, ...options });
    try {
      await migratePostgres(pool, 'actions', MIGRATIONS, `action decision database ${location}`);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PostgresActionDecisionStore(location, pool);
  }

  private async query(text: string, values?: unknown[]): Promise<pg.QueryResult<Raw>> {
    if (this.closed) throw new Error(`the action decision database ${this.location} is closed`);
    return this.pool.query<Raw>(text, values);
  }

  async all(): Promise<ActionDecisionRow[]> {
    // Snoozes that ran out a week ago are only history: dropped here, on the way.
    const before = new Date(Date.now() - 7 * 86_400_000).toISOString();
    await this.query("DELETE FROM action_decisions WHERE kind = 'snooze' AND until < $1", [before]);
    return (await this.query('SELECT * FROM action_decisions ORDER BY device, action')).rows.map(asRow);
  }

  async put(row: ActionDecisionRow): Promise<void> {
    await this.query(
      'INSERT INTO action_decisions (device, action, kind, until, actor, time) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device, action) DO UPDATE SET kind = excluded.kind, until = excluded.until, actor = excluded.actor, time = excluded.time',
      [row.device, row.action, row.kind, row.until, row.actor, row.time],
    );
  }

  async remove(device: string, action: string): Promise<boolean> {
    return (await this.query('DELETE FROM action_decisions WHERE device = $1 AND action = $2', [device, action])).rowCount === 1;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
