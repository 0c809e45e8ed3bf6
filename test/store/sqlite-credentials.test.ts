/**
 * SqliteCredentialStore: the CredentialStore contract on one file opened by several store objects, private modes,
 * a newer schema refused, a version-1 database keeps counting from its versions, and several processes writing
 * one name at once each get versions of their own (the CLI and the gateway share the file).
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SqliteCredentialStore } from '../../store/index.js';
import { tempDir } from '../helpers.js';
import { credentialRow, credentialStoreContract } from './credentials-contract.js';

t.test('contract', async (t) => {
  const dir = tempDir(t);
  credentialStoreContract(t, async () => SqliteCredentialStore.open(dir));
});

t.test('the file is private', async (t) => {
  const dir = tempDir(t);
  await SqliteCredentialStore.open(dir).close();
  t.equal(statSync(join(dir, 'credentials.db')).mode & 0o777, 0o600);
});

t.test('a database from a newer wott is refused', async (t) => {
  const dir = tempDir(t);
  await SqliteCredentialStore.open(dir).close();
  const db = new Database(join(dir, 'credentials.db'));
  db.pragma('user_version = 99');
  db.close();
  t.throws(() => SqliteCredentialStore.open(dir), /newer wott/);
});

t.test('a version-1 database: the next version follows the stored one', async (t) => {
  const dir = tempDir(t);
  const db = new Database(join(dir, 'credentials.db'));
  // The version-1 schema as released, holding a credential at version 4.
  db.exec(`CREATE TABLE credentials (name TEXT PRIMARY KEY, version INTEGER NOT NULL, tags TEXT NOT NULL, min_score REAL NOT NULL, linux_user TEXT,
      ttl_ms INTEGER, expires_at TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, size INTEGER NOT NULL, sealed BLOB NOT NULL);
    CREATE TABLE credential_exposures (name TEXT NOT NULL, device TEXT NOT NULL, version INTEGER NOT NULL, reason TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (name, device));
    CREATE TABLE credential_deliveries (device TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, serial TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (device, name));
    CREATE TABLE credential_generation (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
    INSERT INTO credential_generation (id, n) VALUES (1, 0);
    INSERT INTO credentials VALUES ('old', 4, '["db"]', 0.8, NULL, NULL, NULL, 'x', 'x', 3, X'616263');`);
  db.pragma('user_version = 1');
  db.close();
  const store = SqliteCredentialStore.open(dir);
  t.teardown(() => store.close());
  t.equal((await store.writeVersion('old', (c, version) => ({ ...c!, version }))).version, 5);
  await store.remove('old');
  t.equal((await store.writeVersion('old', (_c, version) => credentialRow('old', version, 'x'))).version, 6);
});

t.test('several processes rotating one name at once: every version once, none lost', async (t) => {
  const dir = tempDir(t);
  const store = SqliteCredentialStore.open(dir);
  t.teardown(() => store.close());
  await store.writeVersion('shared', (_c, version) => credentialRow('shared', version, 'v1'));
  const processes = 4;
  const each = 25;
  // Each child opens its own connection (the built store, as the CLI does) and waits for "go" on stdin, so that
  // all of them write at the same time.
  const script = `
    const { SqliteCredentialStore } = await import(${JSON.stringify(pathToFileURL(resolve('dist/store/index.js')).href)});
    const store = SqliteCredentialStore.open(${JSON.stringify(dir)});
    process.stdout.write('ready\\n');
    await new Promise((r) => process.stdin.once('data', r));
    const versions = [];
    for (let i = 0; i < ${each}; i++) {
      const row = await store.writeVersion('shared', (c, version) => ({ ...c, version, sealed: Buffer.from('v' + version), size: 2 }));
      versions.push(row.version);
    }
    await store.close();
    process.stdout.write(JSON.stringify(versions) + '\\n');`;
  const children = Array.from({ length: processes }, () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const ready = new Promise<void>((res) => child.stdout.on('data', (d: Buffer) => ((out += d.toString()), out.startsWith('ready\n') && res())));
    const done = new Promise<number[]>((res, rej) =>
      child.on('exit', (code) => (code === 0 ? res(JSON.parse(out.slice('ready\n'.length)) as number[]) : rej(new Error(`child exited ${code}`)))),
    );
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.child.stdin.end('go');
  const results = await Promise.all(children.map((c) => c.done));
  for (const versions of results) t.same([...versions].sort((a, b) => a - b), versions, 'each process sees its versions rise');
  const all = results.flat().sort((a, b) => a - b);
  t.same(all, Array.from({ length: processes * each }, (_, i) => i + 2), 'versions 2 … 101, each written once');
  const last = await store.get('shared');
  t.equal(last?.version, processes * each + 1);
  t.equal(last?.sealed.toString(), `v${processes * each + 1}`);
});
