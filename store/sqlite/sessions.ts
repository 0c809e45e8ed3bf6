/** SessionStore on SQLite, in its own file `<dataDir>/sessions.db` (WAL, synchronous=FULL, private modes). */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { openPrivateDatabase } from './open.js';
import type { OperatorRole } from '../../protocol/index.js';
import type { LoginLinkRecord, RedeemResult, SessionRecord, SessionStore } from '../sessions.js';
import { migrate, type Migration } from './migrate.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'login links and sessions',
    up: `
      CREATE TABLE IF NOT EXISTS login_links (
        hash TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('viewer','operator','admin')),
        name TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT
      );
      CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer','operator','admin')),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        ended_at TEXT,
        source TEXT
      );
      CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions(expires_at);
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

export class SqliteSessionStore implements SessionStore {
  private readonly db: Database.Database;
  readonly modeProblems: string[];

  constructor(readonly path: string) {
    ({ db: this.db, modeProblems: this.modeProblems } = openPrivateDatabase(path, 'session database', (db) => {
      db.pragma('busy_timeout = 10000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      migrate(db, MIGRATIONS, `session database ${path}`);
    }));
  }

  /** The store of a data folder. */
  static open(dataDir: string): SqliteSessionStore {
    return new SqliteSessionStore(join(dataDir, 'sessions.db'));
  }

  private prune(now: string): void {
    const before = new Date(Date.parse(now) - KEEP_MS).toISOString();
    this.db.prepare('DELETE FROM login_links WHERE expires_at < ?').run(before);
    this.db.prepare('DELETE FROM sessions WHERE expires_at < ? OR ended_at < ?').run(before, before);
  }

  async createLoginLink(link: Omit<LoginLinkRecord, 'usedAt'>): Promise<void> {
    this.db.transaction(() => {
      this.prune(link.createdAt);
      this.db
        .prepare('INSERT INTO login_links (hash, role, name, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(link.hash, link.role, link.name, link.createdBy, link.createdAt, link.expiresAt);
    }).immediate();
  }

  async redeemLoginLink(hash: string, now: string, session: Pick<SessionRecord, 'id' | 'secretHash' | 'expiresAt' | 'source'>): Promise<RedeemResult> {
    return this.db.transaction((): RedeemResult => {
      const link = this.db.prepare('SELECT * FROM login_links WHERE hash = ?').get(hash) as Raw | undefined;
      if (!link) return { ok: false, reason: 'unknown' };
      if (link.used_at) return { ok: false, reason: 'used' };
      if (Date.parse(link.expires_at as string) <= Date.parse(now)) return { ok: false, reason: 'expired' };
      // Guarded update: of two racing redeemers only one changes the row.
      if (this.db.prepare('UPDATE login_links SET used_at = ? WHERE hash = ? AND used_at IS NULL').run(now, hash).changes !== 1) {
        return { ok: false, reason: 'used' };
      }
      this.db
        .prepare('INSERT INTO sessions (id, secret_hash, role, name, created_at, expires_at, source) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(session.id, session.secretHash, link.role, link.name, now, session.expiresAt, session.source);
      return { ok: true, session: asSession(this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(session.id) as Raw) };
    }).immediate();
  }

  async session(id: string): Promise<SessionRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Raw | undefined;
    return row && asSession(row);
  }

  async activeSessions(now: string): Promise<SessionRecord[]> {
    const rows = this.db.prepare('SELECT * FROM sessions WHERE ended_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id').all(now) as Raw[];
    return rows.map(asSession);
  }

  async endSession(id: string, now: string): Promise<boolean> {
    return this.db.prepare('UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL').run(now, id).changes === 1;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
