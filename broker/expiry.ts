/**
 * One timer for every live session's certificate expiry, instead of a Timeout per connection (issue 20: a Timeout
 * per connection is an object, a timer list and a priority-queue insert on every connect, for an event that almost
 * never happens while the session lives). Sessions are kept in buckets by their certificate's notAfter (the CA
 * issues whole seconds, so many sessions share a bucket); the bucket times sit in a min-heap and a single unref'd
 * timer waits for the earliest one.
 */
import FlatQueue from 'flatqueue';

/** setTimeout's range: a later deadline is waited for in steps. */
const MAX_TIMER_MS = 2_147_483_647;

/** A time that is not a number (an unparsable notAfter) is due at once, never "never". */
const key = (at: number) => (Number.isNaN(at) ? -Infinity : at);

export class ExpiryScheduler<T> {
  private readonly buckets = new Map<number, Set<T>>();
  /** Bucket times, earliest first. A bucket that empties leaves its time here until it comes up (then skipped). */
  private readonly deadlines = new FlatQueue<number>();
  /** The times in `deadlines`, so that a bucket emptied and filled again (a device reconnecting) is queued once. */
  private readonly queued = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;
  private count = 0;

  /** `onDue(item)` runs once for each item whose time has come (and which was not deleted before). */
  constructor(
    private readonly onDue: (item: T) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Items waiting. */
  get size(): number {
    return this.count;
  }

  /** Bucket times held (live ones and emptied ones not yet come up): what the scheduler costs beyond its items. */
  get pendingTimes(): number {
    return this.deadlines.length;
  }

  add(item: T, at: number): void {
    const k = key(at);
    let bucket = this.buckets.get(k);
    if (!bucket) {
      this.buckets.set(k, (bucket = new Set()));
      if (!this.queued.has(k)) {
        this.queued.add(k);
        this.deadlines.push(k, k);
      }
    }
    if (bucket.has(item)) return;
    bucket.add(item);
    this.count++;
    if (k < this.armedFor) this.arm(k);
  }

  /** Forgets `item` (added with the same `at`); nothing when it is not waiting. */
  delete(item: T, at: number): void {
    const k = key(at);
    const bucket = this.buckets.get(k);
    if (!bucket?.delete(item)) return;
    this.count--;
    if (bucket.size === 0) this.buckets.delete(k);
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    this.buckets.clear();
    this.deadlines.clear();
    this.queued.clear();
    this.count = 0;
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, Math.min(at - this.now(), MAX_TIMER_MS)));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    // The wall clock decides (certificates expire by it): a timer that ran early finds nothing due and waits again.
    const now = this.now();
    while (this.deadlines.length > 0 && this.deadlines.peekValue()! <= now) {
      const at = this.deadlines.pop()!;
      this.queued.delete(at);
      const bucket = this.buckets.get(at);
      if (!bucket) continue;
      this.buckets.delete(at);
      this.count -= bucket.size;
      for (const item of bucket) this.onDue(item);
    }
    const next = this.deadlines.peekValue();
    if (next !== undefined && next < this.armedFor) this.arm(next);
  }
}
