/** grafana/: dashboards generated from code, their InfluxQL queries, and the provisioning files beside them. */
export { DATASOURCE, DEFAULT_THRESHOLDS, deviceDashboard, fleetDashboard, renderDashboards } from './dashboards.js';
export { deviceQueries, fleetQueries } from './queries.js';
