/**
 * The compliance report as PDF, printed by Debian's chromium through `wott report compliance --format pdf`: poppler's
 * pdftoppm renders every page to an image with ink on it, and pdftotext finds every provision. Without chromium the
 * command fails with a clear message.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { CertificateAuthority } from '../../ca/index.js';
import { PROVISIONS } from '../../report/index.js';
import { CLI, makeCsr, requireCommand, tempDir } from '../helpers.js';
import { run } from '../mqtt-helpers.js';

/** Whether a binary PPM (P6, as pdftoppm writes it) has a pixel that is not white. */
function hasInk(ppm: Buffer): boolean {
  const header = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(ppm.subarray(0, 64).toString('latin1'));
  if (!header) throw new Error('not a P6 PPM');
  const pixels = ppm.subarray(header[0].length);
  for (let i = 0; i < pixels.length; i++) if (pixels[i]! < 200) return true;
  return false;
}

t.test('the PDF report: every page renders with ink, and every provision is in its text', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  if (!requireCommand(t, 'chromium', 'chromium')) return;
  if (!requireCommand(t, 'pdftoppm', 'poppler-utils')) return;
  const dir = tempDir(t);
  // A small fleet (enough devices for the per-device appendix to need several pages).
  const ca = await CertificateAuthority.open({ dataDir: dir });
  for (let i = 1; i <= 8; i++) await ca.enrollWithToken(`sensor-${i}`, (await ca.createToken(`sensor-${i}`)).token, makeCsr(dir, `/CN=sensor-${i}`).der);
  await ca.close();

  const pdf = join(dir, 'compliance.pdf');
  const made = await run(process.execPath, [CLI, 'report', 'compliance', '--format', 'pdf', '--out', pdf, '--data', dir], 120_000);
  t.equal(made.code, 0, made.stderr);
  t.match(made.stdout, /wrote .*compliance\.pdf: 19 provisions/);
  t.equal(readFileSync(pdf).subarray(0, 5).toString('latin1'), '%PDF-');

  const pages = Number(/Pages:\s+(\d+)/.exec(execFileSync('pdfinfo', [pdf], { encoding: 'utf8' }))![1]);
  t.ok(pages >= 2, `paginated: ${pages} pages`);
  const images = join(dir, 'pages');
  execFileSync('mkdir', ['-p', images]);
  execFileSync('pdftoppm', ['-r', '30', pdf, join(images, 'page')]);
  const rendered = readdirSync(images).filter((f) => f.endsWith('.ppm')).sort();
  t.equal(rendered.length, pages, 'pdftoppm rendered every page');
  for (const f of rendered) t.ok(hasInk(readFileSync(join(images, f))), `${f} is not blank`);

  const text = execFileSync('pdftotext', [pdf, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
  for (const p of PROVISIONS) t.ok(text.includes(`${p.standard} ${p.id} — `), `pdftotext finds ${p.standard} ${p.id}`);
  t.match(text, /Appendix: per device/);
  t.match(text, /sensor-8/, 'the appendix lists the devices');
});

t.test('without chromium, --format pdf fails with a clear message and writes nothing', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  await (await CertificateAuthority.open({ dataDir: dir })).close();
  const pdf = join(dir, 'none.pdf');
  const r = await run('/usr/bin/env', [`PATH=${join(dir, 'empty-path')}`, 'WOTT_CHROMIUM=/nonexistent/chromium', process.execPath, CLI, 'report', 'compliance', '--format', 'pdf', '--out', pdf, '--data', dir], 60_000);
  t.equal(r.code, 2, 'a known refusal');
  t.match(r.stderr, /PDF needs Chromium .*apt-get install chromium/);
  t.same(readdirSync(dir).filter((f) => f.endsWith('.pdf')), [], 'no file');
});
