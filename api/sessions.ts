/**
 * Login links and browser sessions over a SessionStore. Secrets are 256-bit random, shown once, stored as SHA-256;
 * a session's CSRF token is derived from its secret (so nothing more is stored, and it dies with the session).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { DEFAULT_SESSION_TTL_MS, LOGIN_LINK_TTL_MS, type OperatorRole } from '../protocol/index.js';
import type { RedeemResult, SessionRecord, SessionStore } from '../store/index.js';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const secret = () => randomBytes(32).toString('base64url');

export function csrfTokenFor(sessionSecret: string): string {
  return createHash('sha256').update(`wott-csrf:${sessionSecret}`, 'utf8').digest('base64url');
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface SessionOptions {
  now?: () => Date;
  sessionTtlMs?: number;
  linkTtlMs?: number;
}

export type SessionCaller = { session: SessionRecord; csrfToken: string };

export class Sessions {
  private readonly now: () => Date;
  readonly sessionTtlMs: number;
  readonly linkTtlMs: number;

  constructor(
    readonly store: SessionStore,
    options: SessionOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.sessionTtlMs = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    this.linkTtlMs = options.linkTtlMs ?? LOGIN_LINK_TTL_MS;
  }

  /** A new one-time link secret for `role`/`name` (only its hash is stored); valid linkTtlMs. */
  async createLink(role: OperatorRole, name: string, createdBy: string): Promise<{ secret: string; expiresAt: Date }> {
    const value = secret();
    const now = this.now();
    const expiresAt = new Date(now.getTime() + this.linkTtlMs);
    await this.store.createLoginLink({ hash: sha256(value), role, name, createdBy, createdAt: now.toISOString(), expiresAt: expiresAt.toISOString() });
    return { secret: value, expiresAt };
  }

  /** Redeems a link secret once; on success the cookie value (`{id}.{secret}`) for the new session. */
  async redeem(linkSecret: string, source: string | null): Promise<{ ok: true; cookie: string; session: SessionRecord } | Extract<RedeemResult, { ok: false }>> {
    const id = randomBytes(16).toString('base64url');
    const sessionSecret = secret();
    const now = this.now();
    const result = await this.store.redeemLoginLink(sha256(linkSecret), now.toISOString(), {
      id,
      secretHash: sha256(sessionSecret),
      expiresAt: new Date(now.getTime() + this.sessionTtlMs).toISOString(),
      source,
    });
    return result.ok ? { ok: true, cookie: `${id}.${sessionSecret}`, session: result.session } : result;
  }

  /** The live session a cookie value names, or why not. */
  async authenticate(cookie: string): Promise<SessionCaller | { error: string }> {
    const match = /^([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{16,128})$/.exec(cookie);
    if (!match) return { error: 'malformed session cookie' };
    const session = await this.store.session(match[1]!);
    if (!session || !sameText(session.secretHash, sha256(match[2]!))) return { error: 'unknown session' };
    if (session.endedAt) return { error: 'session ended: sign in again' };
    if (Date.parse(session.expiresAt) <= this.now().getTime()) return { error: 'session expired: sign in again' };
    return { session, csrfToken: csrfTokenFor(match[2]!) };
  }

  checkCsrf(caller: SessionCaller, header: string | string[] | undefined): boolean {
    return typeof header === 'string' && sameText(header, caller.csrfToken);
  }

  list(): Promise<SessionRecord[]> {
    return this.store.activeSessions(this.now().toISOString());
  }

  /** Ends a session; what it left open in this process (event streams) ends with it (onEnded). */
  async end(id: string): Promise<boolean> {
    const ended = await this.store.endSession(id, this.now().toISOString());
    if (ended) for (const listener of this.endedListeners) listener(id);
    return ended;
  }

  private readonly endedListeners = new Set<(id: string) => void>();

  /** Called with the id of each session this process ends. */
  onEnded(listener: (id: string) => void): () => void {
    this.endedListeners.add(listener);
    return () => this.endedListeners.delete(listener);
  }
}
