/**
 * Browser sign-in end to end: `wott operator login` (another process) prints a link; opening it shows a button whose
 * POST sets the session cookie (HttpOnly, Secure, SameSite=Strict, expiring); reads work with the cookie alone, changes need the CSRF
 * token; a reused link, an expired session and an ended session are refused; sessions are listed and ended by the
 * CLI and by admins over the API.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { API_PREFIX, SESSION_COOKIE } from '../../protocol/index.js';
import { CLI, requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway } from '../mqtt-helpers.js';
import { api, cookieFrom, FORM_POST, operatorCredentials } from './helpers.js';

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('login link from the CLI → cookie → CSRF; the link works once', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  await enroll(gw, tempDir(t), 'session-dev');
  const made = await cli(['operator', 'login', '--role', 'operator', '--name', 'carol', '--data', gw.dir, '--url', `https://localhost:${gw.httpsPort}`]);
  t.equal(made.code, 0, made.stderr);
  const link = made.stdout.trim();
  t.match(link, new RegExp(`^https://localhost:${gw.httpsPort}${API_PREFIX}/login/[A-Za-z0-9_-]{43}$`), 'one line: the link');
  const path = new URL(link).pathname;

  // Opening the link shows a button and uses nothing: a link preview or mail scanner fetching it burns nothing.
  for (let i = 0; i < 2; i++) {
    const page = await api(gw, 'GET', path);
    t.equal(page.status, 200, 'the link opens a page');
    t.match(page.headers['content-type'], /^text\/html/);
    t.match(page.headers['content-security-policy'], /default-src 'none'/);
    t.match(page.body, new RegExp(`<form method="post" action="${path}">`), 'with a Sign in form');
    t.notOk(page.headers['set-cookie'], 'and no cookie');
  }
  const crossSite = await api(gw, 'POST', path, { ...FORM_POST, headers: { ...FORM_POST.headers, 'Sec-Fetch-Site': 'cross-site' } });
  t.equal(crossSite.status, 403, 'another site cannot post the sign-in (login CSRF)');
  const opened = await api(gw, 'POST', path, FORM_POST);
  t.equal(opened.status, 303, 'the button signs in and redirects');
  t.equal(opened.headers.location, '/', 'to the dashboard');
  t.equal(opened.headers['referrer-policy'], 'no-referrer', 'the link does not leak through Referer');
  const setCookie = ([] as string[]).concat(opened.headers['set-cookie'] ?? [])[0]!;
  t.match(setCookie, new RegExp(`^${SESSION_COOKIE}=`));
  for (const attr of [/; HttpOnly/i, /; Secure/i, /; SameSite=Strict/i, /; Path=\//, /; Max-Age=\d+/]) t.match(setCookie, attr, `cookie ${attr}`);
  const cookie = cookieFrom(opened);

  const who = await api(gw, 'GET', '/whoami', { cookie });
  t.match(who.json, { identity: 'session:operator:carol', via: 'session', role: 'operator', name: 'carol', csrfToken: /^[A-Za-z0-9_-]{43}$/ });
  t.equal((await api(gw, 'GET', '/devices', { cookie })).status, 200, 'reads need only the cookie');
  const noCsrf = await api(gw, 'POST', '/devices/session-dev/quarantine', { cookie });
  t.equal(noCsrf.status, 403, 'a change without the CSRF token is refused');
  t.match(noCsrf.json.message, /CSRF/);
  t.equal((await gw.ca.inventory.device('session-dev'))?.state, 'active', 'and changed nothing');
  const withCsrf = await api(gw, 'POST', '/devices/session-dev/quarantine', { cookie, csrf: who.json.csrfToken });
  t.equal(withCsrf.status, 200, 'with the token it goes through');
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { actor: 'session:operator:carol', action: 'device.quarantine', outcome: 'ok' });

  const reused = await api(gw, 'POST', path, FORM_POST);
  t.equal(reused.status, 401, 'the link does not work twice');
  t.notOk(reused.headers['set-cookie'], 'and sets no cookie');
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { action: 'session.login', outcome: 'refused', detail: 'login link used' });

  // Listed and ended from the CLI (another process): the cookie stops working at once.
  const listed = await cli(['operator', 'sessions', '--json', '--data', gw.dir]);
  const sessions = JSON.parse(listed.stdout) as Array<{ id: string; name: string; role: string }>;
  t.match(sessions, [{ name: 'carol', role: 'operator' }]);
  t.notOk(listed.stdout.includes(cookie.split('.')[1]!), 'the listing holds no secret');
  const ended = await cli(['operator', 'logout', sessions[0]!.id, '--data', gw.dir]);
  t.equal(ended.code, 0, ended.stderr);
  const after = await api(gw, 'GET', '/whoami', { cookie });
  t.equal(after.status, 401, 'an ended session is refused');
  t.match(after.json.message, /ended/);
});

t.test('sessions expire; admins list and end them over the API', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { sessionTtlMs: 1500 } });
  const admin = (await operatorCredentials(gw, 'admin', 'root-admin'));
  const made = await cli(['operator', 'login', '--role', 'viewer', '--name', 'dave', '--data', gw.dir]);
  const path = new URL(made.stdout.trim()).pathname;
  const cookie = cookieFrom(await api(gw, 'POST', path, FORM_POST));
  t.equal((await api(gw, 'GET', '/whoami', { cookie })).status, 200, 'fresh session works');
  const list = await api(gw, 'GET', '/sessions', admin);
  t.match(list.json.items, [{ role: 'viewer', name: 'dave', source: '127.0.0.1' }]);
  t.notOk(JSON.stringify(list.json).includes(cookie.split('.')[1]!), 'no secret in the list');
  await new Promise((r) => setTimeout(r, 1700));
  const expired = await api(gw, 'GET', '/whoami', { cookie });
  t.equal(expired.status, 401, 'an expired session is refused');
  t.match(expired.json.message, /expired/);
  t.same((await api(gw, 'GET', '/sessions', admin)).json.items, [], 'and no longer listed');
  const gone = await api(gw, 'DELETE', '/sessions/AAAAAAAAAAAAAAAAAAAAAA', admin);
  t.equal(gone.status, 404, 'ending an unknown session: 404');
  // An expired link: made with a 10-minute lifetime, so check the refusal through a garbage secret of the right shape.
  const bogus = await api(gw, 'POST', `/login/${'A'.repeat(43)}`, FORM_POST);
  t.equal(bogus.status, 401, 'an unknown link is refused like a used one');
});

t.test('wott operator create: key 0600, certificate, chain, PKCS#12 that opens with the printed password', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  t.equal((await cli(['ca', 'init', '--data', `${dir}/data`])).code, 0, 'a CA first: operator create does not make one');
  const made = await cli(['operator', 'create', 'erin', '--role', 'viewer', '--out', `${dir}/ops`, '--data', `${dir}/data`]);
  t.equal(made.code, 0, made.stderr);
  const password = /PKCS#12 password \(shown once, not stored\): (\S+)/.exec(made.stdout)?.[1];
  t.ok(password, 'the password is printed once');
  const { statSync, readFileSync } = await import('node:fs');
  t.equal(statSync(`${dir}/ops/erin.key`).mode & 0o777, 0o600, 'key 0600');
  t.equal(statSync(`${dir}/ops/erin.p12`).mode & 0o777, 0o600, 'PKCS#12 0600');
  const { execFileSync } = await import('node:child_process');
  const content = execFileSync('openssl', ['pkcs12', '-in', `${dir}/ops/erin.p12`, '-passin', `pass:${password}`, '-nodes'], { encoding: 'utf8' });
  t.match(content, /subject=.*CN ?= ?operator:viewer:erin/, 'the PKCS#12 holds the operator certificate');
  t.match(content, /PRIVATE KEY/, 'and its key');
  t.throws(() => execFileSync('openssl', ['pkcs12', '-in', `${dir}/ops/erin.p12`, '-passin', 'pass:wrong-password', '-nodes'], { stdio: 'pipe' }), 'a wrong password does not open it');
  t.notOk(readFileSync(`${dir}/data/inventory.db`).includes(Buffer.from(password!)), 'the password is not stored');
  const piped = await new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'operator', 'create', 'frank', '--role', 'admin', '--out', `${dir}/ops2`, '--data', `${dir}/data`, '--password-stdin']);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end('correct horse battery\n');
  });
  t.equal(piped.code, 0, piped.stderr);
  t.notMatch(piped.stdout, /password/, 'a password from stdin is not printed');
  execFileSync('openssl', ['pkcs12', '-in', `${dir}/ops2/frank.p12`, '-passin', 'pass:correct horse battery', '-noout'], { stdio: 'pipe' });
  t.pass('the PKCS#12 opens with the password from stdin');
});
