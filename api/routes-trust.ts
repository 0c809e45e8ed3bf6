/**
 * Trust for services (issue 13): "how much can I trust this device now?", for service certificates and every
 * operator role. Answered from memory (fleet/trust.ts over the FleetView and the broker's score cache); the stream
 * is api/trust-stream.ts.
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import {
  deviceTrustSchema,
  TRUST_PATHS,
  TRUST_STREAM_EVENTS,
  trustCheckBodySchema,
  trustCheckResultSchema,
  trustParamsSchema,
  trustStreamQuerySchema,
  type TrustCheckBody,
} from '../protocol/index.js';
import { FleetRefusal } from './fleet-port.js';
import type { ApiDeps, RouteContext, RouteSpec } from './routes.js';
import { DEFAULT_TRUST_STREAM_LIMITS, parseEventId, TrustStreams } from './trust-stream.js';

export { TrustStreams, DEFAULT_TRUST_STREAM_LIMITS, type TrustOperations, type TrustStreamLimits } from './trust-stream.js';

/** One stream registry per app (the deps object is the app's). */
const registries = new WeakMap<ApiDeps, TrustStreams>();
export function trustStreams(deps: ApiDeps): TrustStreams {
  let streams = registries.get(deps);
  if (!streams) registries.set(deps, (streams = new TrustStreams(deps.trust, { ...DEFAULT_TRUST_STREAM_LIMITS, ...deps.trustStream })));
  return streams;
}

const access = { role: 'viewer', services: true } as const;
type Handler = (ctx: RouteContext<any, any, any>) => Promise<unknown>;

export const TRUST_ROUTES: RouteSpec[] = [
  {
    method: 'GET',
    path: TRUST_PATHS.stream,
    summary:
      'Server-Sent Events (text/event-stream) of score, device and revocation changes; resume with Last-Event-ID (see docs/api.md: ids, replay, heartbeats, limits)',
    access,
    query: trustStreamQuerySchema,
    response: z.string(),
    events: TRUST_STREAM_EVENTS,
    handler: (async ({ reply, deps }: RouteContext<unknown, unknown, unknown>) => {
      const header = reply.request.headers['last-event-id'];
      const lastEventId = typeof header === 'string' && header !== '' ? parseEventId(header) : undefined;
      if (typeof header === 'string' && header !== '' && !lastEventId) throw new FleetRefusal(400, 'Last-Event-ID is not an id this stream sent ({feed}-{boot}-{scores})');
      const streams = trustStreams(deps);
      if (streams.full) {
        void reply.code(503).header('Retry-After', '10');
        return { statusCode: 503, error: 'Service Unavailable', message: `too many trust streams open (limit ${streams.limits.maxSubscribers}): retry later` };
      }
      reply.hijack();
      await streams.open(reply.raw, lastEventId);
      return reply;
    }) as Handler,
  },
  {
    method: 'GET',
    path: TRUST_PATHS.device,
    summary: "A device's trust now: the effective score the broker enforces, state, factors, current certificate, model version",
    access,
    params: trustParamsSchema,
    response: deviceTrustSchema,
    handler: (async ({ params, deps }: RouteContext<{ id: string }, unknown, unknown>) => {
      const trust = deps.trust.device(params.id);
      if (!trust) throw new FleetRefusal(404, `no device "${params.id}"`);
      return trust;
    }) as Handler,
  },
  {
    method: 'POST',
    path: TRUST_PATHS.check,
    summary:
      'Check a device certificate a service received in its own mTLS handshake: ours, valid, unrevoked, current, and passing a minimum score or a policy topic + action now',
    access,
    body: trustCheckBodySchema,
    response: trustCheckResultSchema,
    handler: (async ({ body, deps, reply }: RouteContext<unknown, unknown, TrustCheckBody> & { reply: FastifyReply }) => {
      const requirement = 'minScore' in body ? { minScore: body.minScore } : { topic: body.topic, action: body.action };
      void reply.header('Cache-Control', 'no-store');
      return deps.trust.check(body.certificate, requirement);
    }) as Handler,
  },
];
