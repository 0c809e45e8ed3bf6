/**
 * What wott persists of vulnerability data, per named feed (`debian-tracker`, `osv`, or a name the operator
 * gives): each feed's entries (one per release, source package, id and introduced version), their descriptions,
 * and a record of every load. A load replaces only the feeds it names, all of them in one transaction, so a
 * tracker update and an OSV update add up instead of the second replacing the first, and a reader sees the
 * previous data or the new data, never a mix. Entries of different feeds are merged by vuln/ when it reads them
 * (merging compares Debian versions, which SQL can not).
 */

export type VulnSeverity = 'low' | 'medium' | 'high' | 'critical' | 'unknown';

/** One stored entry (vuln/'s CveEntry has this shape). */
export interface VulnEntry {
  /** CVE id, or the advisory / tracker id when the record names no CVE. */
  id: string;
  /** Debian source package. */
  source: string;
  /** Release codename. */
  release: string;
  /** First fixed version in this release; null when there is no fix yet. */
  fixed: string | null;
  introduced?: string;
  severity: VulnSeverity;
  /** true: remote; false: local only; null: unknown. */
  remote: boolean | null;
  description?: string;
  advisory?: string;
}

/** Counts of one feed, as the parser made them (vuln/'s FeedStats has this shape). */
export interface FeedStats {
  records: number;
  entries: number;
  fixed: number;
  open: number;
  skipped: { notAffected: number; unimportant: number; withdrawn: number; otherEcosystem: number; noFixedVersion: number };
}

export interface FeedOrigin {
  /** File path or URL as given. */
  from: string;
  format: 'debian-tracker' | 'osv';
  bytes: number;
  sha256: string;
  stats: FeedStats;
}

/** Feed names: what `wott cve update --feed` accepts; never a path. */
export const FEED_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** One named feed as stored: what its last load brought. */
export interface FeedRecord {
  name: string;
  /** The generation of the load that last replaced this feed. */
  generation: number;
  loadedAt: string;
  origins: FeedOrigin[];
  /** Entries of this feed alone (before merging with the other feeds). */
  entries: number;
  fixed: number;
  open: number;
}

/** What replaces one feed: entries already merged within the feed (one per release/source/id/introduced). */
export interface FeedLoad {
  feed: string;
  entries: readonly VulnEntry[];
  origins: readonly FeedOrigin[];
}

/** The state of all the data after a load: every feed, and the totals over their union. */
export interface LoadRecord {
  /** Increases with every successful load or removal. */
  generation: number;
  /** When the data last changed. */
  loadedAt: string;
  /** The origins of every stored feed, feed by feed. */
  origins: FeedOrigin[];
  /** The stored feeds, by name. */
  feeds: FeedRecord[];
  /** Distinct (release, source, id, introduced) entries over all feeds. */
  entries: number;
  fixed: number;
  open: number;
  releases: string[];
  sources: number;
}

/** What the matching index is built from, read as one consistent snapshot. */
export interface MatchingData {
  generation: number;
  /** The entries that have a fix (an open one can not produce a finding), without their descriptions; once per feed. */
  fixed: VulnEntry[];
  /** Id → description, once per id. */
  descriptions: Map<string, string>;
}

/** A problem with the stored data the user can fix (a damaged file, a failed write): `wott cve` prints it plainly. */
export class CveStoreError extends Error {
  override name = 'CveStoreError';
}

/** Calls on one store object take effect one at a time, in the order they were made (the contract tests hold a backend to it). */
export interface VulnStore {
  /** Where the data lives, for messages (a file path, a server). */
  readonly location: string;
  /** The generation of the current data: 0 when nothing was ever loaded; a load from any process increases it. */
  generation(): Promise<number>;
  /** The record of the current data, or null when no feed is stored. */
  status(): Promise<LoadRecord | null>;
  /**
   * Replaces each named feed's entries (and only those feeds) and records the load, in one transaction. Other
   * feeds are kept. Rejects with a CveStoreError, changing nothing, when a name is invalid, named twice, or the
   * write fails.
   */
  replace(loads: readonly FeedLoad[], now?: Date): Promise<LoadRecord>;
  /** Drops one feed (a load that empties it); rejects with a CveStoreError when no such feed is stored. */
  remove(feed: string, now?: Date): Promise<LoadRecord | null>;
  /**
   * Every stored entry of every feed (or of one), descriptions joined in, ordered by release, source, id,
   * introduced, feed. The same key may come once per feed: vuln/ merges them.
   */
  entries(feed?: string): Promise<VulnEntry[]>;
  /** The data matching needs, consistent with its generation; entries of several feeds are not merged. */
  matchingData(): Promise<MatchingData>;
  close(): Promise<void>;
}
