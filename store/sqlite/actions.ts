/** ActionDecisionStore on SQLite, in its own file `<dataDir>/actions.db` (WAL, private modes, versioned schema). */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import type { ActionDecisionRow, ActionDecisionStore } from '../actions.js';
import { migrate, type Migration } from './migrate.js';
import { openPrivateDatabase } from './open.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'action decisions (snooze, ignore)',
    up: `
      CREATE TABLE IF NOT EXISTS action_decisions (
        device TEXT NOT NULL,
        action TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('snooze','ignore')),
        until TEXT,
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

export class SqliteActionDecisionStore implements ActionDecisionStore {
  private readonly db: Database.Database;
  readonly modeProblems: string[];

  constructor(readonly location: string) {
    ({ db: this.db, modeProblems: this.modeProblems } = openPrivateDatabase(location, 'action decision database', (db) => {
      db.pragma('busy_timeout = 10000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      migrate(db, MIGRATIONS, `action decision database ${location}`);
    }));
  }

  static open(dataDir: string): SqliteActionDecisionStore {
    return new SqliteActionDecisionStore(join(dataDir, 'actions.db'));
  }

  async all(): Promise<ActionDecisionRow[]> {
    // Snoozes that ran out a week ago are only history: dropped here, on the way.
    const before = new Date(Date.now() - 7 * 86_400_000).toISOString();
    this.db.prepare("DELETE FROM action_decisions WHERE kind = 'snooze' AND until < ?").run(before);
    return (this.db.prepare('SELECT * FROM action_decisions ORDER BY device, action').all() as Raw[]).map(asRow);
  }

  async put(row: ActionDecisionRow): Promise<void> {
    this.db
      .prepare('INSERT INTO action_decisions (device, action, kind, until, actor, time) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device, action) DO UPDATE SET kind = excluded.kind, until = excluded.until, actor = excluded.actor, time = excluded.time')
      .run(row.device, row.action, row.kind, row.until, row.actor, row.time);
  }

  async remove(device: string, action: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM action_decisions WHERE device = ? AND action = ?').run(device, action).changes === 1;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
