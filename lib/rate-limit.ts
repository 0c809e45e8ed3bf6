/**
 * Token buckets per source address, with a bound on how many sources are tracked. A source may spend `burst`
 * requests at once and then `perMinute` a minute. Past `maxSources` tracked sources (after idle ones, whose bucket
 * has refilled and so carries no state, are dropped), new sources share one overflow bucket: an attacker that
 * varies its address (IPv6 gives one plenty) gains nothing and cannot grow the map. IPv6 sources are keyed by
 * their /64, the smallest block a single site usually gets.
 */
import { isIPv6 } from 'node:net';

export interface RateLimitOptions {
  /** Sustained requests per minute per source. */
  perMinute: number;
  /** Requests a source may make at once (bucket size). */
  burst: number;
  /** Distinct sources tracked (default 10,000). */
  maxSources?: number;
  /** Clock in ms, injectable for tests. */
  now?: () => number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

const OVERFLOW = '\u0000overflow';

/** The key a remote address is limited under: IPv4 (also v4-mapped IPv6) as is, IPv6 by its /64. */
export function sourceKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head, tail] = address.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':') + '::/64';
}

export class SourceRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxSources: number;
  private readonly now: () => number;
  private lastPrune = -Infinity;

  constructor(options: RateLimitOptions) {
    if (!(options.perMinute > 0) || !(options.burst >= 1)) throw new Error('rate limit needs perMinute > 0 and burst >= 1');
    this.perMs = options.perMinute / 60_000;
    this.burst = options.burst;
    this.maxSources = options.maxSources ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Takes one token for `address`, or says how many seconds until one is available. */
  take(address: string | undefined): RateDecision {
    const now = this.now();
    let key = sourceKey(address);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxSources) this.prune(now);
      if (this.buckets.size >= this.maxSources) {
        key = OVERFLOW;
        bucket = this.buckets.get(key);
      }
      if (!bucket) this.buckets.set(key, (bucket = { tokens: this.burst, at: now }));
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.perMs);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000)) };
  }

  /** Sources tracked now (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  /** Drops sources whose bucket has refilled (they carry no state); at most once per full refill time. */
  private prune(now: number): void {
    if (now - this.lastPrune < this.burst / this.perMs) return;
    this.lastPrune = now;
    for (const [key, bucket] of this.buckets) {
      if (key !== OVERFLOW && bucket.tokens + (now - bucket.at) * this.perMs >= this.burst) this.buckets.delete(key);
    }
  }
}
