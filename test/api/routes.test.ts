/**
 * The fleet routes with real certificates over real TLS: what each answers, that each mutating route writes its
 * audit entry with the caller, lists (filters, sort, cursor, CSV), the enrollment commands a token comes with (run
 * with curl and openssl), hostile input (a clear 4xx, nothing changed), and EST / CRL untouched by the API.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROUTES } from '../../api/index.js';
import { REVOCATION_REASONS } from '../../ca/index.js';
import { API_REVOCATION_REASONS, EST_PATHS } from '../../protocol/index.js';
import { claimEnroll, getBytes } from '../est-helpers.js';
import { inventorySnapshot, requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';
import { spawn } from 'node:child_process';

function run(cmd: string, args: string[], timeoutMs: number, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
import { api, operatorCredentials, sessionFor } from './helpers.js';

t.test('the revocation reasons of the API are the CA\'s', async (t) => {
  t.same([...API_REVOCATION_REASONS], [...REVOCATION_REASONS]);
});

t.test('each mutating route does its work and writes the audit entry with the caller', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { claim: true });
  const dir = tempDir(t);
  await enroll(gw, dir, 'audit-a');
  const { creds } = await claimEnroll(gw, dir, 'audit-unclaimed');
  t.ok(creds, 'a device enrolled unclaimed');
  t.ok((await claimEnroll(gw, dir, 'audit-stranger')).creds, 'another one, to reject');
  const admin = (await operatorCredentials(gw, 'admin', 'alice'));
  const operator = (await operatorCredentials(gw, 'operator', 'olga'));
  const session = await sessionFor(gw, 'operator', 'sam');
  const victim = await sessionFor(gw, 'viewer', 'vic');
  const adminSession = await sessionFor(gw, 'admin', 'ada');
  const seen = new Set<string>();
  const lastAudit = async () => (await gw.ca.inventory.auditEntries()).at(-1)!;
  const check = async (route: string, method: string, path: string, call: Parameters<typeof api>[3], actor: string, action: string, expectState?: string) => {
    const reply = await api(gw, method, path, call);
    t.equal(reply.status, 200, `${route}: 200 (${reply.body.slice(0, 200)})`);
    if (expectState) t.equal(reply.json.state ?? reply.json.device?.state, expectState, `${route}: device is ${expectState}`);
    t.match(await lastAudit(), { actor, action, outcome: 'ok' }, `${route}: audit entry by ${actor}`);
    seen.add(route);
    return reply;
  };
  await check('POST /devices/{id}/quarantine', 'POST', '/devices/audit-a/quarantine', operator, 'cert:operator:olga', 'device.quarantine', 'quarantined');
  await check('POST /devices/{id}/release', 'POST', '/devices/audit-a/release', { cookie: session.cookie, csrf: session.csrf }, 'session:operator:sam', 'device.release', 'active');
  await check('POST /devices/{id}/claim', 'POST', '/devices/audit-unclaimed/claim', { ...operator, body: {} }, 'cert:operator:olga', 'device.claim', 'active');
  const rejected = await check('POST /devices/{id}/reject', 'POST', '/devices/audit-stranger/reject', { ...operator, body: {} }, 'cert:operator:olga', 'device.reject', 'revoked');
  t.equal(rejected.json.revoked.length, 1, 'its claim-mode certificate revoked');
  const tagged = await check('PUT /devices/{id}/tags', 'PUT', '/devices/audit-a/tags', { ...operator, body: { tags: ['kitchen', 'floor=2'] } }, 'cert:operator:olga', 'device.tag');
  t.same(tagged.json.tags, ['kitchen', 'floor=2'], 'tags set');
  const changed = await check('POST /devices/{id}/tags', 'POST', '/devices/audit-a/tags', { ...operator, body: { add: ['cellar'], remove: ['kitchen'] } }, 'cert:operator:olga', 'device.tag');
  t.same(changed.json.tags, ['floor=2', 'cellar'], 'tags changed, the others kept');
  await check('POST /devices/{id}/actions/{action}/snooze', 'POST', '/devices/audit-a/actions/firewall/snooze', { ...operator, body: { duration: '24h' } }, 'cert:operator:olga', 'action.snooze');
  await check('POST /devices/{id}/actions/{action}/ignore', 'POST', '/devices/audit-a/actions/firewall/ignore', { cookie: session.cookie, csrf: session.csrf, body: {} }, 'session:operator:sam', 'action.ignore');
  await check('DELETE /devices/{id}/actions/{action}', 'DELETE', '/devices/audit-a/actions/firewall', operator, 'cert:operator:olga', 'action.unignore');
  const bulk = await check('POST /devices/actions', 'POST', '/devices/actions', { ...operator, body: { ids: ['audit-a'], action: 'tag', tags: ['bulk'] } }, 'cert:operator:olga', 'device.tag');
  t.match(bulk.json, { succeeded: 1, failed: 0 }, 'bulk: one device tagged');
  const token = await check('POST /tokens', 'POST', '/tokens', { ...operator, body: { device: 'audit-new', ttlSeconds: 600 } }, 'cert:operator:olga', 'token.create');
  t.match(token.json, { device: 'audit-new', token: /^[A-Za-z0-9_-]{20,}$/, rootFingerprint: gw.ca.material.root.fingerprint256 });
  t.notOk(JSON.stringify(gw.ca.inventory.auditEntries()).includes(token.json.token), 'the token is not in the audit log');
  const revoked = await check('POST /devices/{id}/revoke', 'POST', '/devices/audit-a/revoke', { ...admin, body: { reason: 'keyCompromise' } }, 'cert:admin:alice', 'certificate.revoke', 'revoked');
  t.equal(revoked.json.revoked.length, 1, 'its certificate revoked');
  const setCred = await check('PUT /credentials/{name}', 'PUT', '/credentials/audit-key', { ...admin, body: { value: 'audit-secret-value', tags: ['kitchen'], minScore: 0.5 } }, 'cert:admin:alice', 'credential.set');
  t.match(setCred.json, { name: 'audit-key', version: 1 }, 'credential set');
  await check('POST /credentials/{name}/rotate', 'POST', '/credentials/audit-key/rotate', { cookie: adminSession.cookie, csrf: adminSession.csrf, body: { value: 'audit-secret-rotated' } }, 'session:admin:ada', 'credential.rotate');
  await check('DELETE /credentials/{name}', 'DELETE', '/credentials/audit-key', admin, 'cert:admin:alice', 'credential.remove');
  t.notOk(JSON.stringify(await gw.ca.inventory.auditEntries()).includes('audit-secret'), 'no credential value in the audit log');
  const leaver = await operatorCredentials(gw, 'viewer', 'leaver');
  const opRevoked = await check('POST /operators/{serial}/revoke', 'POST', `/operators/${leaver.serial}/revoke`, { ...admin, body: { reason: 'affiliationChanged' } }, 'cert:admin:alice', 'operator.revoke');
  t.match(opRevoked.json, { name: 'leaver', role: 'viewer', status: 'revoked', revocationReason: 'affiliationChanged' }, 'the operator certificate revoked');
  t.equal((await api(gw, 'GET', '/whoami', leaver)).status, 401, 'and refused at once');
  await check('DELETE /sessions/{id}', 'DELETE', `/sessions/${victim.id}`, admin, 'cert:admin:alice', 'session.end');
  t.equal((await api(gw, 'GET', '/whoami', { cookie: victim.cookie })).status, 401, 'the ended session is refused at once');
  await check('POST /logout', 'POST', '/logout', { cookie: session.cookie, csrf: session.csrf }, 'session:operator:sam', 'session.logout');
  t.equal((await api(gw, 'GET', '/whoami', { cookie: session.cookie })).status, 401, 'a logged-out session is refused');

  // A refusal by the fleet (wrong state) is recorded too, as refused.
  const again = await api(gw, 'POST', '/devices/audit-unclaimed/claim', operator);
  t.equal(again.status, 409, 'claiming an active device: 409');
  t.match(await lastAudit(), { actor: 'cert:operator:olga', action: 'device.claim', outcome: 'refused' });
  const missing = await api(gw, 'POST', '/devices/no-such/quarantine', operator);
  t.equal(missing.status, 404, 'an unknown device: 404');

  for (const r of ROUTES.filter((r) => r.audited)) t.ok(seen.has(`${r.method} ${r.path}`), `${r.method} ${r.path} was checked for its audit entry`);
  const log = await api(gw, 'GET', '/audit?limit=3', admin);
  t.equal(log.json.items.length, 3, 'audit page of 3');
  t.ok(log.json.items[0].seq > log.json.items[1].seq, 'newest first');
  const next = await api(gw, 'GET', `/audit?limit=3&cursor=${log.json.nextCursor}`, admin);
  t.ok(next.json.items[0].seq < log.json.items[2].seq, 'the next page continues below');
  const csv = await api(gw, 'GET', '/audit?format=csv&device=audit-a', admin);
  t.match(csv.headers['content-type'], /^text\/csv/);
  t.match(csv.body, /^"seq","time","actor","action","device","target","outcome","detail"\r\n/);
  const detail = await api(gw, 'GET', '/devices/audit-a', operator);
  t.equal(detail.json.certificates.length, 1);
  t.ok(detail.json.audit.some((e: { action: string }) => e.action === 'certificate.revoke'), 'the device shows its audit trail');
  const summary = await api(gw, 'GET', '/fleet/summary', operator);
  t.match(summary.json, { devices: { total: 3, byState: { revoked: 2, active: 1, quarantined: 0, unclaimed: 0 } } });
});

t.test('device lists: filter, free text, sort, cursor pages, CSV', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  for (const id of ['list-a', 'list-b', 'list-c', 'list-d', 'other-e']) await enroll(gw, dir, id);
  const op = (await operatorCredentials(gw, 'operator', 'lister'));
  await api(gw, 'POST', '/devices/list-b/quarantine', op);
  await api(gw, 'PUT', '/devices/list-c/tags', { ...op, body: { tags: ['=cmd', 'lab'] } }).then((r) => t.equal(r.status, 400, 'a tag a spreadsheet would run is refused'));
  await api(gw, 'PUT', '/devices/list-c/tags', { ...op, body: { tags: ['lab'] } });
  const ids = async (q: string) => (await api(gw, 'GET', `/devices${q}`, op)).json.items.map((d: { id: string }) => d.id);
  t.same(await ids(''), ['list-a', 'list-b', 'list-c', 'list-d', 'other-e']);
  t.same(await ids('?state=quarantined'), ['list-b']);
  t.same(await ids('?tag=lab'), ['list-c']);
  t.same(await ids('?q=other'), ['other-e']);
  t.same(await ids('?q=LAB'), ['list-c'], 'free text matches tags, case-insensitively');
  t.same(await ids('?sort=id&order=desc'), ['other-e', 'list-d', 'list-c', 'list-b', 'list-a']);
  t.same((await ids('?sort=state'))[4], 'list-b', 'sorted by state: quarantined after active');
  const pages: string[] = [];
  let cursor = '';
  for (let i = 0; i < 5; i++) {
    const page = await api(gw, 'GET', `/devices?limit=2&sort=id&order=desc${cursor}`, op);
    pages.push(...page.json.items.map((d: { id: string }) => d.id));
    if (!page.json.nextCursor) break;
    cursor = `&cursor=${page.json.nextCursor}`;
  }
  t.same(pages, ['other-e', 'list-d', 'list-c', 'list-b', 'list-a'], 'cursor pages cover the list once, in order');
  const csv = await api(gw, 'GET', '/devices?format=csv&state=active', op);
  t.match(csv.headers['content-type'], /^text\/csv/);
  t.match(csv.headers['content-disposition'], /attachment; filename="devices.csv"/);
  const lines = csv.body.trim().split('\r\n');
  t.equal(lines[0], '"id","state","tags","createdAt","updatedAt","certificateExpiry","score","worstFactor","lastReport","connectedSince","remoteAddress","critical","high","medium","low"');
  t.equal(lines.length, 5, 'header and four active devices');
  t.match(lines[2], /^"list-c","active","lab",/);
});

t.test('hostile input gets a clear 4xx and changes nothing', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  await enroll(gw, dir, 'hostile-a');
  const admin = (await operatorCredentials(gw, 'admin', 'hostile-admin'));
  const before = (await inventorySnapshot(gw.dir));
  const auditBefore = (await gw.ca.inventory.auditEntries()).length;
  const cases: Array<[string, string, string, Parameters<typeof api>[3], number, RegExp]> = [
    ['malformed JSON', 'PUT', '/devices/hostile-a/tags', { body: '{"tags": [', headers: {} }, 400, /malformed JSON/],
    ['JSON that is not an object', 'PUT', '/devices/hostile-a/tags', { body: '"tags"' }, 400, /invalid body/],
    ['an unknown field', 'PUT', '/devices/hostile-a/tags', { body: { tags: [], admin: true } }, 400, /admin/],
    ['an unknown field on an action', 'POST', '/devices/hostile-a/quarantine', { body: { force: true } }, 400, /force/],
    ['a prototype-pollution body', 'PUT', '/devices/hostile-a/tags', { body: '{"tags":[],"__proto__":{"role":"admin"}}' }, 400, /./],
    ['a huge body', 'PUT', '/devices/hostile-a/tags', { body: JSON.stringify({ tags: ['a'.repeat(70_000)] }) }, 413, /too large/],
    ['too many tags', 'PUT', '/devices/hostile-a/tags', { body: { tags: Array.from({ length: 33 }, (_, i) => `t${i}`) } }, 400, /tags/],
    ['a wrong Content-Type', 'PUT', '/devices/hostile-a/tags', { body: 'tags=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }, 415, /application\/json/],
    ['a revocation reason that is not one', 'POST', '/devices/hostile-a/revoke', { body: { reason: "x'; DROP TABLE devices;--" } }, 400, /reason/],
    ['SQL in a device id', 'POST', `/devices/${encodeURIComponent("a' OR '1'='1")}/quarantine`, {}, 400, /device id/],
    ['a path in a device id', 'GET', `/devices/${encodeURIComponent('../../etc/passwd')}`, {}, 400, /device id/],
    ['an upper-case device id', 'GET', '/devices/Hostile-A', {}, 400, /device id/],
    ['a very long device id', 'GET', `/devices/${'a'.repeat(150)}`, {}, 400, /device id/],
    ['a bad cursor', 'GET', '/devices?cursor=!!!', {}, 400, /cursor/],
    ['a forged cursor', 'GET', `/devices?cursor=${Buffer.from('{"a":1}').toString('base64url')}`, {}, 400, /cursor/],
    ['a cursor of garbage', 'GET', '/devices?cursor=AAAA', {}, 400, /cursor/],
    ['an unknown query parameter', 'GET', '/devices?admin=1', {}, 400, /admin/],
    ['a repeated query parameter', 'GET', '/devices?state=active&state=revoked', {}, 400, /state/],
    ['SQL in a filter', 'GET', `/devices?state=${encodeURIComponent("active' OR 1=1--")}`, {}, 400, /state/],
    ['a limit out of range', 'GET', '/devices?limit=100000', {}, 400, /limit/],
    ['a negative limit', 'GET', '/devices?limit=-1', {}, 400, /limit/],
    ['a control character in free text', 'GET', '/devices?q=%00%0a', {}, 400, /q/],
    ['a bad audit cursor', 'GET', '/audit?cursor=1;DROP', {}, 400, /cursor/],
    ['a token for an invalid device', 'POST', '/tokens', { body: { device: '<script>' } }, 400, /device/],
    ['a token lifetime too long', 'POST', '/tokens', { body: { device: 'ok-dev', ttlSeconds: 10 ** 9 } }, 400, /ttlSeconds/],
    ['an unmatched API path', 'GET', '/nope', {}, 404, /no such API route/],
    ['an unmatched method', 'PATCH', '/devices', {}, 404, /no such API route/],
  ];
  for (const [what, method, path, call, status, message] of cases) {
    const reply = await api(gw, method, path, { ...admin, ...call });
    t.equal(reply.status, status, `${what}: ${status}`);
    t.match(reply.json?.message ?? reply.body, message, `${what}: says why (${(reply.json?.message ?? reply.body).slice(0, 120)})`);
  }
  // A list that filters on hostile free text simply matches nothing.
  const sneaky = await api(gw, 'GET', `/devices?q=${encodeURIComponent("' OR 1=1 --")}`, admin);
  t.same([sneaky.status, sneaky.json.items], [200, []], 'free text with SQL in it is only text');
  t.same((await inventorySnapshot(gw.dir)), before, 'nothing changed');
  t.equal((await gw.ca.inventory.auditEntries()).length, auditBefore, 'no audit entry: nothing reached the fleet');
  const unauth = await api(gw, 'GET', '/nope');
  t.equal(unauth.status, 404, 'unmatched paths are 404 for anyone');
});

t.test('a token comes with curl + openssl commands that enroll, pinning the root', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireCommand(t, 'curl', 'curl')) return;
  const gw = await testGateway(t, { hosts: ['localhost'] });
  const op = (await operatorCredentials(gw, 'operator', 'enroller'));
  const reply = await api(gw, 'POST', '/tokens', { ...op, body: { device: 'curl-dev' } });
  t.equal(reply.status, 200);
  t.equal(reply.headers['cache-control'], 'no-store', 'the token is not cached');
  t.match(reply.json.agentCommand, new RegExp(`^wott agent enroll --server 'https://localhost:${gw.httpsPort}' --device curl-dev --token ${reply.json.token} --ca-fingerprint ${reply.json.rootFingerprint}$`));
  const dir = tempDir(t);
  writeFileSync(join(dir, 'enroll.sh'), reply.json.curlCommands + '\n');
  // Asynchronously: the gateway answering curl runs in this very process.
  const ran = await run('sh', ['enroll.sh'].map((a) => join(dir, a)), 30_000, dir);
  t.equal(ran.code, 0, `the commands ran (${ran.stderr.slice(0, 300)})`);
  const subject = execFileSync('openssl', ['x509', '-in', join(dir, 'curl-dev.crt'), '-noout', '-subject'], { encoding: 'utf8' });
  t.match(subject, /CN ?= ?curl-dev/, 'the commands enrolled the device');
  t.equal((await gw.ca.inventory.device('curl-dev'))?.state, 'active');
  // The pin holds: the same commands against a root with another fingerprint stop before enrolling.
  const tampered = reply.json.curlCommands.replace(reply.json.rootFingerprint, 'AA:' + reply.json.rootFingerprint.slice(3));
  const other = tempDir(t);
  writeFileSync(join(other, 'enroll.sh'), tampered + '\n');
  const stopped = await run('sh', [join(other, 'enroll.sh')], 30_000, other);
  t.not(stopped.code, 0, 'a fingerprint mismatch stops the script');
  t.match(stopped.stderr, /root fingerprint mismatch/);
  // A refused enrollment shows the server's reason, not a base64 or ASN.1 error.
  const spent = tempDir(t);
  writeFileSync(join(spent, 'enroll.sh'), reply.json.curlCommands + '\n');
  const refused = await run('sh', [join(spent, 'enroll.sh')], 30_000, spent);
  t.not(refused.code, 0, 'the used token is refused');
  t.match(refused.stderr, /enrollment token has already been used/, "the server's reason is shown");
  t.notMatch(refused.stderr, /base64|asn1|ASN1/i);
});

t.test('EST, the CRL and metrics are untouched by the API on the same port', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const op = (await operatorCredentials(gw, 'admin', 'est-check'));
  const cacerts = await api(gw, 'GET', EST_PATHS.cacerts, op);
  t.equal(cacerts.status, 200);
  t.match(cacerts.headers['content-type'], /^application\/pkcs7-mime/);
  const unknown = await api(gw, 'GET', '/.well-known/est/nope');
  t.same([unknown.status, unknown.headers['content-type'], unknown.body], [404, 'text/plain; charset=utf-8', 'no such endpoint: /.well-known/est/nope\n'], 'EST keeps its own plain-text 404');
  const root = await api(gw, 'GET', '/');
  t.equal(root.status, 200, '/ is the dashboard (dashboard/), not the API');
  t.match(root.headers['content-type'], /^text\/html/);
  const crl = await getBytes(gw, '/crl');
  t.equal(crl.status, 200, 'the CRL is served');
  const metrics = await api(gw, 'GET', '/metrics', op);
  t.equal(metrics.status, 401, 'HTTPS /metrics stays for service certificates only');
});
