/**
 * The devices table with thousands of devices: 2,000 devices enrolled through the CA (the same issuance EST does,
 * CSRs made in-process to keep the test short), then chromium on the Devices page: time until the first page of the
 * table is usable, paging by the API's cursor, sorting; the browser holds one page at a time, and of a long page only
 * the rows near the viewport.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { tempDir } from '../helpers.js';
import { testGateway } from '../mqtt-helpers.js';
import { launch, loginLink, requireChromium, screenshots, signIn } from './browser.js';

const COUNT = 2000;

t.test(`the devices table with ${COUNT} devices`, async (t) => {
  if (!requireChromium(t)) return;
  const gw = await testGateway(t);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const started = Date.now();
  const ids = Array.from({ length: COUNT }, (_, i) => `sensor-${String(i).padStart(5, '0')}`);
  for (const id of ids) {
    // One key for all (the test is about the table, not the keys); each device still gets its own certificate.
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${id}`, keys, signingAlgorithm: alg });
    await gw.ca.enrollWithToken(id, (await gw.ca.createToken(id)).token, Buffer.from(csr.rawData));
  }
  t.comment(`${COUNT} devices enrolled in ${Date.now() - started} ms`);

  const browser = await launch(t);
  const page = await browser.newPage();
  await page.setViewport({ width: 1366, height: 900 });
  const base = `https://127.0.0.1:${gw.httpsPort}`;
  await signIn(page, await loginLink(gw.dir, base, 'operator', 'olga'));
  const firstRow = () => page.$eval('table.devices tbody th', (e) => (e as HTMLElement).innerText.trim());
  // Up to 120 rows are all in the document; a longer page renders the rows near the viewport and says how many
  // there are in aria-rowcount (the header row counts).
  const ready = (n: number) =>
    page.waitForFunction(
      (n) => {
        const table = document.querySelector('table.devices');
        const rows = n > 120 ? Number(table?.getAttribute('aria-rowcount')) - 1 : document.querySelectorAll('table.devices tbody tr').length;
        return rows === n && table?.getAttribute('aria-busy') === 'false';
      },
      {},
      n,
    );

  const t0 = Date.now();
  await page.goto(`${base}/devices`);
  await ready(100);
  const usable = Date.now() - t0;
  t.ok(usable < 1500, `the first page of ${COUNT} devices is usable in ${usable} ms (goal ≤ 1,500 ms)`);
  t.equal(await firstRow(), 'sensor-00000');

  const t1 = Date.now();
  await page.click('a[rel=next]');
  await page.waitForFunction(() => document.querySelector('table.devices tbody th')?.textContent?.trim() === 'sensor-00100');
  t.comment(`next page in ${Date.now() - t1} ms`);
  await page.select('select[name=limit]', '500');
  await ready(500);
  t.equal(await firstRow(), 'sensor-00000', 'a new page size starts from the first page');
  const t2 = Date.now();
  await page.click('th[aria-sort] button.sort');
  await page.waitForFunction(() => document.querySelector('table.devices tbody th')?.textContent?.trim() === 'sensor-01999');
  t.comment(`sorted ${COUNT} devices descending (500 shown) in ${Date.now() - t2} ms`);
  const inDocument = await page.$$eval('table.devices tbody tr:not(.spacer)', (r) => r.length);
  t.ok(inDocument < 120, `of the page of 500 only the rows near the viewport are in the document (${inDocument}), never the whole fleet`);
  await page.goBack();
  await page.waitForFunction(() => document.querySelector('table.devices tbody th')?.textContent?.trim() === 'sensor-00000');
  t.pass('back restores the ascending order');
  await screenshots(page, tempDir(t, 'wott-shots-'), 'devices-2000', () => ready(500));
});
