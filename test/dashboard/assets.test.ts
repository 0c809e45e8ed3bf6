/**
 * The dashboard's weight and how it is served: the built assets stay under the first-load budget (300 KB
 * compressed), the gateway sends the precompressed copies, and index.html loads nothing but its own two assets.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { dashboardRoot } from '../../dashboard/index.js';
import { inCi, requireCommand } from '../helpers.js';
import { testGateway } from '../mqtt-helpers.js';

const BUDGET = 300 * 1024;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
}

function get(port: number, ca: string, path: string, encoding: string): Promise<{ status: number; bytes: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`https://127.0.0.1:${port}${path}`, { ca, servername: 'localhost', agent: false, headers: { 'Accept-Encoding': encoding } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, bytes: Buffer.concat(chunks).length, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('the built dashboard is under the budget, gzip-compressed', async (t) => {
  const root = dashboardRoot();
  if (!root) {
    const msg = 'the dashboard is not built: run npm run build';
    if (inCi) t.fail(msg);
    else t.skip(msg, () => {});
    return;
  }
  const built = files(root).filter((f) => !f.endsWith('.gz') && !f.endsWith('.br'));
  t.ok(built.some((f) => f.endsWith('.js')) && built.some((f) => f.endsWith('.css')) && built.some((f) => f.endsWith('index.html')), 'a script, a stylesheet, a page');
  let raw = 0;
  let gz = 0;
  for (const file of built) {
    const body = readFileSync(file);
    raw += body.length;
    gz += gzipSync(body, { level: 9 }).length;
  }
  t.ok(gz < BUDGET, `everything the first load needs: ${(gz / 1024).toFixed(1)} KiB gzip (${(raw / 1024).toFixed(1)} KiB raw) < 300 KB`);
  const html = readFileSync(join(root, 'index.html'), 'utf8');
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  t.same(refs.filter((r) => r !== 'data:,' && !r.startsWith('/assets/')), [], 'index.html loads only its own assets');
  t.notMatch(html, /<script>|<style|style=/, 'no inline script or style');
});

t.test('the gateway sends the precompressed copies; the bytes on the wire fit the budget', async (t) => {
  if (!dashboardRoot() || !requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  for (const encoding of ['br', 'gzip']) {
    const page = await get(gw.httpsPort, gw.caPem, '/', encoding);
    t.equal(page.status, 200);
    t.equal(page.headers['content-encoding'], encoding, `/ as ${encoding}`);
    t.match(page.headers['content-type'], /^text\/html/);
    const html = (await get(gw.httpsPort, gw.caPem, '/', 'identity')).body.toString();
    let total = page.bytes;
    for (const [, path] of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) {
      const asset = await get(gw.httpsPort, gw.caPem, path!, encoding);
      t.equal(asset.status, 200, path!);
      t.equal(asset.headers['content-encoding'], encoding);
      t.match(asset.headers['content-type'], path!.endsWith('.js') ? /javascript/ : /text\/css/);
      total += asset.bytes;
    }
    t.ok(total < BUDGET, `first load over the wire (${encoding}): ${(total / 1024).toFixed(1)} KiB`);
  }
  t.equal((await get(gw.httpsPort, gw.caPem, '/assets/nothing.js', 'gzip')).status, 404, 'an unknown asset is a 404');
});
