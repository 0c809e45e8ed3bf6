/**
 * The API's route table: one entry per route with its access rule, its zod schemas and its handler. The Fastify
 * app registers from it, the OpenAPI document is generated from it, and the refusal tests walk it, so a new route
 * is validated, documented and tested for refusals by being added here. Handlers call FleetOperations (and the
 * session manager for the session routes), never a store or the CA.
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import {
  auditPageSchema,
  auditQuerySchema,
  deviceDetailSchema,
  deviceListQuerySchema,
  deviceParamsSchema,
  devicePageSchema,
  deviceSummarySchema,
  endedSchema,
  fleetSummarySchema,
  noBodySchema,
  operatorCertificateSchema,
  operatorListSchema,
  operatorSerialParamsSchema,
  revokeBodySchema,
  revokeResultSchema,
  sessionListSchema,
  sessionParamsSchema,
  tagsBodySchema,
  tagChangeBodySchema,
  tokenBodySchema,
  tokenResultSchema,
  whoamiSchema,
  type SseEventSpec,
  type TokenResult,
  type Whoami,
} from '../protocol/index.js';
import type { Access, Caller } from './auth.js';
import { toCsv } from './csv.js';
import { FleetRefusal, type FleetOperations } from './fleet-port.js';
import { FLEET_ROUTES } from './routes-fleet.js';
import type { Sessions } from './sessions.js';
import { TRUST_ROUTES, type TrustOperations, type TrustStreamLimits } from './routes-trust.js';
import { BULK_ROUTES } from './routes-bulk.js';
import { CREDENTIAL_ROUTES, type CredentialOperations } from './routes-credentials.js';
import { EVENT_ROUTES, type EventStreamLimits, type FleetEventSource } from './routes-events.js';
import { AUDIT_ROUTES, type AuditSource, type ReportSource } from './routes-audit.js';

export interface ApiDeps {
  fleet: FleetOperations;
  sessions: Sessions;
  /** The gateway's public HTTPS base URL (EST and the API), e.g. https://gw.example:8443. */
  publicUrl: () => string;
  /** Trust for services (api/routes-trust.ts) and the limits of its event stream. */
  trust: TrustOperations;
  trustStream?: Partial<TrustStreamLimits>;
  /** The fleet event feed for operators (api/routes-events.ts) and the limits of its stream. */
  events?: FleetEventSource;
  eventStream?: Partial<EventStreamLimits>;
  /** Whether a certificate serial is revoked (the app's own check): long-lived streams re-ask it. */
  isRevoked?: (serial: string) => boolean;
  /** Credentials (api/routes-credentials.ts): the CLI's CredentialService; absent, those routes answer 404. */
  credentials?: CredentialOperations;
  /** The gateway's scheduled fleet audit (api/routes-audit.ts); absent, GET /audit answers 404. */
  audit?: AuditSource;
  /** The compliance report (api/routes-audit.ts); absent, GET /reports/compliance answers 404. */
  reports?: ReportSource;
}

export interface RouteContext<P, Q, B> {
  caller: Caller;
  params: P;
  query: Q;
  body: B;
  reply: FastifyReply;
  deps: ApiDeps;
}

export interface RouteSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Below /api/v1, OpenAPI style: /devices/{id}. */
  path: string;
  summary: string;
  access: Access;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  response: z.ZodType;
  /** The route answers text/csv with ?format=csv. */
  csv?: boolean;
  /** Other media types the route answers (by ?format=), as downloads: media type → what it is. */
  downloads?: Record<string, string>;
  /** Changes something: recorded in the audit log with the caller. */
  audited?: boolean;
  /**
   * A Server-Sent Events route: it takes over its response (reply.hijack) and keeps it open. Documented as
   * text/event-stream with these events (api/openapi.ts), and held only while the caller's credential stays good:
   * it ends when the session ends or the certificate is revoked or expires (api/credential-watch.ts).
   */
  events?: Record<string, SseEventSpec>;
  handler(ctx: RouteContext<any, any, any>): Promise<unknown>;
}

const none = z.undefined();
function route<P extends z.ZodType = typeof none, Q extends z.ZodType = typeof none, B extends z.ZodType = typeof none>(
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

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Ready-to-copy enrollment: the agent command, and the same with curl and openssl, pinning the root. */
export function enrollmentCommands(server: string, device: string, token: string, rootFingerprint: string): Pick<TokenResult, 'agentCommand' | 'curlCommands'> {
  const s = shellQuote(server);
  return {
    agentCommand: `wott agent enroll --server ${s} --device ${device} --token ${token} --ca-fingerprint ${rootFingerprint}`,
    curlCommands: [
      'set -e',
      '# the CA certificates (intermediate, root); trust them only if the root is the one pinned here',
      `curl -sSk ${s}/.well-known/est/cacerts | base64 -d | openssl pkcs7 -inform DER -print_certs -out est-cacerts.pem`,
      "awk '/BEGIN CERT/{n++} n==1' est-cacerts.pem > issuing.pem",
      "awk '/BEGIN CERT/{n++} n==2' est-cacerts.pem > root.pem",
      `test "$(openssl x509 -in root.pem -noout -fingerprint -sha256 | cut -d= -f2)" = ${rootFingerprint} || { echo 'root fingerprint mismatch: do not enroll here' >&2; exit 1; }`,
      'openssl verify -CAfile root.pem issuing.pem >/dev/null',
      'cat issuing.pem root.pem > cacerts.pem',
      '# a P-256 key that never leaves the device, and its CSR (CN = device id)',
      `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${device}.key`,
      `openssl req -new -key ${device}.key -subj /CN=${device} -outform DER | base64 > ${device}.csr.b64`,
      '# enroll with the one-time token (on an error, the server says why)',
      `curl -sS --fail-with-body --cacert cacerts.pem -u ${device}:${token} -H 'Content-Type: application/pkcs10' --data-binary @${device}.csr.b64 ${s}/.well-known/est/simpleenroll -o ${device}.p7 || { cat ${device}.p7 >&2; exit 1; }`,
      `openssl base64 -d -in ${device}.p7 | openssl pkcs7 -inform DER -print_certs -out ${device}.crt`,
    ].join('\n'),
  };
}

export const ROUTES: RouteSpec[] = [
  route({
    method: 'GET',
    path: '/openapi.json',
    summary: 'This API as an OpenAPI 3.1 document',
    access: { role: 'viewer', services: true },
    response: z.record(z.string(), z.unknown()),
    async handler() {
      // Imported when asked for: the document is generated from this very table.
      return (await import('./openapi.js')).buildOpenApi();
    },
  }),
  route({
    method: 'GET',
    path: '/whoami',
    summary: 'Who the API takes the caller for, and (sessions) the CSRF token to send on POST, PUT and DELETE',
    access: { role: 'viewer', services: true },
    response: whoamiSchema,
    async handler({ caller }): Promise<Whoami> {
      return {
        identity: caller.identity,
        via: caller.via,
        role: caller.role,
        name: caller.name,
        ...(caller.session ? { csrfToken: caller.session.csrfToken, sessionExpiresAt: caller.session.session.expiresAt } : {}),
      };
    },
  }),
  route({
    method: 'GET',
    path: '/devices',
    summary: 'Devices with their effective score, costliest factor, last report, connection and vulnerability counts: filter by state, tag, score range, rule threshold or free text, sort, page by cursor; ?format=csv for a spreadsheet',
    access: { role: 'viewer' },
    query: deviceListQuerySchema,
    response: devicePageSchema,
    csv: true,
    async handler({ query, reply, deps }) {
      const { format, ...filter } = query;
      const page = await deps.fleet.listDevices(filter);
      if (format === 'csv') {
        if (page.nextCursor) reply.header('X-Next-Cursor', page.nextCursor);
        return csvReply(
          reply,
          'devices',
          toCsv(
            ['id', 'state', 'tags', 'createdAt', 'updatedAt', 'certificateExpiry', 'score', 'worstFactor', 'lastReport', 'connectedSince', 'remoteAddress', 'critical', 'high', 'medium', 'low'],
            page.items.map((d) => [d.id, d.state, d.tags.join(' '), d.createdAt, d.updatedAt, d.certificateExpiry, d.score, d.worstFactor?.id ?? null, d.lastReport, d.connected?.since ?? null, d.connected?.remoteAddress ?? null, d.vulnerabilities.critical, d.vulnerabilities.high, d.vulnerabilities.medium, d.vulnerabilities.low]),
          ),
        );
      }
      return page;
    },
  }),
  route({
    method: 'GET',
    path: '/devices/{id}',
    summary: 'One device: score with every factor, score history, certificates with their chain of renewals, sessions, recent behaviour events, vulnerability findings, recommended actions, tags, its audit trail',
    access: { role: 'viewer' },
    params: deviceParamsSchema,
    response: deviceDetailSchema,
    async handler({ params, deps }) {
      const device = await deps.fleet.device(params.id);
      if (!device) throw new FleetRefusal(404, `no device "${params.id}"`);
      return device;
    },
  }),
  ...(['quarantine', 'release', 'claim'] as const).map((action) =>
    route({
      method: 'POST',
      path: `/devices/{id}/${action}`,
      summary: { quarantine: 'Quarantine a device: its score ceiling becomes 0 in the broker at once', release: 'Lift a quarantine', claim: 'Activate a device that enrolled unclaimed' }[action],
      access: { role: 'operator' },
      audited: true,
      params: deviceParamsSchema,
      body: noBodySchema,
      response: deviceSummarySchema,
      async handler({ params, caller, deps }) {
        return deps.fleet[action](params.id, caller.identity);
      },
    }),
  ),
  route({
    method: 'POST',
    path: '/devices/{id}/reject',
    summary: 'Reject a device waiting in the claim queue: its claim-mode certificate is revoked (CRL, live sessions closed) and it is marked revoked; its id stays taken until enrolled with a token',
    access: { role: 'operator' },
    audited: true,
    params: deviceParamsSchema,
    body: noBodySchema,
    response: revokeResultSchema,
    async handler({ params, caller, deps }) {
      return deps.fleet.reject(params.id, caller.identity);
    },
  }),
  route({
    method: 'POST',
    path: '/devices/{id}/revoke',
    summary: 'Revoke every certificate of a device (CRL, OCSP, live MQTT sessions closed) and mark it revoked',
    access: { role: 'admin' },
    audited: true,
    params: deviceParamsSchema,
    body: revokeBodySchema,
    response: revokeResultSchema,
    async handler({ params, body, caller, deps }) {
      return deps.fleet.revoke(params.id, body.reason, caller.identity);
    },
  }),
  route({
    method: 'PUT',
    path: '/devices/{id}/tags',
    summary: "Replace a device's tags",
    access: { role: 'operator' },
    audited: true,
    params: deviceParamsSchema,
    body: tagsBodySchema,
    response: deviceSummarySchema,
    async handler({ params, body, caller, deps }) {
      return deps.fleet.setTags(params.id, body.tags, caller.identity);
    },
  }),
  route({
    method: 'POST',
    path: '/devices/{id}/tags',
    summary: "Add and remove some of a device's tags, keeping the others (one transaction)",
    access: { role: 'operator' },
    audited: true,
    params: deviceParamsSchema,
    body: tagChangeBodySchema,
    response: deviceSummarySchema,
    async handler({ params, body, caller, deps }) {
      return deps.fleet.changeTags(params.id, { ...(body.add ? { add: body.add } : {}), ...(body.remove ? { remove: body.remove } : {}) }, caller.identity);
    },
  }),
  route({
    method: 'POST',
    path: '/tokens',
    summary: 'A one-time enrollment token, with the agent command and the curl + openssl commands (root fingerprint pinned)',
    access: { role: 'operator' },
    audited: true,
    body: tokenBodySchema,
    response: tokenResultSchema,
    async handler({ body, caller, deps, reply }): Promise<TokenResult> {
      const { token, expiresAt } = await deps.fleet.createToken(body.device, body.ttlSeconds === undefined ? undefined : body.ttlSeconds * 1000, caller.identity);
      const server = deps.publicUrl();
      const rootFingerprint = deps.fleet.rootFingerprint();
      reply.header('Cache-Control', 'no-store');
      return { device: body.device, token, expiresAt: expiresAt.toISOString(), server, rootFingerprint, ...enrollmentCommands(server, body.device, token, rootFingerprint) };
    },
  }),
  route({
    method: 'GET',
    path: '/audit',
    summary: 'The audit log, newest first: who did what to the fleet, refused actions too; ?format=csv',
    access: { role: 'viewer' },
    query: auditQuerySchema,
    response: auditPageSchema,
    csv: true,
    async handler({ query, reply, deps }) {
      const page = await deps.fleet.auditLog({ limit: query.limit, ...(query.device !== undefined ? { device: query.device } : {}), ...(query.cursor !== undefined ? { before: Number(query.cursor) } : {}) });
      if (query.format === 'csv') {
        if (page.nextCursor) reply.header('X-Next-Cursor', page.nextCursor);
        return csvReply(reply, 'audit', toCsv(['seq', 'time', 'actor', 'action', 'device', 'target', 'outcome', 'detail'], page.items.map((e) => [e.seq, e.time, e.actor, e.action, e.device, e.target, e.outcome, e.detail])));
      }
      return page;
    },
  }),
  route({
    method: 'GET',
    path: '/fleet/summary',
    summary: 'Devices by state, score histogram, devices below each policy threshold, certificates expiring within 48 h, vulnerabilities by severity, top recommended actions',
    access: { role: 'viewer' },
    response: fleetSummarySchema,
    async handler({ deps }) {
      return deps.fleet.summary();
    },
  }),
  route({
    method: 'GET',
    path: '/sessions',
    summary: 'Browser sessions that are live now',
    access: { role: 'admin' },
    response: sessionListSchema,
    async handler({ deps }) {
      const items = await deps.sessions.list();
      return { items: items.map(({ id, role, name, createdAt, expiresAt, source }) => ({ id, role, name, createdAt, expiresAt, source })) };
    },
  }),
  route({
    method: 'DELETE',
    path: '/sessions/{id}',
    summary: 'End a browser session (its cookie stops working at once)',
    access: { role: 'admin' },
    audited: true,
    params: sessionParamsSchema,
    response: endedSchema,
    async handler({ params, caller, deps }) {
      const ended = await deps.sessions.end(params.id);
      await deps.fleet.record({ actor: caller.identity, action: 'session.end', target: params.id, outcome: ended ? 'ok' : 'refused', ...(ended ? {} : { detail: 'no live session with this id' }) });
      if (!ended) throw new FleetRefusal(404, 'no live session with this id');
      return { ended };
    },
  }),
  route({
    method: 'GET',
    path: '/operators',
    summary: 'Operator certificates (viewer, operator, admin) from the CA inventory: name, role, serial, expiry, revocation; active first',
    access: { role: 'admin' },
    response: operatorListSchema,
    async handler({ deps }) {
      return deps.fleet.operators();
    },
  }),
  route({
    method: 'POST',
    path: '/operators/{serial}/revoke',
    summary: 'Revoke an operator certificate: the API refuses it from the next request on (open streams end within a second) and the CRL lists it',
    access: { role: 'admin' },
    audited: true,
    params: operatorSerialParamsSchema,
    body: revokeBodySchema,
    response: operatorCertificateSchema,
    async handler({ params, body, caller, deps }) {
      return deps.fleet.revokeOperator(params.serial, body.reason, caller.identity);
    },
  }),
  route({
    method: 'POST',
    path: '/logout',
    summary: "End the caller's own browser session",
    access: { role: 'viewer' },
    audited: true,
    body: noBodySchema,
    response: endedSchema,
    async handler({ caller, deps, reply }) {
      if (!caller.session) throw new FleetRefusal(400, 'no session to end: this call was made with a certificate');
      reply.clearCookie('__Host-wott_session', { path: '/', secure: true, httpOnly: true, sameSite: 'strict' });
      const ended = await deps.sessions.end(caller.session.session.id);
      await deps.fleet.record({ actor: caller.identity, action: 'session.logout', target: caller.session.session.id, outcome: 'ok' });
      return { ended };
    },
  }),
  ...FLEET_ROUTES,
  ...TRUST_ROUTES,
  ...BULK_ROUTES,
  ...EVENT_ROUTES,
  ...CREDENTIAL_ROUTES,
  ...AUDIT_ROUTES,
];
