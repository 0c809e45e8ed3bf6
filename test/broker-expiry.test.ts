/**
 * Certificate expiry of live sessions (DESIGN: "sessions whose cert expires are closed at expiry"): the broker keeps
 * one timer for every session (broker/expiry.ts) instead of one per connection. The scheduler on real timers, then a
 * real gateway closing the session of a device whose certificate runs out while another device's session stays.
 */
import t from 'tap';
import { CertificateAuthority } from '../ca/index.js';
import { ExpiryScheduler } from '../broker/expiry.js';
import { makeCsr, memoryLogger, openssl, tempDir } from './helpers.js';
import { connect, enroll, testGateway, waitFor } from './mqtt-helpers.js';

t.test('items come due in time order, once each, never before their time; deleted items never', async (t) => {
  const due: Array<{ item: string; at: number }> = [];
  const s = new ExpiryScheduler<string>((item) => due.push({ item, at: Date.now() }));
  t.teardown(() => s.close());
  const now = Date.now();
  const times: Record<string, number> = { c: now + 300, a: now + 100, b: now + 200, a2: now + 100, gone: now + 150 };
  for (const [item, at] of Object.entries(times)) s.add(item, at);
  s.add('a', times.a!); // added twice: still due once
  t.equal(s.size, 5);
  t.equal(s.pendingTimes, 4, 'a and a2 share one time');
  s.delete('gone', times.gone!);
  s.delete('never-added', times.gone!);
  t.equal(s.size, 4);
  await waitFor(() => due.length === 4, 'every remaining item due');
  t.same(
    due.map((d) => d.item),
    ['a', 'a2', 'b', 'c'],
  );
  for (const d of due) t.ok(d.at >= times[d.item]!, `${d.item} not before its time`);
  await waitFor(() => s.pendingTimes === 0, 'the deleted item\'s emptied time is dropped when it comes up');
  t.equal(s.size, 0);
});

t.test('an earlier time re-arms the one timer; a later item keeps waiting', async (t) => {
  const due: string[] = [];
  const s = new ExpiryScheduler<string>((item) => due.push(item));
  t.teardown(() => s.close());
  s.add('late', Date.now() + 3_600_000);
  s.add('soon', Date.now() + 50);
  await waitFor(() => due.length === 1, 'the earlier item due');
  t.same(due, ['soon']);
  t.equal(s.size, 1, 'the later one still waits');
});

t.test('a time that is not a number is due at once; a session reconnecting queues its time once', async (t) => {
  const due: string[] = [];
  const s = new ExpiryScheduler<string>((item) => due.push(item));
  t.teardown(() => s.close());
  s.add('unparsable', NaN);
  await waitFor(() => due.length === 1, 'due at once');
  const at = Date.now() + 3_600_000;
  for (let i = 0; i < 1000; i++) {
    s.add('device', at);
    s.delete('device', at);
  }
  t.equal(s.size, 0);
  t.equal(s.pendingTimes, 1, 'one time held, not one per connection');
});

t.test('the gateway closes a live session when its certificate expires, and only that one', async (t) => {
  const log = memoryLogger();
  const gw = await testGateway(t, { log });
  const dir = tempDir(t);
  const lasting = await enroll(gw, dir, 'dev-lasting');
  const lastingClient = await connect(gw, lasting);
  t.teardown(() => lastingClient.end(true));
  // A certificate from the gateway's own CA that ends in a few seconds.
  const brief = await CertificateAuthority.open({ dataDir: gw.dir, certLifetimeMs: 8000 });
  const csr = makeCsr(dir, '/CN=dev-brief');
  const issued = await brief.enrollWithToken('dev-brief', (await brief.createToken('dev-brief')).token, csr.der);
  await brief.close();
  const notAfter = issued.notAfter.getTime();
  const client = await connect(gw, { id: 'dev-brief', key: openssl(['pkey', '-in', csr.keyPath]).toString(), cert: issued.pem, ca: gw.caPem });
  t.teardown(() => client.end(true));
  let closedAt: number | undefined;
  client.once('close', () => (closedAt = Date.now()));
  await waitFor(() => gw.plugin.sessionCount('dev-brief') === 1, 'the brief session is ready');
  await waitFor(() => closedAt !== undefined, 'the session closed at expiry');
  t.ok(closedAt! >= notAfter, 'not before the certificate expired');
  await waitFor(() => gw.plugin.sessionCount('dev-brief') === 0, 'the session is gone from the broker');
  t.ok(
    (log.lines as Array<{ msg?: string }>).some((l) => l.msg === 'certificate expired: closing session'),
    'the log says why',
  );
  t.ok(lastingClient.connected, 'the other device stays connected');
  t.equal(gw.plugin.sessionCount('dev-lasting'), 1);
});
