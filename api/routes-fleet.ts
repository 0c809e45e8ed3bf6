/**
 * The fleet read routes of issue 13 beyond devices: recommended actions (with snooze and ignore), vulnerabilities,
 * policies and explain. Registered from the route table (api/routes.ts spreads FLEET_ROUTES into ROUTES), so they
 * are validated, documented and refusal-tested like every other route. Handlers call FleetOperations only.
 */
import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import {
  actionDecisionSchema,
  actionListQuerySchema,
  actionListSchema,
  actionParamsSchema,
  explainBodySchema,
  explainResultSchema,
  noBodySchema,
  policyListSchema,
  snoozeBodySchema,
  vulnListQuerySchema,
  vulnListSchema,
} from '../protocol/index.js';
import { toCsv } from './csv.js';
import type { RouteContext, RouteSpec } from './routes.js';

/** Local twin of routes.ts' route(): importing values from routes.ts here would make a cycle at load time. */
function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  spec: Omit<RouteSpec, 'handler' | 'params' | 'query' | 'body'> & {
    params?: P;
    query?: Q;
    body?: B;
    handler(ctx: RouteContext<z.output<P>, z.output<Q>, z.output<B>>): Promise<unknown>;
  },
): RouteSpec {
  return spec as RouteSpec;
}

const csvReply = (reply: FastifyReply, name: string, body: string) =>
  reply.type('text/csv; charset=utf-8').header('Content-Disposition', `attachment; filename="${name}.csv"`).send(body);

const SNOOZE_MS = { '24h': 86_400_000, '7d': 7 * 86_400_000 } as const;

export const FLEET_ROUTES: RouteSpec[] = [
  route({
    method: 'GET',
    path: '/actions',
    summary: 'Recommended actions across the fleet, grouped, each with its affected devices (most devices first); ?format=csv',
    access: { role: 'viewer' },
    query: actionListQuerySchema,
    response: actionListSchema,
    csv: true,
    async handler({ query, reply, deps }) {
      const list = await deps.fleet.actions({ status: query.status, limit: query.limit, devices: query.devices });
      if (query.format === 'csv') {
        const rows = list.items.flatMap((g) => g.devices.map((d) => [g.id, g.title, g.fix, d.id, d.cost, d.status, d.snoozedUntil]));
        return csvReply(reply, 'actions', toCsv(['action', 'title', 'fix', 'device', 'cost', 'status', 'snoozedUntil'], rows));
      }
      return list;
    },
  }),
  route({
    method: 'POST',
    path: '/devices/{id}/actions/{action}/snooze',
    summary: 'Snooze a recommended action on a device for 24 h or 7 days (it still counts in the score)',
    access: { role: 'operator' },
    audited: true,
    params: actionParamsSchema,
    body: snoozeBodySchema,
    response: actionDecisionSchema,
    async handler({ params, body, caller, deps }) {
      return deps.fleet.decideAction(params.id, params.action, { kind: 'snooze', forMs: SNOOZE_MS[body.duration] }, caller.identity);
    },
  }),
  route({
    method: 'POST',
    path: '/devices/{id}/actions/{action}/ignore',
    summary: 'Ignore a recommended action on a device until un-ignored (it still counts in the score)',
    access: { role: 'operator' },
    audited: true,
    params: actionParamsSchema,
    body: noBodySchema,
    response: actionDecisionSchema,
    async handler({ params, caller, deps }) {
      return deps.fleet.decideAction(params.id, params.action, { kind: 'ignore' }, caller.identity);
    },
  }),
  route({
    method: 'DELETE',
    path: '/devices/{id}/actions/{action}',
    summary: 'Un-ignore (or un-snooze) a recommended action on a device',
    access: { role: 'operator' },
    audited: true,
    params: actionParamsSchema,
    response: actionDecisionSchema,
    async handler({ params, caller, deps }) {
      return deps.fleet.decideAction(params.id, params.action, { kind: 'clear' }, caller.identity);
    },
  }),
  route({
    method: 'GET',
    path: '/vulnerabilities',
    summary: 'CVEs across the fleet, worst first: affected devices with installed and fixed versions and the fixing command; ?format=csv',
    access: { role: 'viewer' },
    query: vulnListQuerySchema,
    response: vulnListSchema,
    csv: true,
    async handler({ query, reply, deps }) {
      const list = await deps.fleet.vulnerabilities({ limit: query.limit, ...(query.severity ? { severity: query.severity } : {}), ...(query.q !== undefined ? { q: query.q } : {}) });
      if (query.format === 'csv') {
        const rows = list.items.flatMap((v) => v.devices.map((d) => [v.cve, v.severity, d.id, d.package, d.installed, d.fixed, d.fixCommand]));
        return csvReply(reply, 'vulnerabilities', toCsv(['cve', 'severity', 'device', 'package', 'installed', 'fixed', 'fixCommand'], rows));
      }
      return list;
    },
  }),
  route({
    method: 'GET',
    path: '/policies',
    summary: 'The topic policy rules, each with how many devices pass its publish and subscribe thresholds now',
    access: { role: 'viewer' },
    response: policyListSchema,
    async handler({ deps }) {
      return deps.fleet.policies();
    },
  }),
  route({
    method: 'POST',
    path: '/policies/explain',
    summary: 'The decision the broker would make now for a device, topic and action, with the reason',
    access: { role: 'viewer' },
    body: explainBodySchema,
    response: explainResultSchema,
    async handler({ body, deps }) {
      return deps.fleet.explain(body.device, body.topic, body.action);
    },
  }),
];
