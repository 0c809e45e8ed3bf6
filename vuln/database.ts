/**
 * The CVE data as matching uses it: the in-memory index built from a VulnStore. Matching is synchronous (scoring
 * calls it on its hot path), so the index is held here and rebuilt asynchronously when the store's generation
 * changes: on `refresh()`, and, when opened with `recheckMs`, every `recheckMs` by a timer (`wott cve update` in
 * another process then shows within about that long).
 */
import type { ListeningSocket } from '../protocol/index.js';
import type { VulnStore } from '../store/index.js';
import { mergeEntries } from './feed.js';
import { buildIndex, matchPackages, type CveFinding, type CveIndex, type InventoryEntry, type OsRelease } from './match.js';

export interface CveDatabaseOptions {
  /** Re-check the store's generation this often (ms); without it, only `refresh()` does. */
  recheckMs?: number;
  /** A failed re-check or rebuild keeps the previous index; this hears why. */
  onError?: (err: Error) => void;
}

export class CveDatabase {
  private current: CveIndex = buildIndex([], 0);
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly store: VulnStore,
    private readonly options: CveDatabaseOptions,
  ) {}

  /** Builds the index of the store's current data; the caller keeps owning (and closes) the store. */
  static async open(store: VulnStore, options: CveDatabaseOptions = {}): Promise<CveDatabase> {
    const db = new CveDatabase(store, options);
    await db.refresh();
    if (options.recheckMs) {
      db.timer = setInterval(() => void db.refresh().catch((err: Error) => options.onError?.(err)), options.recheckMs);
      db.timer.unref();
    }
    return db;
  }

  /** The generation of the index held now (0: nothing loaded). */
  get generation(): number {
    return this.current.generation;
  }

  /** False until something was loaded: scoring then leaves the CVE factor out rather than claiming "no CVEs". */
  get loaded(): boolean {
    return this.current.generation > 0;
  }

  /** The index held now. */
  index(): CveIndex {
    return this.current;
  }

  match(packages: readonly InventoryEntry[], os: OsRelease, listening: readonly ListeningSocket[] = []): CveFinding[] {
    return matchPackages(this.current, packages, os, listening);
  }

  /** Rebuilds the index if the store's generation moved; concurrent callers share one refresh. */
  refresh(): Promise<void> {
    this.refreshing ??= this.rebuildIfChanged().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async rebuildIfChanged(): Promise<void> {
    if ((await this.store.generation()) === this.current.generation) return;
    const data = await this.store.matchingData();
    // Feeds are stored apart (each replaced on its own); the same entry from two feeds is merged here.
    const index = buildIndex(mergeEntries([data.fixed]), data.generation);
    for (const [id, text] of data.descriptions) index.descriptions.set(id, text);
    this.current = index;
  }

  /** Stops the re-checks (the store stays open). */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
