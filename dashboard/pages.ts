/**
 * The dashboard's pages and their URL patterns: one list for the browser's router (dashboard/app) and for the
 * gateway, which answers these paths (and /assets/) with the single-page app and sends every other path that is not
 * /api/ to EST, /crl, /ocsp and /metrics as before.
 */
export const DASHBOARD_PAGES = {
  overview: '/',
  devices: '/devices',
  device: '/devices/:id',
  enroll: '/enroll',
  audit: '/audit',
  operators: '/operators',
  sessions: '/sessions',
  actions: '/actions',
  vulnerabilities: '/vulnerabilities',
  policies: '/policies',
  credentials: '/credentials',
  compliance: '/compliance',
} as const;

/** Where the built assets (scripts, styles) are served. */
export const DASHBOARD_ASSETS = '/assets/';

const PAGE_PATTERNS = Object.values(DASHBOARD_PAGES).map((p) => new RegExp(`^${p.replace(/:\w+/g, '[^/]+')}/?$`));

/** Whether the gateway answers `url` with the dashboard (a page, or one of its assets). */
export function isDashboardPath(url: string | undefined): boolean {
  const path = (url ?? '/').split('?')[0]!;
  if (path.startsWith(DASHBOARD_ASSETS)) return true;
  return PAGE_PATTERNS.some((re) => re.test(path));
}
