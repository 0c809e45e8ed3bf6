/**
 * The claim queue's Reject on the Enroll page, in Debian's chromium on a real gateway in claim mode, from the keyboard
 * only: a device that enrolled without a token (and is connected over MQTT) is rejected by an operator; the
 * confirmation names it and says what happens; Escape cancels; after the confirmation its MQTT session is closed,
 * its certificate revoked, the queue empty and the action audited with the session. axe-core finds no serious or
 * critical violation on the page with its queue; screenshots at laptop and phone widths.
 */
import { readFileSync } from 'node:fs';
import type { Page } from 'puppeteer-core';
import t from 'tap';
import { makeCsr, requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, testGateway, waitFor } from '../mqtt-helpers.js';
import { axeViolations, columnText, launch, loginLink, requireChromium, screenshots, signIn, textOf, VIEWPORTS } from './browser.js';

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

t.test('the claim queue: reject an unclaimed device, by keyboard, in a real browser', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireChromium(t)) return;
  const gw = await testGateway(t, { claim: true });
  const dir = tempDir(t);
  await enroll(gw, dir, 'known-1');
  const { der, keyPath } = makeCsr(dir, '/CN=door-7');
  const issued = await gw.fleet.enrollUnclaimed(der);
  const door = await connect(gw, { id: 'door-7', key: readFileSync(keyPath, 'utf8'), cert: issued.pem, ca: gw.caPem });
  let doorClosed = false;
  door.on('close', () => (doorClosed = true));
  t.teardown(() => door.end(true));

  const base = `https://127.0.0.1:${gw.httpsPort}`;
  const browser = await launch(t);
  const shots = tempDir(t, 'wott-shots-');

  await t.test('an operator rejects an unclaimed device from the Enroll page', async (t) => {
    const context = await browser.createBrowserContext();
    t.teardown(() => context.close());
    const page = await context.newPage();
    await page.setViewport(VIEWPORTS.laptop);
    await signIn(page, await loginLink(gw.dir, base, 'operator', 'otto'));
    await page.goto(`${base}/enroll`);
    await page.waitForSelector('table.claims tbody tr');
    t.same(await columnText(page, 'table.claims tbody th'), ['door-7'], 'door-7 waits in the queue');
    t.same(await page.$$eval('table.claims tbody button', (b) => b.map((e) => e.textContent!.replace(/\s+/g, ' ').trim())), ['Claim door-7', 'Reject door-7'], 'claim and reject, each naming the device');
    await screenshots(page, shots, 'enroll-queue', () => page.waitForSelector('table.claims'));
    t.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'no sideways scrolling');

    await page.focus('input[name=device]');
    t.ok(await tabTo(page, 'Reject door-7'), 'Tab reaches Reject');
    await page.keyboard.press('Enter');
    await page.waitForSelector('dialog[open]');
    t.ok(await focusedIn(page, 'dialog[open]'), 'focus moves into the confirmation');
    t.match(await textOf(page, 'dialog[open]'), /Reject door-7\?[\s\S]*certificate is revoked[\s\S]*door-7 can still enroll with a token/, 'the confirmation names the device and says what happens');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog[open]'));
    t.equal(gw.plugin.deviceState('door-7'), 'unclaimed', 'Escape changes nothing');

    await page.focus('input[name=device]');
    t.ok(await tabTo(page, 'Reject door-7'), 'Tab reaches Reject again');
    await page.keyboard.press('Enter');
    await page.waitForSelector('dialog[open]');
    t.ok(await tabTo(page, 'Reject door-7', 5), 'Tab reaches the confirm button inside the dialog');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent?.startsWith('Rejected door-7'));
    await waitFor(() => gw.plugin.deviceState('door-7') === 'revoked', 'door-7 revoked in the broker');
    await waitFor(() => doorClosed, 'the broker closes door-7', 5000);
    t.pass('door-7 is revoked and its MQTT session closed');
    t.equal((await gw.ca.inventory.certificate(issued.serial))?.status, 'revoked', 'its claim-mode certificate is revoked');
    t.match((await gw.ca.inventory.auditEntries({ device: 'door-7' })).at(-1), { actor: 'session:operator:otto', action: 'device.reject', outcome: 'ok' });
    await page.waitForFunction(() => !document.querySelector('table.claims'));
    t.match(await textOf(page, 'main'), /No device is waiting to be claimed/, 'the queue is empty');

  });

  await t.test('axe-core on the Enroll page with its queue', async (t) => {
    const { der: der2 } = makeCsr(dir, '/CN=door-8');
    await gw.fleet.enrollUnclaimed(der2);
    const context = await browser.createBrowserContext();
    t.teardown(() => context.close());
    const page = await context.newPage();
    await page.setViewport(VIEWPORTS.laptop);
    await signIn(page, await loginLink(gw.dir, base, 'operator', 'otto'));
    await page.goto(`${base}/enroll`);
    await page.waitForSelector('table.claims tbody tr');
    const violations = await axeViolations(page);
    t.same(violations, [], `/enroll: ${violations.map((v) => `${v.id} (${v.help}): ${v.nodes.slice(0, 3).join(', ')}`).join('; ') || 'none'}`);
  });
  t.comment(`screenshots: ${shots} (copied to /tmp/dashboard-shots)`);
});
