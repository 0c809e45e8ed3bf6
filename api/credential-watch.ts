/**
 * Long-lived responses (Server-Sent Events) are authorised once, when they open; this keeps each one only while the
 * credential that opened it stays good, and ends it (the connection with it) the moment it does not:
 *  - a session: ended in this process (logout, DELETE /sessions/{id}): at once; ended by another process (the CLI's
 *    `wott operator sessions end`, on the same store): at the next recheck; expired: at the next recheck;
 *  - a client certificate: revoked (the gateway's in-memory revocation view; the trust feed's `revoked` events end
 *    it at once): at the next recheck at most; expired: at the next recheck.
 * One timer for all held responses, running only while there are any; nothing is done per event or per write.
 * Requests (keep-alive ones included) are checked one by one in api/auth.ts; this is for what a request leaves open.
 */
import type { ServerResponse } from 'node:http';
import type { Caller } from './auth.js';
import type { Sessions } from './sessions.js';

export interface CredentialWatchOptions {
  sessions: Sessions;
  isRevoked(serial: string): boolean;
  /** Interval of the recheck (ms). */
  recheckMs: number;
  /** Revocations as they happen (the trust feed), subscribed to while anything is held. */
  onRevocations?(listener: (serials: ReadonlySet<string>) => void): () => void;
  now?: () => number;
}

export const DEFAULT_RECHECK_MS = 1_000;

interface Held {
  res: ServerResponse;
  certificate?: { serial: string; notAfter: number };
  session?: { id: string; expiresAt: number };
}

export class CredentialWatch {
  private readonly held = new Set<Held>();
  private timer?: NodeJS.Timeout;
  private stopRevocations?: () => void;
  private checking = false;
  private readonly now: () => number;
  private readonly stopSessions: () => void;
  /** Responses ended because their credential ended (tests, metrics). */
  ended = 0;

  constructor(private readonly options: CredentialWatchOptions) {
    this.now = options.now ?? Date.now;
    this.stopSessions = options.sessions.onEnded((id) => this.endWhere((h) => h.session?.id === id));
  }

  get size(): number {
    return this.held.size;
  }

  /** Keeps `res` open only while `caller`'s credential stays good. */
  hold(caller: Caller, res: ServerResponse): void {
    if (res.destroyed || res.writableEnded) return;
    const held: Held = {
      res,
      ...(caller.certificate ? { certificate: caller.certificate } : {}),
      ...(caller.session ? { session: { id: caller.session.session.id, expiresAt: Date.parse(caller.session.session.expiresAt) } } : {}),
    };
    if (!held.certificate && !held.session) return;
    this.held.add(held);
    res.once('close', () => {
      this.held.delete(held);
      if (!this.held.size) this.stopTimer();
    });
    if (!this.timer) {
      this.timer = setInterval(() => void this.recheck(), this.options.recheckMs);
      this.timer.unref();
      this.stopRevocations = this.options.onRevocations?.((serials) => this.revoked(serials));
    }
  }

  /** Certificates just revoked: their responses end now. */
  revoked(serials: ReadonlySet<string>): void {
    if (serials.size) this.endWhere((h) => h.certificate !== undefined && serials.has(h.certificate.serial));
  }

  private endWhere(test: (h: Held) => boolean): void {
    for (const h of this.held) {
      if (!test(h)) continue;
      this.held.delete(h);
      this.ended++;
      h.res.destroy();
    }
    if (!this.held.size) this.stopTimer();
  }

  /** Expiry and revocation from memory; sessions another process may have ended, from the session store. */
  async recheck(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const now = this.now();
      this.endWhere(
        (h) =>
          (h.certificate !== undefined && (now >= h.certificate.notAfter || this.options.isRevoked(h.certificate.serial))) ||
          (h.session !== undefined && now >= h.session.expiresAt),
      );
      const ids = new Set([...this.held].flatMap((h) => (h.session ? [h.session.id] : [])));
      for (const id of ids) {
        let record;
        try {
          record = await this.options.sessions.store.session(id);
        } catch {
          continue; // a store that fails to answer ends nothing; the next recheck asks again
        }
        if (!record || record.endedAt) this.endWhere((h) => h.session?.id === id);
      }
    } finally {
      this.checking = false;
    }
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopRevocations?.();
    this.stopRevocations = undefined;
  }

  close(): void {
    this.stopTimer();
    this.stopSessions();
    for (const h of this.held) h.res.destroy();
    this.held.clear();
  }
}
