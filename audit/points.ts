/**
 * The audit in InfluxDB, at bounded cardinality: one `audit` point per check (tag `check`, a fixed set) with its
 * finding count and status, and one `audit_summary` point with the counts per severity. Grafana can chart a
 * fleet's findings over time from these; the findings' texts stay in the API.
 */
import { Point } from '@influxdata/influxdb-client';
import { AUDIT_SEVERITIES, type AuditRun } from '../protocol/index.js';

export const AUDIT_MEASUREMENTS = { check: 'audit', summary: 'audit_summary' } as const;

export function auditPoints(run: AuditRun): Point[] {
  const at = new Date(run.finishedAt);
  const out = run.checks.map((c) =>
    new Point(AUDIT_MEASUREMENTS.check).tag('check', c.id).tag('category', c.category).intField('findings', c.findings).stringField('status', c.status).timestamp(at),
  );
  const summary = new Point(AUDIT_MEASUREMENTS.summary).tag('source', run.source).intField('devices', run.devices).intField('findings', run.findings.length);
  for (const s of AUDIT_SEVERITIES) summary.intField(s, run.counts[s]);
  out.push(summary.timestamp(at));
  return out;
}
