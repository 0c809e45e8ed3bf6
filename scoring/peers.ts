/**
 * Peer reports → a penalty. Pure. Only the latest report of each reporter counts (so one device can not outvote
 * others by repeating itself); each is weighted by the reporter's own current score and fades with its age; the
 * full effect needs k distinct reporters, so a single compromised peer can cost at most max/k.
 */
import type { ScoreModel } from './model.js';

export interface PeerEntry {
  reporter: string;
  reportId: number;
  rating: number;
  reason: string;
  /** When scoring received it (scoring's clock, not the reporter's). */
  at: number;
}

export interface PeerPenalty {
  penalty: number;
  reporters: number;
  reason: string;
}

export function peerPenalty(entries: Iterable<PeerEntry>, model: ScoreModel, now: number, scoreOf: (reporter: string) => number): PeerPenalty | undefined {
  const p = model.peers;
  let weight = 0;
  let bad = 0;
  let counted = 0;
  let worst: PeerEntry | undefined;
  for (const e of entries) {
    const age = now - e.at;
    if (age > p.maxAge) continue;
    const reporterScore = scoreOf(e.reporter);
    if (reporterScore < p.minReporterScore) continue;
    counted++;
    weight += reporterScore;
    bad += reporterScore * (1 - e.rating) * Math.pow(2, -Math.max(0, age) / p.halfLife);
    if (!worst || e.rating < worst.rating) worst = e;
  }
  if (counted === 0 || weight === 0) return undefined;
  const penalty = Math.round(p.max * (bad / weight) * Math.min(1, counted / p.k) * 1000) / 1000;
  if (penalty <= 0) return undefined;
  return { penalty, reporters: counted, reason: `${counted} peer${counted > 1 ? 's' : ''} reported problems (worst from ${worst!.reporter}: ${worst!.reason})` };
}

/** Drops reports past maxAge (mutates the map). */
export function prunePeers(entries: Map<string, PeerEntry>, model: ScoreModel, now: number): void {
  for (const [reporter, e] of entries) if (now - e.at > model.peers.maxAge) entries.delete(reporter);
}
