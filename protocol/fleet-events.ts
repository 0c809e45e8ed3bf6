/**
 * Bulk device actions and the fleet event feed (issue 14): the shapes of `POST /api/v1/devices/actions` and of the
 * events of `GET /api/v1/events/stream` (Server-Sent Events for operators: enrollments, renewals, claims,
 * quarantines, releases, revocations, score drops, authentication failures, lateral movement).
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from './device-id.js';
import { DEVICE_STATES } from './messages.js';
import { MAX_TAGS, TAG_PATTERN, TAG_RULE } from './tags.js';

const isoTime = z.string().describe('ISO 8601 time');

/** Devices one bulk request may name; a larger selection is sent in several requests. */
export const BULK_MAX_DEVICES = 500;
export const BULK_ACTIONS = ['quarantine', 'release', 'tag', 'untag'] as const;
export type BulkActionName = (typeof BULK_ACTIONS)[number];

export const bulkActionBodySchema = z
  .strictObject({
    ids: z
      .array(z.string().regex(DEVICE_ID_PATTERN, 'a device id'))
      .min(1)
      .max(BULK_MAX_DEVICES)
      .refine((ids) => new Set(ids).size === ids.length, 'ids must be distinct')
      .describe(`the devices, at most ${BULK_MAX_DEVICES} per request`),
    action: z.enum(BULK_ACTIONS).describe('tag adds the tags to each device, untag removes them; the other tags stay'),
    tags: z.array(z.string().regex(TAG_PATTERN, `a tag: ${TAG_RULE}`)).min(1).max(MAX_TAGS).optional().describe('tag and untag only'),
  })
  .refine((b) => (b.action === 'tag' || b.action === 'untag') === (b.tags !== undefined), { message: 'tags are given with tag and untag, and only with them', path: ['tags'] });
export type BulkActionBody = z.infer<typeof bulkActionBodySchema>;

const bulkDeviceSchema = z.strictObject({ id: z.string(), state: z.enum(DEVICE_STATES), tags: z.array(z.string()) });
export const bulkResultItemSchema = z.union([
  z.strictObject({ id: z.string(), ok: z.literal(true), device: bulkDeviceSchema }),
  z.strictObject({ id: z.string(), ok: z.literal(false), status: z.number().int().describe('the status a call for this device alone would have had'), message: z.string() }),
]);
export type BulkResultItem = z.infer<typeof bulkResultItemSchema>;
export const bulkActionResultSchema = z.strictObject({
  action: z.enum(BULK_ACTIONS),
  succeeded: z.number().int(),
  failed: z.number().int(),
  results: z.array(bulkResultItemSchema).describe('one per id, in the order given; each device is audited on its own'),
});
export type BulkActionResult = z.infer<typeof bulkActionResultSchema>;

export const FLEET_EVENTS_PATHS = { stream: '/events/stream' } as const;

export const FLEET_EVENT_TYPES = ['enrolled', 'renewed', 'claimed', 'quarantined', 'released', 'revoked', 'score_drop', 'auth_failure', 'lateral_movement', 'audit_finding'] as const;
export type FleetEventType = (typeof FLEET_EVENT_TYPES)[number];

/** `fleet`: one thing that happened to the fleet. */
export const fleetEventSchema = z.strictObject({
  seq: z.number().int().describe('this gateway process numbers its events 1, 2, …'),
  time: isoTime,
  type: z.enum(FLEET_EVENT_TYPES),
  device: z.string().nullable(),
  text: z.string().describe('one line a person reads, e.g. "score 0.82 → 0.31, below 0.4"; lateral_movement: "dev-x tried to log in to dev-y and dev-z 240 times", on the attacker and on each device it tried'),
  score: z.number().nullable().describe('score_drop: the new effective score'),
  previousScore: z.number().nullable().describe('score_drop: the score before'),
  serial: z.string().nullable().describe('enrolled, renewed, revoked: the certificate'),
  remoteAddress: z.string().nullable().describe('auth_failure: where the connection came from'),
});
export type FleetEvent = z.infer<typeof fleetEventSchema>;

/** SSE event names on /events/stream: `ready` once caught up, then `fleet` events; `reset` when a resume could not replay. */
export const FLEET_STREAM_EVENTS = ['ready', 'fleet', 'reset'] as const;
export const fleetStreamReadySchema = z.object({ seq: z.number().int(), resumed: z.boolean() });
export const fleetStreamResetSchema = z.object({ reason: z.string() });

/** The events of /events/stream, documented in the OpenAPI document as those of /trust/stream are. */
export const FLEET_STREAM_EVENT_SPECS = {
  ready: { description: 'once the backlog or the replay of a resumed stream is sent: live from here', data: fleetStreamReadySchema, id: 'always' },
  fleet: { description: 'one fleet event (enrolled, renewed, claimed, quarantined, released, revoked, score_drop, auth_failure, lateral_movement, audit_finding)', data: fleetEventSchema, id: 'always' },
  reset: { description: 'on resume: the events since Last-Event-ID are no longer held (or the gateway restarted): some may be missing', data: fleetStreamResetSchema, id: 'never' },
} as const;

export const FLEET_EVENTS_BACKLOG_MAX = 200;
export const eventsStreamQuerySchema = z.strictObject({
  backlog: z.coerce.number().int().min(0).max(FLEET_EVENTS_BACKLOG_MAX).default(0).describe('send up to this many recent events first (ignored when resuming with Last-Event-ID)'),
});
