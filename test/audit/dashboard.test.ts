/**
 * The dashboard's Compliance page (the fleet audit) in Debian's chromium on a real gateway: a viewer signed in with a
 * login link sees the latest scheduled run's findings with their evidence and fix, and which checks wott could not
 * assess; every request goes to the gateway. Its download buttons fetch the compliance report from
 * GET /api/v1/reports/compliance (the same route as any client) and the browser saves the PDF, HTML and JSON files.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { complianceReportSchema } from '../../protocol/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, testGateway, waitFor } from '../mqtt-helpers.js';
import { axeViolations, launch, loginLink, recordRequests, requireChromium, screenshots, signIn, VIEWPORTS } from '../dashboard/browser.js';

t.test('the Compliance page shows the latest audit, and downloads the compliance report', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireChromium(t) || !requireCommand(t, 'pdftotext', 'poppler-utils')) return;
  // Policies with a rule open to everyone: a finding the page must show.
  const gw = await testGateway(t, { audit: { schedule: true, intervalMs: 3_600_000, firstRunMs: 0 }, reports: { cacheMs: 3_600_000 }, policies: [{ topic: 'lobby/#', publish: 0, subscribe: 0 }] });
  const dir = tempDir(t);
  const client = await connect(gw, await enroll(gw, dir, 'door-1'));
  t.teardown(() => client.end(true));
  await waitFor(() => gw.audit.latest !== undefined, 'the first scheduled run (before the device enrolled)');
  const run = await gw.audit.run(); // and one now, with the device
  t.equal(gw.audit.latest, run, 'the latest run is the one the API serves');

  const base = `https://127.0.0.1:${gw.httpsPort}`;
  const browser = await launch(t);
  const downloads = tempDir(t, 'wott-downloads-');
  const context = await browser.createBrowserContext({ downloadBehavior: { policy: 'allow', downloadPath: downloads } });
  const requested: string[] = [];
  recordRequests(context, requested);
  const page = await context.newPage();
  await signIn(page, await loginLink(gw.dir, base, 'viewer', 'auditor'));
  await page.click('a[href="/compliance"]');
  await page.waitForSelector('table.findings tbody tr');
  const rows = await page.$$eval('table.findings tbody tr', (trs) => trs.map((tr) => ({ check: tr.getAttribute('data-check'), text: tr.textContent ?? '' })));
  t.same(rows.map((r) => r.check), run.findings.map((f) => f.check), 'every finding of the latest run, in its order');
  const open = rows.find((r) => r.check === 'policy.open_to_everyone')!;
  t.match(open.text, /rule lobby\/# lets publish at score 0 and subscribe at score 0/, 'the finding');
  t.match(open.text, /policies: topic lobby\/# publish 0 subscribe 0/, 'its evidence');
  t.match(open.text, /give lobby\/# a minimum score/, 'its fix');
  const checks = await page.$$eval('table.checks tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
  t.equal(checks.length, run.checks.length, 'every check, with its result');
  t.match(await page.$eval('.audit-summary', (e) => e.textContent ?? ''), new RegExp(`over 1 device\\(s\\): ${run.findings.length} finding\\(s\\)`));

  // The report's buttons: each download lands in the browser's download folder under the server's name.
  const saved = (ext: string) => readdirSync(downloads).filter((f) => f.startsWith('wott-compliance-') && f.endsWith(`.${ext}`));
  for (const format of ['pdf', 'html', 'json'] as const) {
    await page.click(`.report-downloads button[data-format="${format}"]`);
    await waitFor(() => saved(format).length === 1 && !readdirSync(downloads).some((f) => f.endsWith('.crdownload')), `the ${format} download`, 120_000);
    await page.waitForFunction((f: string) => new RegExp(`^Downloaded wott-compliance-\\d{8}T\\d{6}Z\\.${f}$`).test(document.querySelector('.report-status')?.textContent ?? ''), {}, format);
  }
  const pdf = join(downloads, saved('pdf')[0]!);
  t.equal(readFileSync(pdf).subarray(0, 5).toString('latin1'), '%PDF-', 'the PDF is a PDF');
  t.match(execFileSync('pdftotext', [pdf, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' '), /ETSI EN 303 645 5\.1 — .*door-1/, 'with the provisions and the device');
  t.match(readFileSync(join(downloads, saved('html')[0]!), 'utf8'), /ETSI EN 303 645 5\.13/, 'the HTML report');
  const json = complianceReportSchema.parse(JSON.parse(readFileSync(join(downloads, saved('json')[0]!), 'utf8')));
  t.equal(json.audit.source, 'gateway', 'the JSON report, from the live view');
  t.ok(existsSync(pdf) && saved('pdf')[0]!.replace(/\.pdf$/, '') === saved('json')[0]!.replace(/\.json$/, ''), 'the three files are one report (one time in their names)');
  t.same(
    requested.filter((u) => u.includes('/reports/')).map((u) => new URL(u).pathname + new URL(u).search),
    ['/api/v1/reports/compliance?format=pdf', '/api/v1/reports/compliance?format=html', '/api/v1/reports/compliance?format=json'],
    'through the API route, nothing else',
  );
  const violations = await axeViolations(page);
  t.same(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical'), [], 'axe: no serious or critical violations');
  const shots = await screenshots(page, tempDir(t, 'wott-shots-'), 'compliance', () => page.waitForSelector('table.findings tbody tr'));
  t.equal(shots.length, 2, `screenshots at laptop and phone width (copied to /tmp/dashboard-shots)`);
  // On a phone the findings stack, one block per finding, so the long fix command is on screen without sideways scrolling.
  await page.setViewport(VIEWPORTS.phone);
  await page.waitForFunction(() => getComputedStyle(document.querySelector('table.findings thead')!).position === 'absolute');
  const phone = await page.evaluate(() => {
    const fix = document.querySelector('table.findings tbody td[data-label="Fix"] code') as HTMLElement;
    const wrap = fix.closest('.table-wrap') as HTMLElement | null;
    const rect = fix.getBoundingClientRect();
    return {
      pageScrolls: document.documentElement.scrollWidth > window.innerWidth,
      tableScrolls: wrap ? wrap.scrollWidth > wrap.clientWidth : false,
      fixInView: rect.left >= 0 && rect.right <= window.innerWidth && rect.width > 0,
    };
  });
  t.same(phone, { pageScrolls: false, tableScrolls: false, fixInView: true }, 'on a phone: no sideways scrolling, the fix within the screen');
  await page.setViewport(VIEWPORTS.laptop);
  const outside = requested.filter((u) => !u.startsWith('data:') && new URL(u).host !== `127.0.0.1:${gw.httpsPort}`);
  t.same(outside, [], 'every request went to the gateway');
  await context.close();
});
