/**
 * The admin routes for operators (GET /operators, POST /operators/{serial}/revoke) over real TLS on a real gateway:
 * the list comes from the CA inventory (operators only, not services), a revoked operator certificate is refused at
 * its very next request and audited with who revoked it; a device certificate is not an operator's.
 */
import t from 'tap';
import { requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';
import { api, operatorCredentials, sessionFor } from './helpers.js';

t.test('operators: listed from the CA inventory, revoked by an admin, refused at once', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const admin = await operatorCredentials(gw, 'admin', 'root-ada');
  const olga = await operatorCredentials(gw, 'operator', 'olga');
  const vic = await operatorCredentials(gw, 'viewer', 'vic');
  await gw.ca.issueService('scoring', 'scorer-1');
  const session = await sessionFor(gw, 'admin', 'ada');

  const list = await api(gw, 'GET', '/operators', admin);
  t.equal(list.status, 200);
  t.same(
    list.json.items.map((o: { name: string; role: string; status: string }) => [o.name, o.role, o.status]),
    [['olga', 'operator', 'active'], ['root-ada', 'admin', 'active'], ['vic', 'viewer', 'active']],
    'every operator certificate, by name; no service certificate',
  );
  t.match(list.json.items[0], { serial: olga.serial, commonName: 'operator:operator:olga', revokedAt: null, revocationReason: null });
  t.equal((await api(gw, 'GET', '/operators', olga)).status, 403, 'an operator may not list them');

  t.equal((await api(gw, 'GET', '/devices', olga)).status, 200, "olga's certificate works");
  const revoked = await api(gw, 'POST', `/operators/${olga.serial}/revoke`, { cookie: session.cookie, csrf: session.csrf, body: { reason: 'affiliationChanged' } });
  t.equal(revoked.status, 200, revoked.body);
  t.match(revoked.json, { name: 'olga', role: 'operator', serial: olga.serial, status: 'revoked', revocationReason: 'affiliationChanged', revokedAt: /^\d{4}-/ });
  t.equal((await api(gw, 'GET', '/devices', olga)).status, 401, 'the revoked certificate is refused at its next request');
  t.equal((await api(gw, 'GET', '/devices', vic)).status, 200, 'the others still work');
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { actor: 'session:admin:ada', action: 'operator.revoke', target: olga.serial, outcome: 'ok', detail: 'operator:operator:olga; reason affiliationChanged' });
  const after = await api(gw, 'GET', '/operators', admin);
  t.same(after.json.items.map((o: { name: string; status: string }) => `${o.name} ${o.status}`), ['root-ada active', 'vic active', 'olga revoked'], 'active first, the revoked one last');

  const again = await api(gw, 'POST', `/operators/${olga.serial}/revoke`, { ...admin, body: { reason: 'unspecified' } });
  t.equal(again.status, 409, 'revoking it twice is a conflict');
  const dir = tempDir(t);
  const device = await enroll(gw, dir, 'not-an-operator');
  const wrong = await api(gw, 'POST', `/operators/${device.serial}/revoke`, { ...admin, body: { reason: 'unspecified' } });
  t.equal(wrong.status, 404, 'a device certificate is not an operator certificate');
  t.match(wrong.json.message, /no operator certificate/);
  t.equal((await gw.ca.inventory.certificate(device.serial))?.status, 'active', 'and it is left alone');
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { action: 'operator.revoke', outcome: 'refused' }, 'the refusal is audited');
});
