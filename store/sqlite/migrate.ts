/**
 * Versioned schema migrations for every wott SQLite database: the version is SQLite's own `user_version`, each
 * migration runs once, in order, inside one IMMEDIATE transaction together with the version bump (so a crash
 * leaves the old schema or the new one, never half), and a database written by a newer wott is refused instead of
 * being damaged. Migration 1 of each database uses `IF NOT EXISTS`, so files made before migrations existed
 * (user_version 0, same tables) are adopted as they are.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  /** 1, 2, 3 …: each one more than the previous. */
  version: number;
  /** What it does, for an error message. */
  name: string;
  up: string | ((db: Database.Database) => void);
}

export class SchemaError extends Error {
  override name = 'SchemaError';
}

/** Brings `db` to the newest of `migrations`; returns the versions applied. `what` names the database in errors. */
export function migrate(db: Database.Database, migrations: readonly Migration[], what: string): number[] {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`${what}: migration ${m.name} is numbered ${m.version}, expected ${i + 1}`);
  });
  const newest = migrations.length;
  const applied: number[] = [];
  const current = () => db.pragma('user_version', { simple: true }) as number;
  if (current() > newest) {
    throw new SchemaError(`the ${what} was written by a newer wott (schema ${current()}, this wott knows ${newest}); upgrade wott`);
  }
  for (const m of migrations) {
    if (current() >= m.version) continue;
    db.transaction(() => {
      // Re-checked under the write lock: another process opening the same file may have migrated it meanwhile.
      if (current() >= m.version) return;
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
      db.pragma(`user_version = ${m.version}`);
      applied.push(m.version);
    }).immediate();
  }
  return applied;
}
