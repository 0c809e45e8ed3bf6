/**
 * The VulnStore contract, written once and run against every backend (as Aedes' abstract persistence tests):
 * `open` opens a new connection to the one database under test, empty when the suite starts. A load replaces the
 * feeds it names, so each subtest starts by loading its own feed, named `main` (only "empty" relies on running
 * first), and the tests of several feeds remove what they add.
 */
import type { Test } from 'tap';
import type { FeedOrigin, LoadRecord, VulnEntry, VulnStore } from '../../store/index.js';

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

/** A load of one feed, `main` unless named. */
const load = (store: VulnStore, entries: readonly VulnEntry[], origins: readonly FeedOrigin[], now?: Date, feed = 'main'): Promise<LoadRecord> =>
  store.replace([{ feed, entries, origins }], now);

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
    const record = await load(store, ENTRIES, [ORIGIN], now);
    t.same(record, {
      generation: record.generation,
      loadedAt: '2099-04-01T12:00:00.000Z',
      origins: [ORIGIN],
      feeds: [{ name: 'main', generation: record.generation, loadedAt: '2099-04-01T12:00:00.000Z', origins: [ORIGIN], entries: 5, fixed: 4, open: 1 }],
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
    const { generation } = await load(store, ENTRIES, [ORIGIN]);
    const data = await store.matchingData();
    t.equal(data.generation, generation);
    const withoutDescription = ENTRIES.filter((e) => e.fixed !== null).map(({ description: _d, ...e }) => e);
    t.same(sorted(data.fixed), sorted(withoutDescription));
    t.same([...data.descriptions], [['CVE-2099-0001', 'TLS “bug” ünïcödé']]);
  });

  t.test('a second load of a feed replaces that feed; generations keep increasing', async (t) => {
    const store = await opened(t);
    const first = await load(store, ENTRIES, [ORIGIN]);
    const only: VulnEntry = { id: 'CVE-2099-0009', source: 'curl', release: 'sid', fixed: '8.0-1', severity: 'critical', remote: true };
    const second = await load(store, [only], [{ ...ORIGIN, format: 'osv', from: 'https://example.org/osv.json' }]);
    t.ok(second.generation > first.generation);
    t.same(await store.entries(), [only]);
    t.same((await store.matchingData()).descriptions, new Map(), 'old descriptions are gone too');
    t.match(await store.status(), { generation: second.generation, entries: 1, origins: [{ format: 'osv' }], feeds: [{ name: 'main', entries: 1 }] });
    const empty = await load(store, [], []);
    t.ok(empty.generation > second.generation, 'an empty load is a load');
    t.same(await store.entries(), []);
    t.match(await store.status(), { generation: empty.generation, entries: 0, releases: [], feeds: [{ name: 'main', entries: 0 }] });
  });

  t.test('feeds merge by name: A then B keeps both; A again replaces only A; remove drops one', async (t) => {
    const store = await opened(t);
    await load(store, [], []);
    const a1: VulnEntry = { id: 'CVE-2099-0201', source: 'openssl', release: 'bookworm', fixed: '3.0.1-1', severity: 'low', remote: false, description: 'from A' };
    const shared: VulnEntry = { id: 'CVE-2099-0202', source: 'curl', release: 'bookworm', fixed: '8.0-1', severity: 'medium', remote: null };
    const b1: VulnEntry = { id: 'CVE-2099-0301', source: 'sudo', release: 'bookworm', fixed: null, severity: 'high', remote: false, description: 'from B' };
    const originA = { ...ORIGIN, from: 'a.json' };
    const originB = { ...ORIGIN, from: 'b.jsonl', format: 'osv' as const };
    const a = await load(store, [a1, shared], [originA], new Date('2099-05-01T00:00:00Z'), 'tracker');
    const b = await load(store, [b1, { ...shared, severity: 'high', fixed: '8.0-2' }], [originB], new Date('2099-05-02T00:00:00Z'), 'osv');
    t.ok(b.generation > a.generation);
    t.same(
      b.feeds.map((f) => [f.name, f.generation, f.entries, f.fixed, f.open]),
      [
        ['main', b.feeds[0]!.generation, 0, 0, 0],
        ['osv', b.generation, 2, 1, 1],
        ['tracker', a.generation, 2, 2, 0],
      ],
      'every feed, by name, with the load that last replaced it',
    );
    t.match(b, { entries: 3, fixed: 2, open: 1, sources: 3, releases: ['bookworm'], loadedAt: '2099-05-02T00:00:00.000Z' }, 'totals count a key shared by two feeds once');
    t.same(b.origins.map((o) => o.from), ['b.jsonl', 'a.json'], 'origins of every feed');
    t.same(await store.status(), b);
    t.same((await store.entries('tracker')).map((e) => e.id), ['CVE-2099-0202', 'CVE-2099-0201'], 'one feed, ordered by release, source');
    const all = await store.entries();
    t.equal(all.length, 4, 'the shared key once per feed: vuln/ merges them');
    const data = await store.matchingData();
    t.same(data.fixed.map((e) => e.id).sort(), ['CVE-2099-0201', 'CVE-2099-0202', 'CVE-2099-0202']);
    t.same([...data.descriptions].sort(), [['CVE-2099-0201', 'from A'], ['CVE-2099-0301', 'from B']]);

    // A' replaces A only.
    const a2: VulnEntry = { id: 'CVE-2099-0203', source: 'bash', release: 'trixie', fixed: '5.3-1', severity: 'low', remote: false };
    const again = await load(store, [a2], [{ ...originA, from: 'a2.json' }], undefined, 'tracker');
    t.same((await store.entries('tracker')).map((e) => e.id), ['CVE-2099-0203'], 'A replaced');
    t.same((await store.entries('osv')).map((e) => e.id).sort(), ['CVE-2099-0202', 'CVE-2099-0301'], 'B kept');
    t.same([...(await store.matchingData()).descriptions], [['CVE-2099-0301', 'from B']], "A's old descriptions are gone, B's kept");
    t.same(again.feeds.find((f) => f.name === 'osv')!.generation, b.generation, "B's record is unchanged");
    t.same(again.feeds.find((f) => f.name === 'tracker')!.origins.map((o) => o.from), ['a2.json']);

    // Two feeds in one load land together, or not at all.
    const both = await store.replace([
      { feed: 'tracker', entries: [a1], origins: [originA] },
      { feed: 'osv', entries: [b1], origins: [originB] },
    ]);
    t.same(both.feeds.filter((f) => f.name !== 'main').map((f) => [f.name, f.generation, f.entries]), [['osv', both.generation, 1], ['tracker', both.generation, 1]]);
    const dup = [{ ...a1, id: 'CVE-2099-0299' }, { ...a1, id: 'CVE-2099-0299' }];
    await t.rejects(
      store.replace([
        { feed: 'osv', entries: [shared], origins: [] },
        { feed: 'tracker', entries: dup, origins: [] },
      ]),
      { name: 'CveStoreError', message: /the previous data is unchanged/ },
    );
    t.same(await store.status(), both, 'a failure in the second feed leaves the first unchanged too');

    const removed = await store.remove('osv');
    t.ok(removed!.generation > both.generation, 'a removal is a new generation');
    t.same(removed!.feeds.map((f) => f.name), ['main', 'tracker']);
    t.same(await store.entries('osv'), []);
    await t.rejects(store.remove('osv'), { name: 'CveStoreError', message: /no feed named "osv" .* \(stored: main, tracker\)/ });
    await store.remove('tracker');
    t.equal(await store.remove('main'), null, 'no feed left: no record');
    t.equal(await store.status(), null);
  });

  t.test('hostile feed names are refused before anything is written', async (t) => {
    const store = await opened(t);
    const good = await load(store, ENTRIES, [ORIGIN]);
    for (const name of ['', '../evil', 'a/b', '__proto__', 'UPPER', '-dash', 'x'.repeat(65), 'nul\u0000', 'sp ace']) {
      await t.rejects(load(store, [], [], undefined, name), { name: 'CveStoreError', message: /invalid feed name/ }, JSON.stringify(name));
    }
    await t.rejects(
      store.replace([
        { feed: 'main', entries: [], origins: [] },
        { feed: 'main', entries: [], origins: [] },
      ]),
      { name: 'CveStoreError', message: /named twice/ },
    );
    t.same(await store.status(), good, 'unchanged');
  });

  t.test('replace is all or nothing: a load that fails changes nothing', async (t) => {
    const store = await opened(t);
    const good = await load(store, ENTRIES, [ORIGIN]);
    // Not merged: the same release/source/id/introduced twice can not be stored, and it comes last.
    const duplicated = [...ENTRIES.slice(0, 2), { id: 'CVE-2099-0010', source: 'x', release: 'bookworm', fixed: '1', severity: 'low', remote: null } as VulnEntry, ENTRIES[0]!];
    await t.rejects(load(store, duplicated, [ORIGIN]), { name: 'CveStoreError', message: /the previous data is unchanged/ });
    t.equal(await store.generation(), good.generation, 'same generation');
    t.same(await store.status(), good, 'same status');
    t.same(sorted(await store.entries()), sorted(ENTRIES), 'same entries');
  });

  t.test('loads started together on one connection each land whole, in order', async (t) => {
    const store = await opened(t);
    const one = (id: string): VulnEntry[] => [{ id, source: 'pkg', release: 'bookworm', fixed: '1', severity: 'low', remote: null }];
    const [a, b] = await Promise.all([load(store, one('CVE-2099-0101'), []), load(store, one('CVE-2099-0102'), [])]);
    t.ok(b.generation > a.generation);
    t.same(await store.entries(), one('CVE-2099-0102'), 'the second load, alone');
  });

  t.test('a load through one connection is seen by another', async (t) => {
    const reader = await opened(t);
    const writer = await opened(t);
    const before = await reader.generation();
    const record = await load(writer, ENTRIES.slice(0, 1), [ORIGIN]);
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
