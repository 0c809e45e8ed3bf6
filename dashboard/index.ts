export { DASHBOARD_ASSETS, DASHBOARD_PAGES, isDashboardPath } from './pages.js';
export { DASHBOARD_CSP, DASHBOARD_HEADERS, dashboardRoot, serveDashboard } from './serve.js';
