/**
 * What reports keep between runs: the summary of the last compliance report (for the trend in the next one). One
 * small JSON document per kind, in the data folder (private, replaced atomically); behind this interface so that a
 * shared store can hold it later.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';

export type ReportKind = 'compliance';

export interface ReportHistoryStore {
  /** The last document saved for `kind`, or undefined (none yet, or unreadable: a trend is not worth failing for). */
  last(kind: ReportKind): Promise<unknown>;
  save(kind: ReportKind, document: unknown): Promise<void>;
}

export function openReportHistory(dataDir: string): ReportHistoryStore {
  const dir = join(dataDir, 'reports');
  // The kind is one of a fixed set: never a name from input.
  const file = (kind: ReportKind) => join(dir, `last-${kind}.json`);
  return {
    async last(kind) {
      if (!existsSync(file(kind))) return undefined;
      try {
        return JSON.parse(readFileSync(file(kind), 'utf8')) as unknown;
      } catch {
        return undefined;
      }
    },
    async save(kind, document) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileAtomic(file(kind), JSON.stringify(document), 0o600);
    },
  };
}
