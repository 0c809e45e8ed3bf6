/**
 * The dashboard acting on many devices and following the fleet live, in Debian's chromium on a real gateway:
 *  - Devices: an operator selects three devices with their checkboxes and quarantines them (a confirmation naming
 *    them; the store holds all three quarantined, each audited with the session); tags several; a refusal for one
 *    device is shown for that device; a viewer has no checkboxes or bulk buttons and the API refuses the viewer's
 *    forged bulk request;
 *  - Overview: a device enrolled through EST and a refused MQTT connection (a superseded certificate) appear in the
 *    live feed without a reload;
 *  - Devices with 300 devices (rows virtualised): sorted by score, a score change re-sorts the rows, and a device
 *    that enrolls appears, without a reload, keeping the selection and the scroll position.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { makeCsr, requireCommand, tempDir } from '../helpers.js';
import { connect, connectError, enroll, serviceCredentials, setScore, testGateway } from '../mqtt-helpers.js';
import { axeViolations, columnText, launch, loginLink, recordRequests, requireChromium, screenshots, signIn, SHOTS_DIR, textOf } from './browser.js';

t.test('bulk actions, the live feed and live rows in a real browser', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireChromium(t)) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const shots = tempDir(t, 'wott-shots-');
  for (const id of ['bulk-a', 'bulk-b', 'bulk-c', 'bulk-d']) await enroll(gw, dir, id);
  await gw.fleet.revoke({ deviceId: 'bulk-d' }, 'keyCompromise');
  const base = `https://127.0.0.1:${gw.httpsPort}`;
  const browser = await launch(t);
  const requested: string[] = [];
  const context = await browser.createBrowserContext();
  recordRequests(context, requested);
  const page = await context.newPage();
  await page.setViewport({ width: 1366, height: 900 });
  await signIn(page, await loginLink(gw.dir, base, 'operator', 'bulk-olga'));
  const idle = () => page.waitForFunction(() => document.querySelector('table.devices')?.getAttribute('aria-busy') === 'false');
  const check = (id: string) => page.click(`tr[data-device="${id}"] input[type=checkbox]`);
  const confirm = async () => (await page.waitForSelector('dialog[open] button[type=submit]'))!.click();

  await t.test('an operator selects three devices and quarantines them', async (t) => {
    await page.goto(`${base}/devices`);
    await page.waitForSelector('tr[data-device="bulk-a"] input[type=checkbox]');
    await idle();
    for (const id of ['bulk-a', 'bulk-b', 'bulk-c']) await check(id);
    t.match(await textOf(page, '.bulk-count'), /3 devices selected/, 'the bar counts the selection');
    const [quarantine] = await page.$$('xpath/.//section[contains(@class,"bulk")]//button[normalize-space()="Quarantine"]');
    await quarantine!.click();
    await page.waitForSelector('dialog[open]');
    t.match(await textOf(page, 'dialog[open]'), /Quarantine 3 devices\?[\s\S]*bulk-a, bulk-b, bulk-c/, 'the confirmation names the devices');
    await screenshots(page, shots, 'devices-bulk-confirm', () => page.waitForSelector('dialog[open]'));
    await confirm();
    await page.waitForFunction(() => /Quarantine: 3 devices quarantined\./.test(document.querySelector('.bulk-result')?.textContent ?? ''));
    for (const id of ['bulk-a', 'bulk-b', 'bulk-c']) t.equal((await gw.ca.inventory.device(id))?.state, 'quarantined', `${id} quarantined in the store`);
    t.equal(gw.plugin.deviceState('bulk-a'), 'quarantined', 'and in the broker');
    const audit = (await gw.ca.inventory.auditEntries()).filter((e) => e.action === 'device.quarantine');
    t.same(audit.map((e) => [e.device, e.actor, e.outcome]), ['bulk-a', 'bulk-b', 'bulk-c'].map((id) => [id, 'session:operator:bulk-olga', 'ok']), 'each audited with the session');
    await page.waitForFunction(() => document.querySelector('tr[data-device="bulk-c"] .col-state')?.textContent === 'quarantined');
    t.pass('the table shows the new states');
    t.equal(await page.$$eval('tbody input[type=checkbox]:checked', (l) => l.length), 3, 'the selection stays');
    await screenshots(page, shots, 'devices-bulk-done', () => page.waitForSelector('.bulk-result'));
  });

  await t.test('tag several, and a refusal for one device is shown for it', async (t) => {
    await check('bulk-d');
    await page.type('input[name=bulk-tag]', 'site:berlin');
    const [add] = await page.$$('xpath/.//section[contains(@class,"bulk")]//button[normalize-space()="Add tag"]');
    await add!.click();
    await confirm();
    await page.waitForFunction(() => /Add tag "site:berlin": 4 devices tagged\./.test(document.querySelector('.bulk-result')?.textContent ?? ''));
    t.same((await gw.ca.inventory.device('bulk-d'))?.tags, ['site:berlin'], 'tags go on revoked devices too');
    const [release] = await page.$$('xpath/.//section[contains(@class,"bulk")]//button[normalize-space()="Release"]');
    await release!.click();
    await confirm();
    await page.waitForFunction(() => /3 devices released, 1 refused/.test(document.querySelector('.bulk-result')?.textContent ?? ''));
    t.match(await textOf(page, '.bulk-result .failures'), /bulk-d: device "bulk-d" is revoked/, 'the refused device, with the reason');
    t.equal((await gw.ca.inventory.device('bulk-a'))?.state, 'active');
    await page.click('xpath/.//button[normalize-space()="Clear selection"]');
    t.equal(await page.$$eval('tbody input[type=checkbox]:checked', (l) => l.length), 0, 'cleared');
    await page.goto(`${base}/devices?tag=site:berlin`);
    await idle();
    await page.click('xpath/.//button[normalize-space()="Select every device the filters match"]');
    await page.waitForFunction(() => /4 devices selected/.test(document.querySelector('.bulk-count')?.textContent ?? ''));
    t.pass('every device the filters match, selected');
    await page.click('xpath/.//button[normalize-space()="Clear selection"]');
  });

  await t.test('a viewer: no selection, no bulk buttons; the API refuses a forged bulk request', async (t) => {
    const vc = await browser.createBrowserContext();
    recordRequests(vc, requested);
    const viewer = await vc.newPage();
    await signIn(viewer, await loginLink(gw.dir, base, 'viewer', 'bulk-vic'));
    await viewer.goto(`${base}/devices`);
    await viewer.waitForSelector('tr[data-device="bulk-a"]');
    t.equal(await viewer.$('table.devices input[type=checkbox]'), null, 'no checkboxes');
    t.equal(await viewer.$('section.bulk'), null, 'no bulk bar');
    t.equal(await viewer.$('main button:not(.sort):not([type=submit])'), null, 'no action button');
    const forged = await viewer.evaluate(async () => {
      const who = await (await fetch('/api/v1/whoami')).json();
      const res = await fetch('/api/v1/devices/actions', { method: 'POST', headers: { 'X-CSRF-Token': who.csrfToken, 'Content-Type': 'application/json' }, body: JSON.stringify({ ids: ['bulk-a', 'bulk-b'], action: 'quarantine' }) });
      return res.status;
    });
    t.equal(forged, 403, 'refused');
    t.equal((await gw.ca.inventory.device('bulk-a'))?.state, 'active', 'nothing changed');
    await vc.close();
  });

  await t.test('Overview: an enrollment and a failed authentication appear in the live feed without a reload', async (t) => {
    await page.goto(`${base}/`);
    await page.waitForSelector('.live.on');
    await page.evaluate(() => ((window as unknown as { __same: boolean }).__same = true));
    await enroll(gw, dir, 'fresh-1');
    await page.waitForFunction(() => /enrolled\s+fresh-1\s+enrolled \(active\)/.test(document.querySelector('.feed')?.textContent ?? ''));
    t.pass('the enrollment');
    // bulk-b renews (what its agent does); its old certificate then fails at the broker.
    const creds = await enroll(gw, dir, 'old-cert');
    await gw.fleet.renew(Buffer.from(creds.cert.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'), makeCsr(dir, '/CN=old-cert').der);
    await connectError(gw, creds);
    await page.waitForFunction(() => /auth failure\s+old-cert\s+connection refused: .*superseded/i.test(document.querySelector('.feed')?.textContent ?? ''));
    t.pass('the authentication failure');
    t.match(await textOf(page, '.feed'), /renewed\s+old-cert/, 'and the renewal before it');
    t.equal(await page.evaluate(() => (window as unknown as { __same?: boolean }).__same), true, 'the same page: no reload');
    await page.waitForFunction(() => /^6\s+devices/.test(document.querySelector('.big')?.textContent?.trim() ?? ''));
    t.pass('the summary follows: 6 devices');
    await screenshots(page, shots, 'overview-feed', () => page.waitForSelector('.feed li'));
    const violations = await axeViolations(page);
    t.same(violations, [], `axe: ${violations.map((v) => `${v.id}: ${v.nodes.slice(0, 3).join(', ')}`).join('; ') || 'none'}`);
  });

  await t.test('300 devices: live rows re-sort, a new device appears, selection and scroll stay', async (t) => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    for (let i = 0; i < 300; i++) {
      const id = `row-${String(i).padStart(3, '0')}`;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${id}`, keys, signingAlgorithm: alg });
      await gw.ca.enrollWithToken(id, (await gw.ca.createToken(id)).token, Buffer.from(csr.rawData));
    }
    const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'rows')), id: 'scoring:rows' });
    t.teardown(() => scorer.end(true));
    await page.goto(`${base}/devices?sort=score&order=desc&limit=500`);
    await page.waitForSelector('tr[data-device="row-000"], tr.spacer');
    await idle();
    await page.waitForSelector('.status .live.on');
    const rendered = await page.$$eval('table.devices tbody tr:not(.spacer)', (l) => l.length);
    t.ok(rendered < 150, `of 300+ rows only those near the viewport are in the document (${rendered})`);
    await page.evaluate(() => ((window as unknown as { __same: boolean }).__same = true));
    // Every device scores 0.5 (the initial score): sorted by score descending, ties by id descending.
    t.equal((await columnText(page))[0], 'row-299', 'ties in id order, descending');
    await setScore(gw, scorer, 'row-150', 0.97);
    await page.waitForFunction(() => document.querySelector('table.devices tbody tr:not(.spacer) th')?.textContent === 'row-150');
    t.pass('a score change moves its row to the top');
    await check('row-150');
    // Scrolled down to row-200 the way a person does: down the list until the row shows (virtual rows render as they
    // come into view). Row heights depend on fonts, so where row-200 sits is found, not assumed.
    await page.waitForFunction(() => {
      const box = document.querySelector<HTMLInputElement>('tr[data-device="row-200"] input[type=checkbox]');
      if (box) {
        box.scrollIntoView({ block: 'center' });
        return window.scrollY >= 1000;
      }
      if (window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2) window.scrollTo(0, 0);
      else window.scrollBy(0, 200);
      return false;
    });
    await page.waitForFunction(() => document.querySelector('tr[data-device="row-200"] input[type=checkbox]') !== null);
    await check('row-200');
    await page.waitForFunction(() => (document.querySelector('tr[data-device="row-200"] input[type=checkbox]') as HTMLInputElement | null)?.checked === true);
    const scrolled = await page.evaluate(() => window.scrollY);
    const before = await textOf(page, '#devices-status');
    t.match(before, /^306 devices on this page/);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=row-zzz', keys, signingAlgorithm: alg });
    await gw.ca.enrollWithToken('row-zzz', (await gw.ca.createToken('row-zzz')).token, Buffer.from(csr.rawData));
    await setScore(gw, scorer, 'row-zzz', 0.99);
    await page.waitForFunction(() => /^307 devices on this page/.test(document.getElementById('devices-status')?.textContent ?? ''));
    t.pass('the new device joins the rows');
    // The browser's scroll anchoring may move the page by the one row added above: what the user looks at stays.
    const after = await page.evaluate(() => ({ y: window.scrollY, top: document.querySelector('tr[data-device="row-200"]')?.getBoundingClientRect().top ?? -1, h: window.innerHeight }));
    t.ok(Math.abs(after.y - scrolled) < 100, `the scroll position stays (${scrolled} → ${after.y})`);
    t.ok(after.top >= 0 && after.top < after.h, 'the selected row is still in view');
    t.equal(await page.$eval('tr[data-device="row-200"] input[type=checkbox]', (e) => (e as HTMLInputElement).checked), true, 'the selected row in view stays selected');
    t.equal(await page.evaluate(() => (window as unknown as { __same?: boolean }).__same), true, 'without a reload');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForFunction(() => document.querySelector('table.devices tbody tr:not(.spacer) th')?.textContent === 'row-zzz');
    t.pass('in its place by score: first');
    t.equal(await page.$eval('tr[data-device="row-150"] input[type=checkbox]', (e) => (e as HTMLInputElement).checked), true, 'the selection stays');
    t.match(await textOf(page, '.bulk-count'), /2 devices selected/);
    // The viewport, not the full page: a full-page picture of virtual rows shows the spacer where rows would render.
    mkdirSync(SHOTS_DIR, { recursive: true });
    await page.evaluate((y) => window.scrollTo(0, y), scrolled);
    await page.waitForFunction(() => document.querySelector('tr[data-device="row-200"]') !== null);
    await page.screenshot({ path: join(shots, 'devices-live-rows-laptop.png') });
    copyFileSync(join(shots, 'devices-live-rows-laptop.png'), join(SHOTS_DIR, 'devices-live-rows-laptop.png'));
  });

  t.test('no request left 127.0.0.1', async (t) => {
    t.same(requested.filter((u) => !u.startsWith(base) && !u.startsWith('data:')), []);
  });
});
