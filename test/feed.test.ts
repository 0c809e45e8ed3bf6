/**
 * The inventory's change feed: every write appends (seq, kind, key) in its own transaction; followers (the broker's
 * trust source) apply it in order, whatever the clocks of the writers, across restarts, with several writing
 * processes, and reload in full when they fell behind a pruned feed.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { openSqliteInventory } from '../store/index.js';
import { CertificateAuthority } from '../ca/index.js';
import { FleetService, FleetView } from '../fleet/index.js';
import { CHANGES_KEPT } from '../store/index.js';
import { CLI, makeCsr, requireCommand, tempDir } from './helpers.js';
import { connect, enroll, testGateway, waitFor } from './mqtt-helpers.js';

const DAY = 86_400_000;

async function feedOf(ca: CertificateAuthority) {
  const rows = await ca.inventory.feed.after(0, 1_000_000);
  if (rows === 'reload') throw new Error('feed pruned');
  return rows;
}

t.test('every write is in the feed, in order, without gaps, across a writer restart', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  let ca = await CertificateAuthority.open({ dataDir: dir });
  const { der } = makeCsr(dir, '/CN=feed-dev');
  const issued = await ca.enrollWithToken('feed-dev', (await ca.createToken('feed-dev')).token, der);
  await new FleetService(ca, 'test').quarantine('feed-dev');
  await ca.revoke({ serial: issued.serial }, 'keyCompromise');
  const first = await feedOf(ca);
  t.same(first.map((c) => c.seq), first.map((_, i) => i + 1), 'seq 1..n, no gap');
  t.ok(first.some((c) => c.kind === 'device' && c.key === 'feed-dev'));
  t.ok(first.some((c) => c.kind === 'certificate' && c.key === issued.serial));
  t.ok(first.some((c) => c.kind === 'revocation' && c.key === issued.serial));
  t.ok(first.some((c) => c.kind === 'crl'));
  // A refused write (a used token) leaves nothing in the feed.
  const head = await ca.inventory.feed.head();
  await t.rejects(ca.enrollWithToken('feed-dev', 'no-such-token', makeCsr(dir, '/CN=feed-dev').der));
  t.equal(await ca.inventory.feed.head(), head, 'a refused enrollment writes no change');
  await ca.close();
  ca = await CertificateAuthority.open({ dataDir: dir });
  await new FleetService(ca, 'test').release('feed-dev');
  const after = await feedOf(ca);
  t.equal(after.length, first.length + 1, 'the writer restarted: the feed continues');
  t.equal(after[after.length - 1]!.seq, head + 1);
  await ca.close();
});

t.test('two processes writing at once: one gap-free feed with every write', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  const now = () => new Date().toISOString();
  for (let k = 0; k < 4; k++) await ca.inventory.transaction((tx) => tx.upsertDevice(`cli-${k}`, 'active', now()));
  // Four CLI processes quarantine devices while this process adds 200 more, each in its own transaction.
  const others = Array.from({ length: 4 }, (_, k) =>
    new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'device', 'quarantine', `cli-${k}`, '--data', dir], { stdio: 'ignore' });
      child.on('exit', resolve);
    }),
  );
  for (let i = 0; i < 200; i++) {
    await ca.inventory.transaction((tx) => tx.upsertDevice(`dev-${i}`, 'unclaimed', now()));
    if (i % 5 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  t.same(await Promise.all(others), [0, 0, 0, 0], 'the other processes wrote');
  const feed = await feedOf(ca);
  t.same(feed.map((c) => c.seq), feed.map((_, i) => i + 1), 'no gap, no duplicate');
  t.equal(new Set(feed.filter((c) => c.kind === 'device').map((c) => c.key)).size, 204);
  t.equal(feed.filter((c) => c.kind === 'device').length, 208, 'every insert, and the 4 quarantines of the other processes');
  for (let k = 0; k < 4; k++) t.equal((await ca.inventory.device(`cli-${k}`))!.state, 'quarantined');
});

t.test('the broker follows the feed, not timestamps: a revocation stamped in the past still closes the session', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const early = await enroll(gw, dir, 'revoked-first');
  const late = await enroll(gw, dir, 'stamped-in-the-past');
  const quiet = await enroll(gw, dir, 'quarantined-in-the-past');
  await gw.ca.revoke({ deviceId: early.id });
  const c = await connect(gw, late);
  const closed = new Promise((r) => c.once('close', r));
  // Another writer whose clock is a day behind (a second process, an NTP step): its changes are stamped earlier
  // than ones the broker has already seen.
  const behind = await CertificateAuthority.open({ dataDir: gw.dir, now: () => new Date(Date.now() - DAY) });
  t.teardown(() => behind.close());
  await behind.revoke({ deviceId: late.id });
  await closed;
  t.pass('the session of the certificate revoked with an old timestamp was closed');
  await new FleetService(behind, 'test').quarantine(quiet.id);
  await waitFor(() => gw.plugin.deviceState(quiet.id) === 'quarantined', 'a quarantine stamped in the past reaches the broker');
});

t.test('a follower further behind than the kept feed reloads everything', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  await ca.inventory.transaction((tx) => tx.upsertDevice('watched', 'active', new Date().toISOString()));
  // A follower in another connection (another process's view), that is not woken meanwhile.
  const other = openSqliteInventory(join(dir, 'inventory.db'), { pollMs: 3_600_000 });
  t.teardown(() => other.close());
  const view = await FleetView.open(other);
  t.teardown(() => view.close());
  t.equal(view.deviceState('watched'), 'active');
  // More than CHANGES_KEPT writes, then a CRL refresh, which prunes the feed.
  await ca.inventory.transaction(async (tx) => {
    const now = new Date().toISOString();
    for (let i = 0; i <= CHANGES_KEPT; i++) await tx.upsertDevice(`filler-${i % 1000}`, 'unclaimed', now);
    await tx.upsertDevice('watched', 'quarantined', now);
  });
  await ca.refreshCrl(true);
  t.equal(await ca.inventory.feed.after(1), 'reload', 'the start of the feed is gone');
  t.ok(await view.refresh(), 'the follower notices');
  t.equal(view.deviceState('watched'), 'quarantined', 'and has the current state after its full reload');
});

t.test("the gateway's own writes wake the broker at once (no poll needed)", async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { trustPollMs: 3_600_000 }); // polling would take an hour
  const dir = tempDir(t);
  const creds = await enroll(gw, dir, 'woken');
  const c = await connect(gw, creds);
  const closed = new Promise((r) => c.once('close', r));
  await gw.ca.revoke({ deviceId: 'woken' });
  await closed;
  t.pass('closed without waiting for a poll');
  const other = await enroll(gw, dir, 'woken-2');
  await gw.fleet.quarantine(other.id);
  await waitFor(() => gw.plugin.deviceState(other.id) === 'quarantined', 'quarantine applied without a poll');
});
