/**
 * The CVE data as matching uses it: the in-memory index built from a VulnStore. Matching is synchronous (scoring
 * calls it on its hot path), so the index is held here and rebuilt asynchronously when the store's generation
 * changes: on `refresh()`, and, when opened with `recheckMs`, every `recheckMs` by a timer (`wott cve update` in
 * another process then shows within about that long).
 */
import { createHash } from 'node:crypto';
import type { ListeningSocket } from '../protocol/index.js';
import type { VulnStore } from '../store/index.js';
import { mergeEntries } from './feed.js';
import { buildIndex, chainChanges, changedSince, debianRelease, exposeFindings, matchSet, rematchSet, type CveFinding, type CveIndex, type InventoryEntry, type OsRelease, type SetMatch } from './match.js';

export interface CveDatabaseOptions {
  /** Re-check the store's generation this often (ms); without it, only `refresh()` does. */
  recheckMs?: number;
  /** A failed re-check or rebuild keeps the previous index; this hears why. */
  onError?: (err: Error) => void;
  /** How many distinct package lists keep their match for sharing and incremental re-matching (default 20,000). */
  maxSets?: number;
}

const DEFAULT_MAX_SETS = 20_000;

export class CveDatabase {
  private current: CveIndex = buildIndex([], 0);
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Content key of each package-list object seen (computed once per list, dropped with it). */
  private readonly listKeys = new WeakMap<readonly InventoryEntry[], string>();
  /** release + list content → its match; oldest first, so the first key is evicted when full. */
  private readonly sets = new Map<string, SetMatch>();

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

  /**
   * Findings for one device. Devices with the same package list share one match (most of a fleet runs a few
   * images), and after a feed change a list is re-matched only for the sources whose entries changed. The key is
   * a SHA-256 the gateway computes over the list itself, not the hash the agent claims in its telemetry: that one
   * is untrusted, and a device could otherwise pick another device's key and hide its findings. The returned
   * array and findings are shared and frozen.
   */
  match(packages: readonly InventoryEntry[], os: OsRelease, listening: readonly ListeningSocket[] = []): CveFinding[] {
    const release = debianRelease(os);
    if (release === null) return [];
    const index = this.current;
    const key = `${release}\n${this.listKey(packages)}`;
    let set = this.sets.get(key);
    if (!set || set.generation !== index.generation) {
      const changed = set ? changedSince(index, set.generation) : null;
      set = set && changed ? rematchSet(index, set, packages, changed) : matchSet(index, release, packages);
      this.sets.delete(key);
      this.sets.set(key, set);
      if (this.sets.size > (this.options.maxSets ?? DEFAULT_MAX_SETS)) this.sets.delete(this.sets.keys().next().value!);
    }
    return exposeFindings(set, packages, listening) as CveFinding[];
  }

  private listKey(packages: readonly InventoryEntry[]): string {
    let key = this.listKeys.get(packages);
    if (key === undefined) {
      // Every field length-prefixed, in the order given: an injective encoding (a crafted name can not make two
      // different lists encode alike), so equal keys mean equal input to the matcher. ~2x faster than JSON.
      let text = '';
      for (const p of packages) {
        text += `${p.name.length}:${p.name}${p.source.length}:${p.source}${p.version.length}:${p.version}`;
        text += p.sourceVersion === undefined ? '-;' : `${p.sourceVersion.length}:${p.sourceVersion};`;
      }
      key = createHash('sha256').update(text).digest('base64');
      this.listKeys.set(packages, key);
    }
    return key;
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
    chainChanges(this.current, index);
    this.current = index;
  }

  /** Stops the re-checks (the store stays open). */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
