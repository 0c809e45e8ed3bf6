/**
 * The change feed: every write to the inventory appends `(seq, kind, key)` to an outbox in the same transaction.
 * Followers keep the seq they have applied and read what came after it: ordered, none lost, none twice, across
 * restarts of writer and reader, independent of anyone's clock.
 */
export type ChangeKind = 'device' | 'certificate' | 'revocation' | 'crl';

export interface Change {
  seq: number;
  kind: ChangeKind;
  key: string;
}

/** Feed rows kept; a follower further behind than this reloads everything. */
export const CHANGES_KEPT = 100_000;

export interface ChangeFeed {
  /** The newest seq now (0 for an empty feed). */
  head(): Promise<number>;
  /**
   * Changes after `seq`, oldest first, at most `limit`. 'reload' when some of them were pruned (the follower fell
   * more than CHANGES_KEPT behind): it must load a snapshot again.
   */
  after(seq: number, limit?: number): Promise<Change[] | 'reload'>;
  /**
   * Calls `listener` whenever new changes may be there: at once after a commit through this store, and on the
   * backend's own signal for commits by other processes (SQLite: `PRAGMA data_version`, polled every `pollMs`).
   * Returns the function that stops it.
   */
  onWake(listener: () => void): () => void;
}
