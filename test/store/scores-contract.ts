/**
 * The ScoreStore contract, written once and run against every backend (as Aedes' abstract persistence tests):
 * `open` opens a new connection to the one database under test, empty when the suite starts. Subtests use their
 * own device names (and prune, times of their own), so they do not depend on each other's data.
 */
import type { Test } from 'tap';
import type { ScoreMessage } from '../../protocol/index.js';
import type { ScoreStore, StoredScore } from '../../store/index.js';

const DAY = 86_400_000;
const T0 = Date.parse('2026-11-24T10:00:00Z');

function message(device: string, time: number, score: number, extra: Partial<ScoreMessage> = {}): ScoreMessage {
  return {
    device,
    score,
    modelVersion: 'test-1',
    time: new Date(time).toISOString(),
    factors: [
      { id: 'firewall', contribution: -0.2, reason: 'no firewall', fix: 'enable one' },
      { id: 'ssh', contribution: 0, reason: 'ok' },
      { id: 'peers', contribution: -0.05, reason: 'one report' },
    ],
    ...extra,
  };
}

export function scoreStoreContract(t: Test, open: () => Promise<ScoreStore>): void {
  const opened = (t: Test) =>
    open().then((store) => {
      t.teardown(() => store.close());
      return store;
    });

  t.test('records round-trip and a later commit replaces a device record', async (t) => {
    const store = await opened(t);
    await store.commit(
      [
        ['rec-a', '{"lastReportId":1}'],
        ['rec-b', '{"x":"ünïcödé \\" \' ;"}'],
      ],
      [],
    );
    await store.commit([['rec-a', '{"lastReportId":2}']], []);
    const mine = new Map((await store.records()).filter(([d]) => d.startsWith('rec-')));
    t.same(
      [...mine].sort(),
      [
        ['rec-a', '{"lastReportId":2}'],
        ['rec-b', '{"x":"ünïcödé \\" \' ;"}'],
      ],
    );
  });

  t.test('latest: the newest committed score replaces the previous one, findings included or not', async (t) => {
    const store = await opened(t);
    t.equal(await store.latest('lat-a'), undefined, 'nothing before the first score');
    const findings: StoredScore['findings'] = [
      { cve: 'CVE-2099-1', source: 'openssl', installed: '3.0.1-1', fixed: '3.0.2-1', severity: 'high', remote: true, exposed: false, action: 'apt-get install --only-upgrade libssl3' },
      { cve: 'CVE-2099-2', source: 'bash', installed: '5.2-1', fixed: '5.2-2', severity: 'unknown', remote: null, exposed: true, action: 'upgrade bash' },
    ];
    const first = message('lat-a', T0, 0.5);
    await store.commit([], [{ message: first, findings }]);
    t.same(await store.latest('lat-a'), { message: first, findings }, 'message and findings round-trip');
    const second = message('lat-a', T0 + 1000, 0.7);
    await store.commit([], [{ message: second }]);
    const latest = await store.latest('lat-a');
    t.same(latest, { message: second }, 'replaced; no findings now');
    t.notOk(latest && 'findings' in latest, 'no findings key when none were stored');
    await store.commit([], [{ message: message('lat-b', T0, 0.9), findings: [] }]);
    t.same((await store.latest('lat-b'))?.findings, [], 'an empty findings list stays an empty list');
    const all = (await store.allLatest()).filter((m) => m.device.startsWith('lat-'));
    t.same(all.sort((a, b) => a.device.localeCompare(b.device)), [second, message('lat-b', T0, 0.9)], 'allLatest: one per device');
  });

  t.test('history: oldest first, compact factors, since is inclusive, limit keeps the newest', async (t) => {
    const store = await opened(t);
    t.same(await store.history('his-a'), [], 'empty before any score');
    // Committed out of order and over several batches: history is ordered by time, not by commit.
    await store.commit([], [{ message: message('his-a', T0 + 2000, 0.3) }, { message: message('his-b', T0 + 1500, 0.9) }]);
    await store.commit([], [{ message: message('his-a', T0, 0.1) }]);
    await store.commit([], [{ message: message('his-a', T0 + 1000, 0.2) }, { message: message('his-a', T0 + 3000, 0.4) }]);
    const rows = await store.history('his-a');
    t.same(
      rows.map((r) => [r.time, r.score]),
      [
        [T0, 0.1],
        [T0 + 1000, 0.2],
        [T0 + 2000, 0.3],
        [T0 + 3000, 0.4],
      ],
    );
    t.same(rows[0], {
      time: T0,
      score: 0.1,
      model: 'test-1',
      factors: [
        { id: 'firewall', contribution: -0.2 },
        { id: 'peers', contribution: -0.05 },
      ],
    }, 'only factors that cost points, id and contribution only');
    t.same((await store.history('his-a', { since: T0 + 1000 })).map((r) => r.time), [T0 + 1000, T0 + 2000, T0 + 3000], 'since is inclusive');
    t.same((await store.history('his-a', { limit: 2 })).map((r) => r.time), [T0 + 2000, T0 + 3000], 'limit keeps the newest, oldest first');
    t.same((await store.history('his-a', { since: T0 + 500, limit: 1 })).map((r) => r.time), [T0 + 3000]);
    t.same((await store.history('his-b')).map((r) => r.score), [0.9], 'per device');
  });

  t.test('commit is atomic: a batch that fails leaves nothing of itself', async (t) => {
    const store = await opened(t);
    await store.commit([['atom-a', 'v1']], [{ message: message('atom-a', T0, 0.5) }]);
    // The last score can not be stored (no number), after the record, a latest and a history row were written.
    const broken = { ...message('atom-b', T0 + 2000, 0.1), score: null as unknown as number };
    await t.rejects(store.commit([['atom-a', 'v2'], ['atom-c', 'new']], [{ message: message('atom-a', T0 + 1000, 0.6) }, { message: broken }]));
    const records = new Map(await store.records());
    t.equal(records.get('atom-a'), 'v1', 'record unchanged');
    t.notOk(records.has('atom-c'), 'no new record');
    t.equal((await store.latest('atom-a'))?.message.score, 0.5, 'latest unchanged');
    t.equal(await store.latest('atom-b'), undefined);
    t.same((await store.history('atom-a')).map((r) => r.score), [0.5], 'no history row from the failed batch');
    // The store still works afterwards.
    await store.commit([['atom-a', 'v3']], []);
    t.equal(new Map(await store.records()).get('atom-a'), 'v3');
  });

  t.test('prune deletes history older than the retention (30 days by default) and says how many', async (t) => {
    const store = await opened(t);
    // Times of its own (2001), far older than any other subtest's, so pruning them touches no one else's rows.
    const P0 = Date.parse('2001-01-01T00:00:00Z');
    await store.commit([], [0, 10, 20, 40].map((d) => ({ message: message('prune-a', P0 + d * DAY, d / 100) })));
    t.equal(await store.prune(P0 + 50 * DAY), 2, 'the rows of day 0 and 10 are older than 30 days at day 50');
    t.same((await store.history('prune-a')).map((r) => r.time), [P0 + 20 * DAY, P0 + 40 * DAY]);
    t.equal(await store.prune(P0 + 50 * DAY), 0, 'nothing more');
    t.ok(await store.latest('prune-a'), 'the latest score is not history: kept');
  });

  t.test('commits started together on one connection each land whole', async (t) => {
    const store = await opened(t);
    const batch = (i: number) =>
      store.commit(
        Array.from({ length: 20 }, (_, d) => [`conc-${d}`, `batch ${i}`] as const),
        Array.from({ length: 20 }, (_, d) => ({ message: message(`conc-${d}`, T0 + i * 1000, i / 10) })),
      );
    const broken = store.commit([['conc-0', 'broken']], [{ message: { ...message('conc-0', T0 + 9000, 0), score: null as unknown as number } }]);
    const results = await Promise.allSettled([batch(1), broken, batch(2), batch(3)]);
    t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const records = (await store.records()).filter(([d]) => d.startsWith('conc-'));
    t.equal(records.length, 20);
    t.same(new Set(records.map(([, data]) => data)), new Set(['batch 3']), 'the last batch, whole, in every record');
    t.same((await store.history('conc-7')).map((r) => r.score), [0.1, 0.2, 0.3], 'one row per batch, none from the failed one');
  });

  t.test('a second connection sees what the first committed', async (t) => {
    const a = await opened(t);
    const b = await opened(t);
    await a.commit([['conn-a', 'x']], [{ message: message('conn-a', T0, 0.4) }]);
    t.equal(new Map(await b.records()).get('conn-a'), 'x');
    t.equal((await b.latest('conn-a'))?.message.score, 0.4);
  });

  t.test('fencing: a commit from an older scoring epoch is refused whole, on every connection; no epoch is never fenced', async (t) => {
    // Two connections stand for two nodes' scorers: `old` led with epoch 3, `next` took the lease with epoch 4.
    const old = await opened(t);
    const next = await opened(t);
    await old.commit([['fen-a', '{"v":1}']], [{ message: message('fen-a', T0, 0.9, { epoch: 3 }) }], 3);
    // The new leader's first act: a commit of nothing with its epoch, so the deposed one can write nothing after it.
    await next.commit([], [], 4);
    await t.rejects(old.commit([['fen-a', '{"v":2}']], [{ message: message('fen-a', T0 + 1000, 0.1, { epoch: 3 }) }], 3), { name: 'StaleEpochError', epoch: 3, fence: 4 });
    t.equal(new Map(await next.records()).get('fen-a'), '{"v":1}', 'the record is untouched');
    t.same((await next.latest('fen-a'))?.message, message('fen-a', T0, 0.9, { epoch: 3 }), 'the latest score is untouched');
    t.equal((await next.history('fen-a')).length, 1, 'no history row from the stale commit');
    await next.commit([['fen-a', '{"v":3}']], [{ message: message('fen-a', T0 + 2000, 0.5, { epoch: 4 }) }], 4);
    t.equal((await old.latest('fen-a'))?.message.score, 0.5, 'the same epoch again is the leader writing on');
    await t.rejects(old.commit([], [], 2), { name: 'StaleEpochError', epoch: 2, fence: 4 }, 'any older epoch is refused');
    await next.commit([], [], 9);
    await t.rejects(next.commit([['fen-a', '{"v":4}']], [], 4), { name: 'StaleEpochError', fence: 9 }, 'the fence only grows');
    await old.commit([['fen-b', 'x']], [{ message: message('fen-b', T0, 0.3) }]);
    t.equal((await next.latest('fen-b'))?.message.score, 0.3, 'a commit without an epoch (one node, no lease) is not fenced');
  });

  t.test('a closed store rejects, it does not throw', async (t) => {
    const store = await open();
    await store.close();
    await t.rejects(store.records());
  });
}
