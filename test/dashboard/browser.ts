/**
 * Test plumbing for the dashboard: Debian's chromium driven by puppeteer-core (never a downloaded browser), login
 * links from the real CLI, every request the browser makes recorded, screenshots at laptop and phone widths.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import puppeteer, { type Browser, type BrowserContext, type Page } from 'puppeteer-core';
import { CLI, requireCommand } from '../helpers.js';

type T = Parameters<typeof requireCommand>[0];

export const CHROMIUM = '/usr/bin/chromium';
export const VIEWPORTS = { laptop: { width: 1366, height: 900 }, phone: { width: 390, height: 844 } } as const;
/** Where the final screenshots are copied for people to look at. */
export const SHOTS_DIR = '/tmp/dashboard-shots';

/** chromium (installed from Debian when root and missing), or a skip (a failure under CI=true). */
export function requireChromium(t: T): boolean {
  return requireCommand(t, 'chromium', 'chromium');
}

export async function launch(t: T): Promise<Browser> {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // The test gateway's certificate names localhost; the page is opened on 127.0.0.1 so that nothing resolves
    // elsewhere. The certificate is still checked by every node-side request in these tests.
    acceptInsecureCerts: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** Every URL any page of `context` requested. */
export function recordRequests(context: BrowserContext, into: string[]): void {
  const watch = (page: Page | null) => page?.on('request', (r) => void into.push(r.url()));
  context.on('targetcreated', (target) => void target.page().then(watch));
}

/** `wott operator login` (the real CLI, another process): the one-time link it prints. */
export function loginLink(dataDir: string, base: string, role: 'viewer' | 'operator' | 'admin', name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'operator', 'login', '--role', role, '--name', name, '--data', dataDir, '--url', base], { timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => (code === 0 ? resolve(stdout.trim()) : reject(new Error(`wott operator login: ${code} ${stderr}`))));
  });
}

/** Opens the link and presses Sign in, as a person would: the browser lands on the dashboard with its cookie. */
export async function signIn(page: Page, link: string): Promise<void> {
  await page.goto(link);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.waitForSelector('header.top');
}

export async function textOf(page: Page, selector: string): Promise<string> {
  return page.$eval(selector, (e) => (e as HTMLElement).innerText);
}

export async function columnText(page: Page, selector = 'table.devices tbody th'): Promise<string[]> {
  return page.$$eval(selector, (cells) => cells.map((c) => (c as HTMLElement).innerText.trim()));
}

/** A full-page screenshot at each width, under `dir` and copied to SHOTS_DIR. */
export async function screenshots(page: Page, dir: string, name: string, ready: () => Promise<unknown> = async () => {}): Promise<string[]> {
  const written: string[] = [];
  mkdirSync(SHOTS_DIR, { recursive: true });
  for (const [width, viewport] of Object.entries(VIEWPORTS)) {
    await page.setViewport(viewport);
    await ready();
    await new Promise((r) => setTimeout(r, 100));
    const path = join(dir, `${name}-${width}.png`) as `${string}.png`;
    await page.screenshot({ path, fullPage: true });
    copyFileSync(path, join(SHOTS_DIR, `${name}-${width}.png`));
    written.push(path);
  }
  await page.setViewport(VIEWPORTS.laptop);
  return written;
}

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/**
 * axe-core in the page: the serious and critical accessibility violations (WCAG 2.x A and AA rules). The page's CSP
 * admits no injected script, so CSP is bypassed for this page only while axe runs.
 */
export async function axeViolations(page: Page): Promise<Array<{ id: string; impact: string; help: string; nodes: string[] }>> {
  await page.setBypassCSP(true);
  await page.reload();
  await page.waitForSelector('main');
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Array<{ id: string; impact: string; help: string; nodes: Array<{ target: string[] }> }> }> } }).axe;
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
  await page.setBypassCSP(false);
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
