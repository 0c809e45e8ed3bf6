/**
 * The rules around credentials (issue 17): who is entitled (every tag, effective score, active, not expired), the
 * namespace (only the device reads its credentials topic, nobody publishes there, services' wott/# does not see
 * it), and expiry withdrawing a credential from a live device.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CredentialFiles, CredentialReceiver } from '../../agent/credentials.js';
import { namespaceForward, namespacePublish, namespaceSubscribe } from '../../broker/namespace.js';
import { whyNotEntitled } from '../../credentials/index.js';
import { topics } from '../../protocol/index.js';
import { tempDir } from '../helpers.js';
import { connect, enroll, serviceCredentials, setScore, testGateway, waitFor } from '../mqtt-helpers.js';

t.test('entitlement', async (t) => {
  const now = Date.parse('2026-11-30T10:00:00Z');
  const terms = { tags: ['db', 'site:a'], minScore: 0.8, expiresAt: null };
  const device = { state: 'active' as const, tags: ['db', 'site:a', 'x'], score: 0.8 };
  t.equal(whyNotEntitled(terms, device, now), undefined, 'every tag, score exactly the minimum');
  t.match(whyNotEntitled(terms, { ...device, tags: ['db'] }, now), /lacks tag site:a/, 'every tag is needed');
  t.match(whyNotEntitled(terms, { ...device, score: 0.79 }, now), /below 0.8/);
  t.match(whyNotEntitled(terms, { ...device, state: 'quarantined' }, now), /quarantined/);
  t.match(whyNotEntitled(terms, { ...device, state: 'revoked' }, now), /revoked/);
  t.match(whyNotEntitled(terms, undefined, now), /not in the inventory/);
  t.match(whyNotEntitled({ ...terms, tags: [] }, device, now), /no tags/, 'no tags never means everyone');
  t.match(whyNotEntitled({ ...terms, expiresAt: '2026-11-30T09:59:59Z' }, device, now), /expired/);
  t.equal(whyNotEntitled({ ...terms, expiresAt: '2026-11-30T10:00:01Z' }, device, now), undefined);
  t.match(whyNotEntitled({ ...terms, minScore: 0.5 }, { ...device, score: Number.NaN }, now), /below/, 'no score is not a pass');
});

t.test('namespace: the credentials topic belongs to its device, and only the gateway writes it', async (t) => {
  const dev = (id: string) => ({ kind: 'device' as const, id, serial: '', notAfter: Infinity });
  const svc = (role: 'scoring' | 'admin' | 'broker') => ({ kind: 'service' as const, role, name: 'x', id: `${role}:x`, serial: '', notAfter: Infinity });
  const own = topics.credentials('dev-1');
  t.match(namespaceSubscribe(dev('dev-1'), own), { applies: true, allowed: true });
  t.match(namespaceSubscribe(dev('dev-2'), own), { applies: true, allowed: false });
  t.match(namespaceSubscribe(dev('dev-2'), 'wott/v1/credentials/+'), { applies: true, allowed: false });
  for (const role of ['scoring', 'admin', 'broker'] as const) {
    t.match(namespaceSubscribe(svc(role) as never, own), { applies: true, allowed: false }, `${role} may not subscribe`);
    t.match(namespaceForward(svc(role) as never, own), { applies: true, allowed: false }, `${role}'s wott/# does not receive it`);
    t.match(namespacePublish(svc(role) as never, own), { applies: true, allowed: false }, `${role} may not publish`);
  }
  t.match(namespaceForward(dev('dev-1'), own), { allowed: true });
  t.match(namespaceForward(dev('dev-2'), own), { allowed: false }, "another device's # does not receive it");
  t.match(namespacePublish(dev('dev-1'), own), { applies: true, allowed: false }, 'not even the device publishes there');
});

t.test('an expired version is withdrawn from a live device', async (t) => {
  const gw = await testGateway(t, { credentials: { pollMs: 100, sweepMs: 100 } });
  const dir = tempDir(t);
  const a = await enroll(gw, dir, 'dev-x');
  await gw.fleet.setTags('dev-x', ['db']);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'x')), id: 'scoring:x' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'dev-x', 0.9);
  const files = new CredentialFiles(join(dir, 'creds'));
  const receiver = new CredentialReceiver({ urls: [`mqtts://localhost:${gw.mqttPort}`], caPem: gw.caPem, device: 'dev-x', identity: { keyPem: a.key, certPem: a.cert }, files, log: pino({ level: 'silent' }) });
  t.teardown(() => receiver.close());
  await waitFor(() => gw.plugin.sessionsOf('dev-x').some((s) => s.clientId === 'dev-x:credentials'), 'listening');
  await gw.credentials.set('short', Buffer.from('v'), { tags: ['db'], minScore: 0.5, ttlMs: 3000 });
  // Delivered while valid, withdrawn once expired (the sweep runs every 100 ms here); the audit log tells both.
  let audit = await gw.fleet.auditLog();
  await waitFor(() => {
    void gw.fleet.auditLog().then((entries) => (audit = entries));
    return audit.some((e) => e.action === 'credential.withdraw' && /expired/.test(e.detail ?? ''));
  }, 'withdrawn because it expired');
  t.ok(audit.some((e) => e.action === 'credential.deliver' && e.device === 'dev-x'), 'it was delivered first');
  await waitFor(() => !existsSync(join(files.dir, 'short')) && files.list().length === 0, 'deleted on the device');
  t.ok((await gw.credentials.show('short'))?.expiresAt, 'has an expiry');
});
