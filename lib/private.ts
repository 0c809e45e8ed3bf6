/**
 * File modes for wott's data folder: the folder and everything wott keeps in it are private to the user that runs
 * wott (folders 0700, files 0600), whatever the umask and whoever made the folder (`mkdir -p`, a container volume).
 */
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** A private key file, in the data folder or anywhere else (an `--out` folder, a broker's config folder). */
export const PRIVATE_KEY_MODE = 0o600;

/** True when neither group nor others have any access to `path` (false when it does not exist). */
export function isPrivate(path: string): boolean {
  try {
    return (statSync(path).mode & 0o077) === 0;
  } catch {
    return false;
  }
}

function tighten(path: string, mode: number, problems: string[]): void {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) return; // never follow a link out of the folder
    const uid = process.getuid?.();
    if (uid !== undefined && uid !== 0 && st.uid !== uid) {
      if (st.mode & 0o077) problems.push(`${path} belongs to uid ${st.uid}, not to this user: cannot make it private`);
      return;
    }
    if ((st.mode & 0o777) !== mode) chmodSync(path, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') problems.push(`cannot make ${path} private: ${code ?? String(err)}`);
  }
}

/** Creates `dir` (missing parents too) as 0700, or tightens an existing one to 0700. Returns what could not be fixed. */
export function ensurePrivateDir(dir: string): string[] {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const problems: string[] = [];
  tighten(dir, PRIVATE_DIR_MODE, problems);
  return problems;
}

/**
 * Makes `dir` 0700 and, recursively, every sub-folder 0700 and every file 0600 (files written before wott did
 * this, or by an older version). Symbolic links are not followed. Returns what could not be fixed (for a
 * warning): entries owned by another user, read-only mounts.
 */
export function makeTreePrivate(dir: string): string[] {
  const problems = ensurePrivateDir(dir);
  const walk = (folder: string) => {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch (err) {
      problems.push(`cannot list ${folder}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return;
    }
    for (const name of names) {
      const path = join(folder, name);
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue; // removed meanwhile
      }
      if (st.isSymbolicLink()) continue;
      if (st.isDirectory()) {
        tighten(path, PRIVATE_DIR_MODE, problems);
        walk(path);
      } else if (st.isFile()) {
        tighten(path, PRIVATE_FILE_MODE, problems);
      }
    }
  };
  walk(dir);
  return problems;
}

/**
 * Before SQLite opens `path`: its folder is private, the database file exists as 0600 (created empty if new, which
 * SQLite treats as an empty database) and an existing -wal / -shm is 0600. SQLite gives the -wal and -shm files
 * it creates the mode of the database file, so they are private too.
 */
export function preparePrivateDatabase(path: string, folder: string): string[] {
  const problems = ensurePrivateDir(folder);
  if (!existsSync(path)) closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
  for (const p of [path, `${path}-wal`, `${path}-shm`]) tighten(p, PRIVATE_FILE_MODE, problems);
  return problems;
}
