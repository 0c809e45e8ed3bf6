/** Crash-safe file writes: a reader sees the old file or the new one, never half of one. */
import { closeSync, existsSync, fsyncSync, openSync, renameSync, writeSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isPrivate, PRIVATE_DIR_MODE } from './private.js';

/** Makes a rename or a new file in `dir` durable: fsyncs the directory itself. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function nearestExisting(dir: string): string {
  let at = dir;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  return at;
}

/**
 * Writes `data` to a temporary file created with `mode` (so a key is never world-readable, even briefly), fsyncs,
 * renames. In a private folder (no group or other access, as wott's data folder) the file and any folder made for
 * it are private too (0600 / 0700), whatever `mode` says.
 */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): void {
  const dir = dirname(path);
  const inPrivate = isPrivate(nearestExisting(dir));
  mkdirSync(dir, { recursive: true, ...(inPrivate ? { mode: PRIVATE_DIR_MODE } : {}) });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', inPrivate ? mode & 0o700 : mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dir);
}

/** Atomically moves a fully written directory into place (used to create the CA in one step). */
export function renameDirAtomic(from: string, to: string): void {
  renameSync(from, to);
  fsyncDir(dirname(to));
}
