/**
 * FleetEvents (fleet/events.ts) on a real inventory and FleetView: which changes are fleet events and which are
 * not (score drops only of active devices, below a threshold or by the configured delta; auth failures only of our
 * devices and only verified, at most one per device per quiet period with the rest counted), the ring for resuming (since/recent) and its bound.
 */
import t from 'tap';
import { CertificateAuthority } from '../ca/index.js';
import { FleetEvents, FleetService, FleetView } from '../fleet/index.js';
import type { FleetEvent } from '../protocol/index.js';
import { makeCsr, requireCommand, tempDir } from './helpers.js';

t.test('fleet events from the view, scores and behaviour', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  await ca.enrollWithToken('fe-1', (await ca.createToken('fe-1')).token, makeCsr(dir, '/CN=fe-1').der);
  const view = await FleetView.open(ca.inventory);
  t.teardown(() => view.close());
  let clock = Date.now();
  const events = new FleetEvents(view, { ring: 5, dropDelta: 0.2, thresholds: () => [0, 0.4, 0.9], now: () => clock });
  t.teardown(() => events.close());
  const seen: FleetEvent[] = [];
  events.onEvent((e) => seen.push(e));
  const fleet = new FleetService(ca, 'test');

  t.equal(events.seq, 0, 'devices known at start are not news');
  await ca.enrollWithToken('fe-2', (await ca.createToken('fe-2')).token, makeCsr(dir, '/CN=fe-2').der);
  await view.refresh();
  t.match(seen.at(-1), { seq: 1, type: 'enrolled', device: 'fe-2', serial: /^[0-9a-f]+$/ });
  await fleet.setTags('fe-2', ['x']);
  await view.refresh();
  t.equal(seen.length, 1, 'a tag change is no fleet event');

  events.onScore('fe-1', 0.95, 'active');
  t.equal(seen.length, 1, 'a first score is no drop');
  events.onScore('fe-1', 0.85, 'active');
  t.match(seen.at(-1), { type: 'score_drop', text: 'score 0.95 → 0.85, below 0.9', score: 0.85, previousScore: 0.95 }, 'below a threshold, however small the drop');
  events.onScore('fe-1', 0.7, 'active');
  t.equal(seen.length, 2, '0.15 down, no threshold crossed: under the delta');
  events.onScore('fe-1', 0.45, 'active');
  t.match(seen.at(-1), { type: 'score_drop', text: 'score 0.70 → 0.45' }, 'by the delta (0.25 ≥ 0.2)');
  events.onScore('fe-1', 0.9, 'active');
  events.onScore('fe-1', 0, 'quarantined');
  t.equal(seen.length, 3, 'a quarantined device scoring 0 is the quarantine, not a drop');

  await fleet.quarantine('fe-2');
  await view.refresh();
  await fleet.release('fe-2');
  await view.refresh();
  t.same(seen.slice(-2).map((e) => e.type), ['quarantined', 'released']);

  events.onBehaviour({ device: 'fe-2', type: 'auth_failure', time: new Date().toISOString(), verified: false, reason: 'forged' });
  events.onBehaviour({ device: 'nobody', type: 'auth_failure', time: new Date().toISOString(), verified: true, reason: 'x' });
  events.onBehaviour({ device: 'fe-2', type: 'publish_denied', time: new Date().toISOString(), verified: true, topic: 'a/b', reason: 'x' });
  t.equal(seen.length, 5, 'unverified, unknown devices and other behaviour: no event');
  events.onBehaviour({ device: 'fe-2', type: 'auth_failure', time: new Date().toISOString(), verified: true, reason: 'certificate revoked', remoteAddress: '10.0.0.9' });
  t.match(seen.at(-1), { type: 'auth_failure', device: 'fe-2', text: 'connection refused: certificate revoked', remoteAddress: '10.0.0.9' });
  for (let i = 0; i < 3; i++) events.onEnrollmentRefused('fe-2', 'unknown enrollment token', '10.0.0.9');
  t.equal(seen.length, 6, 'more failures of the same device within 10 s are counted, not shown');
  clock += 10_000;
  events.onEnrollmentRefused('fe-2', 'unknown enrollment token', '10.0.0.9');
  events.onEnrollmentRefused('nobody', 'unknown enrollment token', '10.0.0.9');
  t.match(seen.at(-1), { type: 'auth_failure', text: 'enrollment refused: unknown enrollment token (and 3 more since the last one shown)' }, 'then one event, with the count');
  t.equal(seen.length, 7, 'a refused enrollment naming no device of ours is no event');

  await fleet.revoke({ deviceId: 'fe-2' }, 'keyCompromise');
  await view.refresh();
  const revoked = seen.filter((e) => e.type === 'revoked');
  t.equal(revoked.length, 1, 'a device revocation is one event, not one per certificate too');

  t.equal(events.seq, 8);
  t.same(events.recent(2).map((e) => e.seq), [7, 8], 'the newest, oldest first');
  t.same(events.since(6)!.map((e) => e.seq), [7, 8]);
  t.same(events.since(8), [], 'nothing after the newest');
  t.equal(events.since(2), undefined, 'the ring (5) no longer holds event 3');
  t.same(events.since(3)!.map((e) => e.seq), [4, 5, 6, 7, 8], 'but holds 4..8');
});
