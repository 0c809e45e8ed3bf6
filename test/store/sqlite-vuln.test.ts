/**
 * The SQLite vulnerability store: the VulnStore contract, then what only SQLite has: the file the CVE store wrote
 * before migrations (user_version 1, same tables) opens as it is, a newer schema is refused, private file modes,
 * and kill -9 in the middle of a load.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openSqliteVulnStore, vulnStorePath } from '../../store/index.js';
import { updateCveStore } from '../../vuln/index.js';
import { tempDir, writeTemp } from '../helpers.js';
import { vulnStoreContract } from './vuln-contract.js';

const fixture = (name: string) => resolve('test/fixtures/cve', name);

t.test('contract', async (t) => {
  const dataDir = tempDir(t);
  vulnStoreContract(t, () => openSqliteVulnStore(dataDir));
});

/** The schema vuln/store.ts created before store/ (it set user_version = 1 itself). */
const SCHEMA_BEFORE_STORE = `
  CREATE TABLE IF NOT EXISTS entries (
    release TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, introduced TEXT NOT NULL DEFAULT '',
    fixed TEXT, severity TEXT NOT NULL, remote INTEGER, advisory TEXT,
    PRIMARY KEY (release, source, id, introduced)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS descriptions (id TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS loads (seq INTEGER PRIMARY KEY AUTOINCREMENT, loaded_at TEXT NOT NULL, record TEXT NOT NULL);
`;

t.test('a file the CVE store wrote before store/ opens with its data', async (t) => {
  const dataDir = tempDir(t);
  mkdirSync(join(dataDir, 'cve'), { mode: 0o700 });
  const old = new Database(vulnStorePath(dataDir));
  old.pragma('journal_mode = WAL');
  old.exec(SCHEMA_BEFORE_STORE);
  old.pragma('user_version = 1');
  old.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run('bookworm', 'openssl', 'CVE-2099-1', '', '3.0.2-1', 'high', 1, 'DSA-1-1');
  old.prepare('INSERT INTO descriptions VALUES (?, ?)').run('CVE-2099-1', 'old text');
  const record = { loadedAt: '2099-01-01T00:00:00.000Z', origins: [], entries: 1, fixed: 1, open: 0, releases: ['bookworm'], sources: 1 };
  old.prepare('INSERT INTO loads (loaded_at, record) VALUES (?, ?)').run(record.loadedAt, JSON.stringify(record));
  old.close();

  const store = await openSqliteVulnStore(dataDir);
  t.teardown(() => store.close());
  // No origins recorded, so no format to name the feed after: "legacy".
  t.same(await store.status(), { ...record, generation: 1, feeds: [{ name: 'legacy', generation: 1, loadedAt: record.loadedAt, origins: [], entries: 1, fixed: 1, open: 0 }] });
  t.same(await store.entries(), [{ id: 'CVE-2099-1', source: 'openssl', release: 'bookworm', fixed: '3.0.2-1', severity: 'high', remote: true, advisory: 'DSA-1-1', description: 'old text' }]);
  const next = await store.replace([{ feed: 'osv', entries: [], origins: [] }]);
  t.equal(next.generation, 2, 'generations go on from the old loads');
  t.same(next.feeds.map((f) => f.name), ['legacy', 'osv'], 'the old data stays until its feed is loaded again or removed');
});

t.test('data a one-format load stored before feeds had names becomes that feed: its next load replaces it', async (t) => {
  const dataDir = tempDir(t);
  mkdirSync(join(dataDir, 'cve'), { mode: 0o700 });
  const old = new Database(vulnStorePath(dataDir));
  old.exec(SCHEMA_BEFORE_STORE);
  old.pragma('user_version = 1');
  old.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run('bookworm', 'openssl', 'CVE-2099-1', '', '3.0.2-1', 'high', 1, null);
  const origin = { from: 'tracker.json', format: 'debian-tracker', bytes: 10, sha256: 'b'.repeat(64), stats: { records: 1, entries: 1, fixed: 1, open: 0, skipped: {} } };
  old.prepare('INSERT INTO loads (loaded_at, record) VALUES (?, ?)').run('2099-01-01T00:00:00.000Z', JSON.stringify({ loadedAt: '2099-01-01T00:00:00.000Z', origins: [origin, origin] }));
  old.close();
  const store = await openSqliteVulnStore(dataDir);
  t.teardown(() => store.close());
  t.match(await store.status(), { generation: 1, feeds: [{ name: 'debian-tracker', entries: 1, origins: [origin, origin] }] });
  const loaded = await updateCveStore({ dataDir, store, from: [fixture('tracker.json')] });
  t.same(loaded.feeds.map((f) => f.name), ['debian-tracker'], 'replaced, not added');
  t.notOk((await store.entries()).some((e) => e.id === 'CVE-2099-1'), 'the old entry is gone');
});

t.test('a file with tables but no version (user_version 0) is adopted too', async (t) => {
  const dataDir = tempDir(t);
  mkdirSync(join(dataDir, 'cve'), { mode: 0o700 });
  const old = new Database(vulnStorePath(dataDir));
  old.exec(SCHEMA_BEFORE_STORE);
  old.close();
  await (await openSqliteVulnStore(dataDir)).close();
  const db = new Database(vulnStorePath(dataDir), { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), 2);
  db.close();
});

t.test('a file from a newer wott is refused with a CveStoreError (wott cve prints it plainly)', async (t) => {
  const dataDir = tempDir(t);
  await (await openSqliteVulnStore(dataDir)).close();
  const path = vulnStorePath(dataDir);
  const db = new Database(path);
  db.pragma('user_version = 3');
  db.close();
  await t.rejects(openSqliteVulnStore(dataDir), { name: 'CveStoreError', message: `the CVE store ${path} was written by a newer wott (schema 3, this wott knows 2); upgrade wott` });
});

t.test('folders 0700, files 0600, also when an older version left them open', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const store = await openSqliteVulnStore(dataDir);
  await store.replace([{ feed: 'osv', entries: [], origins: [] }]);
  const path = vulnStorePath(dataDir);
  t.equal(statSync(dataDir).mode & 0o777, 0o700);
  t.equal(statSync(join(dataDir, 'cve')).mode & 0o777, 0o700);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(statSync(path + '-wal').mode & 0o777, 0o600, 'the WAL too');
  await store.close();
  chmodSync(join(dataDir, 'cve'), 0o755);
  chmodSync(path, 0o644);
  await (await openSqliteVulnStore(dataDir)).close();
  t.equal(statSync(join(dataDir, 'cve')).mode & 0o777, 0o700);
  t.equal(statSync(path).mode & 0o777, 0o600);
});

t.test('a damaged file: the error names it', async (t) => {
  const dataDir = tempDir(t);
  mkdirSync(join(dataDir, 'cve'));
  writeFileSync(vulnStorePath(dataDir), Buffer.alloc(8192, 'not a database '));
  await t.rejects(openSqliteVulnStore(dataDir), { name: 'CveStoreError', message: new RegExp(`^cannot open the CVE store ${vulnStorePath(dataDir)}: file is not a database`) });
});

async function snapshot(dataDir: string): Promise<{ status: unknown; entries: unknown }> {
  const store = await openSqliteVulnStore(dataDir);
  try {
    return { status: await store.status(), entries: await store.entries() };
  } finally {
    await store.close();
  }
}

t.test('kill -9 in the middle of a load leaves the previous data, and an intact file', async (t) => {
  const data = tempDir(t);
  await updateCveStore({ dataDir: data, from: [fixture('tracker.json')] });
  const before = await snapshot(data);
  // A large feed so the write transaction takes a while; the writer is killed as soon as it starts writing.
  const big: Record<string, Record<string, unknown>> = {};
  for (let s = 0; s < 4000; s++) {
    const pkg: Record<string, unknown> = {};
    for (let c = 0; c < 50; c++) {
      pkg[`CVE-2098-${String(s * 50 + c).padStart(6, '0')}`] = {
        scope: 'remote',
        releases: { bookworm: { status: 'resolved', fixed_version: `1.${c}-1`, urgency: 'medium' }, trixie: { status: 'open', urgency: 'low' } },
      };
    }
    big[`pkg${s}`] = pkg;
  }
  const feed = writeTemp(tempDir(t), 'big.json', JSON.stringify(big));
  const script = `import { updateCveStore } from ${JSON.stringify(resolve('dist/vuln/update.js'))};
await updateCveStore({ dataDir: process.argv[2], from: [process.argv[3]], onParsed: () => process.stderr.write('writing\\n') });
process.stderr.write('done\\n');`;
  const scriptFile = writeTemp(tempDir(t), 'writer.mjs', script);
  const child = spawn(process.execPath, [scriptFile, data, feed], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const killed = await new Promise<boolean>((res) => {
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('writing')) {
        child.kill('SIGKILL');
        res(true);
      }
    });
    child.on('exit', () => res(false));
  });
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
  t.ok(killed, `writer killed while writing (${err.trim()})`);
  t.notMatch(err, /done/, 'the writer did not finish');
  const after = await snapshot(data);
  t.same(after, before, 'previous data, complete and consistent');
  const db = new Database(vulnStorePath(data), { readonly: true });
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
});

