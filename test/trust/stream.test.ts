/**
 * GET /api/v1/trust/stream over real mTLS: live events, resume with Last-Event-ID after a killed socket and after a
 * gateway restart (nothing missed), the subscriber bound, heartbeats, and a slow reader dropped, not buffered.
 */
import t from 'tap';
import { startGateway } from '../../gateway/index.js';
import { topics } from '../../protocol/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, serviceCredentials, setScore, testGateway, testGatewayOptions } from '../mqtt-helpers.js';
import { api, operatorCredentials } from '../api/helpers.js';
import { openStream, waitFor } from './helpers.js';

t.test('live events, then resume after a killed socket without missing a change', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  for (const id of ['st-a', 'st-b', 'st-c']) await enroll(gw, dir, id);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'st')), id: 'scoring:st' });
  t.teardown(() => scorer.end(true));
  const service = await serviceCredentials(gw, dir, 'scoring', 'reader');

  const first = openStream(gw, service);
  t.equal(await first.status, 200, 'a service certificate opens the stream');
  await waitFor(() => first.events.some((e) => e.event === 'ready'), 'ready');
  t.match(first.events[0], { event: 'ready', data: { resumed: false } });
  t.match(first.lastId(), /^\d+-[A-Za-z0-9_-]+-\d+$/, 'events carry {feed}-{boot}-{scores} ids');

  const sent = Date.now();
  await setScore(gw, scorer, 'st-a', 0.7);
  await waitFor(() => first.events.some((e) => e.event === 'score' && e.data.device === 'st-a'), 'live score event');
  t.ok(Date.now() - sent < 1000, 'a score change arrives at once');
  t.match(first.events.at(-1)!.data, { device: 'st-a', score: 0.7, rawScore: 0.7, state: 'active', modelVersion: 'test' });
  await gw.fleet.quarantine('st-b');
  await waitFor(() => first.events.some((e) => e.event === 'device' && e.data.device === 'st-b'), 'live device event');
  t.match(first.events.at(-1)!.data, { device: 'st-b', state: 'quarantined', score: 0 }, 'a quarantine arrives as a device event');

  const resumeFrom = first.lastId()!;
  first.kill();
  await first.closed;
  // While the client is away: a score, a state change and a revocation.
  await setScore(gw, scorer, 'st-a', 0.25);
  await gw.fleet.release('st-b');
  const revoked = await gw.fleet.revoke({ deviceId: 'st-c' }, 'keyCompromise');
  await gw.view.refresh();

  const second = openStream(gw, service, resumeFrom);
  await waitFor(() => second.events.some((e) => e.event === 'ready'), 'ready after resume');
  const byName = (name: string) => second.events.filter((e) => e.event === name);
  t.match(byName('score'), [{ data: { device: 'st-a', score: 0.25 } }], 'the current score of the device whose score changed meanwhile (and only that one)');
  t.ok(byName('device').some((e) => e.data.device === 'st-b' && e.data.state === 'active'), 'the release made meanwhile');
  t.ok(byName('device').some((e) => e.data.device === 'st-c' && e.data.state === 'revoked' && e.data.certificate === null), 'the revoked device, without a certificate');
  t.same(
    byName('revoked').map((e) => e.data),
    revoked.map((serial) => ({ serial, device: 'st-c' })),
    'the revocation itself',
  );
  t.match(second.events.at(-1), { event: 'ready', data: { resumed: true } }, 'then ready, live from here');
  second.kill();

  // A caller whose certificate is revoked reads no further.
  const doomed = await operatorCredentials(gw, 'viewer', 'doomed');
  const third = openStream(gw, doomed);
  await waitFor(() => third.events.some((e) => e.event === 'ready'), 'ready');
  await gw.ca.revoke({ serial: doomed.serial }, 'keyCompromise');
  let ended = false;
  void third.closed.then(() => (ended = true));
  await Promise.race([third.closed, new Promise((r) => setTimeout(r, 3000))]);
  t.ok(ended, "the revoked caller's stream is closed");

  // A Last-Event-ID we never sent is a 400, not a stream.
  const bad = await api(gw, 'GET', '/trust/stream', { cert: service.cert, key: service.key, headers: { 'Last-Event-ID': 'x; DROP TABLE' } });
  t.equal(bad.status, 400);
});

t.test('resume across a gateway restart: feed changes replayed, every current score sent', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  await enroll(gw, dir, 'rs-a');
  const viewer = await operatorCredentials(gw, 'viewer', 'restart');
  const first = openStream(gw, viewer);
  await waitFor(() => first.events.some((e) => e.event === 'ready'), 'ready');
  const resumeFrom = first.lastId()!;
  first.kill();
  await gw.fleet.quarantine('rs-a');
  await gw.close();

  const again = await startGateway(testGatewayOptions(gw.dir));
  t.teardown(() => again.close());
  // A score message in the new process (scores are not in the feed: the new boot id means "send them all").
  await new Promise<void>((r) =>
    again.broker.publish(
      { cmd: 'publish', topic: topics.scores('rs-a'), payload: Buffer.from(JSON.stringify({ device: 'rs-a', score: 0.8, factors: [], modelVersion: 'test', time: new Date().toISOString() })), qos: 0, retain: true, dup: false },
      () => r(),
    ),
  );
  const second = openStream({ httpsPort: again.httpsPort, caPem: gw.caPem }, viewer, resumeFrom);
  await waitFor(() => second.events.some((e) => e.event === 'ready'), 'ready after restart');
  t.ok(second.events.some((e) => e.event === 'device' && e.data.device === 'rs-a' && e.data.state === 'quarantined'), 'the quarantine made before the restart is replayed from the feed');
  t.ok(second.events.some((e) => e.event === 'score' && e.data.device === 'rs-a' && e.data.rawScore === 0.8 && e.data.score === 0), 'the current score (under the quarantine ceiling)');
  t.notMatch(second.lastId(), new RegExp(`-${resumeFrom.split('-')[1]}-`), 'ids now carry the new boot id');
  second.kill();
});

t.test('bounded: subscribers over the limit get 503, heartbeats flow, a reader that stops reading is dropped', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { trustStream: { maxSubscribers: 2, heartbeatMs: 100, maxBufferedBytes: 64 * 1024 } } });
  const dir = tempDir(t);
  await enroll(gw, dir, 'bp-a');
  const viewer = await operatorCredentials(gw, 'viewer', 'bounded');
  const fast = openStream(gw, viewer);
  const slow = openStream(gw, viewer, undefined, { paused: true });
  t.equal(await fast.status, 200);
  t.equal(await slow.status, 200);
  const third = await api(gw, 'GET', '/trust/stream', viewer);
  t.equal(third.status, 503, 'a third stream over maxSubscribers: 2 is refused');
  t.match(third.headers['retry-after'], /^\d+$/, 'with Retry-After');
  t.match(third.json.message, /too many trust streams/);
  await waitFor(() => fast.comments.length >= 2, 'heartbeats');
  t.pass('heartbeat comments arrive every heartbeatMs');

  // Flood score events; the paused reader's unread bytes pass maxBufferedBytes and the gateway drops it.
  const payload = (i: number) => Buffer.from(JSON.stringify({ device: 'bp-a', score: (i % 100) / 100, factors: [{ id: 'pad', contribution: 0, reason: 'x'.repeat(250) }], modelVersion: 'test', time: new Date().toISOString() }));
  let slowClosed = false;
  void slow.closed.then(() => (slowClosed = true));
  for (let i = 0; i < 40_000 && !slowClosed; i++) {
    gw.broker.publish({ cmd: 'publish', topic: topics.scores('bp-a'), payload: payload(i), qos: 0, retain: false, dup: false }, () => {});
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  slow.res?.resume();
  await Promise.race([slow.closed, new Promise((r) => setTimeout(r, 5000))]);
  t.ok(slowClosed, 'the reader that stopped reading was dropped');
  fast.kill();
  await fast.closed;
  const replacement = openStream(gw, viewer);
  t.equal(await replacement.status, 200, 'its place is free again');
  await waitFor(() => replacement.events.some((e) => e.event === 'ready'), 'ready');
  gw.broker.publish({ cmd: 'publish', topic: topics.scores('bp-a'), payload: payload(1), qos: 0, retain: false, dup: false }, () => {});
  await waitFor(() => replacement.events.some((e) => e.event === 'score'), 'a live event on the new stream');
  replacement.kill();
});
