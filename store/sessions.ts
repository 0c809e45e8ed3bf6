/**
 * Browser sign-in for operators: one-time login links (made by `wott operator login` in one process, redeemed by the
 * gateway in another) and the sessions they start. Only SHA-256 hashes of the link and session secrets are stored:
 * a copy of the database signs nobody in.
 */
import type { OperatorRole } from '../protocol/index.js';

export interface LoginLinkRecord {
  /** SHA-256 (hex) of the link's secret. */
  hash: string;
  role: OperatorRole;
  name: string;
  /** Who made the link (`local:{os user}`, or an admin's identity). */
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
}

export interface SessionRecord {
  /** Public handle: listed, and named to end a session; not a credential. */
  id: string;
  /** SHA-256 (hex) of the session secret held in the browser's cookie. */
  secretHash: string;
  role: OperatorRole;
  name: string;
  createdAt: string;
  expiresAt: string;
  endedAt: string | null;
  /** Address the link was redeemed from. */
  source: string | null;
}

export type RedeemResult = { ok: true; session: SessionRecord } | { ok: false; reason: 'unknown' | 'used' | 'expired' };

export interface SessionStore {
  createLoginLink(link: Omit<LoginLinkRecord, 'usedAt'>): Promise<void>;
  /**
   * In one transaction: if the link `hash` exists, is unused and unexpired at `now`, marks it used and starts a
   * session with its role and name. A link is redeemed at most once, whichever process races for it.
   */
  redeemLoginLink(hash: string, now: string, session: Pick<SessionRecord, 'id' | 'secretHash' | 'expiresAt' | 'source'>): Promise<RedeemResult>;
  session(id: string): Promise<SessionRecord | undefined>;
  /** Sessions not ended and not expired at `now`, newest first. */
  activeSessions(now: string): Promise<SessionRecord[]>;
  /** Ends a session; false when there is no such session or it had ended already. */
  endSession(id: string, now: string): Promise<boolean>;
  close(): Promise<void>;
}
