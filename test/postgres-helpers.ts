/**
 * A real PostgreSQL server (Debian `postgresql`) for a test file: a private cluster in a temporary folder on a free
 * 127.0.0.1 port with password authentication (bench/postgres.ts; run as the `postgres` user under root), stopped
 * and removed at teardown. Installed with apt-get when missing and root; under CI=true a missing server is a
 * failure, never a skip.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresBin, startPostgresServer, type PostgresProcess } from '../bench/postgres.js';
import { inCi } from './helpers.js';

type T = {
  teardown(fn: () => unknown): void;
  fail(msg: string): void;
  skip(msg: string): void;
};

export type PostgresServer = PostgresProcess;

let binDir: string | undefined | null = null;
function requirePostgres(t: T): string | undefined {
  if (binDir === null) {
    binDir = postgresBin();
    if (!binDir && process.getuid?.() === 0) {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      spawnSync('apt-get', ['install', '-y', '-q', 'postgresql'], { stdio: 'ignore', env });
      if (!postgresBin()) {
        spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
        spawnSync('apt-get', ['install', '-y', '-q', 'postgresql'], { stdio: 'ignore', env });
      }
      binDir = postgresBin();
    }
  }
  if (!binDir) {
    const msg = 'PostgreSQL server not found: install the Debian package postgresql (apt-get install postgresql)';
    if (inCi) t.fail(msg);
    else t.skip(msg);
  }
  return binDir;
}

export async function startPostgres(t: T): Promise<PostgresServer | undefined> {
  const bin = requirePostgres(t);
  if (!bin) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'wott-pg-'));
  let server: PostgresServer;
  try {
    server = await startPostgresServer(dir, bin);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  t.teardown(() => server.destroy());
  return server;
}
