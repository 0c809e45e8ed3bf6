/**
 * Who may ask about trust: machines with a service certificate (scoring, broker) read the /trust/* routes and
 * nothing of fleet management (device lists, details, actions, audit, sessions...), while every operator role,
 * by certificate or session, reads /trust/* as well. Over real mTLS; refused calls change nothing.
 */
import t from 'tap';
import { ROUTES, TRUST_ROUTES, type RouteSpec } from '../../api/index.js';
import { OPERATOR_ROLES } from '../../protocol/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';
import { openStream, waitFor } from '../trust/helpers.js';
import { api, operatorCredentials, sessionFor, type ApiCall } from './helpers.js';

const key = (r: RouteSpec) => `${r.method} ${r.path}`;

t.test('the routes open to services are the trust routes, whoami and the API document: none of the fleet', async (t) => {
  const open = ROUTES.filter((r) => r.access.services).map(key).sort();
  t.same(open, [...TRUST_ROUTES.map(key), 'GET /openapi.json', 'GET /whoami'].sort());
  for (const r of TRUST_ROUTES) t.equal(r.access.role, 'viewer', `${key(r)}: every operator role may read it`);
});

t.test('service certificates read /trust/* and are refused the fleet; operators read /trust/* too', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { refusalLimits: { burst: 1_000_000, perMinute: 1_000_000 } } });
  const dir = tempDir(t);
  const device = await enroll(gw, dir, 'rd-a');
  const services = await Promise.all((['scoring', 'broker'] as const).map(async (role) => {
    const issued = await gw.ca.issueService(role, `reader-${role}`);
    return [role, { cert: issued.pem, key: issued.keyPem }] as const;
  }));
  const operators = await Promise.all(OPERATOR_ROLES.map(async (role) => [`${role} certificate`, await operatorCredentials(gw, role, `reader-${role}`)] as const));
  const session = await sessionFor(gw, 'viewer', 'reader-session');
  const readers: Array<readonly [string, ApiCall]> = [...services.map(([role, c]) => [`${role} service`, c] as const), ...operators, ['viewer session', { cookie: session.cookie, csrf: session.csrf }]];
  const auditBefore = (await gw.ca.inventory.auditEntries()).length;

  for (const [who, creds] of readers) {
    const one = await api(gw, 'GET', '/trust/rd-a', creds);
    t.equal(one.status, 200, `${who}: GET /trust/{id}`);
    t.equal(one.json.device, 'rd-a');
    const check = await api(gw, 'POST', '/trust/check', { ...creds, body: { certificate: device.cert, minScore: 0.1 } });
    t.equal(check.status, 200, `${who}: POST /trust/check`);
    t.match(check.json, { device: 'rd-a', trusted: true });
    const stream = openStream(gw, creds.cookie ? { cookie: creds.cookie } : { cert: creds.cert!, key: creds.key! });
    t.equal(await stream.status, 200, `${who}: GET /trust/stream`);
    await waitFor(() => stream.events.some((e) => e.event === 'ready'), `${who}: stream ready`);
    stream.kill();
  }

  for (const [role, creds] of services) {
    for (const route of ROUTES.filter((r) => !r.access.services)) {
      const path = route.path.replace('{id}', route.path.startsWith('/sessions') ? session.id : 'rd-a').replace('{action}', 'firewall');
      const reply = await api(gw, route.method, path, { ...creds, ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { body: {} }) });
      t.equal(reply.status, 403, `${role} service: ${key(route)} refused`);
      t.match(reply.json?.message, /service certificates may not call this route/);
    }
  }
  t.equal((await gw.ca.inventory.auditEntries()).length, auditBefore, 'no refused call reached the fleet');
  t.equal((await api(gw, 'GET', '/whoami', { cookie: session.cookie })).status, 200, 'the session named in DELETE /sessions/{id} lives on');
});
