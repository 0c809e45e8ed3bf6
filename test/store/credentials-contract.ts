/**
 * The CredentialStore contract, written once and run against every backend: `open` opens a new connection to the
 * one database under test. Subtests use credential and device names of their own, so they do not depend on each
 * other's data. Concurrency runs on two connections at once (on PostgreSQL, two pools: truly concurrent).
 */
import type { Test } from 'tap';
import type { CredentialRow, CredentialStore } from '../../store/index.js';

export const credentialRow = (name: string, version: number, sealed: string, extra: Partial<CredentialRow> = {}): CredentialRow => ({
  name,
  version,
  tags: ['db'],
  minScore: 0.8,
  linuxUser: null,
  ttlMs: null,
  expiresAt: null,
  createdAt: '2026-11-30T10:00:00.000Z',
  updatedAt: '2026-11-30T10:00:00.000Z',
  size: sealed.length,
  sealed: Buffer.from(sealed),
  ...extra,
});

export function credentialStoreContract(t: Test, open: () => Promise<CredentialStore>): void {
  const opened = (t: Test) =>
    open().then((store) => {
      t.teardown(() => store.close());
      return store;
    });
  const write = (store: CredentialStore, name: string, sealed: string, extra: Partial<CredentialRow> = {}) =>
    store.writeVersion(name, (_current, version) => credentialRow(name, version, sealed, extra));

  t.test('versions: 1, 2, …; only the current ciphertext is kept; every field round-trips', async (t) => {
    const store = await opened(t);
    const seen: Array<CredentialRow | undefined> = [];
    const first = await store.writeVersion('rt-a', (current, version) => {
      seen.push(current);
      return credentialRow('rt-a', version, 'one', { tags: ['db', 'site:a'], minScore: 0.85, linuxUser: 'pi', ttlMs: 86_400_000, expiresAt: '2026-12-01T10:00:00.000Z' });
    });
    t.equal(first.version, 1);
    t.equal(seen[0], undefined, 'a new name has no current row');
    const second = await store.writeVersion('rt-a', (current, version) => {
      seen.push(current);
      return { ...current!, version, sealed: Buffer.from('two'), size: 3 };
    });
    t.equal(second.version, 2);
    t.equal(seen[1]?.version, 1, 'build sees the stored row');
    const got = await store.get('rt-a');
    t.same(
      { ...got, sealed: got?.sealed.toString() },
      { ...credentialRow('rt-a', 2, 'two', { tags: ['db', 'site:a'], minScore: 0.85, linuxUser: 'pi', ttlMs: 86_400_000, expiresAt: '2026-12-01T10:00:00.000Z' }), sealed: 'two' },
    );
    t.ok(Buffer.isBuffer(got?.sealed), 'the ciphertext comes back as bytes');
    t.equal(await store.get('rt-none'), undefined);
    t.ok((await store.all()).some((c) => c.name === 'rt-a'));
  });

  t.test('a build that throws writes nothing and uses up no version', async (t) => {
    const store = await opened(t);
    await write(store, 'th-a', 'one');
    const g = await store.generation();
    await t.rejects(
      store.writeVersion('th-a', () => {
        throw new Error('no such thing');
      }),
      /no such thing/,
    );
    t.equal((await store.get('th-a'))?.version, 1);
    t.equal(await store.generation(), g, 'nothing changed');
    t.equal((await write(store, 'th-a', 'two')).version, 2);
    await t.rejects(
      store.writeVersion('th-b', () => {
        throw new Error('refused');
      }),
    );
    t.equal(await store.get('th-b'), undefined);
    await t.rejects(store.writeVersion('th-c', (_c, version) => credentialRow('th-c', version + 5, 'x')), /version/, 'a row of another version is refused');
    t.equal(await store.get('th-c'), undefined);
  });

  t.test('a removed name is never given a version it had before', async (t) => {
    const store = await opened(t);
    await write(store, 'rm-a', 'one');
    await write(store, 'rm-a', 'two');
    const g = await store.generation();
    t.ok(await store.remove('rm-a'));
    t.not(await store.generation(), g, 'a removal moves the generation');
    t.equal(await store.get('rm-a'), undefined);
    t.notOk(await store.remove('rm-a'), 'nothing to remove twice');
    t.equal((await write(store, 'rm-a', 'three')).version, 3, 'set again: version 3, not 1 again');
  });

  t.test('exposures: one per credential and device; a new version and a removal clear them', async (t) => {
    const store = await opened(t);
    await write(store, 'ex-a', 'one');
    await write(store, 'ex-b', 'one');
    await store.markExposed({ name: 'ex-a', device: 'd1', version: 1, reason: 'score', time: 'x' });
    await store.markExposed({ name: 'ex-a', device: 'd1', version: 1, reason: 'quarantined', time: 'y' });
    await store.markExposed({ name: 'ex-a', device: 'd2', version: 1, reason: 'revoked', time: 'y' });
    await store.markExposed({ name: 'ex-b', device: 'd1', version: 1, reason: 'score', time: 'x' });
    t.same(
      (await store.exposures('ex-a')).map((e) => ({ ...e })),
      [
        { name: 'ex-a', device: 'd1', version: 1, reason: 'quarantined', time: 'y' },
        { name: 'ex-a', device: 'd2', version: 1, reason: 'revoked', time: 'y' },
      ],
    );
    t.same((await store.exposures()).filter((e) => e.name.startsWith('ex-')).map((e) => `${e.name}/${e.device}`), ['ex-a/d1', 'ex-a/d2', 'ex-b/d1']);
    await write(store, 'ex-a', 'two');
    t.same(await store.exposures('ex-a'), [], 'the new version clears the flags');
    t.equal((await store.exposures('ex-b')).length, 1, 'of that credential only');
    await store.remove('ex-b');
    t.same(await store.exposures('ex-b'), [], 'exposures go with the credential');
  });

  t.test('deliveries: one per device and credential, removable', async (t) => {
    const store = await opened(t);
    await store.recordDelivery({ device: 'dl-1', name: 'a', version: 2, serial: 's1', time: 'x' });
    await store.recordDelivery({ device: 'dl-1', name: 'a', version: 3, serial: 's2', time: 'y' });
    await store.recordDelivery({ device: 'dl-1', name: 'b', version: 1, serial: 's2', time: 'y' });
    await store.recordDelivery({ device: 'dl-2', name: 'a', version: 3, serial: 's9', time: 'y' });
    t.same(
      (await store.deliveries('dl-1')).map((d) => ({ ...d })),
      [
        { device: 'dl-1', name: 'a', version: 3, serial: 's2', time: 'y' },
        { device: 'dl-1', name: 'b', version: 1, serial: 's2', time: 'y' },
      ],
    );
    t.same((await store.deliveries()).filter((d) => d.device.startsWith('dl-')).map((d) => `${d.device}/${d.name}`), ['dl-1/a', 'dl-1/b', 'dl-2/a']);
    await store.removeDelivery('dl-1', 'a');
    t.same((await store.deliveries('dl-1')).map((d) => d.name), ['b']);
  });

  t.test('the sealing key: the first id is recorded, then returned to every caller', async (t) => {
    const [one, two] = [await opened(t), await opened(t)];
    const [a, b] = await Promise.all([one.bindKey('key-one'), two.bindKey('key-two')]);
    t.equal(a, b, 'two racing first users agree on one key');
    t.ok(['key-one', 'key-two'].includes(a));
    t.equal(await one.bindKey('key-three'), a, 'a later key does not replace it');
  });

  t.test('concurrent writers of one name, on two connections, never write the same version', async (t) => {
    const [one, two] = [await opened(t), await opened(t)];
    const g = await one.generation();
    const perStore = 15;
    const written = await Promise.all(
      Array.from({ length: perStore * 2 }, (_, i) =>
        (i % 2 ? one : two).writeVersion('cc-a', (current, version) => (current ? { ...current, version, sealed: Buffer.from(`v${version}`) } : credentialRow('cc-a', version, `v${version}`))),
      ),
    );
    const versions = written.map((r) => r.version).sort((a, b) => a - b);
    t.same(versions, Array.from({ length: perStore * 2 }, (_, i) => i + 1), 'each write got its own version, none lost');
    const last = await two.get('cc-a');
    t.equal(last?.version, perStore * 2);
    t.equal(last?.sealed.toString(), `v${perStore * 2}`, 'the newest version holds its own ciphertext');
    t.ok((await one.generation()) > g, 'the other connection sees the generation move');
  });
}
