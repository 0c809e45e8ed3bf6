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
   * backend's own signal for commits by other processes (SQLite: `PRAGMA data_version`, polled every `pollMs`;
   * PostgreSQL: LISTEN/NOTIFY, sent by the writing transaction at its commit).
   * Returns the function that stops it.
   */
  onWake(listener: () => void): () => void;
}

export interface FeedSubscription {
  /** The last seq delivered. */
  readonly position: number;
  stop(): void;
}

/**
 * Delivers every change after `fromSeq`, in order, none twice: each batch only after the previous `onChanges`
 * settled, woken by the feed's signal. A follower that fell behind a pruned feed gets `onReload` (it must reload a
 * snapshot) and continues from the head. Resume after a restart by passing the last position delivered.
 */
export function subscribe(
  feed: ChangeFeed,
  fromSeq: number,
  onChanges: (changes: Change[]) => void | Promise<void>,
  onReload: (head: number) => void | Promise<void> = () => undefined,
  onError: (err: Error) => void = () => undefined,
): FeedSubscription {
  let position = fromSeq;
  let stopped = false;
  let running = false;
  let again = false;
  const pump = async (): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        for (;;) {
          if (stopped) return;
          const batch = await feed.after(position, 1000);
          if (batch === 'reload') {
            const head = await feed.head();
            await onReload(head);
            position = head;
            continue;
          }
          if (batch.length === 0) break;
          await onChanges(batch);
          position = batch[batch.length - 1]!.seq;
        }
      } while (again && !stopped);
    } catch (err) {
      onError(err as Error);
    } finally {
      running = false;
    }
  };
  const stopWake = feed.onWake(() => void pump());
  void pump();
  return {
    get position() {
      return position;
    },
    stop() {
      stopped = true;
      stopWake();
    },
  };
}
