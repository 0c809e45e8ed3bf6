/**
 * The fleet audit and the compliance report (issue 19): `GET /api/v1/audit/latest`, the latest run of the gateway's
 * scheduled audit with its findings (every operator role); `POST /api/v1/audit/runs`, a run now (operator: it may
 * raise fleet events and write InfluxDB points); `GET /api/v1/reports/compliance?format=html|pdf|json`, the
 * compliance report as a download (every operator role: an auditor is typically given a viewer certificate, and
 * the report shows nothing a viewer cannot already read through /devices and /audit/latest).
 *
 * The report is built by the same use case as `wott report compliance` (report/service.ts); its limits (one build
 * or print at a time, the latest report served for a while, a bounded number of waiting requests) live there.
 */
import {
  AUDIT_PATHS,
  auditLatestSchema,
  auditRunBodySchema,
  auditRunSchema,
  complianceReportQuerySchema,
  complianceReportSchema,
  type AuditLatest,
  type AuditRun,
  type ComplianceReport,
  type ReportFormat,
} from '../protocol/index.js';
import { FleetRefusal } from './fleet-port.js';
import type { RouteContext, RouteSpec } from './routes.js';

/** What the gateway's audit scheduler answers. */
export interface AuditSource {
  latest: AuditRun | undefined;
  nextRunAt: number | undefined;
  /** Runs an audit now (joins one under way). */
  run(): Promise<AuditRun>;
}

/** The compliance report use case (report/service.ts ComplianceReports). */
export interface ReportSource {
  render(format: ReportFormat): Promise<{ contentType: string; filename: string; body: Buffer; report: ComplianceReport }>;
}

/** The report source's refusals and failures the caller can act on: the status and the Retry-After. */
function reportRefusal(err: Error): { status: 503; message: string; retryAfter?: number } | undefined {
  if (err.name === 'ReportBusyError') return { status: 503, message: err.message, retryAfter: (err as Error & { retryAfterSeconds: number }).retryAfterSeconds };
  if (err.name === 'ChromiumMissingError') return { status: 503, message: `the gateway cannot print PDFs: ${err.message}` };
  return undefined;
}

export const AUDIT_ROUTES: RouteSpec[] = [
  {
    method: 'GET',
    path: AUDIT_PATHS.latest,
    summary: 'the latest fleet audit run (scheduled daily by the gateway): its checks and findings, each with severity, affected objects, evidence and fix; run null before the first',
    access: { role: 'viewer' },
    response: auditLatestSchema,
    handler: async ({ deps }: RouteContext<unknown, unknown, unknown>): Promise<AuditLatest> => {
      if (!deps.audit) throw new FleetRefusal(404, 'this server runs no fleet audit');
      const next = deps.audit.nextRunAt;
      return { run: deps.audit.latest ?? null, nextRunAt: next === undefined ? null : new Date(next).toISOString() };
    },
  },
  {
    method: 'POST',
    path: AUDIT_PATHS.runs,
    summary: 'run the fleet audit now, with the live broker (sessions, refused handshakes): the run, which becomes the latest; a request while one runs gets that run (what `wott audit run` asks a gateway on its data folder)',
    access: { role: 'operator' },
    body: auditRunBodySchema,
    response: auditRunSchema,
    handler: async ({ deps }: RouteContext<unknown, unknown, unknown>): Promise<AuditRun> => {
      if (!deps.audit) throw new FleetRefusal(404, 'this server runs no fleet audit');
      return deps.audit.run();
    },
  },
  {
    method: 'GET',
    path: AUDIT_PATHS.compliance,
    summary:
      'the compliance report (ETSI EN 303 645, NIST IR 8259A) from the live evidence, as a download: ?format=json (default)|html|pdf. ' +
      'The gateway builds one report at a time and serves the latest for 60 s (every format of it; its time is Last-Modified); ' +
      'more than 8 requests waiting for a build or a print get 503 with Retry-After; PDF needs chromium on the gateway (503 without)',
    access: { role: 'viewer' },
    query: complianceReportQuerySchema,
    response: complianceReportSchema,
    downloads: { 'text/html': 'format=html: one self-contained page', 'application/pdf': 'format=pdf: printed by Chromium, paginated' },
    handler: async ({ deps, query, reply }: RouteContext<unknown, { format: ReportFormat }, unknown>) => {
      if (!deps.reports) throw new FleetRefusal(404, 'this server builds no compliance reports');
      let rendered;
      try {
        rendered = await deps.reports.render(query.format);
      } catch (err) {
        const refusal = reportRefusal(err as Error);
        if (!refusal) throw err;
        if (refusal.retryAfter) void reply.header('Retry-After', String(refusal.retryAfter));
        throw new FleetRefusal(refusal.status, refusal.message);
      }
      return reply
        .type(rendered.contentType)
        .header('Content-Disposition', `attachment; filename="${rendered.filename}"`)
        .header('Last-Modified', new Date(rendered.report.generatedAt).toUTCString())
        .send(rendered.body);
    },
  },
];
