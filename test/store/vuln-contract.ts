/**
 * The VulnStore contract, written once and run against every backend (as Aedes' abstract persistence tests):
 * `open` opens a new connection to the one database under test, empty when the suite starts. A load replaces
 * everything, so each subtest starts with a load of its own (only "empty" relies on running first).
 */
import type { Test } from 'tap';
import type { FeedOrigin, VulnEntry, VulnStore } from '../../store/index.js';

const ORIGIN: FeedOrigin = {
  from: '/feeds/tracker.json',
  format: 'debian-tracker',
  bytes: 1234,
  sha256: 'a'.repeat(64),
  stats: { records: 3, entries: 4, fixed: 3, open: 1, skipped: { notAffected: 1, unimportant: 2, withdrawn: 0, otherEcosystem: 0, noFixedVersion: 0 } },
};

/** Every field set in one entry or another: optional ones present and absent, remote true/false/null. */
const ENTRIES: VulnEntry[] = [
  { id: 'CVE-2099-0001', source: 'openssl', release: 'bookworm', fixed: '3.0.11-1~deb12u2', severity: 'high', remote: true, description: 'TLS “bug” ünïcödé', advisory: 'DSA-9999-1' },
  { id: 'CVE-2099-0001', source: 'openssl', release: 'trixie', fixed: null, severity: 'high', remote: true, description: 'TLS “bug” ünïcödé' },
  { id: 'CVE-2099-0002', source: 'bash', release: 'bookworm', fixed: '5.2.15-2+deb12u1', introduced: '5.2-1', severity: 'low', remote: false },
  { id: 'CVE-2099-0002', source: 'bash', release: 'bookworm', fixed: '5.3-1', introduced: '5.3~rc1-1', severity: 'low', remote: false },
  { id: 'DEBIAN-CVE-2099-0003', source: 'zlib', release: 'bookworm', fixed: '1:1.2.13.dfsg-1', severity: 'unknown', remote: null },
];

const key = (e: VulnEntry) => `${e.release}/${e.source}/${e.id}/${e.introduced ?? ''}`;
const sorted = (entries: VulnEntry[]) => [...entries].sort((a, b) => key(a).localeCompare(key(b)));

export function vulnStoreContract(t: Test, open: () => Promise<VulnStore>): void {
  const opened = (t: Test) =>
    open().then((store) => {
      t.teardown(() => store.close());
      return store;
    });

  t.test('empty: generation 0, no status, no entries', async (t) => {
    const store = await opened(t);
    t.equal(await store.generation(), 0);
    t.equal(await store.status(), null);
    t.same(await store.entries(), []);
    t.same(await store.matchingData(), { generation: 0, fixed: [], descriptions: new Map() });
  });

  t.test('replace: entries round-trip every field, the load record says what was loaded', async (t) => {
    const store = await opened(t);
    const before = await store.generation();
    const now = new Date('2099-04-01T12:00:00Z');
    const record = await store.replace(ENTRIES, [ORIGIN], now);
    t.same(record, {
      generation: record.generation,
      loadedAt: '2099-04-01T12:00:00.000Z',
      origins: [ORIGIN],
      entries: 5,
      fixed: 4,
      open: 1,
      releases: ['bookworm', 'trixie'],
      sources: 3,
    });
    t.ok(record.generation > before, 'the generation increases');
    t.equal(await store.generation(), record.generation);
    t.same(await store.status(), record, 'status is the record of the last load');
    const entries = await store.entries();
    t.same(sorted(entries), sorted(ENTRIES), 'every field, optional ones absent where they were');
    t.same(entries.map(key), [...entries.map(key)].sort(), 'ordered by release, source, id');
    const undefinedFields = entries.flatMap((e) => Object.entries(e).filter(([, v]) => v === undefined).map(([k]) => `${key(e)} ${k}`));
    t.same(undefinedFields, [], 'an absent field is absent, not undefined');
  });

  t.test('matchingData: the entries with a fix, without descriptions; descriptions once per id; its generation', async (t) => {
    const store = await opened(t);
    const { generation } = await store.replace(ENTRIES, [ORIGIN]);
    const data = await store.matchingData();
    t.equal(data.generation, generation);
    const withoutDescription = ENTRIES.filter((e) => e.fixed !== null).map(({ description: _d, ...e }) => e);
    t.same(sorted(data.fixed), sorted(withoutDescription));
    t.same([...data.descriptions], [['CVE-2099-0001', 'TLS “bug” ünïcödé']]);
  });

  t.test('a second replace replaces everything; generations keep increasing', async (t) => {
    const store = await opened(t);
    const first = await store.replace(ENTRIES, [ORIGIN]);
    const only: VulnEntry = { id: 'CVE-2099-0009', source: 'curl', release: 'sid', fixed: '8.0-1', severity: 'critical', remote: true };
    const second = await store.replace([only], [{ ...ORIGIN, format: 'osv', from: 'https://example.org/osv.json' }]);
    t.ok(second.generation > first.generation);
    t.same(await store.entries(), [only]);
    t.same((await store.matchingData()).descriptions, new Map(), 'old descriptions are gone too');
    t.match(await store.status(), { generation: second.generation, entries: 1, origins: [{ format: 'osv' }] });
    const empty = await store.replace([], []);
    t.ok(empty.generation > second.generation, 'an empty load is a load');
    t.same(await store.entries(), []);
    t.match(await store.status(), { generation: empty.generation, entries: 0, releases: [] });
  });

  t.test('replace is all or nothing: a load that fails changes nothing', async (t) => {
    const store = await opened(t);
    const good = await store.replace(ENTRIES, [ORIGIN]);
    // Not merged: the same release/source/id/introduced twice can not be stored, and it comes last.
    const duplicated = [...ENTRIES.slice(0, 2), { id: 'CVE-2099-0010', source: 'x', release: 'bookworm', fixed: '1', severity: 'low', remote: null } as VulnEntry, ENTRIES[0]!];
    await t.rejects(store.replace(duplicated, [ORIGIN]), { name: 'CveStoreError', message: /the previous data is unchanged/ });
    t.equal(await store.generation(), good.generation, 'same generation');
    t.same(await store.status(), good, 'same status');
    t.same(sorted(await store.entries()), sorted(ENTRIES), 'same entries');
  });

  t.test('loads started together on one connection each land whole, in order', async (t) => {
    const store = await opened(t);
    const one = (id: string): VulnEntry[] => [{ id, source: 'pkg', release: 'bookworm', fixed: '1', severity: 'low', remote: null }];
    const [a, b] = await Promise.all([store.replace(one('CVE-2099-0101'), []), store.replace(one('CVE-2099-0102'), [])]);
    t.ok(b.generation > a.generation);
    t.same(await store.entries(), one('CVE-2099-0102'), 'the second load, alone');
  });

  t.test('a load through one connection is seen by another', async (t) => {
    const reader = await opened(t);
    const writer = await opened(t);
    const before = await reader.generation();
    const record = await writer.replace(ENTRIES.slice(0, 1), [ORIGIN]);
    t.ok(record.generation > before);
    t.equal(await reader.generation(), record.generation);
    t.same(await reader.status(), record);
    t.same(await reader.entries(), ENTRIES.slice(0, 1));
    t.equal((await reader.matchingData()).generation, record.generation);
  });

  t.test('a closed store rejects, it does not throw', async (t) => {
    const store = await open();
    await store.close();
    await t.rejects(store.generation());
  });
}
