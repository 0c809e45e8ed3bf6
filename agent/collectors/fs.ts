/**
 * Bounded, non-throwing filesystem reads for the collectors. Every read is capped so a huge or hostile file
 * (or an endless /proc file) cannot exhaust memory, and only regular files are read so a FIFO cannot hang us.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, opendirSync, readSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';

export const MAX_FILE_BYTES = 8 * 1024 * 1024;
/** Directory listings are capped too (a /proc with a million entries is not worth scanning in full). */
export const MAX_DIR_ENTRIES = 65_536;

export interface BoundedText {
  text: string;
  /** True when the file was longer than the cap and only part of it was read. */
  truncated: boolean;
}

/** Join a fixed relative path onto the root (the path never comes from file contents). */
export function under(root: string, ...parts: string[]): string {
  return join(root, ...parts);
}

/**
 * Reads at most `max` bytes of a regular file: the head, or the tail when `tail` is set (logs grow at the end).
 * Returns undefined when the file is missing, unreadable or not a regular file.
 */
export function readBounded(path: string, opts: { max?: number; tail?: boolean } = {}): BoundedText | undefined {
  const max = opts.max ?? MAX_FILE_BYTES;
  let fd: number | undefined;
  try {
    // O_NONBLOCK so opening a FIFO returns at once; fstat then rejects it.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    // /proc files report size 0, so read until EOF rather than trusting st.size (except to seek a tail).
    let position = opts.tail && st.size > max ? st.size - max : 0;
    const skippedHead = position > 0;
    const chunks: Buffer[] = [];
    let total = 0;
    let truncated = skippedHead;
    for (;;) {
      const want = Math.min(64 * 1024, max + 1 - total);
      if (want <= 0) break;
      const buf = Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, want, position);
      if (n <= 0) break;
      position += n;
      chunks.push(n === want ? buf : buf.subarray(0, n));
      total += n;
    }
    let data = Buffer.concat(chunks, total);
    if (data.length > max) {
      data = data.subarray(0, max);
      truncated = true;
    }
    let text = data.toString('utf8');
    // A tail starts mid-line: drop the partial first line.
    if (skippedHead) {
      const nl = text.indexOf('\n');
      text = nl >= 0 ? text.slice(nl + 1) : '';
    }
    return { text, truncated };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* nothing to do */
      }
    }
  }
}

/** Head of a file as text (capped), or undefined. */
export function readText(path: string, max?: number): string | undefined {
  return readBounded(path, max === undefined ? {} : { max })?.text;
}

/** First line of a small file, trimmed (the /proc and /sys one-value files). */
export function readLine(path: string, max = 4096): string | undefined {
  const text = readText(path, max);
  if (text === undefined) return undefined;
  return (text.split('\n', 1)[0] ?? '').trim();
}

/** Entry names of a directory, sorted, capped; [] when missing or unreadable. */
export function listDir(path: string, max = MAX_DIR_ENTRIES): string[] {
  const names: string[] = [];
  try {
    const dir = opendirSync(path);
    try {
      for (;;) {
        const entry = dir.readSync();
        if (!entry || names.length >= max) break;
        names.push(entry.name);
      }
    } finally {
      dir.closeSync();
    }
  } catch {
    /* missing or unreadable: report what we have */
  }
  return names.sort();
}

export function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** Whether anything exists at path (a dangling symlink counts: its presence is the signal). */
export function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function realPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** Whether `path` (already resolved) lies inside `rootReal` (already resolved). */
export function isInside(rootReal: string, path: string): boolean {
  if (rootReal === sep) return true;
  return path === rootReal || path.startsWith(rootReal.endsWith(sep) ? rootReal : rootReal + sep);
}

/** Cuts a string to at most `max` characters (schema bounds). */
export function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s;
}
