/**
 * One node of a cluster does the work that must happen once (scoring): it holds a lease in Redis, renewed at a
 * third of its life. A node that stops renewing (killed, cut off from Redis) loses it when the lease expires, and
 * another node takes it over within one lease time plus one poll.
 *
 * A leader steps down as soon as it cannot prove the lease is still its own, and on its own clock (a timer) two thirds
 * into the lease it last renewed, before the lease can have expired in Redis: two nodes never believe they lead at
 * once, short of clock drift and of the time the old leader's scoring takes to stop. That gap is closed by fencing:
 * each acquisition takes a token (the lease's epoch: a counter that only grows, INCR) which the leader's work carries
 * in every write (scores, score store commits), and brokers and stores refuse writes from an older epoch than one
 * they have seen. A Redis that lost its data (restarted without persistence) would count from 1 again: the holder
 * passes `floor`, the highest epoch it has seen elsewhere, and the counter is raised above it.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface LeaseOptions {
  /** Redis connection options (see broker/cluster.ts redisConnectionOptions). */
  redis: Record<string, unknown>;
  /** What is led: the key is `wott:lease:NAME`. */
  name: string;
  /** This node's id, stored as the lease's value. */
  nodeId: string;
  /** Lease lifetime; renewed every third of it. */
  ttlMs: number;
  log?: Logger;
  /** The highest epoch this node has seen in writes (scores, the score store): a new token is always above it. */
  floor?: () => number;
  /** Called when this node becomes leader, with its fencing token. */
  onAcquire: (token: number) => Promise<void> | void;
  /** Called when this node stops leading (lost, or released at close). */
  onLose: () => Promise<void> | void;
}

// Compare-and-renew and compare-and-delete: only the holder named in the value may extend or release the lease.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
// The next fencing token: one more than the last, and above every epoch the caller has seen (see the module comment).
const NEXT_TOKEN = `local t = redis.call('INCR', KEYS[1]) local floor = tonumber(ARGV[1]) if t <= floor then t = floor + 1 redis.call('SET', KEYS[1], t) end return t`;

/** The Redis key of a lease (`wott cluster status` reads the scoring one). */
export const leaseKey = (name: string) => `wott:lease:${name}`;

export class Lease {
  private readonly redis: Redis;
  private readonly key: string;
  private timer: NodeJS.Timeout | undefined;
  private value: string | undefined;
  private renewedAt = 0;
  private closed = false;
  /** Steps down two thirds into the lease unless a renewal came first (see the module comment). */
  private stepDown: NodeJS.Timeout | undefined;
  /** Serialises acquire/lose callbacks so a quick lose-then-win never overlaps two services. */
  private transitions: Promise<void> = Promise.resolve();

  constructor(private readonly options: LeaseOptions) {
    // A command that hangs (Redis stalled) counts as a failed renewal: bounded by commandTimeout.
    this.redis = new Redis({ ...options.redis, maxRetriesPerRequest: 1, commandTimeout: Math.max(100, Math.floor(options.ttlMs / 3)) });
    // Connection errors are retried by ioredis; the lease logic sees them as failed renewals.
    this.redis.on('error', () => undefined);
    this.key = leaseKey(options.name);
  }

  /** Whether this node leads now (by its own clock; see the module comment). */
  get leading(): boolean {
    return this.value !== undefined && Date.now() - this.renewedAt < this.options.ttlMs * (2 / 3);
  }

  /** Who holds the lease now, as Redis says (for `wott cluster status`-like reports). */
  async holder(): Promise<string | null> {
    return this.redis.get(this.key);
  }

  start(): void {
    const tick = () => {
      void this.poll().finally(() => {
        if (!this.closed) this.timer = setTimeout(tick, Math.max(50, Math.floor(this.options.ttlMs / 3)));
      });
    };
    tick();
  }

  private async poll(): Promise<void> {
    try {
      if (this.value !== undefined) {
        // Redis sets the new expiry when it runs the command, which is after this moment: count from here.
        const at = Date.now();
        const renewed = await this.redis.eval(RENEW, 1, this.key, this.value, String(this.options.ttlMs));
        if (renewed === 1) {
          if (this.value !== undefined) this.held(at);
          return;
        }
        this.lose('the lease was taken over or expired');
        return;
      }
      const token = Number(await this.redis.eval(NEXT_TOKEN, 1, `${this.key}:token`, String(Math.max(0, Math.floor(this.options.floor?.() ?? 0)))));
      const value = `${this.options.nodeId}#${token}`;
      const at = Date.now();
      const ok = await this.redis.set(this.key, value, 'PX', this.options.ttlMs, 'NX');
      if (ok === 'OK' && !this.closed) {
        this.value = value;
        this.held(at);
        this.options.log?.info({ lease: this.options.name, node: this.options.nodeId, token }, 'this node now leads');
        this.transition(async () => {
          try {
            await this.options.onAcquire(token);
          } catch (err) {
            // Holding the lease without doing the work would leave the cluster without it: give the lease back so
            // that this node (at its next poll) or another one tries again.
            this.options.log?.error({ lease: this.options.name, err: (err as Error).message }, 'could not start the led work; giving the lease back');
            await this.options.onLose();
            if (this.value === value) {
              this.value = undefined;
              clearTimeout(this.stepDown);
              await this.redis.eval(RELEASE, 1, this.key, value).catch(() => undefined);
            }
          }
        });
      }
    } catch (err) {
      // Redis unreachable: a leader that cannot renew steps down before the lease can expire elsewhere.
      if (this.value !== undefined && !this.leading) this.lose(`cannot renew: ${(err as Error).message}`);
    }
  }

  /** The lease is ours from `at` on: arm the step-down for two thirds into it. */
  private held(at: number): void {
    this.renewedAt = at;
    clearTimeout(this.stepDown);
    const value = this.value;
    this.stepDown = setTimeout(() => {
      if (this.value === value && !this.leading) this.lose('not renewed in time');
    }, Math.max(0, at + (this.options.ttlMs * 2) / 3 - Date.now()));
    this.stepDown.unref();
  }

  private lose(reason: string): void {
    if (this.value === undefined) return;
    this.value = undefined;
    clearTimeout(this.stepDown);
    this.options.log?.warn({ lease: this.options.name, node: this.options.nodeId, reason }, 'this node no longer leads');
    this.transition(() => this.options.onLose());
  }

  private transition(step: () => Promise<void> | void): void {
    this.transitions = this.transitions.then(step).catch((err: Error) => {
      this.options.log?.error({ lease: this.options.name, err: err.message }, 'leadership change failed');
    });
  }

  /**
   * Gives the lease up now (its work found it was deposed, or its epoch is fenced off): stops the work, releases the
   * lease, and competes again at the next poll, with a token above what it was fenced by (`floor`).
   */
  resign(reason: string): void {
    const value = this.value;
    if (value === undefined) return;
    this.lose(reason);
    void this.redis.eval(RELEASE, 1, this.key, value).catch(() => undefined);
  }

  /** Stops polling, releases the lease if held (so another node takes over at once) and waits for onLose. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.stepDown);
    const value = this.value;
    if (value !== undefined) {
      this.value = undefined;
      await this.redis.eval(RELEASE, 1, this.key, value).catch(() => undefined);
      this.transition(() => this.options.onLose());
    }
    await this.transitions;
    this.redis.disconnect();
  }
}
