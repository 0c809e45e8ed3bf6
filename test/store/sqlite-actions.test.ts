/**
 * The action decision store on SQLite (snooze / ignore of recommended actions): put replaces, remove says whether
 * there was one, decisions outlive a reopen, expired snoozes are dropped after a week, the file is private and
 * versioned (a newer schema is refused, untouched), and hostile text is stored as data.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteActionDecisionStore } from '../../store/index.js';
import { tempDir } from '../helpers.js';

t.test('put, replace, remove, reopen', async (t) => {
  const dir = tempDir(t);
  const store = SqliteActionDecisionStore.open(dir);
  const until = new Date(Date.now() + 86_400_000).toISOString();
  await store.put({ device: 'd1', action: 'firewall', kind: 'snooze', until, actor: 'cert:operator:olga', time: new Date().toISOString() });
  await store.put({ device: 'd1', action: "cve:CVE-1'; DROP TABLE action_decisions; --", kind: 'ignore', until: null, actor: 'a', time: new Date().toISOString() });
  await store.put({ device: 'd1', action: 'firewall', kind: 'ignore', until: null, actor: 'cert:operator:olga', time: new Date().toISOString() });
  t.match(await store.all(), [
    { device: 'd1', action: "cve:CVE-1'; DROP TABLE action_decisions; --", kind: 'ignore' },
    { device: 'd1', action: 'firewall', kind: 'ignore', until: null },
  ], 'one decision per device and action; the latest wins; text is data');
  t.equal(await store.remove('d1', 'firewall'), true);
  t.equal(await store.remove('d1', 'firewall'), false, 'nothing to remove');
  await store.put({ device: 'd2', action: 'old', kind: 'snooze', until: new Date(Date.now() - 8 * 86_400_000).toISOString(), actor: 'a', time: new Date().toISOString() });
  await store.close();
  const again = SqliteActionDecisionStore.open(dir);
  t.teardown(() => again.close());
  t.same((await again.all()).map((r) => `${r.device}/${r.kind}`), ['d1/ignore'], 'kept across a reopen; a snooze over a week past is dropped');
  t.equal(statSync(join(dir, 'actions.db')).mode & 0o777, 0o600, 'private file');
});

t.test('a file written by a newer wott is refused, untouched', async (t) => {
  const dir = tempDir(t);
  await SqliteActionDecisionStore.open(dir).close();
  const path = join(dir, 'actions.db');
  const db = new Database(path);
  t.equal(db.pragma('user_version', { simple: true }), 1, 'schema version 1');
  db.pragma('user_version = 7');
  db.close();
  t.throws(() => SqliteActionDecisionStore.open(dir), /newer wott \(schema 7, this wott knows 1\)/);
  const after = new Database(path);
  t.equal(after.pragma('user_version', { simple: true }), 7);
  after.close();
});
