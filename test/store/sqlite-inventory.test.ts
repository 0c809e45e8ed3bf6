/**
 * The inventory store on SQLite: the shared contract, then what only the SQLite file format has: adopting files
 * made before migrations, refusing a newer schema, file modes, and an audit log that resists the database's own
 * SQL (these few tests open the file with better-sqlite3 on purpose: they are about the file).
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { openSqliteInventory } from '../../store/index.js';
import { tempDir } from '../helpers.js';
import { inventoryContract } from './inventory-contract.js';

inventoryContract(t, () => {
  const dir = tempDir(t);
  return async () => openSqliteInventory(join(dir, 'inventory.db'), { pollMs: 20 });
});

t.test('a file made before migrations (no tpm_key, user_version 0) is adopted with its data', async (t) => {
  const path = join(tempDir(t), 'inventory.db');
  const old = new Database(path);
  old.exec(`
    CREATE TABLE devices (id TEXT PRIMARY KEY, state TEXT NOT NULL CHECK (state IN ('unclaimed','active','quarantined','revoked')),
      tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    INSERT INTO devices (id, state, created_at, updated_at) VALUES ('veteran', 'quarantined', '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z');`);
  old.close();
  const store = openSqliteInventory(path);
  t.teardown(() => store.close());
  const row = await store.device('veteran');
  t.equal(row?.state, 'quarantined', 'the data is kept');
  t.equal(row?.tpmKey, null, 'the column added later is there');
  await store.transaction((tx) => tx.upsertDevice('newcomer', 'active', new Date().toISOString()));
  t.equal(await store.feed.head(), 1, 'and the feed starts with the first write after the upgrade');
});

t.test('a file written by a newer wott is refused, untouched', async (t) => {
  const path = join(tempDir(t), 'inventory.db');
  const store = openSqliteInventory(path);
  await store.close();
  const db = new Database(path);
  db.pragma('user_version = 99');
  db.close();
  t.throws(() => openSqliteInventory(path), /newer wott \(schema 99, this wott knows 1\); upgrade wott/);
  const again = new Database(path);
  t.equal(again.pragma('user_version', { simple: true }), 99);
  again.close();
});

t.test('the database and its folder are private', async (t) => {
  const dir = join(tempDir(t), 'data');
  const store = openSqliteInventory(join(dir, 'inventory.db'));
  t.teardown(() => store.close());
  await store.transaction((tx) => tx.upsertDevice('d', 'active', new Date().toISOString()));
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.equal(statSync(join(dir, 'inventory.db')).mode & 0o777, 0o600);
});

t.test('the audit log is append-only even for someone holding the database file', async (t) => {
  const path = join(tempDir(t), 'inventory.db');
  const store = openSqliteInventory(path);
  await store.transaction((tx) =>
    tx.appendAudit({ time: new Date().toISOString(), actor: 'local:op', action: 'device.quarantine', device: 'd', target: null, outcome: 'refused', detail: null }),
  );
  await store.close();
  const db = new Database(path);
  t.teardown(() => db.close());
  t.throws(() => db.prepare("UPDATE audit SET outcome = 'ok'").run(), /append-only/);
  t.throws(() => db.prepare('DELETE FROM audit').run(), /append-only/);
});

t.test('an online backup is a consistent, openable copy', async (t) => {
  const dir = tempDir(t);
  const store = openSqliteInventory(join(dir, 'inventory.db'));
  t.teardown(() => store.close());
  await store.transaction((tx) => tx.upsertDevice('kept', 'active', new Date().toISOString()));
  await store.backup!(join(dir, 'copy.db'));
  const copy = openSqliteInventory(join(dir, 'copy.db'));
  t.teardown(() => copy.close());
  t.equal((await copy.device('kept'))?.state, 'active');
  t.same(await copy.integrityCheck(), []);
});
