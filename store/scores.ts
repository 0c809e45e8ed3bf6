/**
 * What scoring persists: per-device scoring records (so a restart keeps replay protection, penalties and package
 * lists), the latest score of each device with its CVE findings (for `wott score show`), and a score history with
 * bounded retention (so the gateway keeps history with no InfluxDB).
 */
import type { ScoreMessage } from '../protocol/index.js';

/** A vulnerability finding as stored beside a score (scoring's CveFindingInput has this shape). */
export interface StoredFinding {
  cve: string;
  source: string;
  installed: string;
  fixed: string;
  severity: 'low' | 'medium' | 'high' | 'critical' | 'unknown';
  remote: boolean | null;
  exposed: boolean;
  action: string;
}

export interface StoredScore {
  message: ScoreMessage;
  findings?: StoredFinding[];
}

/** One history point: only the factors that cost points are kept, to keep history small. */
export interface HistoryRow {
  /** Milliseconds since the epoch (the score message's time). */
  time: number;
  score: number;
  model: string;
  factors: Array<{ id: string; contribution: number }>;
}

/** The factors a history row keeps: those that moved the score, without their reasons (every backend, and the API's
 * current point at the end of a history, keep the same). */
export function historyFactors(factors: ReadonlyArray<{ id: string; contribution: number }>): HistoryRow['factors'] {
  return factors.filter((f) => f.contribution !== 0).map((f) => ({ id: f.id, contribution: f.contribution }));
}

/** A scoring record: the device and the engine's serialized state, opaque to the store. */
export type ScoringRecord = readonly [device: string, data: string];

/** Calls on one store object take effect one at a time, in the order they were made (the contract tests hold a backend to it). */
export interface ScoreStore {
  /** Where the data lives, for messages (a file path, a server). */
  readonly location: string;
  /**
   * Writes changed records and newly published scores (latest replaced, one history row each) in one transaction:
   * all of it or, when it rejects, none of it.
   *
   * `epoch` (a cluster's scorer: its scoring lease epoch) fences the write: below the highest epoch the store has
   * seen it rejects with StaleEpochError and writes nothing; otherwise that epoch becomes the highest. A new leader
   * commits nothing with its epoch first, so that a deposed one can write nothing after it. Without an epoch (one
   * node, no lease) a commit is never fenced.
   */
  commit(records: readonly ScoringRecord[], scores: readonly StoredScore[], epoch?: number): Promise<void>;
  /** Every stored record. */
  records(): Promise<Array<[string, string]>>;
  /** The latest score of `device` with its findings, if any. */
  latest(device: string): Promise<StoredScore | undefined>;
  /** The latest score message of every device. */
  allLatest(): Promise<ScoreMessage[]>;
  /** `device`'s history from `since` (ms, inclusive; default 0), oldest first; at most the newest `limit` rows (default 1000). */
  history(device: string, options?: { since?: number; limit?: number }): Promise<HistoryRow[]>;
  /** Deletes history older than the retention the store was opened with, counted back from `now`; resolves to how many rows went. */
  prune(now?: number): Promise<number>;
  close(): Promise<void>;
}

export interface ScoreStoreOptions {
  /** How long history is kept (prune); default 30 days. */
  retentionMs?: number;
}

export const DEFAULT_HISTORY_RETENTION_MS = 30 * 86_400_000;
