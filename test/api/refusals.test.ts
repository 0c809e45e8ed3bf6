/**
 * Every route of the route table refuses, by performing each refusal: no credentials, a device certificate, a
 * certificate from another CA, a revoked operator certificate, an expired session, a role below the route's, a
 * session without (or with a wrong) CSRF token. Generated from ROUTES, so a new route is covered by being added;
 * a route without a sample request here fails the test. Nothing changes in the inventory or the audit log.
 */
import t from 'tap';
import { ROUTES, type RouteSpec } from '../../api/index.js';
import { inventorySnapshot, requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';
import { api, FORM_POST, expiredSession, foreignOperator, operatorCredentials, sessionFor, type ApiCall } from './helpers.js';
import { OPERATOR_ROLES, roleAtLeast } from '../../protocol/index.js';

const DEVICE = 'matrix-dev';
const CREDENTIAL = 'matrix-cred';
/** The matrices open hundreds of connections from 127.0.0.1 in seconds: over the gateway's per-source connect rate. */
const MANY_CONNECTIONS = { connectRate: { max: 1_000_000, windowMs: 10_000, banMs: 60_000 } };
/** A valid request body per route (undefined: none). Add one for each new route. */
const SAMPLES: Record<string, unknown> = {
  'GET /openapi.json': undefined,
  'GET /whoami': undefined,
  'GET /devices': undefined,
  'GET /devices/{id}': undefined,
  'POST /devices/{id}/quarantine': {},
  'POST /devices/{id}/release': {},
  'POST /devices/{id}/claim': {},
  'POST /devices/{id}/reject': {},
  'POST /devices/{id}/revoke': { reason: 'keyCompromise' },
  'PUT /devices/{id}/tags': { tags: ['x'] },
  'POST /devices/{id}/tags': { add: ['x'], remove: ['y'] },
  'POST /tokens': { device: 'matrix-new', ttlSeconds: 600 },
  'GET /audit': undefined,
  'GET /fleet/summary': undefined,
  'GET /sessions': undefined,
  'DELETE /sessions/{id}': undefined,
  'POST /logout': {},
  'GET /operators': undefined,
  'POST /operators/{serial}/revoke': { reason: 'keyCompromise' },
  'GET /actions': undefined,
  'POST /devices/{id}/actions/{action}/snooze': { duration: '24h' },
  'POST /devices/{id}/actions/{action}/ignore': {},
  'DELETE /devices/{id}/actions/{action}': undefined,
  'GET /vulnerabilities': undefined,
  'GET /policies': undefined,
  'POST /policies/explain': { device: DEVICE, topic: 'weather/x', action: 'publish' },
  'GET /trust/stream': undefined,
  'GET /trust/{id}': undefined,
  'POST /trust/check': { certificate: 'not a certificate', minScore: 0.5 },
  'POST /devices/actions': { ids: [DEVICE], action: 'quarantine' },
  'GET /events/stream': undefined,
  'GET /credentials': undefined,
  'GET /credentials/{name}': undefined,
  'PUT /credentials/{name}': { value: 'matrix-secret-value', tags: ['matrix'], minScore: 0.5 },
  'POST /credentials/{name}/rotate': { value: 'matrix-secret-value' },
  'DELETE /credentials/{name}': undefined,
  'GET /audit/latest': undefined,
  'POST /audit/runs': {},
  'GET /reports/compliance': undefined,
};

const key = (r: RouteSpec) => `${r.method} ${r.path}`;

t.test('every route refuses every caller it must', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { refusalLimits: { burst: 1_000_000, perMinute: 1_000_000 } }, httpsLimits: MANY_CONNECTIONS });
  const dir = tempDir(t);
  const device = await enroll(gw, dir, DEVICE);
  const foreign = foreignOperator(dir, 'admin', 'mallory');
  const revoked = (await operatorCredentials(gw, 'admin', 'revoked-admin'));
  await gw.ca.revoke({ serial: revoked.serial }, 'keyCompromise');
  const byRole = Object.fromEntries(await Promise.all(OPERATOR_ROLES.map(async (r) => [r, await operatorCredentials(gw, r, `matrix-${r}`)] as const)));
  const sessions = Object.fromEntries(await Promise.all(OPERATOR_ROLES.map(async (r) => [r, await sessionFor(gw, r, `matrix-${r}`)] as const)));
  const victim = await sessionFor(gw, 'viewer', 'victim'); // a session id for DELETE /sessions/{id}
  const expired = await expiredSession(gw, 'admin', 'expired-admin');
  const scoring = await gw.ca.issueService('scoring', 'matrix');
  // The revocation reaches the gateway's in-memory view through its poll.
  await new Promise((r) => setTimeout(r, 300));
  const before = (await inventorySnapshot(gw.dir));
  const auditBefore = (await gw.ca.inventory.auditEntries()).length;

  for (const route of ROUTES) {
    t.ok(key(route) in SAMPLES, `${key(route)} has a sample request in this test`);
    const path = route.path.replace('{id}', route.path.startsWith('/sessions') ? victim.id : DEVICE).replace('{action}', 'firewall').replace('{name}', CREDENTIAL).replace('{serial}', byRole.admin!.serial);
    const body = SAMPLES[key(route)];
    const call = (extra: ApiCall) => api(gw, route.method, path, { ...(body !== undefined ? { body } : {}), ...extra });
    const expect = async (what: string, extra: ApiCall, status: number) => {
      const reply = await call(extra);
      t.equal(reply.status, status, `${key(route)}: ${what} → ${status} (${reply.json?.message ?? reply.body.slice(0, 80)})`);
      t.equal(reply.json?.statusCode, status, `${key(route)}: ${what}: JSON error body`);
    };
    await expect('no credentials', {}, 401);
    await expect('a device certificate', { cert: device.cert, key: device.key }, 403);
    await expect('a certificate from another CA naming an admin', foreign, 401);
    await expect('a revoked operator certificate', { cert: revoked.cert, key: revoked.key }, 401);
    await expect('an expired session', { cookie: expired, csrf: 'x' }, 401);
    await expect('a malformed session cookie', { cookie: 'nope' }, 401);
    await expect('an unknown session', { cookie: `${victim.id}.${'A'.repeat(43)}` }, 401);
    for (const role of OPERATOR_ROLES) {
      if (roleAtLeast(role, route.access.role)) continue;
      await expect(`a ${role} certificate`, byRole[role]!, 403);
      await expect(`a ${role} session`, { cookie: sessions[role]!.cookie, csrf: sessions[role]!.csrf }, 403);
    }
    if (route.method !== 'GET') {
      const admin = sessions.admin!;
      await expect('an admin session without a CSRF token', { cookie: admin.cookie }, 403);
      await expect('an admin session with a wrong CSRF token', { cookie: admin.cookie, csrf: sessions.viewer!.csrf }, 403);
    }
    if (!route.access.services) {
      await expect('a scoring service certificate', { cert: scoring.pem, key: scoring.keyPem }, 403);
    }
  }
  t.same((await inventorySnapshot(gw.dir)), before, 'nothing changed in the inventory');
  t.equal((await gw.ca.inventory.auditEntries()).length, auditBefore, 'no refused call reached the fleet (no audit entry)');
  const still = await api(gw, 'GET', '/whoami', { cookie: victim.cookie });
  t.equal(still.status, 200, 'the session named in DELETE /sessions/{id} was not ended by any refused call');
});

t.test('refused calls are rate-limited per source address and per identity', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { refusalLimits: { burst: 5, perMinute: 1 } } });
  const viewer = (await operatorCredentials(gw, 'viewer', 'pushy'));
  // Per identity: a viewer trying a mutating route from ever new addresses.
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) statuses.push((await api(gw, 'POST', '/tokens', { ...viewer, body: { device: 'x1' }, localAddress: `127.0.1.${10 + i}` })).status);
  // burst 5: five refusals pass, the sixth empties the bucket and starts the block.
  t.same(statuses, [403, 403, 403, 403, 403, 403, 429], 'the identity is limited across addresses');
  const stillReads = await api(gw, 'GET', '/whoami', { ...viewer, localAddress: '127.0.1.50' });
  t.equal(stillReads.status, 429, 'while limited, the identity is refused everything');
  t.match(stillReads.headers['retry-after'], /^\d+$/, 'with Retry-After');
  // Per source: failed logins (guessed links) from one address.
  const guesses: number[] = [];
  for (let i = 0; i < 7; i++) guesses.push((await api(gw, 'POST', `/login/${'x'.repeat(43)}`, { ...FORM_POST, localAddress: '127.0.2.1' })).status);
  t.same(guesses, [401, 401, 401, 401, 401, 401, 429], 'failed logins from one address are limited');
  const other = await api(gw, 'GET', '/whoami', { ...(await operatorCredentials(gw, 'operator', 'calm')), localAddress: '127.0.2.2' });
  t.equal(other.status, 200, 'another address and identity is served meanwhile');
});

t.test('every route: hostile input is a 4xx that changes nothing, and a good reply matches its documented schema', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { refusalLimits: { burst: 1_000_000, perMinute: 1_000_000 } }, httpsLimits: MANY_CONNECTIONS });
  const dir = tempDir(t);
  await enroll(gw, dir, DEVICE);
  const admin = (await operatorCredentials(gw, 'admin', 'hostile-matrix'));
  const victim = await sessionFor(gw, 'viewer', 'hostile-victim');
  // A credential for the credential routes' good reads (GET /credentials/{name}), made before the snapshot.
  await gw.credentials.set(CREDENTIAL, Buffer.from('matrix-secret-value'), { tags: ['matrix'], minScore: 0.5 });
  const before = (await inventorySnapshot(gw.dir));
  const credentialsBefore = JSON.stringify(await gw.credentials.list());
  const auditBefore = (await gw.ca.inventory.auditEntries()).length;
  for (const route of ROUTES) {
    const id = route.path.startsWith('/sessions') ? victim.id : DEVICE;
    const path = route.path.replace('{id}', id).replace('{action}', 'firewall').replace('{name}', CREDENTIAL).replace('{serial}', admin.serial);
    const body = SAMPLES[key(route)];
    const expect = async (what: string, p: string, call: ApiCall, status: number) => {
      const reply = await api(gw, route.method, p, { ...admin, ...call });
      t.equal(reply.status, status, `${key(route)}: ${what} → ${status} (${reply.json?.message?.slice(0, 100) ?? reply.body.slice(0, 80)})`);
    };
    await expect('an unknown query parameter', `${path}?__proto__=1`, body !== undefined ? { body } : {}, 400);
    if (route.path.includes('{id}')) {
      for (const bad of ["x' OR '1'='1", '../../etc', '%00', 'A'.repeat(150), '<script>']) {
        await expect(`a hostile id ${JSON.stringify(bad.slice(0, 20))}`, route.path.replace('{id}', encodeURIComponent(bad)).replace('{action}', 'firewall'), body !== undefined ? { body } : {}, 400);
      }
    }
    if (route.path.includes('{name}')) {
      for (const bad of ['../../etc', '.hidden', '%00', 'a'.repeat(150), '<script>', 'a/b']) {
        await expect(`a hostile credential name ${JSON.stringify(bad.slice(0, 20))}`, route.path.replace('{name}', encodeURIComponent(bad)), body !== undefined ? { body } : {}, 400);
      }
    }
    if (route.path.includes('{serial}')) {
      for (const bad of ["1' OR '1'='1", '../../etc', '%00', 'f'.repeat(150), '<script>', 'xyz']) {
        await expect(`a hostile serial ${JSON.stringify(bad.slice(0, 20))}`, route.path.replace('{serial}', encodeURIComponent(bad)), body !== undefined ? { body } : {}, 400);
      }
    }
    if (route.path.includes('{action}')) {
      for (const bad of ["firewall' OR '1'='1", '.hidden', '%00', 'A'.repeat(150), '<script>', 'cve:x;rm -rf']) {
        await expect(`a hostile action ${JSON.stringify(bad.slice(0, 20))}`, path.replace('/firewall', '/' + encodeURIComponent(bad)), body !== undefined ? { body } : {}, 400);
      }
    }
    if (route.body) {
      await expect('malformed JSON', path, { body: '{"a":' }, 400);
      await expect('an unknown field', path, { body: { ...(typeof body === 'object' ? body : {}), extra: 1 } }, 400);
      await expect('a body over 64 KiB', path, { body: JSON.stringify({ pad: 'x'.repeat(70_000) }) }, 413);
    }
  }
  t.same((await inventorySnapshot(gw.dir)), before, 'nothing changed in the inventory');
  t.equal((await gw.ca.inventory.auditEntries()).length, auditBefore, 'nothing reached the fleet');
  t.equal(JSON.stringify(await gw.credentials.list()), credentialsBefore, 'no credential changed');
  // Good calls (reads only, so the state above stays) answer what the document says.
  // The event streams never end: test/trust/stream.test.ts and test/api/bulk-events.test.ts read them.
  for (const route of ROUTES.filter((r) => r.method === 'GET' && !r.path.endsWith('/stream'))) {
    const reply = await api(gw, 'GET', route.path.replace('{id}', DEVICE).replace('{name}', CREDENTIAL), admin);
    t.equal(reply.status, 200, `${key(route)}: 200`);
    const parsed = route.response.safeParse(reply.json);
    t.ok(parsed.success, `${key(route)}: the reply matches its schema${parsed.success ? '' : `: ${parsed.error.message.slice(0, 300)}`}`);
  }
});
