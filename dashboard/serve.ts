/**
 * Serves the fleet dashboard (built by `npm run build` into dist/dashboard/public) from the API's Fastify app, on
 * the gateway's HTTPS listener: every page path (dashboard/pages.ts) answers the same index.html, and the browser's
 * router shows the page; /assets/ holds the bundle, precompressed (gzip, brotli). The shell holds no fleet data:
 * every datum comes from /api/v1 with the caller's session, so the shell itself is public, and without a session
 * the app says how to get a login link. Strict headers: scripts and styles from this origin only, no framing, no
 * Referer.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { DASHBOARD_ASSETS, DASHBOARD_PAGES } from './pages.js';

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const DASHBOARD_HEADERS: Record<string, string> = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

/**
 * The built dashboard: dist/dashboard/public beside this module when it runs from dist (or from the bundled CLI in
 * dist/cli/), or from the sources.
 */
export function dashboardRoot(): string | undefined {
  for (const candidate of ['./public/', '../dashboard/public/', '../dist/dashboard/public/']) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/;

/** A Fastify plugin (register it on the API's app): the dashboard's pages and assets, public like the login link. */
export async function serveDashboard(app: FastifyInstance, options: { root?: string | undefined }): Promise<void> {
  const root = options.root ?? dashboardRoot();
  app.addHook('onSend', async (_request, reply) => {
    reply.headers(DASHBOARD_HEADERS);
  });
  const page = (reply: FastifyReply) => {
    if (!root) return reply.code(503).type('text/plain; charset=utf-8').send('the dashboard is not built: run npm run build\n');
    return reply.type('text/html; charset=utf-8').sendFile('index.html');
  };
  if (root) await app.register(fastifyStatic, { root, serve: false, preCompressed: true, etag: true, lastModified: false });
  for (const path of new Set(Object.values(DASHBOARD_PAGES))) {
    app.get(path, { config: { public: true } }, (_request, reply) => page(reply));
  }
  app.get(`${DASHBOARD_ASSETS}:file`, { config: { public: true } }, (request, reply) => {
    const { file } = request.params as { file: string };
    if (!root || !ASSET_NAME.test(file)) return reply.callNotFound();
    return reply.sendFile(`assets/${file}`);
  });
}
