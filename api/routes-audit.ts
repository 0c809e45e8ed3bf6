/**
 * The fleet audit (issue 19): `GET /api/v1/audit/latest`, the latest run of the gateway's scheduled audit with its
 * findings. Every operator role may read it.
 */
import { AUDIT_PATHS, auditLatestSchema, type AuditLatest, type AuditRun } from '../protocol/index.js';
import { FleetRefusal } from './fleet-port.js';
import type { RouteContext, RouteSpec } from './routes.js';

/** What the gateway's audit scheduler answers. */
export interface AuditSource {
  latest: AuditRun | undefined;
  nextRunAt: number | undefined;
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
];
