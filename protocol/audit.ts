/**
 * Fleet audit and compliance reports (issue 19): the shape of an audit run (`wott audit run --json`,
 * `GET /api/v1/audit/latest`) and of a compliance report (`wott report compliance --format json`, whose JSON Schema is
 * published as protocol/compliance-report.schema.json, generated from the schema here).
 */
import { z } from 'zod';

const isoTime = z.string().describe('ISO 8601 time');

export const AUDIT_SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;
export type AuditSeverity = (typeof AUDIT_SEVERITIES)[number];
export const AUDIT_CATEGORIES = ['ca', 'certificates', 'identity', 'policy', 'operations'] as const;
export type AuditCategory = (typeof AUDIT_CATEGORIES)[number];

/** Below /api/v1 (GET /audit is the operator audit log, issue 13). */
export const AUDIT_PATHS = { latest: '/audit/latest', runs: '/audit/runs', compliance: '/reports/compliance' } as const;

/** The compliance report's formats, their media types and file extensions (CLI --format, API ?format=). */
export const REPORT_FORMATS = ['html', 'pdf', 'json'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
export const REPORT_MEDIA_TYPES: Record<ReportFormat, string> = { html: 'text/html; charset=utf-8', pdf: 'application/pdf', json: 'application/json; charset=utf-8' };

/** GET /api/v1/reports/compliance?format= */
export const complianceReportQuerySchema = z.strictObject({
  format: z.enum(REPORT_FORMATS).default('json').describe('json (the default: protocol/compliance-report.schema.json), html (self-contained page), pdf (printed by Chromium on the gateway)'),
});

/** One fact a finding rests on, and when wott observed it. */
export const evidenceSchema = z.strictObject({
  fact: z.string().describe('what was seen, e.g. "certificate 3f… expires 2026-12-01T10:00:00Z"'),
  observedAt: isoTime.describe('when wott observed the fact'),
});
export type Evidence = z.infer<typeof evidenceSchema>;

export const auditFindingSchema = z.strictObject({
  check: z.string().describe('the check that found it, e.g. ca.key_encryption'),
  severity: z.enum(AUDIT_SEVERITIES),
  title: z.string().describe('one line a person reads'),
  objects: z.array(z.string()).describe('what is affected: device:ID, certificate:SERIAL, rule:TOPIC, ca:root …'),
  evidence: z.array(evidenceSchema),
  fix: z.string(),
});
export type AuditFinding = z.infer<typeof auditFindingSchema>;

export const AUDIT_CHECK_STATUSES = ['pass', 'findings', 'not_assessable'] as const;
export const auditCheckSchema = z.strictObject({
  id: z.string(),
  category: z.enum(AUDIT_CATEGORIES),
  title: z.string().describe('what the check asks'),
  status: z.enum(AUDIT_CHECK_STATUSES),
  note: z.string().nullable().describe('pass: what was looked at; not_assessable: why wott has no evidence for it here'),
  findings: z.number().int(),
});
export type AuditCheck = z.infer<typeof auditCheckSchema>;

export const auditRunSchema = z.strictObject({
  id: z.string().describe('the run, e.g. 2026-11-30T13:00:00.000Z'),
  startedAt: isoTime,
  finishedAt: isoTime,
  source: z.enum(['gateway', 'cli']).describe('gateway: with the live broker facts (sessions, behaviour events); cli: the data folder only'),
  devices: z.number().int(),
  counts: z.strictObject(Object.fromEntries(AUDIT_SEVERITIES.map((s) => [s, z.number().int()])) as Record<AuditSeverity, z.ZodNumber>),
  checks: z.array(auditCheckSchema),
  findings: z.array(auditFindingSchema).describe('most severe first'),
});
export type AuditRun = z.infer<typeof auditRunSchema>;

/** POST /api/v1/audit/runs: no body. */
export const auditRunBodySchema = z.strictObject({}).optional();

/** GET /api/v1/audit/latest: the latest run (null before the first). */
export const auditLatestSchema = z.strictObject({
  run: auditRunSchema.nullable(),
  nextRunAt: isoTime.nullable().describe('when the gateway runs the next scheduled audit (null: not scheduled)'),
});
export type AuditLatest = z.infer<typeof auditLatestSchema>;

// ------------------------------------------------------------------ compliance report

export const COMPLIANCE_STANDARDS = ['ETSI EN 303 645', 'NIST IR 8259A'] as const;
export const PROVISION_RESULTS = ['met', 'not_met', 'not_assessable'] as const;
export type ProvisionResult = (typeof PROVISION_RESULTS)[number];

export const deviceProvisionSchema = z.strictObject({
  device: z.string(),
  result: z.enum(PROVISION_RESULTS),
  evidence: z.array(evidenceSchema),
  fix: z.string().nullable().describe('not_met: what to do'),
});
export type DeviceProvision = z.infer<typeof deviceProvisionSchema>;

export const provisionSchema = z.strictObject({
  standard: z.enum(COMPLIANCE_STANDARDS),
  id: z.string().describe('5.1 … 5.13 (ETSI), or the NIST IR 8259A capability'),
  title: z.string(),
  scope: z.enum(['device', 'fleet', 'outside']).describe('device: judged per device; fleet: one judgement for the deployment; outside: wott holds no evidence for it'),
  summary: z.strictObject({ met: z.number().int(), notMet: z.number().int(), notAssessable: z.number().int() }),
  result: z.enum(PROVISION_RESULTS).describe('the fleet: met when every device meets it, not_met when any does not'),
  why: z.string().describe('how wott judges it, or why it cannot'),
  fleetEvidence: z.array(evidenceSchema),
  devices: z.array(deviceProvisionSchema),
});
export type Provision = z.infer<typeof provisionSchema>;

export const complianceSummarySchema = z.strictObject({
  generatedAt: isoTime,
  devices: z.number().int(),
  /** Provision key ("ETSI EN 303 645 5.1") → devices meeting it. */
  met: z.record(z.string(), z.number().int()),
});
export type ComplianceSummary = z.infer<typeof complianceSummarySchema>;

export const complianceReportSchema = z.strictObject({
  schema: z.literal('wott.compliance/1'),
  generatedAt: isoTime,
  gateway: z.strictObject({ rootFingerprint: z.string(), devices: z.number().int() }),
  provisions: z.array(provisionSchema),
  summary: complianceSummarySchema,
  previous: complianceSummarySchema.nullable().describe('the summary of the report before this one, for the trend'),
  audit: auditRunSchema.describe('the audit run the report is built on'),
});
export type ComplianceReport = z.infer<typeof complianceReportSchema>;

/** The published JSON Schema of the report (protocol/compliance-report.schema.json is this, committed). */
export function complianceReportJsonSchema(): Record<string, unknown> {
  return { $id: 'https://wott.invalid/schemas/compliance-report.json', title: 'wott compliance report', ...(z.toJSONSchema(complianceReportSchema) as Record<string, unknown>) };
}
