/**
 * The fleet event feed for operators (issue 14): `GET /api/v1/events/stream` (api/events-stream.ts). Every operator
 * role may read it; services may not (they have the trust stream).
 */
import { z } from 'zod';
import type { TLSSocket } from 'node:tls';
import { eventsStreamQuerySchema, FLEET_EVENTS_PATHS, FLEET_STREAM_EVENT_SPECS, normalizeSerial } from '../protocol/index.js';
import { DEFAULT_EVENT_STREAM_LIMITS, FleetEventStreams, parseFleetEventId } from './events-stream.js';
import { FleetRefusal } from './fleet-port.js';
import type { ApiDeps, RouteContext, RouteSpec } from './routes.js';

export { FleetEventStreams, DEFAULT_EVENT_STREAM_LIMITS, type FleetEventSource, type EventStreamLimits } from './events-stream.js';

const registries = new WeakMap<ApiDeps, FleetEventStreams>();
/** One stream registry per app (the deps object is the app's); undefined when the server has no event source. */
export function fleetEventStreams(deps: ApiDeps): FleetEventStreams | undefined {
  if (!deps.events) return undefined;
  let streams = registries.get(deps);
  if (!streams) registries.set(deps, (streams = new FleetEventStreams(deps.events, { ...DEFAULT_EVENT_STREAM_LIMITS, ...deps.eventStream })));
  return streams;
}

export const EVENT_ROUTES: RouteSpec[] = [
  {
    method: 'GET',
    path: FLEET_EVENTS_PATHS.stream,
    summary:
      'Server-Sent Events (text/event-stream) of fleet events: enrollments, renewals, claims, quarantines, releases, revocations, score drops, authentication failures; ?backlog=N sends the newest N first; resume with Last-Event-ID ({boot}-{seq})',
    access: { role: 'viewer' },
    query: eventsStreamQuerySchema,
    response: z.string().describe('text/event-stream: events ready, fleet, reset'),
    // An event stream: documented as text/event-stream, and ended at once when the caller's credential ends.
    events: FLEET_STREAM_EVENT_SPECS,
    handler: async ({ reply, query, caller, deps }: RouteContext<unknown, { backlog: number }, unknown>) => {
      const header = reply.request.headers['last-event-id'];
      const resume = typeof header === 'string' && header !== '' ? parseFleetEventId(header) : undefined;
      if (typeof header === 'string' && header !== '' && !resume) throw new FleetRefusal(400, 'Last-Event-ID is not an id this stream sent ({boot}-{seq})');
      const streams = fleetEventStreams(deps);
      if (!streams) throw new FleetRefusal(404, 'this server keeps no fleet event feed');
      if (streams.full) {
        void reply.code(503).header('Retry-After', '10');
        return { statusCode: 503, error: 'Service Unavailable', message: `too many event streams open (limit ${streams.limits.maxSubscribers}): retry later` };
      }
      const session = caller.session?.session;
      // A browser session that ends (sign-out, an admin ending it, expiry), or a certificate that is revoked or
      // expires, ends its stream at the next heartbeat: the caller would be refused a new request by then.
      const peer = session ? undefined : (reply.raw.socket as TLSSocket | null)?.getPeerCertificate?.();
      const serial = peer?.serialNumber ? normalizeSerial(peer.serialNumber) : undefined;
      const notAfter = peer?.valid_to ? Date.parse(peer.valid_to) : undefined;
      const alive = session
        ? async () => {
            const now = await deps.sessions.store.session(session.id);
            return !!now && !now.endedAt && Date.parse(now.expiresAt) > Date.now();
          }
        : async () => !(serial && deps.isRevoked?.(serial)) && !(notAfter !== undefined && notAfter <= Date.now());
      reply.hijack();
      streams.open(reply.raw, resume, query.backlog, alive);
      return reply;
    },
  },
];
