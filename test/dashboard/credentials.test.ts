/**
 * The credentials page in Debian's chromium on a real gateway: a device with a real agent receiver holds a
 * credential and loses trust (quarantine), so the page flags it "rotate it"; an admin sets a credential from the
 * form (the value field is a password field, emptied after submit, and the value is nowhere in the page or in any
 * reply the page got), rotates the exposed one (the flag clears), deletes one after a confirmation naming it; a viewer
 * sees the list and no form. On a phone the flag is a red warning on screen without sideways scrolling, and axe-core
 * finds no serious or critical violation. Screenshots at laptop and phone widths.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { CredentialFiles, CredentialReceiver } from '../../agent/credentials.js';
import { requireCommand, tempDir } from '../helpers.js';
import { enroll, testGateway, waitFor } from '../mqtt-helpers.js';
import { axeViolations, launch, loginLink, requireChromium, screenshots, signIn, textOf, VIEWPORTS } from './browser.js';

t.test('the credentials page: list, exposure, set, rotate, delete; values never shown', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireChromium(t)) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const dev = await enroll(gw, dir, 'cred-dev');
  await gw.fleet.setTags('cred-dev', ['weather']);
  const files = new CredentialFiles(join(tempDir(t), 'credentials'));
  const receiver = new CredentialReceiver({ urls: [`mqtts://localhost:${gw.mqttPort}`], caPem: gw.caPem, device: dev.id, identity: { keyPem: dev.key, certPem: dev.cert }, files, log: pino({ level: 'silent' }) });
  t.teardown(() => receiver.close());
  await waitFor(() => gw.plugin.sessionsOf('cred-dev').some((s) => s.clientId === 'cred-dev:credentials'), 'the receiver is connected');
  const ops = gw.credentials.as('local:tester');
  const firstSecret = `first-${randomBytes(12).toString('hex')}`;
  await ops.set('weather-key', Buffer.from(firstSecret), { tags: ['weather'], minScore: 0.4 });
  await waitFor(() => existsSync(join(files.dir, 'weather-key')), 'the device holds weather-key');
  await gw.fleet.quarantine('cred-dev');
  await waitFor(() => !existsSync(join(files.dir, 'weather-key')), 'withdrawn at quarantine', 5000);
  // waitFor takes a synchronous condition: the store is read in between.
  let exposed = 0;
  await waitFor(() => (void ops.show('weather-key').then((c) => (exposed = c?.exposedTo.length ?? 0)), exposed > 0), 'flagged as exposed');

  const base = `https://127.0.0.1:${gw.httpsPort}`;
  const browser = await launch(t);
  const shots = tempDir(t, 'wott-shots-');
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const bodies: string[] = [];
  page.on('response', (r) => {
    if (r.url().includes('/api/v1/')) void r.text().then((b) => bodies.push(b), () => undefined);
  });
  await page.setViewport({ width: 1366, height: 900 });
  await signIn(page, await loginLink(gw.dir, base, 'admin', 'ada'));
  await page.goto(`${base}/credentials`);
  await page.waitForSelector('table.credentials tbody tr[data-credential="weather-key"]');
  const row = await textOf(page, 'tr[data-credential="weather-key"]');
  t.match(row, /Exposed to cred-dev — rotate it/, `the exposure is flagged: ${row}`);

  // On a phone: the flag is on screen without sideways scrolling (the page's or the table's), and it is a warning in
  // red with enough contrast, not only bold text; the summary above the table names what to rotate.
  await page.setViewport(VIEWPORTS.phone);
  await page.waitForFunction(() => getComputedStyle(document.querySelector('table.credentials thead')!).position === 'absolute');
  const phone = await page.evaluate(() => {
    const flag = document.querySelector('tr[data-credential="weather-key"] .exposure-warning') as HTMLElement;
    const wrap = flag.closest('.table-wrap') as HTMLElement;
    const rect = flag.getBoundingClientRect();
    const style = getComputedStyle(flag);
    return {
      pageScrolls: document.documentElement.scrollWidth > window.innerWidth,
      tableScrolls: wrap.scrollWidth > wrap.clientWidth,
      inView: rect.left >= 0 && rect.right <= window.innerWidth && rect.width > 0,
      color: style.color,
      background: style.backgroundColor,
      summary: (document.querySelector('#exposed-summary') as HTMLElement | null)?.innerText ?? '',
    };
  });
  t.notOk(phone.pageScrolls, 'the page does not scroll sideways');
  t.notOk(phone.tableScrolls, 'nor does the credentials table');
  t.ok(phone.inView, 'the "rotate it" flag is within the screen width');
  const rgb = (css: string) => css.match(/\d+/g)!.slice(0, 3).map(Number);
  const luminance = (c: number[]) => {
    const [r, g, b] = c.map((v) => (v / 255 <= 0.03928 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
  };
  const [fg, bg] = [luminance(rgb(phone.color)), luminance(rgb(phone.background))];
  const contrast = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  const [red, green, blue] = rgb(phone.color);
  t.ok(red! > 2 * green! && red! > 2 * blue!, `the flag is red (${phone.color} on ${phone.background})`);
  t.ok(contrast >= 4.5, `with a contrast of ${contrast.toFixed(1)}:1 (≥ 4.5)`);
  t.match(phone.summary, /Exposed — rotate weather-key/, 'the summary above the table says what to rotate');
  await screenshots(page, shots, 'credentials-exposed', () => page.waitForSelector('.exposure-warning'));
  await page.setViewport(VIEWPORTS.phone);
  const violations = await axeViolations(page);
  t.same(violations, [], `/credentials on a phone: ${violations.map((v) => `${v.id} (${v.help}): ${v.nodes.slice(0, 3).join(', ')}`).join('; ') || 'none'}`);
  await page.setViewport(VIEWPORTS.laptop);
  await page.waitForSelector('tr[data-credential="weather-key"]');

  // Set a new credential from the form.
  const secret = `dash-${randomBytes(12).toString('hex')}`;
  t.equal(await page.$eval('input[name=value]', (e) => (e as HTMLInputElement).type), 'password', 'the value is a password field');
  await page.type('input[name=name]', 'db-password');
  await page.type('input[name=tags]', 'db, lab');
  await page.$eval('input[name=minScore]', (e) => ((e as HTMLInputElement).value = ''));
  await page.type('input[name=minScore]', '0.7');
  await page.type('input[name=value]', secret);
  await page.click('form.credential button[type=submit]');
  await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent?.includes('Saved db-password'));
  await page.waitForSelector('tr[data-credential="db-password"]');
  t.equal(await page.$eval('input[name=value]', (e) => (e as HTMLInputElement).value), '', 'the value field is emptied after submit');
  t.match(await textOf(page, 'tr[data-credential="db-password"]'), /db, lab/);
  t.match(await gw.credentials.show('db-password'), { version: 1, tags: ['db', 'lab'], minScore: 0.7 }, 'the gateway has it');
  t.match((await gw.ca.inventory.auditEntries()).at(-1), { actor: 'session:admin:ada', action: 'credential.set' }, 'audited as the session');
  await screenshots(page, shots, 'credentials', () => page.waitForSelector('table.credentials'));

  // Rotate the exposed one: the flag clears, and the device (released) receives the new version.
  await gw.fleet.release('cred-dev');
  const rotated = `rotated-${randomBytes(12).toString('hex')}`;
  await page.evaluate(() => {
    const row = document.querySelector('tr[data-credential="weather-key"]');
    ([...(row?.querySelectorAll('button') ?? [])].find((b) => b.textContent?.startsWith('Rotate')) as HTMLButtonElement).click();
  });
  await page.waitForFunction(() => document.querySelector('main h2')?.parentElement && [...document.querySelectorAll('main h2')].some((h) => h.textContent?.includes('Rotate weather-key')));
  t.equal(await page.$('input[name=name]'), null, 'rotation asks for the value only');
  await page.type('input[name=value]', rotated);
  await page.click('form.credential button[type=submit]');
  await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent?.includes('Rotated weather-key: version 2'));
  await page.waitForFunction(() => !document.querySelector('tr[data-credential="weather-key"]')?.textContent?.includes('rotate it'));
  t.pass('the "rotate it" flag is gone after the rotation');
  await waitFor(() => files.list().some((f) => f.name === 'weather-key' && f.version === 2), 'the device holds version 2');

  // Delete, with a confirmation that names the credential.
  await page.evaluate(() => {
    const row = document.querySelector('tr[data-credential="db-password"]');
    ([...(row?.querySelectorAll('button') ?? [])].find((b) => b.textContent?.startsWith('Delete')) as HTMLButtonElement).click();
  });
  await page.waitForSelector('dialog[open]');
  t.match(await textOf(page, 'dialog[open]'), /Delete the credential db-password\?/, 'the confirmation names it');
  await page.click('dialog[open] button[type=submit]');
  await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent?.includes('Deleted db-password'));
  await page.waitForFunction(() => !document.querySelector('tr[data-credential="db-password"]'));
  t.equal(await gw.credentials.show('db-password'), undefined, 'gone from the gateway');

  // No value anywhere the page saw.
  const html = await page.content();
  const replies = bodies.join('\n');
  t.ok(replies.includes('weather-key'), 'the API replies were captured');
  for (const value of [firstSecret, secret, rotated]) {
    t.notOk(html.includes(value), 'no value in the page');
    t.notOk(replies.includes(value), 'no value in any API reply');
  }
  await context.close();

  // A viewer: the list, no form, no buttons.
  const viewerContext = await browser.createBrowserContext();
  const viewer = await viewerContext.newPage();
  await signIn(viewer, await loginLink(gw.dir, base, 'viewer', 'vera'));
  await viewer.goto(`${base}/credentials`);
  await viewer.waitForSelector('tr[data-credential="weather-key"]');
  t.equal(await viewer.$('form.credential'), null, 'a viewer has no form');
  t.equal(await viewer.$('table.credentials button'), null, 'nor buttons');
  t.match(await textOf(viewer, 'main'), /needs the admin role/);
  await viewerContext.close();
  t.comment(`screenshots: ${shots} (copied to /tmp/dashboard-shots)`);
});
