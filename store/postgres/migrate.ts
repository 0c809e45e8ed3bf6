/**
 * Versioned schema migrations on PostgreSQL. Every store keeps its version in `wott_schema` under its own name (the
 * stores share one database). Several nodes starting together migrate once: the whole check-and-migrate runs under
 * a session advisory lock, so the second node waits, then finds the schema current. Each migration runs in one
 * transaction with its version bump (PostgreSQL's DDL is transactional: old schema or new, never half), and a
 * schema written by a newer wott is refused without being touched.
 */
import type pg from 'pg';
import { SchemaError } from '../sqlite/migrate.js';

export interface PgMigration {
  /** 1, 2, 3 …: each one more than the previous. */
  version: number;
  /** What it does, for an error message. */
  name: string;
  up: string | ((client: pg.PoolClient) => Promise<void>);
}

/** Advisory lock keys: (WOTT, n). 'wott' in ASCII, so wott's locks are told apart from other applications'. */
export const LOCK_CLASS = 0x776f7474;
export const LOCK_MIGRATE = 1;

/** Brings store `component` in the database behind `pool` to the newest of `migrations`; returns the versions applied. */
export async function migratePostgres(pool: pg.Pool, component: string, migrations: readonly PgMigration[], what: string): Promise<number[]> {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`${what}: migration ${m.name} is numbered ${m.version}, expected ${i + 1}`);
  });
  const newest = migrations.length;
  const applied: number[] = [];
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw new Error(`cannot open the ${what}: ${(err as Error).message}`);
  }
  let broken: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, LOCK_MIGRATE]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS wott_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)');
      const current = async () => (await client.query<{ version: number }>('SELECT version FROM wott_schema WHERE component = $1', [component])).rows[0]?.version ?? 0;
      const found = await current();
      if (found > newest) throw new SchemaError(`the ${what} was written by a newer wott (schema ${found}, this wott knows ${newest}); upgrade wott`);
      for (const m of migrations) {
        if (found >= m.version) continue;
        await client.query('BEGIN');
        try {
          if (typeof m.up === 'string') await client.query(m.up);
          else await m.up(client);
          await client.query('INSERT INTO wott_schema (component, version) VALUES ($1, $2) ON CONFLICT (component) DO UPDATE SET version = excluded.version', [component, m.version]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch((e: Error) => (broken = e));
          throw new Error(`${what}: migration ${m.version} (${m.name}) failed: ${(err as Error).message}`);
        }
        applied.push(m.version);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCK_MIGRATE]).catch((e: Error) => (broken = e));
    }
  } finally {
    client.release(broken);
  }
  return applied;
}
