/**
 * The fleet dashboard end to end: a real gateway, devices enrolled through EST, login links from the real CLI, and
 * Debian's chromium on the real pages. Sign-in, the devices table (sorting, filters, search, paging by URL), a deep
 * link and the back button, quarantine and release from the device page (the broker's state, an MQTT subscriber,
 * the audit entry with the session's identity), tags, enrollment commands, the audit log, sessions; a viewer sees no
 * actions and a forged request is refused; without a session nothing about the fleet shows; no request leaves
 * 127.0.0.1; screenshots of each page at laptop and phone widths.
 */
import { request } from 'node:https';
import { EST_PATHS } from '../../protocol/index.js';
import t from 'tap';
import jsQRModule from 'jsqr';
// jsqr is CommonJS with a `default` export: under NodeNext the default import is that module object.
type Decode = (data: Uint8ClampedArray, width: number, height: number) => { data: string } | null;
const jsQR: Decode = ((jsQRModule as unknown as { default?: Decode }).default ?? jsQRModule) as Decode;
import { PNG } from 'pngjs';
import type { Page } from 'puppeteer-core';
import { makeCsr, requireCommand, tempDir } from '../helpers.js';
import { barrier, connect, enroll, inbox, testGateway, waitFor } from '../mqtt-helpers.js';
import { api, sessionFor } from '../api/helpers.js';
import { axeViolations, columnText, launch, loginLink, recordRequests, requireChromium, screenshots, signIn, textOf } from './browser.js';

const DEVICES = ['dev-alpha', 'dev-beta', 'kitchen-1', 'kitchen-2', 'lab-7', 'old-1'];

/** GET over node:https against our CA (paths outside the API too). */
function get(port: number, ca: string, path: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`https://127.0.0.1:${port}${path}`, { ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Enrollment without credentials (claim mode): the device waits, unclaimed. */
function enrollUnclaimed(port: number, ca: string, csr: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`https://127.0.0.1:${port}${EST_PATHS.simpleenroll}`, { method: 'POST', ca, servername: 'localhost', agent: false, headers: { 'Content-Type': 'application/pkcs10' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(csr.toString('base64'));
  });
}

t.test('the dashboard in a real browser on a real gateway', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireChromium(t)) return;
  const gw = await testGateway(t, { claim: true });
  const dir = tempDir(t);
  const creds = new Map<string, Awaited<ReturnType<typeof enroll>>>();
  for (const id of DEVICES) creds.set(id, await enroll(gw, dir, id));
  const base = `https://127.0.0.1:${gw.httpsPort}`;
  // Some variety, through the API as any client would make it.
  const setup = await sessionFor(gw, 'operator', 'setup');
  for (const [id, tags] of [['kitchen-1', ['kitchen']], ['kitchen-2', ['kitchen', 'floor-2']], ['lab-7', ['lab']]] as const) {
    t.equal((await api(gw, 'PUT', `/devices/${id}/tags`, { cookie: setup.cookie, csrf: setup.csrf, body: { tags } })).status, 200);
  }
  t.equal((await api(gw, 'POST', '/devices/old-1/quarantine', { cookie: setup.cookie, csrf: setup.csrf })).status, 200);
  // kitchen-2 renews once (what its agent does over EST): the device page shows the chain.
  const firstCert = Buffer.from(creds.get('kitchen-2')!.cert.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  const renewed = await gw.fleet.renew(firstCert, makeCsr(dir, '/CN=kitchen-2').der);

  // The shell and its assets go to the dashboard; other paths still reach EST's own 404, the API its own.
  const shell = await get(gw.httpsPort, gw.caPem, '/devices/dev-alpha');
  t.equal(shell.status, 200, 'a deep link answers the app');
  t.match(shell.body, /<div id="app">/);
  t.notMatch(shell.body, /dev-alpha/, 'the shell holds no fleet data');
  t.match(shell.headers['content-security-policy'], /default-src 'none'; script-src 'self'; style-src 'self'.*frame-ancestors 'none'/);
  t.equal(shell.headers['referrer-policy'], 'no-referrer');
  t.equal(shell.headers['x-frame-options'], 'DENY');
  t.equal(shell.headers['x-content-type-options'], 'nosniff');
  t.notMatch(shell.body, /<script>|<style>|style=/, 'no inline script or style');
  t.equal((await get(gw.httpsPort, gw.caPem, '/no-such-page')).status, 404, 'other paths are not the app');
  t.equal((await get(gw.httpsPort, gw.caPem, '/api/v1/devices')).status, 401, '/api/ stays the API');
  t.equal((await get(gw.httpsPort, gw.caPem, '/assets/..%2f..%2fpackage.json')).status, 404, 'no way out of the assets');

  const browser = await launch(t);
  const shots = tempDir(t, 'wott-shots-');
  const requested: string[] = [];

  await t.test('without a session: how to get a link, and no fleet data', async (t) => {
    const context = await browser.createBrowserContext();
    recordRequests(context, requested);
    const page = await context.newPage();
    await page.goto(`${base}/devices`);
    await page.waitForSelector('main.signin');
    const text = await textOf(page, 'body');
    t.match(text, 'npx wott operator login --role operator', 'names the exact command');
    for (const id of DEVICES) t.notOk(text.includes(id), `shows nothing of ${id}`);
    t.equal(await page.evaluate(async () => (await fetch('/api/v1/devices')).status), 401, 'and the API refuses the page');
    await screenshots(page, shots, 'signin', () => page.waitForSelector('main.signin'));
    await context.close();
  });

  const operatorContext = await browser.createBrowserContext();
  recordRequests(operatorContext, requested);
  const page = await operatorContext.newPage();
  await page.setViewport({ width: 1366, height: 900 });
  const rows = async (n: number) => {
    await page.waitForFunction((n) => document.querySelectorAll('table.devices tbody tr').length === n && document.querySelector('table.devices')?.getAttribute('aria-busy') === 'false', {}, n);
    return columnText(page);
  };
  /** The rows once they read `expected` (or after 5 s, whatever they read): a click re-sorts after a fetch, and the
   *  table can still show the old order, not yet busy, when `rows` first looks. */
  const rowsReading = async (expected: string[]) => {
    const until = Date.now() + 5000;
    let got = await rows(expected.length);
    while (JSON.stringify(got) !== JSON.stringify(expected) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      got = await rows(expected.length);
    }
    return got;
  };

  await t.test('sign in with a link from the CLI; the devices table lists the enrolled devices', async (t) => {
    await signIn(page, await loginLink(gw.dir, base, 'operator', 'olga'));
    t.equal(new URL(page.url()).pathname, '/', 'the link lands on the dashboard');
    t.match(await textOf(page, 'header.top'), /olga\s+operator/);
    await page.waitForSelector('.bars');
    t.match(await textOf(page, '.bars'), /active\s+5[\s\S]*quarantined\s+1/, 'overview: devices by state');
    await screenshots(page, shots, 'overview', () => page.waitForSelector('.bars'));
    await Promise.all([page.waitForNavigation().catch(() => {}), page.click('nav a[href="/devices"]')]);
    t.same(await rows(DEVICES.length), [...DEVICES].sort(), 'every enrolled device, by id');
    await screenshots(page, shots, 'devices', () => rows(DEVICES.length));
  });

  await t.test('sorting, filtering by state and tag, search; all in the URL', async (t) => {
    await page.click('th[aria-sort] button.sort');
    t.same(await rowsReading([...DEVICES].sort().reverse()), [...DEVICES].sort().reverse(), 'the id header sorts descending');
    t.match(page.url(), /order=desc/);
    t.equal(await page.$eval('th[aria-sort="descending"]', (e) => (e as HTMLElement).innerText.trim()), 'Device ▼');
    await page.select('select[name=state]', 'quarantined');
    t.same(await rows(1), ['old-1'], 'state filter');
    await page.select('select[name=state]', '');
    await rows(DEVICES.length);
    await page.type('input[name=tag]', 'kitchen');
    await page.keyboard.press('Enter');
    t.same(await rows(2), ['kitchen-2', 'kitchen-1'], 'tag filter (still sorted descending)');
    t.match(page.url(), /tag=kitchen/);
    await page.goto(`${base}/devices`);
    await rows(DEVICES.length);
    await page.type('input[type=search]', 'beta');
    t.same(await rows(1), ['dev-beta'], 'search');
    await page.goto(`${base}/devices?limit=50&sort=certificateExpiry`);
    t.equal((await rows(DEVICES.length)).length, DEVICES.length, 'sorted by certificate expiry');
  });

  await t.test('paging follows the API cursor; back returns to the page before', async (t) => {
    const first = await api(gw, 'GET', '/devices?limit=4', { cookie: setup.cookie });
    t.ok(first.json.nextCursor, 'the API pages');
    await page.goto(`${base}/devices?cursor=${first.json.nextCursor}`);
    t.same(await rows(2), [...DEVICES].sort().slice(4), 'the page after the cursor');
    await page.click('nav.pager a:first-child');
    t.same(await rows(DEVICES.length), [...DEVICES].sort(), 'First page');
    await page.goBack();
    t.same(await rows(2), [...DEVICES].sort().slice(4), 'back: the cursor page again');
  });

  await t.test('a deep link works, and back works', async (t) => {
    await page.goto(`${base}/devices`);
    await rows(DEVICES.length);
    await Promise.all([page.waitForFunction(() => location.pathname === '/devices/dev-alpha'), page.click('a[href="/devices/dev-alpha"]')]);
    await page.waitForSelector('.facts');
    t.match(await textOf(page, 'h1'), /dev-alpha\s+active/);
    await page.goBack();
    await page.waitForFunction(() => location.pathname === '/devices');
    t.equal((await rows(DEVICES.length)).length, DEVICES.length, 'back to the table');
    await page.goForward();
    await page.waitForSelector('.facts');
    const fresh = await operatorContext.newPage();
    await fresh.goto(`${base}/devices/kitchen-2`);
    await fresh.waitForSelector('.facts');
    t.match(await textOf(fresh, 'h1'), /kitchen-2/, 'a deep link loaded from nothing');
    t.match(await textOf(fresh, 'main'), /floor-2/);
    const chain = await fresh.$$eval('#s-certificates-and-renewals + .table-wrap tbody tr', (r) => r.map((e) => (e as HTMLElement).innerText.replace(/\s+/g, ' ')));
    t.equal(chain.length, 2, 'both certificates');
    t.match(chain[0], new RegExp(`^${renewed.serial} active`), 'the renewed one first');
    t.match(chain[1], new RegExp(`superseded .* ${renewed.serial}`), 'the first one names its successor');
    await fresh.close();
  });

  await t.test('quarantine from the device page: the broker, a live subscriber, the audit log', async (t) => {
    const alpha = await connect(gw, creds.get('dev-alpha')!);
    const beta = await connect(gw, creds.get('dev-beta')!);
    t.teardown(() => {
      alpha.end(true);
      beta.end(true);
    });
    const got = inbox(alpha);
    await alpha.subscribeAsync('weather/#', { qos: 1 });
    await barrier(beta, got, 'weather/t');
    await page.goto(`${base}/devices/dev-alpha`);
    await page.waitForSelector('section.actions');
    const buttons = await page.$$eval('section.actions button', (b) => b.map((e) => (e as HTMLElement).innerText));
    t.same(buttons, ['Quarantine…', 'Revoke…'].filter((b) => b !== 'Revoke…'), 'an operator: quarantine (revoke is for admins)');
    await screenshots(page, shots, 'device', () => page.waitForSelector('.facts'));
    await page.click('section.actions button');
    await page.waitForSelector('dialog[open]');
    t.match(await textOf(page, 'dialog[open]'), /Quarantine dev-alpha\?[\s\S]*dev-alpha/, 'the confirmation names the device');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog[open]'));
    t.equal(gw.plugin.deviceState('dev-alpha'), 'active', 'cancel changes nothing');
    await page.click('section.actions button');
    await page.waitForSelector('dialog[open]');
    await page.click('dialog[open] button[type=submit]');
    await page.waitForFunction(() => document.querySelector('h1 .badge')?.textContent === 'quarantined');
    await waitFor(() => gw.plugin.deviceState('dev-alpha') === 'quarantined', 'quarantine in the broker');
    t.pass('the broker holds dev-alpha quarantined');
    const before = got.length;
    await beta.publishAsync('weather/t', 'after', { qos: 1 });
    await new Promise((r) => setTimeout(r, 500));
    t.equal(got.slice(before).filter((m) => m.payload === 'after').length, 0, 'its subscription stops receiving at once');
    t.match((await gw.ca.inventory.auditEntries({ device: 'dev-alpha' })).at(-1), { actor: 'session:operator:olga', action: 'device.quarantine', outcome: 'ok' }, 'audited with the session');
    t.match(await textOf(page, 'main'), /session:operator:olga/, 'and the page shows that audit entry');

    await page.click('section.actions button');
    await page.waitForSelector('dialog[open]');
    await page.click('dialog[open] button[type=submit]');
    await page.waitForFunction(() => document.querySelector('h1 .badge')?.textContent === 'active');
    await waitFor(() => gw.plugin.deviceState('dev-alpha') === 'active', 'released in the broker');
    if (!alpha.connected) t.comment('the quarantined device was disconnected; release checked on the broker state only');
    else await barrier(beta, got, 'weather/t');
    t.pass('release restores it');
  });

  await t.test('tags are edited on the device page', async (t) => {
    await page.goto(`${base}/devices/dev-beta`);
    await page.waitForSelector('input[name=tags]');
    await page.type('input[name=tags]', 'roof north');
    await page.click('.tags-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('.tags-form [role=status]')?.textContent === 'Saved.');
    t.same((await gw.ca.inventory.device('dev-beta'))?.tags, ['roof', 'north']);
  });

  await t.test('enroll: a token and the copy-ready commands from the API', async (t) => {
    await page.goto(`${base}/enroll`);
    await page.waitForSelector('input[name=device]');
    await page.type('input[name=device]', 'hall-sensor');
    await page.click('form.enroll button[type=submit]');
    await page.waitForSelector('.copy pre');
    const blocks = await page.$$eval('.copy pre', (p) => p.map((e) => (e as HTMLElement).innerText));
    t.match(blocks[0], /^wott agent enroll --server '.*' --device hall-sensor --token \S+ --ca-fingerprint [0-9A-F:]+$/);
    t.match(blocks[1], /openssl genpkey[\s\S]*simpleenroll/);
    // The QR code, read back by a QR decoder from what the browser drew: the agent command, exactly.
    const qr = await page.waitForSelector('.qr svg');
    const png = PNG.sync.read(Buffer.from(await qr!.screenshot({ type: 'png' })));
    const decoded = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
    t.equal(decoded?.data, blocks[0], 'the QR code holds the agent command');
    await screenshots(page, shots, 'enroll');
  });

  await t.test('the audit log pages', async (t) => {
    await page.goto(`${base}/audit`);
    await page.waitForSelector('table.audit tbody tr');
    const text = await textOf(page, 'table.audit');
    t.match(text, /session:operator:olga\s+device\.quarantine\s+dev-alpha/);
    t.match(text, /token/);
    await screenshots(page, shots, 'audit', () => page.waitForSelector('table.audit'));
    await page.goto(`${base}/audit?device=dev-alpha`);
    await page.waitForFunction(() => document.querySelector('h1')?.textContent?.includes('dev-alpha'));
    await page.waitForSelector('table.audit');
    t.notMatch(await textOf(page, 'table.audit'), /kitchen-1/, 'one device');
  });

  await t.test('a forged change from a session without the CSRF token is refused', async (t) => {
    const status = await page.evaluate(async () => (await fetch('/api/v1/devices/dev-beta/quarantine', { method: 'POST' })).status);
    t.equal(status, 403);
    t.equal(gw.plugin.deviceState('dev-beta'), 'active', 'nothing changed');
  });

  await t.test('a viewer sees no action buttons, and the API refuses the viewer anyway', async (t) => {
    const context = await browser.createBrowserContext();
    recordRequests(context, requested);
    const viewer = await context.newPage();
    await viewer.setViewport({ width: 1366, height: 900 });
    await signIn(viewer, await loginLink(gw.dir, base, 'viewer', 'vic'));
    const nav = await viewer.$$eval('header nav a', (a) => a.map((e) => (e as HTMLElement).innerText));
    t.same(nav, ['Overview', 'Devices', 'Actions', 'Vulnerabilities', 'Policies', 'Credentials', 'Audit log', 'Compliance'], 'no Enroll, no Operators');
    await viewer.goto(`${base}/devices/kitchen-1`);
    await viewer.waitForSelector('.facts');
    t.equal(await viewer.$('section.actions'), null, 'no actions section');
    t.equal(await viewer.$('main button'), null, 'no button at all in the page');
    t.equal(await viewer.$('input[name=tags]'), null, 'tags read-only');
    const forged = await viewer.evaluate(async () => {
      const who = await (await fetch('/api/v1/whoami')).json();
      const res = await fetch('/api/v1/devices/kitchen-1/quarantine', { method: 'POST', headers: { 'X-CSRF-Token': who.csrfToken } });
      return { status: res.status, body: await res.json() };
    });
    t.equal(forged.status, 403, 'even with its own CSRF token the viewer is refused');
    t.match(forged.body.message, /role viewer/);
    t.equal(gw.plugin.deviceState('kitchen-1'), 'active');
    await viewer.click('header .who button');
    await viewer.waitForSelector('main.signin');
    t.equal(await viewer.evaluate(async () => (await fetch('/api/v1/whoami')).status), 401, 'Sign out ends the session');
    await context.close();
  });

  await t.test('text from devices and operators renders as text, never as markup', async (t) => {
    const hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    await gw.fleet.as('cert:operator:mallory').record({ action: 'device.note', device: 'lab-7', outcome: 'refused', detail: hostile });
    await page.goto(`${base}/audit`);
    await page.waitForSelector('table.audit tbody tr');
    t.match(await textOf(page, 'table.audit'), hostile, 'shown as the characters it is');
    t.equal(await page.$('table.audit img, table.audit script'), null, 'no element made from it');
    t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'no script ran');
  });

  await t.test('every action is reachable by keyboard', async (t) => {
    await page.goto(`${base}/devices/lab-7`);
    await page.waitForSelector('section.actions');
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
      await page.keyboard.press('Tab');
      found = await page.evaluate(() => document.activeElement?.textContent === 'Quarantine…');
    }
    t.ok(found, 'Tab reaches Quarantine…');
    await page.keyboard.press('Enter');
    await page.waitForSelector('dialog[open]');
    t.ok(await page.evaluate(() => !!document.activeElement?.closest('dialog[open]')), 'focus moves into the confirmation');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog[open]'));
    t.equal(gw.plugin.deviceState('lab-7'), 'active', 'Escape cancels');
    await page.goto(`${base}/devices`);
    await rows(DEVICES.length);
    await page.focus('input[type=search]');
    await page.keyboard.type('lab');
    t.same(await rows(1), ['lab-7'], 'search from the keyboard');
  });

  await t.test('axe-core: no serious or critical accessibility violation on any page', async (t) => {
    for (const path of ['/', '/devices', '/devices/kitchen-2', '/enroll', '/audit']) {
      await page.goto(`${base}${path}`);
      await page.waitForSelector('main .card, main table');
      const violations = await axeViolations(page);
      t.same(violations, [], `${path}: ${violations.map((v) => `${v.id} (${v.help}): ${v.nodes.slice(0, 3).join(', ')}`).join('; ') || 'none'}`);
    }
  });

  await t.test('the claim queue on the Enroll page: an unclaimed device is claimed by name', async (t) => {
    t.equal(await enrollUnclaimed(gw.httpsPort, gw.caPem, makeCsr(dir, '/CN=door-9').der), 200, 'door-9 enrolls without a token');
    // The broker's view follows the inventory's change feed: wait for it rather than assume it is there already.
    await waitFor(() => gw.plugin.deviceState('door-9') === 'unclaimed', 'door-9 unclaimed in the broker view');
    await page.goto(`${base}/enroll`);
    await page.waitForSelector('table.claims tbody tr');
    t.same(await columnText(page, 'table.claims tbody th'), ['door-9'], 'waiting to be claimed');
    await page.click('table.claims tbody button');
    await page.waitForSelector('dialog[open]');
    t.match(await textOf(page, 'dialog[open]'), /Claim door-9\?/);
    await page.click('dialog[open] button[type=submit]');
    await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent?.startsWith('Claimed door-9'));
    await waitFor(() => gw.plugin.deviceState('door-9') === 'active', 'door-9 active in the broker');
    t.match((await gw.ca.inventory.auditEntries({ device: 'door-9' })).at(-1), { actor: 'session:operator:olga', action: 'device.claim', outcome: 'ok' });
    await page.waitForFunction(() => !document.querySelector('table.claims'));
    t.pass('and the queue is empty');
  });

  await t.test('sessions: an admin lists and ends them', async (t) => {
    const context = await browser.createBrowserContext();
    recordRequests(context, requested);
    const admin = await context.newPage();
    await admin.setViewport({ width: 1366, height: 900 });
    await signIn(admin, await loginLink(gw.dir, base, 'admin', 'ada'));
    await admin.goto(`${base}/sessions`);
    await admin.waitForSelector('table.sessions tbody tr');
    const names = await columnText(admin, 'table.sessions tbody th');
    t.ok(names.includes('olga') && names.includes('ada'), `lists the live sessions: ${names.join(', ')}`);
    await screenshots(admin, shots, 'sessions', () => admin.waitForSelector('table.sessions'));
    await admin.goto(`${base}/devices/lab-7`);
    await admin.waitForSelector('section.actions');
    t.match(await textOf(admin, 'section.actions'), /Revoke…/, 'an admin may revoke');
    await admin.goto(`${base}/sessions`);
    await admin.waitForSelector('table.sessions tbody tr');
    const olgaRow = (await admin.$$('table.sessions tbody tr')).length;
    t.ok(olgaRow >= 2);
    await admin.evaluate(() => {
      const row = [...document.querySelectorAll('table.sessions tbody tr')].find((r) => r.querySelector('th')?.textContent === 'olga');
      (row?.querySelector('button') as HTMLButtonElement).click();
    });
    await admin.waitForSelector('dialog[open]');
    await admin.click('dialog[open] button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('main [role=status]')?.textContent?.includes('Ended'));
    await page.goto(`${base}/devices`);
    await page.waitForSelector('main.signin');
    t.match(await textOf(page, 'main'), /Sign in|not signed in/, "the ended session's page asks to sign in again");
    await context.close();
  });

  t.test('no request left 127.0.0.1', async (t) => {
    const outside = requested.filter((u) => !u.startsWith('data:') && new URL(u).host !== `127.0.0.1:${gw.httpsPort}`);
    t.same(outside, [], `${requested.length} requests, all to the gateway`);
    t.ok(requested.some((u) => u.includes('/assets/app-')), 'the assets came from the gateway');
    t.comment(`screenshots: ${shots} (copied to /tmp/dashboard-shots)`);
  });
  await operatorContext.close();
});
