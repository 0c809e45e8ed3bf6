/**
 * The SQLite score store: the ScoreStore contract, then what only SQLite has: adopting files written before
 * migrations existed, refusing a newer schema, private file modes, and kill -9 in the middle of commits.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openSqliteScoreStore, SchemaError } from '../../store/index.js';
import { ScoreEngine, loadModel } from '../../scoring/index.js';
import { tempDir } from '../helpers.js';
import { scoreStoreContract } from './scores-contract.js';

t.test('contract', async (t) => {
  const path = join(tempDir(t), 'scoring', 'scores.db');
  scoreStoreContract(t, () => openSqliteScoreStore(path));
});

/** The schema as scoring/store.ts created it before migrations (user_version 0). */
const SCHEMA_BEFORE_MIGRATIONS = `
CREATE TABLE IF NOT EXISTS records (device TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latest (device TEXT PRIMARY KEY, message TEXT NOT NULL, findings TEXT);
CREATE TABLE IF NOT EXISTS history (device TEXT NOT NULL, time INTEGER NOT NULL, score REAL NOT NULL, model TEXT NOT NULL, factors TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_device_time ON history(device, time);
CREATE INDEX IF NOT EXISTS history_time ON history(time);
`;

t.test('a file written before migrations is adopted with its data', async (t) => {
  const path = join(tempDir(t), 'scores.db');
  const old = new Database(path);
  old.pragma('journal_mode = WAL');
  old.exec(SCHEMA_BEFORE_MIGRATIONS);
  const message = { device: 'old', score: 0.42, factors: [{ id: 'firewall', contribution: -0.3, reason: 'none' }], modelVersion: 'm1', time: '2026-11-01T00:00:00.000Z' };
  old.prepare('INSERT INTO records VALUES (?, ?)').run('old', '{"lastReportId":7}');
  old.prepare('INSERT INTO latest VALUES (?, ?, ?)').run('old', JSON.stringify(message), null);
  old.prepare('INSERT INTO history VALUES (?, ?, ?, ?, ?)').run('old', Date.parse(message.time), 0.42, 'm1', '[{"id":"firewall","contribution":-0.3}]');
  t.equal(old.pragma('user_version', { simple: true }), 0);
  old.close();

  const store = await openSqliteScoreStore(path);
  t.same(await store.records(), [['old', '{"lastReportId":7}']]);
  t.same(await store.latest('old'), { message });
  t.same(await store.history('old'), [{ time: Date.parse(message.time), score: 0.42, model: 'm1', factors: [{ id: 'firewall', contribution: -0.3 }] }]);
  await store.close();
  const db = new Database(path, { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), 2, 'now at the newest schema (2)');
  db.close();
});

t.test('a file from a newer wott is refused, unchanged', async (t) => {
  const path = join(tempDir(t), 'scores.db');
  await (await openSqliteScoreStore(path)).close();
  const db = new Database(path);
  db.pragma('user_version = 7');
  db.close();
  await t.rejects(openSqliteScoreStore(path), { name: 'SchemaError', message: `the scoring store ${path} was written by a newer wott (schema 7, this wott knows 2); upgrade wott` });
  t.ok(SchemaError);
  const after = new Database(path, { readonly: true });
  t.equal(after.pragma('user_version', { simple: true }), 7);
  after.close();
});

t.test('folder 0700, files 0600, also when an older version left them open', async (t) => {
  const dir = join(tempDir(t), 'scoring');
  const path = join(dir, 'scores.db');
  const store = await openSqliteScoreStore(path);
  await store.commit([['d', '{}']], []);
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(statSync(path + '-wal').mode & 0o777, 0o600, 'the WAL too');
  await store.close();
  chmodSync(dir, 0o755);
  chmodSync(path, 0o644);
  await (await openSqliteScoreStore(path)).close();
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.equal(statSync(path).mode & 0o777, 0o600);
});

t.test('a damaged file: the error names it', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'x'));
  const path = join(dir, 'x', 'scores.db');
  writeFileSync(path, Buffer.alloc(8192, 'not a database '));
  await t.rejects(openSqliteScoreStore(path), { message: new RegExp(`^cannot open the scoring store ${path}: file is not a database`) });
});

t.test('kill -9 in the middle of commits: the file is intact, a batch is all there or not at all', async (t) => {
  const path = join(tempDir(t), 'scores.db');
  const writer = `
    const { openSqliteScoreStore } = await import(${JSON.stringify(resolve('dist/store/index.js'))});
    const { ScoreEngine, loadModel } = await import(${JSON.stringify(resolve('dist/scoring/index.js'))});
    const store = await openSqliteScoreStore(${JSON.stringify(path)});
    const engine = new ScoreEngine({ model: loadModel() });
    for (let i = 0; ; i++) {
      const records = [], scores = [];
      for (let d = 0; d < 50; d++) {
        const device = 'dev' + d;
        engine.ingestEvent(device, JSON.stringify({ device, type: 'connect', time: new Date().toISOString(), verified: true }));
        records.push([device, engine.exportRecord(device)]);
        scores.push({ message: engine.compute(device).message });
      }
      await store.commit(records, scores);
    }`;
  for (let round = 0; round < 6; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', writer], { stdio: 'ignore' });
    // Let it get going (module loading takes a moment), then kill it at a different point each round.
    for (let i = 0; i < 200 && !existsSync(path + '-wal'); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 50 + round * 37));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const db = new Database(path, { readonly: true });
    t.equal(db.pragma('integrity_check', { simple: true }), 'ok', `round ${round}: integrity`);
    db.close();
    const store = await openSqliteScoreStore(path);
    const records = await store.records();
    const engine = new ScoreEngine({ model: loadModel() });
    for (const [device, data] of records) engine.importRecord(device, data);
    t.ok(records.length === 0 || records.length === 50, `round ${round}: all or none of a batch (${records.length})`);
    t.equal((await store.allLatest()).length, records.length, 'a latest score for every record');
    await store.close();
  }
});
