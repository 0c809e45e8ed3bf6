/**
 * PDF by Debian's chromium printing the report's HTML (`--headless --print-to-pdf`): a real layout engine with
 * pagination, and no PDF library to keep. Chromium is found on PATH (chromium, chromium-browser) or at
 * /usr/bin/chromium, or named by $WOTT_CHROMIUM; without it, a clear error says how to install it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class ChromiumMissingError extends Error {
  override name = 'ChromiumMissingError';
}

/** The chromium executable, or undefined. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.WOTT_CHROMIUM) return existsSync(env.WOTT_CHROMIUM) ? env.WOTT_CHROMIUM : undefined;
  for (const name of ['chromium', 'chromium-browser']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  return existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined;
}

/** Prints `html` to the PDF file `out` (written whole, or not at all). */
export async function htmlToPdf(html: string, out: string, options: { chromium?: string; timeoutMs?: number } = {}): Promise<void> {
  writeFileAtomic(out, await renderPdf(html, options), 0o600);
}

/** Prints `html` to PDF and returns its bytes. */
export async function renderPdf(html: string, options: { chromium?: string; timeoutMs?: number } = {}): Promise<Buffer> {
  const chromium = options.chromium ?? findChromium();
  if (!chromium) {
    throw new ChromiumMissingError('PDF needs Chromium to print the report: apt-get install chromium (or set WOTT_CHROMIUM to its path); --format html gives the same report without it');
  }
  // A private folder of our own: the page, and Chromium's profile (it must not touch the user's).
  const work = mkdtempSync(join(tmpdir(), 'wott-report-'));
  try {
    const page = join(work, 'report.html');
    const pdf = join(work, 'report.pdf');
    writeFileSync(page, html, { mode: 0o600 });
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(work, 'profile')}`,
      '--no-pdf-header-footer',
      `--print-to-pdf=${pdf}`,
      `file://${page}`,
    ];
    const stderr = await new Promise<string>((resolve, reject) => {
      const child = spawn(chromium, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: options.timeoutMs ?? 120_000 });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(err) : reject(new Error(`chromium exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`))));
    });
    if (!existsSync(pdf) || statSync(pdf).size < 100 || !startsWithPdf(pdf)) throw new Error(`chromium wrote no PDF: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return readFileSync(pdf);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function startsWithPdf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(5);
    readSync(fd, head, 0, 5, 0);
    return head.toString('latin1') === '%PDF-';
  } finally {
    closeSync(fd);
  }
}
