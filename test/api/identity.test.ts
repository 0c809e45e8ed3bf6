/**
 * Operator identities: built and parsed in protocol/, distinct from devices and services; the session store
 * redeems a link once even when two stores race for it; the broker refuses an operator certificate on MQTT.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import {
  identityFromNames,
  operatorCommonName,
  operatorFromNames,
  operatorUri,
  parseOperatorCommonName,
  parseServiceCommonName,
  roleAtLeast,
} from '../../protocol/index.js';
import { SqliteSessionStore } from '../../store/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connectError, testGateway } from '../mqtt-helpers.js';
import { operatorCredentials } from './helpers.js';

t.test('operator names: built, parsed, and never taken for a device or a service', async (t) => {
  t.equal(operatorCommonName('admin', 'alice'), 'operator:admin:alice');
  t.equal(operatorUri('viewer', 'bob'), 'urn:wott:operator:viewer:bob');
  t.same(operatorFromNames('operator:admin:alice', ['urn:wott:operator:admin:alice']), { role: 'admin', name: 'alice', id: 'operator:admin:alice' });
  t.equal(operatorFromNames('operator:admin:alice', ['urn:wott:operator:viewer:alice']), undefined, 'CN and URI must agree');
  t.equal(operatorFromNames('operator:admin:alice', ['urn:wott:operator:admin:alice', 'urn:wott:device:alice']), undefined, 'one identity per certificate');
  t.equal(operatorFromNames('operator:root:alice', ['urn:wott:operator:root:alice']), undefined, 'unknown role');
  t.equal(operatorFromNames('admin:alice', ['urn:wott:service:admin:alice']), undefined, 'a service is not an operator');
  t.equal(parseOperatorCommonName('operator:admin:Alice'), undefined, 'names follow the device id rules');
  t.throws(() => operatorCommonName('admin', 'a:b'));
  t.equal(parseServiceCommonName('operator:admin:alice'), undefined, 'an operator is not a service');
  t.match(identityFromNames('operator:admin:alice', ['urn:wott:operator:admin:alice']), { error: /neither a device id nor a service identity/ }, 'the broker knows no operators');
  t.ok(roleAtLeast('admin', 'operator') && roleAtLeast('operator', 'operator') && !roleAtLeast('viewer', 'operator'));
});

t.test('a login link is redeemed once, whichever store races for it', async (t) => {
  const dir = tempDir(t);
  const a = SqliteSessionStore.open(dir);
  const b = SqliteSessionStore.open(dir);
  t.teardown(async () => (await a.close(), await b.close()));
  const hash = createHash('sha256').update('secret').digest('hex');
  const now = new Date();
  await a.createLoginLink({ hash, role: 'admin', name: 'race', createdBy: 'test', createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60_000).toISOString() });
  const session = (id: string) => ({ id, secretHash: id, expiresAt: new Date(now.getTime() + 60_000).toISOString(), source: null });
  const results = await Promise.all([a.redeemLoginLink(hash, now.toISOString(), session('s1')), b.redeemLoginLink(hash, now.toISOString(), session('s2'))]);
  t.same(results.map((r) => r.ok).sort(), [false, true], 'one wins, one is told the link was used');
  t.match(results.find((r) => !r.ok), { reason: 'used' });
  const late = await a.redeemLoginLink(hash, new Date(now.getTime() + 120_000).toISOString(), session('s3'));
  t.match(late, { ok: false });
  const expiredHash = createHash('sha256').update('old').digest('hex');
  await a.createLoginLink({ hash: expiredHash, role: 'viewer', name: 'late', createdBy: 'test', createdAt: now.toISOString(), expiresAt: now.toISOString() });
  t.same(await b.redeemLoginLink(expiredHash, new Date(now.getTime() + 1).toISOString(), session('s4')), { ok: false, reason: 'expired' });
  t.equal((await a.activeSessions(now.toISOString())).length, 1, 'one session in all');
});

t.test('the broker refuses an operator certificate on MQTT', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const op = (await operatorCredentials(gw, 'admin', 'mqtt-try'));
  const err = await connectError(gw, { ...op, ca: gw.caPem, id: 'operator:admin:mqtt-try' });
  t.ok(err, `refused: ${err.message}`);
});

t.test('service certificates: admin acts as admin, scoring reaches only routes open to services', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const { api } = await import('./helpers.js');
  const admin = await gw.ca.issueService('admin', 'ops');
  const scoring = await gw.ca.issueService('scoring', 'svc');
  const asAdmin = { cert: admin.pem, key: admin.keyPem };
  const asScoring = { cert: scoring.pem, key: scoring.keyPem };
  t.match((await api(gw, 'GET', '/whoami', asAdmin)).json, { identity: 'cert:service:admin:ops', role: 'admin', via: 'certificate' });
  t.equal((await api(gw, 'GET', '/sessions', asAdmin)).status, 200, 'the admin service lists sessions');
  const token = await api(gw, 'POST', '/tokens', { ...asAdmin, body: { device: 'svc-made' } });
  t.equal(token.status, 200);
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { actor: 'cert:service:admin:ops', action: 'token.create' });
  t.match((await api(gw, 'GET', '/whoami', asScoring)).json, { identity: 'cert:service:scoring:svc', role: 'service' });
  t.equal((await api(gw, 'GET', '/devices', asScoring)).status, 403, 'scoring may not list devices');
});

t.test('an expired operator certificate is no credential', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const { api } = await import('./helpers.js');
  const { CertificateAuthority } = await import('../../ca/index.js');
  // The same CA with its clock 31 days back: the 30-day operator certificate expired yesterday.
  const past = await CertificateAuthority.open({ dataDir: gw.dir, now: () => new Date(Date.now() - 31 * 86_400_000), onWarning: () => {} });
  const old = await past.issueOperator('admin', 'expired-cert');
  past.close();
  const reply = await api(gw, 'GET', '/whoami', { cert: old.pem, key: old.keyPem });
  t.equal(reply.status, 401);
  t.match(reply.json.message, /CERT_HAS_EXPIRED/);
});
