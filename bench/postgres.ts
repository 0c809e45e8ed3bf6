/**
 * A private PostgreSQL cluster (Debian `postgresql`) in a folder: initdb, then the server on a free 127.0.0.1 port
 * with password (SCRAM) authentication. PostgreSQL refuses to run as root, so under root the cluster belongs to the
 * `postgres` system user (the Debian package creates it) and every server command runs through `runuser`. Used by
 * the tests (test/postgres-helpers.ts) and `npm run bench -- store`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './servers.js';

/** The newest installed server's bin folder (Debian keeps them out of PATH, in /usr/lib/postgresql/N/bin). */
export function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(root, versions[0], 'bin');
}

export interface PostgresProcess {
  readonly port: number;
  /** URL of database `db` as the cluster's superuser `wott` (with its password). */
  url(db?: string): string;
  /** Creates a new, empty database and returns its URL. */
  newDatabase(): Promise<string>;
  /** Runs SQL as the superuser in database `db`. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(db: string, text: string, values?: unknown[]): Promise<R[]>;
  /** Stops the server (fast shutdown); start() starts it again on the same port with the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  destroy(): Promise<void>;
}

let databases = 0;

/** Makes a cluster in `dir` (an empty folder this call may chown) and starts it. */
export async function startPostgresServer(dir: string, bin: string, settings: { fsync?: boolean } = {}): Promise<PostgresProcess> {
  const root = process.getuid?.() === 0;
  const data = join(dir, 'data');
  const password = randomBytes(18).toString('base64url');
  writeFileSync(join(dir, 'pw'), password + '\n', { mode: 0o600 });
  if (root) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    chownSync(dir, id('-u'), id('-g'));
    chownSync(join(dir, 'pw'), id('-u'), id('-g'));
  }
  const run = (command: string, args: string[]) => {
    const [file, argv] = root ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]] : [join(bin, command), args];
    const r = spawnSync(file, argv, { encoding: 'utf8', cwd: dir });
    return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  };
  const init = run('initdb', ['-D', data, '-U', 'wott', '--pwfile', join(dir, 'pw'), '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8']);
  if (!init.ok) throw new Error(`initdb failed: ${init.output}`);
  // fsync off by default: the tests are about wott's transactions, not the disk; with it on, the shutdown checkpoint
  // of a cluster that made a few dozen databases takes half a minute on a busy disk. Commits still wait for the WAL
  // write (synchronous_commit stays on), so the server's semantics are unchanged. Benchmarks keep fsync on, as
  // SQLite's synchronous=FULL does, so that the comparison is fair.
  const durability = settings.fsync ? '' : ' -c fsync=off -c full_page_writes=off';
  const options = (p: number) => `-c listen_addresses=127.0.0.1 -p ${p} -k ${dir} -c max_connections=300 -c shared_buffers=32MB${durability}`;
  const pgCtlStart = (p: number) => run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', options(p), 'start']);
  let port = 0;
  // The port is free when chosen but another process may take it before the server binds it: try again then.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const r = pgCtlStart(port);
    if (r.ok) break;
    const log = existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8') : '';
    if (attempt >= 3 || !/could not bind|Address already in use/.test(log)) throw new Error(`PostgreSQL did not start: ${r.output}\n${log}`);
  }
  let running = true;
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
  const stop = async () => {
    if (!running) return;
    running = false;
    run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  };
  return {
    get port() {
      return port;
    },
    url,
    sql,
    async newDatabase() {
      const name = `wott_${process.pid}_${++databases}`;
      await sql('postgres', `CREATE DATABASE ${name}`);
      return url(name);
    },
    stop,
    async start() {
      if (running) return;
      const r = pgCtlStart(port);
      if (!r.ok) throw new Error(`PostgreSQL did not start again: ${r.output}`);
      running = true;
    },
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
}
