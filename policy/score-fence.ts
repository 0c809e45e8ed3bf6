/**
 * Fencing of Trust Scores in a cluster: each score carries the epoch of the scoring lease its scorer held (a counter
 * that only grows, one value per acquisition). A scorer that was deposed but still runs (a paused process, a
 * partition) publishes with an older epoch than the new leader, so a score older than one already taken for the same
 * device is stale and must not replace it. Pure: the broker and the Mosquitto sync keep one each.
 */
export class ScoreFence {
  private readonly epochs = new Map<string, number>();
  private top = 0;

  /**
   * Whether a score for `device` from `epoch` may replace the device's current one; records the epoch when it may.
   * A score without an epoch (one node without a lease, a standalone `wott scoring`) is never fenced.
   */
  admit(device: string, epoch: number | undefined): boolean {
    if (epoch === undefined) return true;
    if (epoch < (this.epochs.get(device) ?? 0)) return false;
    this.epochs.set(device, epoch);
    if (epoch > this.top) this.top = epoch;
    return true;
  }

  /** The highest epoch any admitted score carried (0 if none): a new leader's epoch must exceed it. */
  get highest(): number {
    return this.top;
  }

  /** The epoch of `device`'s current score, if it carried one. */
  epochOf(device: string): number | undefined {
    return this.epochs.get(device);
  }

  /** The device's score was cleared: any epoch may set it again. */
  forget(device: string): void {
    this.epochs.delete(device);
  }
}
