/**
 * The Operators and sessions page, in Debian's chromium on a real gateway, from the keyboard only: an admin lists
 * operator certificates and revokes one (the confirmation names it and its serial; the API refuses that certificate
 * from then on), lists browser sessions (a hostile session name renders as text, no script runs) and ends one; a
 * non-admin has no such page and the API refuses it anyway. axe-core finds no serious or critical violation; the
 * page needs no sideways scrolling on a phone; screenshots at laptop and phone widths.
 */
import type { Page } from 'puppeteer-core';
import t from 'tap';
import { requireCommand, tempDir } from '../helpers.js';
import { testGateway } from '../mqtt-helpers.js';
import { api, operatorCredentials, sessionFor } from '../api/helpers.js';
import { axeViolations, columnText, launch, loginLink, requireChromium, screenshots, signIn, textOf, VIEWPORTS } from './browser.js';

const HOSTILE = 'x<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';

/** Presses Tab until the focused element's text (its accessible name here) is `text` (at most `max` times): whether it got there. */
async function tabTo(page: Page, text: string, max = 80): Promise<boolean> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    // textContent: a visually hidden part of a button's name is a line of its own in innerText.
    if (await page.evaluate((want) => document.activeElement?.textContent?.replace(/\s+/g, ' ').trim() === want, text)) return true;
  }
  return false;
}

const focusedIn = (page: Page, selector: string) => page.evaluate((s) => !!document.activeElement?.closest(s), selector);

t.test('the operators and sessions page, by keyboard, in a real browser', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireChromium(t)) return;
  const gw = await testGateway(t);
  const olgaCert = await operatorCredentials(gw, 'operator', 'olga');
  const vicCert = await operatorCredentials(gw, 'viewer', 'vic');
  // A session whose name a tool chose (the Sessions API takes any name): it must render as text.
  await sessionFor(gw, 'viewer', HOSTILE);

  const base = `https://127.0.0.1:${gw.httpsPort}`;
  const browser = await launch(t);
  const shots = tempDir(t, 'wott-shots-');

  await t.test('a non-admin has no such page, and the API refuses it anyway', async (t) => {
    const context = await browser.createBrowserContext();
    t.teardown(() => context.close());
    const page = await context.newPage();
    await page.setViewport(VIEWPORTS.laptop);
    await signIn(page, await loginLink(gw.dir, base, 'operator', 'otto'));
    const nav = await page.$$eval('header nav a', (a) => a.map((e) => (e as HTMLElement).innerText));
    t.notOk(nav.includes('Operators'), `an operator has no Operators page in the navigation: ${nav.join(', ')}`);
    await page.goto(`${base}/operators`);
    await page.waitForSelector('main h1');
    t.match(await textOf(page, 'main'), /needs the admin role/, 'the page says why it shows nothing');
    t.equal(await page.$('main table'), null, 'no operator or session list');
    const forged = await page.evaluate(async () => {
      const who = await (await fetch('/api/v1/whoami')).json();
      const list = await fetch('/api/v1/operators');
      const revoke = await fetch('/api/v1/operators/abc123/revoke', { method: 'POST', headers: { 'X-CSRF-Token': who.csrfToken, 'Content-Type': 'application/json' }, body: '{"reason":"unspecified"}' });
      return [list.status, revoke.status];
    });
    t.same(forged, [403, 403], 'the API refuses an operator anyway');
  });

  await t.test('an admin lists operators and sessions, revokes a certificate, ends a session', async (t) => {
    const context = await browser.createBrowserContext();
    t.teardown(() => context.close());
    const page = await context.newPage();
    await page.setViewport(VIEWPORTS.laptop);
    await signIn(page, await loginLink(gw.dir, base, 'admin', 'ada'));
    await page.click('nav a[href="/operators"]');
    await page.waitForSelector('table.operators tbody tr');
    await page.waitForSelector('table.sessions tbody tr');
    t.same(await columnText(page, 'table.operators tbody th'), ['olga', 'vic'], 'the operator certificates, by name');
    t.match(await textOf(page, `tr[data-serial="${olgaCert.serial}"]`), /olga\s+operator[\s\S]*active/);
    const sessionNames = await columnText(page, 'table.sessions tbody th');
    t.ok(sessionNames.includes('ada') && sessionNames.includes(HOSTILE), 'the live sessions, the hostile name among them as the characters it is');
    t.equal(await page.$('main img, main table script'), null, 'no element was made from it');
    t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'no script ran');
    await screenshots(page, shots, 'operators', () => page.waitForSelector('table.sessions'));
    await page.setViewport(VIEWPORTS.phone);
    t.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'on a phone: no sideways scrolling');
    await page.setViewport(VIEWPORTS.laptop);

    // Revoke olga's certificate, from the keyboard.
    await page.focus('main h1');
    let found = false;
    for (let i = 0; i < 80 && !found; i++) {
      await page.keyboard.press('Tab');
      found = await page.evaluate((serial) => document.activeElement?.tagName === 'BUTTON' && !!document.activeElement.closest(`tr[data-serial="${serial}"]`), olgaCert.serial);
    }
    t.ok(found, "Tab reaches the Revoke button of olga's row");
    await page.keyboard.press('Enter');
    await page.waitForSelector('dialog[open]');
    t.ok(await focusedIn(page, 'dialog[open]'), 'focus moves into the confirmation');
    const confirm = await textOf(page, 'dialog[open]');
    t.match(confirm, /Revoke the certificate of olga\?/, 'the confirmation names the operator');
    t.ok(confirm.includes(olgaCert.serial), 'and the serial');
    await page.select('dialog[open] select[name=reason]', 'keyCompromise');
    t.ok(await tabTo(page, "Revoke olga's certificate", 8), 'Tab reaches the confirm button');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent?.startsWith('Revoked the operator certificate of olga'));
    await page.waitForFunction((serial) => document.querySelector(`tr[data-serial="${serial}"]`)?.textContent?.includes('revoked'), {}, olgaCert.serial);
    t.match(await textOf(page, `tr[data-serial="${olgaCert.serial}"]`), /revoked[\s\S]*keyCompromise/, 'the row shows it revoked, with the reason');
    t.equal(await page.$(`tr[data-serial="${olgaCert.serial}"] button`), null, 'no Revoke button on a revoked certificate');
    t.equal((await api(gw, 'GET', '/devices', olgaCert)).status, 401, 'the API refuses the revoked certificate');
    t.equal((await api(gw, 'GET', '/devices', vicCert)).status, 200, 'and still serves the other');
    t.match((await gw.ca.inventory.auditEntries()).at(-1), { actor: 'session:admin:ada', action: 'operator.revoke', target: olgaCert.serial, outcome: 'ok' });

    // End the hostile session, from the keyboard.
    await page.focus('main h1');
    t.ok(await tabTo(page, `End the session of ${HOSTILE}`), 'Tab reaches End of that session');
    await page.keyboard.press('Enter');
    await page.waitForSelector('dialog[open]');
    t.ok((await textOf(page, 'dialog[open]')).includes(`The session of ${HOSTILE} (viewer)`), 'the confirmation names it, as text');
    t.ok(await tabTo(page, 'End session', 5), 'Tab reaches the confirm button');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => [...document.querySelectorAll('main [role=status]')].some((s) => s.textContent?.startsWith('Ended the session of')));
    await page.waitForFunction((name) => ![...document.querySelectorAll('table.sessions tbody th')].some((th) => th.textContent === name), {}, HOSTILE);
    const live = await api(gw, 'GET', '/sessions', await operatorCredentials(gw, 'admin', 'checker'));
    t.notOk(live.json.items.some((s: { name: string }) => s.name === HOSTILE), 'the session ended');
    t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'still no script ran');

    const violations = await axeViolations(page);
    t.same(violations, [], `/operators: ${violations.map((v) => `${v.id} (${v.help}): ${v.nodes.slice(0, 3).join(', ')}`).join('; ') || 'none'}`);
    await page.goto(`${base}/sessions`);
    await page.waitForSelector('table.sessions tbody tr');
    t.equal(await page.$eval('nav a[aria-current=page]', (a) => (a as HTMLElement).innerText), 'Operators', 'the old /sessions address opens the same page');
  });

  t.comment(`screenshots: ${shots} (copied to /tmp/dashboard-shots)`);
});
