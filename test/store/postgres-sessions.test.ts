/**
 * Operator sessions and action decisions on PostgreSQL: a login link redeemed by several gateways at once starts
 * one session; sessions end once; decisions are replaced, removed and pruned as on SQLite; newer schemas refused.
 */
import t from 'tap';
import { PostgresActionDecisionStore, PostgresSessionStore } from '../../store/index.js';
import { startPostgres } from '../postgres-helpers.js';

const server = await startPostgres(t);
const iso = (ms: number) => new Date(ms).toISOString();
const T0 = Date.parse('2026-11-30T10:00:00Z');

if (server) {
  t.test('a login link raced by three gateways is redeemed once', async (t) => {
    const url = await server.newDatabase();
    const stores = await Promise.all([1, 2, 3].map(() => PostgresSessionStore.open(url)));
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    await stores[0]!.createLoginLink({ hash: 'h'.repeat(64), role: 'operator', name: 'olga', createdBy: 'local:root', createdAt: iso(T0), expiresAt: iso(T0 + 600_000) });
    const results = await Promise.all(
      stores.map((s, i) => s.redeemLoginLink('h'.repeat(64), iso(T0 + 1000), { id: `s${i}`, secretHash: `x${i}`, expiresAt: iso(T0 + 3_600_000), source: `10.0.0.${i}` })),
    );
    const won = results.filter((r) => r.ok);
    t.equal(won.length, 1, 'one session');
    t.same(results.filter((r) => !r.ok), [{ ok: false, reason: 'used' }, { ok: false, reason: 'used' }]);
    const session = won[0]!.ok ? won[0]!.session : undefined;
    t.match(session, { role: 'operator', name: 'olga', createdAt: iso(T0 + 1000), endedAt: null });
    t.same(await stores[2]!.activeSessions(iso(T0 + 2000)), [session]);
    t.equal(await stores[1]!.endSession(session!.id, iso(T0 + 3000)), true);
    t.equal(await stores[0]!.endSession(session!.id, iso(T0 + 4000)), false, 'ended once');
    t.same(await stores[0]!.activeSessions(iso(T0 + 5000)), []);
    t.same(await stores[0]!.redeemLoginLink('nope', iso(T0), { id: 'n', secretHash: 'n', expiresAt: iso(T0), source: null }), { ok: false, reason: 'unknown' });
    await stores[0]!.createLoginLink({ hash: 'e'.repeat(64), role: 'viewer', name: 'v', createdBy: 'local:root', createdAt: iso(T0), expiresAt: iso(T0 + 1000) });
    t.same(await stores[1]!.redeemLoginLink('e'.repeat(64), iso(T0 + 1000), { id: 'e', secretHash: 'e', expiresAt: iso(T0 + 5000), source: null }), { ok: false, reason: 'expired' });
  });

  t.test('action decisions: put replaces, remove says whether there was one, old snoozes go, text is data', async (t) => {
    const url = await server.newDatabase();
    const store = await PostgresActionDecisionStore.open(url);
    const until = new Date(Date.now() + 86_400_000).toISOString();
    await store.put({ device: 'd1', action: 'firewall', kind: 'snooze', until, actor: 'cert:operator:olga', time: new Date().toISOString() });
    await store.put({ device: 'd1', action: "cve:CVE-1'; DROP TABLE action_decisions; --", kind: 'ignore', until: null, actor: 'a', time: new Date().toISOString() });
    await store.put({ device: 'd1', action: 'firewall', kind: 'ignore', until: null, actor: 'cert:operator:olga', time: new Date().toISOString() });
    t.match(await store.all(), [
      { device: 'd1', action: "cve:CVE-1'; DROP TABLE action_decisions; --", kind: 'ignore' },
      { device: 'd1', action: 'firewall', kind: 'ignore', until: null },
    ]);
    t.equal(await store.remove('d1', 'firewall'), true);
    t.equal(await store.remove('d1', 'firewall'), false);
    await store.put({ device: 'd2', action: 'old', kind: 'snooze', until: new Date(Date.now() - 8 * 86_400_000).toISOString(), actor: 'a', time: new Date().toISOString() });
    await store.close();
    await t.rejects(store.all(), /closed/);
    const again = await PostgresActionDecisionStore.open(url);
    t.teardown(() => again.close());
    t.same((await again.all()).map((r) => `${r.device}/${r.kind}`), ['d1/ignore'], 'kept across a reopen; a snooze over a week past is dropped');
  });

  t.test('newer schemas are refused, untouched', async (t) => {
    const url = await server.newDatabase();
    const db = new URL(url).pathname.slice(1);
    await (await PostgresSessionStore.open(url)).close();
    await (await PostgresActionDecisionStore.open(url)).close();
    await server.sql(db, "UPDATE wott_schema SET version = 5 WHERE component IN ('sessions', 'actions')");
    await t.rejects(PostgresSessionStore.open(url), /session database .* newer wott \(schema 5, this wott knows 1\)/);
    await t.rejects(PostgresActionDecisionStore.open(url), /action decision database .* newer wott \(schema 5, this wott knows 1\)/);
    t.same(await server.sql(db, 'SELECT component, version FROM wott_schema ORDER BY component'), [
      { component: 'actions', version: 5 },
      { component: 'sessions', version: 5 },
    ]);
  });
}
