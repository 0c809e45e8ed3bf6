/**
 * The credential routes over real TLS with real certificates and sessions: who may read and change them, CSRF for
 * sessions, that no reply, audit entry or log line carries a value (searched for the secret), audit entries by the
 * caller, and hostile names and values refused with a 4xx that changes nothing.
 */
import t from 'tap';
import { memoryLogger, requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';
import { api, operatorCredentials, sessionFor, type ApiCall, type ApiReply } from './helpers.js';

const SECRET = 'hunter2-' + 'Zq9xK3mW7pL'.repeat(3);
const ROTATED = 'rotated-' + 'Pw4vN8cR2tY'.repeat(3);
const terms = { tags: ['weather'], minScore: 0.8, linuxUser: 'pi', ttlSeconds: 86_400 };

t.test('credential routes: roles, CSRF, audit by the caller, values never returned or logged', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const log = memoryLogger();
  const gw = await testGateway(t, { log, api: { refusalLimits: { burst: 1_000_000, perMinute: 1_000_000 } } });
  const device = await enroll(gw, tempDir(t), 'cred-dev');
  const admin = await operatorCredentials(gw, 'admin', 'alice');
  const operator = await operatorCredentials(gw, 'operator', 'olga');
  const viewer = await operatorCredentials(gw, 'viewer', 'vera');
  const session = await sessionFor(gw, 'admin', 'sam');
  const replies: ApiReply[] = [];
  const call = async (method: string, path: string, c: ApiCall) => {
    const reply = await api(gw, method, path, c);
    replies.push(reply);
    return reply;
  };
  const lastAudit = async () => (await gw.ca.inventory.auditEntries()).at(-1)!;

  // Mutations are for admins: operators, viewers and devices are refused and nothing is created.
  for (const [who, creds] of [['an operator', operator], ['a viewer', viewer], ['a device', { cert: device.cert, key: device.key }]] as const) {
    t.equal((await call('PUT', '/credentials/weather-key', { ...creds, body: { value: SECRET, ...terms } })).status, 403, `${who} cannot set`);
    t.equal((await call('POST', '/credentials/weather-key/rotate', { ...creds, body: { value: SECRET } })).status, 403, `${who} cannot rotate`);
    t.equal((await call('DELETE', '/credentials/weather-key', creds)).status, 403, `${who} cannot delete`);
  }
  t.equal((await call('GET', '/credentials', { cert: device.cert, key: device.key })).status, 403, 'a device cannot list');
  t.equal((await call('GET', '/credentials/weather-key', { cert: device.cert, key: device.key })).status, 403, 'a device cannot read metadata');
  t.equal((await call('PUT', '/credentials/weather-key', { cookie: session.cookie, body: { value: SECRET, ...terms } })).status, 403, 'an admin session without CSRF token is refused');
  t.same((await gw.credentials.list()).map((c) => c.name), [], 'no refused call created anything');

  // An admin session with its CSRF token sets it; the audit entry names the session and no value.
  const set = await call('PUT', '/credentials/weather-key', { cookie: session.cookie, csrf: session.csrf, body: { value: SECRET, ...terms } });
  t.equal(set.status, 200, `set: ${set.body.slice(0, 200)}`);
  t.match(set.json, { name: 'weather-key', version: 1, tags: ['weather'], minScore: 0.8, linuxUser: 'pi', ttlSeconds: 86_400, size: Buffer.byteLength(SECRET), heldBy: [], exposedTo: [], rotate: false });
  t.match(await lastAudit(), { actor: 'session:admin:sam', action: 'credential.set', target: 'credential:weather-key', outcome: 'ok' });

  // Viewers read metadata.
  const list = await call('GET', '/credentials', viewer);
  t.equal(list.status, 200);
  t.same(list.json.items.map((c: { name: string; version: number }) => [c.name, c.version]), [['weather-key', 1]], 'a viewer lists it');
  const one = await call('GET', '/credentials/weather-key', viewer);
  t.match(one.json, { name: 'weather-key', version: 1, expiresAt: /^\d{4}-/ }, 'a viewer reads its metadata');
  t.equal((await call('GET', '/credentials/no-such', viewer)).status, 404, 'an unknown credential: 404');

  // Rotation by an admin certificate: a new version, audited as that admin.
  const rotated = await call('POST', '/credentials/weather-key/rotate', { ...admin, body: { value: ROTATED } });
  t.equal(rotated.status, 200, `rotate: ${rotated.body.slice(0, 200)}`);
  t.match(rotated.json, { version: 2, size: Buffer.byteLength(ROTATED), rotate: false });
  t.match(await lastAudit(), { actor: 'cert:admin:alice', action: 'credential.rotate', outcome: 'ok' });
  const missing = await call('POST', '/credentials/no-such/rotate', { ...admin, body: { value: ROTATED } });
  t.equal(missing.status, 404, 'rotating an unknown credential: 404');
  t.match(await lastAudit(), { actor: 'cert:admin:alice', action: 'credential.rotate', outcome: 'refused' }, 'the refusal is audited too');

  // Delete: audited; then gone.
  t.equal((await call('PUT', '/credentials/db-password', { ...admin, body: { value: SECRET, tags: ['db'], minScore: 0.5 } })).status, 200);
  const removed = await call('DELETE', '/credentials/db-password', { ...admin });
  t.equal(removed.status, 200);
  t.same(removed.json, { name: 'db-password', removed: true });
  t.match(await lastAudit(), { actor: 'cert:admin:alice', action: 'credential.remove', target: 'credential:db-password', outcome: 'ok' });
  t.equal((await call('GET', '/credentials/db-password', viewer)).status, 404, 'deleted');

  // The secret is nowhere in what came back, in the audit log or in the log.
  for (const reply of replies) {
    t.notOk(reply.body.includes(SECRET) || reply.body.includes(ROTATED), `no value in a ${reply.status} reply`);
    t.notOk(JSON.stringify(reply.headers).includes(SECRET), 'nor in its headers');
  }
  const audit = JSON.stringify(await gw.ca.inventory.auditEntries());
  t.notOk(audit.includes(SECRET) || audit.includes(ROTATED), 'no value in the audit log');
  t.ok(audit.includes('credential.set'), 'the audit log was searched');
  const logged = JSON.stringify(log.lines);
  t.notOk(logged.includes(SECRET) || logged.includes(ROTATED), 'no value in the log');
});

t.test('credential routes: hostile names and values are a 4xx that changes nothing', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { credentials: { maxValueBytes: 1000 }, api: { refusalLimits: { burst: 1_000_000, perMinute: 1_000_000 } } });
  const admin = await operatorCredentials(gw, 'admin', 'hostile');
  t.equal((await api(gw, 'PUT', '/credentials/kept', { ...admin, body: { value: SECRET, ...terms } })).status, 200);
  const before = JSON.stringify(await gw.credentials.list());
  const auditBefore = (await gw.ca.inventory.auditEntries()).length;
  for (const bad of ['../etc', '.hidden', 'a/b', 'a..b', 'UPPER', 'A'.repeat(150), '<script>', '%00', 'x y', 'kept\n']) {
    const path = `/credentials/${encodeURIComponent(bad)}`;
    t.equal((await api(gw, 'PUT', path, { ...admin, body: { value: SECRET, ...terms } })).status, 400, `set ${JSON.stringify(bad)}: 400`);
    t.equal((await api(gw, 'POST', `${path}/rotate`, { ...admin, body: { value: SECRET } })).status, 400, `rotate ${JSON.stringify(bad)}: 400`);
    t.equal((await api(gw, 'DELETE', path, admin)).status, 400, `delete ${JSON.stringify(bad)}: 400`);
    t.equal((await api(gw, 'GET', path, admin)).status, 400, `read ${JSON.stringify(bad)}: 400`);
  }
  const bodies: [string, unknown, number][] = [
    ['a value over the API body limit', { value: 'x'.repeat(70_000), ...terms }, 413],
    ['an empty value', { value: '', ...terms }, 400],
    ['a value as a number', { value: 42, ...terms }, 400],
    ['no tags', { value: SECRET, ...terms, tags: [] }, 400],
    ['a hostile tag', { value: SECRET, ...terms, tags: ['=cmd'] }, 400],
    ['a score above 1', { value: SECRET, ...terms, minScore: 1.5 }, 400],
    ['a Linux user with path characters', { value: SECRET, ...terms, linuxUser: '../root' }, 400],
    ['a Linux user with capitals', { value: SECRET, ...terms, linuxUser: 'Root' }, 400],
    ['a negative TTL', { value: SECRET, ...terms, ttlSeconds: -1 }, 400],
    ['an unknown field', { value: SECRET, ...terms, sealed: 'x' }, 400],
  ];
  for (const [what, body, status] of bodies) {
    t.equal((await api(gw, 'PUT', '/credentials/kept', { ...admin, body })).status, status, `${what}: ${status}`);
  }
  t.equal((await api(gw, 'POST', '/credentials/kept/rotate', { ...admin, body: { value: 'x'.repeat(70_000) } })).status, 413, 'rotate with a value over the body limit: 413');
  const auditValidated = (await gw.ca.inventory.auditEntries()).length;
  t.equal(auditValidated, auditBefore, 'requests refused by validation reach no service (no audit entry)');
  // Within the API's limits but over the gateway's configured bound: the service refuses it (and audits the refusal).
  const big = await api(gw, 'PUT', '/credentials/kept', { ...admin, body: { value: 'y'.repeat(2000), ...terms } });
  t.equal(big.status, 413, `a value over credentials.maxValueBytes: 413 (${big.json?.message})`);
  t.match(big.json.message, /at most 1000/);
  const bigRotate = await api(gw, 'POST', '/credentials/kept/rotate', { ...admin, body: { value: 'é'.repeat(600) } });
  t.equal(bigRotate.status, 413, 'multi-byte characters count as bytes: 413');
  t.equal(JSON.stringify(await gw.credentials.list()), before, 'the credential is unchanged');
});
