/**
 * A real PostgreSQL server (Debian `postgresql`) for a test file: a private cluster made by initdb in a temporary
 * folder, listening on a free 127.0.0.1 port with password (SCRAM) authentication, stopped and removed at teardown.
 * PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` system user (the package
 * creates it) and every server command runs through `runuser`. Installed with apt-get when missing and root;
 * under CI=true a missing server is a failure, never a skip.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../bench/servers.js';
import { inCi } from './helpers.js';

type T = {
  teardown(fn: () => unknown): void;
  fail(msg: string): void;
  skip(msg: string): void;
};

export interface PostgresServer {
  port: number;
  /** URL of database `db` as the cluster's superuser `wott` (with its password). */
  url(db?: string): string;
  /** Creates a new, empty database and returns its URL. */
  newDatabase(): Promise<string>;
  /** Runs SQL as the superuser in database `db` (the test's own look behind the store's back). */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(db: string, text: string, values?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
  /** Starts it again after stop() (same data, same port). */
  start(): Promise<void>;
}

/** The newest installed server's bin folder (Debian keeps them out of PATH, in /usr/lib/postgresql/N/bin). */
function findBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(root, versions[0], 'bin');
}

let binDir: string | undefined | null = null;
function requirePostgres(t: T): string | undefined {
  if (binDir === null) {
    binDir = findBin();
    if (!binDir && process.getuid?.() === 0) {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      spawnSync('apt-get', ['install', '-y', '-q', 'postgresql'], { stdio: 'ignore', env });
      if (!findBin()) {
        spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
        spawnSync('apt-get', ['install', '-y', '-q', 'postgresql'], { stdio: 'ignore', env });
      }
      binDir = findBin();
    }
  }
  if (!binDir) {
    const msg = 'PostgreSQL server not found: install the Debian package postgresql (apt-get install postgresql)';
    if (inCi) t.fail(msg);
    else t.skip(msg);
  }
  return binDir;
}

let databases = 0;

export async function startPostgres(t: T): Promise<PostgresServer | undefined> {
  const bin = requirePostgres(t);
  if (!bin) return undefined;
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'wott-pg-'));
  const data = join(dir, 'data');
  const password = randomBytes(18).toString('base64url');
  writeFileSync(join(dir, 'pw'), password + '\n', { mode: 0o600 });
  let owner: { uid: number; gid: number } | undefined;
  if (root) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    owner = { uid: id('-u'), gid: id('-g') };
    chownSync(dir, owner.uid, owner.gid);
    chownSync(join(dir, 'pw'), owner.uid, owner.gid);
  }
  const run = (command: string, args: string[]) => {
    const [file, argv] = root ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]] : [join(bin, command), args];
    const r = spawnSync(file, argv, { encoding: 'utf8', cwd: dir });
    return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  };
  const init = run('initdb', ['-D', data, '-U', 'wott', '--pwfile', join(dir, 'pw'), '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8']);
  if (!init.ok) throw new Error(`initdb failed: ${init.output}`);
  let port = 0;
  // fsync off: these tests are about wott's transactions, not the disk; with it on, the shutdown checkpoint of a
  // cluster that made a few dozen databases takes half a minute on a busy disk. Commits still wait for the WAL
  // write (synchronous_commit stays on), so the server's own semantics are unchanged.
  const serverOptions = (p: number) => `-c listen_addresses=127.0.0.1 -p ${p} -k ${dir} -c max_connections=300 -c fsync=off -c full_page_writes=off -c shared_buffers=32MB`;
  const start = async () => {
    // The port is free when chosen but another process may take it before the server binds it: try again then.
    for (let attempt = 1; ; attempt++) {
      if (!port || attempt > 1) port = await freePort();
      const options = serverOptions(port);
      const r = run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', options, 'start']);
      if (r.ok) return;
      const log = existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8') : '';
      if (attempt >= 3 || !/could not bind|Address already in use/.test(log)) throw new Error(`PostgreSQL did not start: ${r.output}\n${log}`);
    }
  };
  let running = false;
  const stop = async () => {
    if (!running) return;
    running = false;
    run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  };
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  });
  await start();
  running = true;
  const url = (db = 'postgres') => `postgres://wott:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;
  const sql = async <R extends pg.QueryResultRow>(db: string, text: string, values?: unknown[]) => {
    const client = new pg.Client({ connectionString: url(db) });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  return {
    get port() {
      return port;
    },
    url,
    async newDatabase() {
      const name = `wott_${process.pid}_${++databases}`;
      await sql('postgres', `CREATE DATABASE ${name}`);
      return url(name);
    },
    sql,
    stop,
    async start() {
      if (running) return;
      const keep = port;
      // Same port: clients hold the URL.
      const options = serverOptions(keep);
      const r = run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', options, 'start']);
      if (!r.ok) throw new Error(`PostgreSQL did not start again: ${r.output}`);
      running = true;
    },
  };
}
