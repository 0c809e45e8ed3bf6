/**
 * POST /devices/{id}/reject (operator role) over real TLS on a real gateway in claim mode: a device that enrolled
 * without a token and is connected over MQTT is rejected; its session is closed, its certificate revoked, the claim
 * queue empty, the action audited with the session; a viewer is refused, an active device cannot be rejected.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { makeCsr, requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, testGateway, waitFor } from '../mqtt-helpers.js';
import { api, sessionFor } from './helpers.js';

t.test('reject: an unclaimed device loses its certificate and its MQTT session; only unclaimed devices', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { claim: true });
  const dir = tempDir(t);
  const { der, keyPath } = makeCsr(dir, '/CN=intruder-1');
  const issued = await gw.fleet.enrollUnclaimed(der);
  const client = await connect(gw, { id: 'intruder-1', key: readFileSync(keyPath, 'utf8'), cert: issued.pem, ca: gw.caPem });
  let closed = false;
  client.on('close', () => (closed = true));
  t.teardown(() => client.end(true));
  await enroll(gw, dir, 'good-1');
  const viewer = await sessionFor(gw, 'viewer', 'vera');
  const operator = await sessionFor(gw, 'operator', 'olga');

  const refused = await api(gw, 'POST', '/devices/intruder-1/reject', { cookie: viewer.cookie, csrf: viewer.csrf });
  t.equal(refused.status, 403, 'a viewer may not reject');
  const rejected = await api(gw, 'POST', '/devices/intruder-1/reject', { cookie: operator.cookie, csrf: operator.csrf });
  t.equal(rejected.status, 200, rejected.body);
  t.match(rejected.json, { device: { id: 'intruder-1', state: 'revoked' }, revoked: [issued.serial] });
  await waitFor(() => closed, 'the broker closes the rejected device', 5000);
  t.pass('its live MQTT session is closed');
  t.equal(gw.plugin.deviceState('intruder-1'), 'revoked');
  const queue = await api(gw, 'GET', '/devices?state=unclaimed', { cookie: operator.cookie });
  t.same(queue.json.items, [], 'the claim queue is empty');
  t.match((await gw.ca.inventory.auditEntries({ device: 'intruder-1' })).at(-1), { actor: 'session:operator:olga', action: 'device.reject', outcome: 'ok' });

  const active = await api(gw, 'POST', '/devices/good-1/reject', { cookie: operator.cookie, csrf: operator.csrf });
  t.equal(active.status, 409, 'an active device cannot be rejected');
  t.match(active.json.message, /not unclaimed/);
  t.equal((await api(gw, 'POST', '/devices/ghost-1/reject', { cookie: operator.cookie, csrf: operator.csrf })).status, 404);
});
