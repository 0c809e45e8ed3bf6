/**
 * Work done once per cluster follows the lease: only the leader runs the periodic CRL refresh, and when it leaves
 * another node takes the refresh over (the CRL keeps getting renewed without anyone asking for it).
 */
import t from 'tap';
import { tempDir } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';
import { node, type Node } from './helpers.js';

const runs = async (n: Node) => (await n.metrics.getSingleMetric('wott_crl_refresh_runs_total')!.get()).values[0]?.value ?? 0;

t.test('the periodic CRL refresh runs on the leader only, and moves with the lease', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  // A CRL valid for 2 s: the refresh runs every 0.5 s and makes a new CRL every second.
  const a = await node(t, dir, redis.url, 'node-a', { crlValidityMs: 2000 });
  const b = await node(t, dir, redis.url, 'node-b', { crlValidityMs: 2000 });
  await waitFor(() => Boolean(a.lease?.leading || b.lease?.leading), 'a leader');
  const leader = a.lease!.leading ? a : b;
  const follower = leader === a ? b : a;
  t.notOk(follower.lease!.leading, 'one leader');

  const crlNumber = async () => (await leader.ca.inventory.latestCrl())?.number ?? 0;
  const first = await crlNumber();
  let counts = [0, 0];
  let number = first;
  await waitFor(() => {
    void Promise.all([runs(leader), runs(follower), crlNumber()]).then(([l, f, n]) => ((counts = [l, f]), (number = n)));
    return counts[0]! >= 4 && number >= first + 2;
  }, 'the leader refreshed the CRL a few times');
  t.equal(await runs(follower), 0, 'the follower never ran the refresh');

  // The leader stops (it releases the lease): the other node takes the refresh over.
  await leader.close();
  await waitFor(() => follower.lease!.leading, 'the follower leads', 10_000);
  const before = (await follower.ca.inventory.latestCrl())!.number;
  let followerRuns = 0;
  let after = before;
  await waitFor(() => {
    void Promise.all([runs(follower), follower.ca.inventory.latestCrl()]).then(([r, c]) => ((followerRuns = r), (after = c?.number ?? 0)));
    return followerRuns >= 3 && after >= before + 2;
  }, 'the new leader keeps the CRL fresh');
  t.ok(after >= before + 2, `CRL ${before} → ${after} made by the new leader`);
});
