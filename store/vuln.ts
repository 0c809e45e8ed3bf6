/**
 * What wott persists of vulnerability data: the entries of the last load (one per release, source package, id
 * and introduced version), their descriptions, and a record of every load. A load replaces everything at once,
 * so a reader sees the previous data or the new data, never a mix.
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

export interface LoadRecord {
  /** Increases with every successful load. */
  generation: number;
  loadedAt: string;
  origins: FeedOrigin[];
  /** Entries stored after merging duplicates across feeds. */
  entries: number;
  fixed: number;
  open: number;
  releases: string[];
  sources: number;
}

/** What the matching index is built from, read as one consistent snapshot. */
export interface MatchingData {
  generation: number;
  /** The entries that have a fix (an open one can not produce a finding), without their descriptions. */
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
  /** The record of the current data, or null when nothing was loaded. */
  status(): Promise<LoadRecord | null>;
  /**
   * Replaces all data with `entries` (already merged: one per release/source/id/introduced) and records the load,
   * in one transaction. Rejects with a CveStoreError, changing nothing, when the write fails.
   */
  replace(entries: readonly VulnEntry[], origins: readonly FeedOrigin[], now?: Date): Promise<LoadRecord>;
  /** Every stored entry, descriptions joined in, ordered by release, source, id. */
  entries(): Promise<VulnEntry[]>;
  /** The data matching needs, consistent with its generation. */
  matchingData(): Promise<MatchingData>;
  close(): Promise<void>;
}
