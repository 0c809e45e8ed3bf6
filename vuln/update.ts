/**
 * `wott cve update`: reads feeds from files, folders of OSV records or http(s) URLs, parses and validates all of
 * them, merges them per named feed (by default the format: `debian-tracker`, `osv`), and only then replaces those
 * feeds in the store, in one transaction; other feeds stay. Any failure leaves the store as it was.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CveFeedError, DEFAULT_FEED_LIMITS, mergeEntries, parseFeed, type FeedLimits, type ParsedFeed } from './feed.js';
import { FEED_NAME, openSqliteVulnStore, type FeedLoad, type FeedOrigin, type LoadRecord, type VulnStore } from '../store/index.js';

export interface ReadOptions {
  /** Largest input accepted, in bytes (after decompression). */
  maxBytes?: number;
  /** URL fetch timeout. */
  timeoutMs?: number;
  /** Most files read from one folder. */
  maxFiles?: number;
}

export const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_FILES = 500_000;

export interface FeedInput {
  from: string;
  bytes: Buffer;
}

function sizeError(from: string, max: number): CveFeedError {
  return new CveFeedError(`${from}: larger than ${max} bytes (raise the limit with --max-size if this is expected)`);
}

/** Reads a regular file with a size cap (never trusting st.size alone: the file may grow while read). */
function readFileBounded(path: string, max: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CveFeedError(`${path}: cannot read (${e.code === 'ENOENT' ? 'no such file' : e.code ?? e.message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CveFeedError(`${path}: not a regular file`);
    if (st.size > max) throw sizeError(path, max);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1 << 20, max + 1 - total) || 1);
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > max) throw sizeError(path, max);
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/** Fetches a URL with a timeout and a size cap; errors say whether the host was unreachable or answered badly. */
export async function fetchBounded(url: string, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CveFeedError(`${url}: not a valid URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new CveFeedError(`${url}: only http and https URLs are supported`);
  let res: Response;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    res = await fetch(parsed, { signal, redirect: 'follow', headers: { accept: 'application/json, */*' } });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new CveFeedError(`${url}: unreachable (${why}); the store is unchanged`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new CveFeedError(`${url}: HTTP ${res.status} ${res.statusText}; the store is unchanged`);
  }
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw sizeError(url, maxBytes);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body ?? []) {
      total += chunk.length;
      if (total > maxBytes) throw sizeError(url, maxBytes);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof CveFeedError) throw err;
    const e = err as Error;
    throw new CveFeedError(`${url}: download failed after ${total} bytes (${e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : e.message}); the store is unchanged`);
  }
  return Buffer.concat(chunks, total);
}

/** Reads one --from argument: a URL, a file, or a folder of OSV record files (*.json, *.jsonl). */
export async function readFeedInputs(from: string, opts: ReadOptions = {}): Promise<FeedInput[]> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(from)) return [{ from, bytes: await fetchBounded(from, maxBytes, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) }];
  let isDir = false;
  try {
    isDir = statSync(from).isDirectory();
  } catch {
    // readFileBounded reports the missing file
  }
  if (!isDir) return [{ from, bytes: readFileBounded(from, maxBytes) }];
  const names = readdirSync(from)
    .filter((n) => /\.jsonl?$/i.test(n))
    .sort();
  if (names.length === 0) throw new CveFeedError(`${from}: folder has no .json or .jsonl files`);
  if (names.length > (opts.maxFiles ?? DEFAULT_MAX_FILES)) throw new CveFeedError(`${from}: ${names.length} files (limit ${opts.maxFiles ?? DEFAULT_MAX_FILES})`);
  const out: FeedInput[] = [];
  let total = 0;
  for (const name of names) {
    const bytes = readFileBounded(join(from, name), maxBytes - total);
    total += bytes.length;
    out.push({ from: join(from, name), bytes });
  }
  return out;
}

/** Decodes an input: gzip is unpacked (bounded: a small .gz can expand enormously), text must be valid UTF-8. */
export function decodeFeed(input: FeedInput, maxBytes = DEFAULT_MAX_BYTES): string {
  let bytes = input.bytes;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: maxBytes });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE' || /Cannot create a Buffer larger|maxOutputLength/i.test(e.message)) throw sizeError(`${input.from} (unpacked)`, maxBytes);
      throw new CveFeedError(`${input.from}: corrupt or truncated gzip data (${e.code ?? e.message})`);
    }
  } else if (bytes[0] === 0x50 && bytes[1] === 0x4b) {
    throw new CveFeedError(`${input.from}: a zip archive; unzip it (e.g. OSV's all.zip) and pass the folder`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CveFeedError(`${input.from}: not valid UTF-8 text`);
  }
}

export interface ParsedInput {
  origin: FeedOrigin;
  feed: ParsedFeed;
}

export function parseInput(input: FeedInput, limits: FeedLimits = DEFAULT_FEED_LIMITS, maxBytes = DEFAULT_MAX_BYTES): ParsedInput {
  const text = decodeFeed(input, maxBytes);
  const feed = parseFeed(text, input.from, limits);
  return {
    feed,
    origin: { from: input.from, format: feed.format, bytes: input.bytes.length, sha256: createHash('sha256').update(input.bytes).digest('hex'), stats: feed.stats },
  };
}

export interface UpdateOptions extends ReadOptions {
  dataDir: string;
  /** The store to load into (left open); default: the SQLite store in dataDir, opened and closed here. */
  store?: VulnStore;
  from: string[];
  limits?: FeedLimits;
  /** Keep only these release codenames (a gateway whose fleet runs bookworm need not store sid). */
  releases?: string[];
  /**
   * The feed these inputs replace in the store. Default: the format of each input (`debian-tracker`, `osv`), so a
   * tracker update replaces the previous tracker data and leaves OSV data alone, and vice versa.
   */
  feed?: string;
  /** Called after parsing, before the store is written (progress output; tests use it to crash mid-write). */
  onParsed?: (entries: number) => void;
  now?: Date;
}

/** Loads every source, then replaces the feeds they make up. Throws CveFeedError / CveStoreError; the store is unchanged then. */
export async function updateCveStore(opts: UpdateOptions): Promise<LoadRecord> {
  if (opts.from.length === 0) throw new CveFeedError('no feed given: pass --from FILE|URL');
  if (opts.feed !== undefined && !FEED_NAME.test(opts.feed)) throw new CveFeedError(`invalid feed name ${JSON.stringify(opts.feed.slice(0, 80))}: lowercase letters, digits, . _ - (at most 64)`);
  const parsed: ParsedInput[] = [];
  for (const from of opts.from) {
    for (const input of await readFeedInputs(from, opts)) parsed.push(parseInput(input, opts.limits, opts.maxBytes));
  }
  const groups = new Map<string, ParsedInput[]>();
  for (const p of parsed) {
    const name = opts.feed ?? p.feed.format;
    groups.set(name, [...(groups.get(name) ?? []), p]);
  }
  const loads: FeedLoad[] = [];
  for (const [feed, inputs] of groups) {
    let entries = mergeEntries(inputs.map((p) => p.feed.entries));
    if (opts.releases?.length) {
      const keep = new Set(opts.releases);
      const all = [...new Set(entries.map((e) => e.release))].sort();
      entries = entries.filter((e) => keep.has(e.release));
      // Refused rather than stored: an empty load would wipe the feed's previous data.
      if (entries.length === 0) throw new CveFeedError(`feed ${feed}: no entries for ${[...keep].join(', ')} (it covers ${all.join(', ')}); the store is unchanged`);
    }
    loads.push({ feed, entries, origins: inputs.map((p) => p.origin) });
  }
  opts.onParsed?.(loads.reduce((n, l) => n + l.entries.length, 0));
  const store = opts.store ?? (await openSqliteVulnStore(opts.dataDir));
  try {
    return await store.replace(loads, opts.now);
  } finally {
    if (!opts.store) await store.close();
  }
}
