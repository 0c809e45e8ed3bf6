/**
 * SessionStore on PostgreSQL (tables login_links, operator_sessions). A login link is redeemed at most once
 * whichever gateway races for it: the redeeming transaction locks the link's row (SELECT … FOR UPDATE), so a second
 * redeemer waits and then sees it used.
 */
import type pg from 'pg';
import type { OperatorRole } from '../../protocol/index.js';
import type { LoginLinkRecord, RedeemResult, SessionRecord, SessionStore } from '../sessions.js';
import { migratePostgres, type PgMigration } from './migrate.js';
import { inTransaction, openPool, safeLocation, type PostgresOptions } from './pool.js';

const MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'login links and sessions',
    up: `
      CREATE TABLE login_links (
        hash TEXT COLLATE "C" PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('viewer','operator','admin')),
        name TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
        used_at TEXT
      );
      CREATE TABLE operator_sessions (
        id TEXT COLLATE "C" PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer','operator','admin')),
        name TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
        ended_at TEXT COLLATE "C",
        source TEXT
      );
      CREATE INDEX operator_sessions_expiry ON operator_sessions(expires_at);
    `,
  },
];

/** Rows past use are kept this long (for `wott operator sessions` to show what just ended), then dropped. */
const KEEP_MS = 7 * 86_400_000;

type Raw = Record<string, unknown>;
const asSession = (r: Raw): SessionRecord => ({
  id: r.id as string,
  secretHash: r.secret_hash as string,
  role: r.role as OperatorRole,
  name: r.name as string,
  createdAt: r.created_at as string,
  expiresAt: r.expires_at as string,
  endedAt: (r.ended_at as string | null) ?? null,
  source: (r.source as string | null) ?? null,
});

export class PostgresSessionStore implements SessionStore {
  private closed = false;
  private constructor(
    readonly location: string,
    private readonly pool: pg.Pool,
  ) {}

  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresSessionStore> {
    const location = safeLocation(url);
    const pool = openPool(url, { max: 4, ...options });
    try {
      await migratePostgres(pool, 'sessions', MIGRATIONS, `session database ${location}`);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PostgresSessionStore(location, pool);
  }

  private check(): void {
    if (this.closed) throw new Error(`the session database ${this.location} is closed`);
  }

  async createLoginLink(link: Omit<LoginLinkRecord, 'usedAt'>): Promise<void> {
    this.check();
    await inTransaction(this.pool, async (client) => {
      const before = new Date(Date.parse(link.createdAt) - KEEP_MS).toISOString();
      await client.query('DELETE FROM login_links WHERE expires_at < $1', [before]);
      await client.query('DELETE FROM operator_sessions WHERE expires_at < $1 OR ended_at < $1', [before]);
      await client.query('INSERT INTO login_links (hash, role, name, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', [
        link.hash,
        link.role,
        link.name,
        link.createdBy,
        link.createdAt,
        link.expiresAt,
      ]);
    });
  }

  async redeemLoginLink(hash: string, now: string, session: Pick<SessionRecord, 'id' | 'secretHash' | 'expiresAt' | 'source'>): Promise<RedeemResult> {
    this.check();
    return inTransaction(this.pool, async (client): Promise<RedeemResult> => {
      const link = (await client.query<Raw>('SELECT * FROM login_links WHERE hash = $1 FOR UPDATE', [hash])).rows[0];
      if (!link) return { ok: false, reason: 'unknown' };
      if (link.used_at) return { ok: false, reason: 'used' };
      if (Date.parse(link.expires_at as string) <= Date.parse(now)) return { ok: false, reason: 'expired' };
      await client.query('UPDATE login_links SET used_at = $1 WHERE hash = $2', [now, hash]);
      const row = (
        await client.query<Raw>('INSERT INTO operator_sessions (id, secret_hash, role, name, created_at, expires_at, source) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *', [
          session.id,
          session.secretHash,
          link.role,
          link.name,
          now,
          session.expiresAt,
          session.source,
        ])
      ).rows[0]!;
      return { ok: true, session: asSession(row) };
    });
  }

  async session(id: string): Promise<SessionRecord | undefined> {
    this.check();
    const row = (await this.pool.query<Raw>('SELECT * FROM operator_sessions WHERE id = $1', [id])).rows[0];
    return row && asSession(row);
  }

  async activeSessions(now: string): Promise<SessionRecord[]> {
    this.check();
    return (await this.pool.query<Raw>('SELECT * FROM operator_sessions WHERE ended_at IS NULL AND expires_at > $1 ORDER BY created_at DESC, id', [now])).rows.map(asSession);
  }

  async endSession(id: string, now: string): Promise<boolean> {
    this.check();
    return (await this.pool.query('UPDATE operator_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL', [now, id])).rowCount === 1;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
