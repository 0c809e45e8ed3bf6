/** SqliteCredentialStore: versions replace the ciphertext, removal takes exposures along, the generation moves, modes are private, and a newer schema is refused. */
import t from 'tap';
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteCredentialStore, type CredentialRow } from '../../store/index.js';
import { tempDir } from '../helpers.js';

const row = (name: string, version: number, sealed: string): CredentialRow => ({
  name,
  version,
  tags: ['db'],
  minScore: 0.8,
  linuxUser: null,
  ttlMs: null,
  expiresAt: null,
  createdAt: '2026-11-30T10:00:00.000Z',
  updatedAt: '2026-11-30T10:00:00.000Z',
  size: 3,
  sealed: Buffer.from(sealed),
});

t.test('credentials, exposures, deliveries', async (t) => {
  const dir = tempDir(t);
  const store = SqliteCredentialStore.open(dir);
  t.teardown(() => store.close());
  t.equal(statSync(join(dir, 'credentials.db')).mode & 0o777, 0o600);
  const g0 = await store.generation();
  await store.put(row('a', 1, 'one'));
  t.ok((await store.generation()) > g0, 'a change moves the generation');
  await store.put(row('a', 2, 'two'));
  const got = await store.get('a');
  t.equal(got?.version, 2);
  t.equal(got?.sealed.toString(), 'two', 'only the current version is kept');
  t.same(got?.tags, ['db']);
  await store.markExposed({ name: 'a', device: 'd1', version: 2, reason: 'score', time: 'x' });
  await store.markExposed({ name: 'a', device: 'd1', version: 2, reason: 'quarantined', time: 'y' });
  t.match(await store.exposures('a'), [{ device: 'd1', reason: 'quarantined' }], 'one flag per credential and device');
  await store.recordDelivery({ device: 'd1', name: 'a', version: 2, serial: 's1', time: 'x' });
  await store.recordDelivery({ device: 'd1', name: 'a', version: 2, serial: 's2', time: 'y' });
  t.match(await store.deliveries('d1'), [{ name: 'a', serial: 's2' }]);
  const g1 = await store.generation();
  t.ok(await store.remove('a'));
  t.ok((await store.generation()) > g1);
  t.same(await store.exposures(), [], 'exposures go with the credential');
  t.notOk(await store.remove('a'), 'nothing to remove twice');
  await store.removeDelivery('d1', 'a');
  t.same(await store.deliveries(), []);
});

t.test('a database from a newer wott is refused', async (t) => {
  const dir = tempDir(t);
  await SqliteCredentialStore.open(dir).close();
  const db = new Database(join(dir, 'credentials.db'));
  db.pragma('user_version = 99');
  db.close();
  t.throws(() => SqliteCredentialStore.open(dir), /newer wott/);
});
