/** Opening wott's SQLite files: private modes, and errors that say which file is damaged. */
import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { preparePrivateDatabase } from '../../lib/private.js';

/**
 * Opens (or creates) the database at `path` with its folder 0700 and its files 0600, and runs `setup` (pragmas,
 * schema). Any failure, a damaged file above all, becomes an error naming `what` and the file, made by `fail`.
 * Returns the files whose mode could not be fixed, for a warning.
 */
export function openPrivateDatabase(
  path: string,
  what: string,
  setup: (db: Database.Database) => void,
  options: { folder?: string; fail?: (message: string) => Error } = {},
): { db: Database.Database; modeProblems: string[] } {
  const modeProblems = preparePrivateDatabase(path, options.folder ?? dirname(path));
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    setup(db);
    return { db, modeProblems };
  } catch (err) {
    if (db?.open) db.close();
    const message = `cannot open the ${what} ${path}: ${(err as Error).message}`;
    throw options.fail ? options.fail(message) : new Error(message);
  }
}
