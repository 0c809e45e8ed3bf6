/**
 * Reading the inventory's change feed (the `changes` table its triggers fill). Followers keep the seq they have
 * applied and ask for what came after it: ordered, none lost, none twice, across restarts of writer and reader, and
 * independent of anyone's clock (timestamp watermarks missed changes stamped earlier than the last one seen).
 */
import type Database from 'better-sqlite3';

export type ChangeKind = 'device' | 'certificate' | 'revocation' | 'crl';

export interface Change {
  seq: number;
  kind: ChangeKind;
  key: string;
}

/** The newest seq now (0 for an empty feed): where a follower that has just loaded everything continues from. */
export function feedHead(db: Database.Database): number {
  return (db.prepare('SELECT max(seq) AS seq FROM changes').get() as { seq: number | null }).seq ?? 0;
}

/**
 * Changes after `seq`, oldest first, at most `limit`. 'reload' when some of them were pruned (the follower fell more
 * than CHANGES_KEPT behind): it must load everything again from feedHead().
 */
export function changesAfter(db: Database.Database, seq: number, limit = 10_000): Change[] | 'reload' {
  const rows = db.prepare('SELECT seq, kind, key FROM changes WHERE seq > ? ORDER BY seq LIMIT ?').all(seq, limit) as Change[];
  // Seqs have no gaps (one writer at a time commits whole transactions, and a rollback takes its seqs back), so a
  // gap right after `seq` means the rows were pruned.
  if (rows.length > 0 && rows[0]!.seq !== seq + 1) return 'reload';
  return rows;
}
