/**
 * Message shapes on the wott/v1 topics, validated at runtime. Later components add their messages here so that
 * producers and consumers share one definition.
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from './device-id.js';

export const deviceIdSchema = z.string().regex(DEVICE_ID_PATTERN, 'invalid device id');

/** Longest reason or fix a score factor carries (scoring shortens longer ones: they quote device-sent lists). */
export const MAX_FACTOR_TEXT = 300;

/** One explained contribution to a Trust Score. */
export const scoreFactorSchema = z.object({
  id: z.string().min(1).max(64),
  contribution: z.number().finite(),
  reason: z.string().max(MAX_FACTOR_TEXT),
  fix: z.string().max(MAX_FACTOR_TEXT).optional(),
});

/** Retained on wott/v1/scores/{device}. */
export const scoreMessageSchema = z.object({
  device: deviceIdSchema,
  score: z.number().min(0).max(1),
  factors: z.array(scoreFactorSchema).max(200),
  modelVersion: z.string().min(1).max(64),
  time: z.string().datetime(),
  /**
   * In a cluster: the scoring lease's epoch (its fencing token) of the scorer that published it. Brokers and score
   * stores ignore a score whose epoch is below one they have already seen (a deposed scorer still running). Absent
   * on one node without a lease: such scores are never fenced.
   */
  epoch: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
});

/**
 * Published (not retained) on wott/v1/lateral/{device}: scoring attributed lateral movement to `device`; every
 * gateway node turns it into fleet events on the device and on each reporter.
 */
export const lateralNoticeSchema = z.object({
  device: deviceIdSchema,
  /** The devices that saw its attempts in the last hour (a 10,000-device fleet bounds it). */
  reporters: z.array(deviceIdSchema).max(10_000),
  logins: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  dropped: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** "dev-x tried to log in to dev-y and dev-z 240 times" */
  text: z.string().min(1).max(1000),
  time: z.string().datetime(),
  /** The scoring lease's epoch, as on scores. */
  epoch: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
});

export type LateralNoticeMessage = z.infer<typeof lateralNoticeSchema>;

export type ScoreFactor = z.infer<typeof scoreFactorSchema>;
export type ScoreMessage = z.infer<typeof scoreMessageSchema>;

/** Device lifecycle states kept by the CA inventory. */
export const DEVICE_STATES = ['unclaimed', 'active', 'quarantined', 'revoked'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

/** Upper bound on any single wott/v1 message, checked before parsing. */
export const MAX_MESSAGE_BYTES = 2 * 1024 * 1024; // a full package list of a big host fits

/** Parses a JSON payload against a schema with a clear error; never throws anything but Error. */
export function parseMessage<T>(schema: z.ZodType<T>, payload: Buffer | string): T {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > MAX_MESSAGE_BYTES) throw new Error(`message too large: ${size} bytes (limit ${MAX_MESSAGE_BYTES})`);
  let json: unknown;
  try {
    json = JSON.parse(payload.toString());
  } catch {
    throw new Error('message is not valid JSON');
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new Error(`invalid message: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  return result.data;
}

/** What the broker observed about a device, published on wott/v1/events/{device}. */
export const BEHAVIOUR_EVENT_TYPES = ['connect', 'disconnect', 'auth_failure', 'publish_denied', 'subscribe_denied', 'counters'] as const;
export type BehaviourEventType = (typeof BEHAVIOUR_EVENT_TYPES)[number];

export const behaviourEventSchema = z.object({
  device: deviceIdSchema,
  type: z.enum(BEHAVIOUR_EVENT_TYPES),
  time: z.string().datetime(),
  /** False when the device id comes from a certificate that did not verify (anyone can put a CN in one). */
  verified: z.boolean(),
  topic: z.string().max(1024).optional(),
  reason: z.string().max(300).optional(),
  remoteAddress: z.string().max(64).optional(),
  /**
   * On a connect: the device's first session on this broker node since the node started. After a broker restart
   * every device reconnects because of the restart, not because of anything it did, so scoring does not count this
   * connect as churn (a device that keeps reconnecting still does, from its second connect on).
   */
  firstSinceStart: z.boolean().optional(),
  counters: z
    .object({
      intervalMs: z.number().int().positive(),
      messagesIn: z.number().int().nonnegative(),
      bytesIn: z.number().int().nonnegative(),
      messagesOut: z.number().int().nonnegative(),
      bytesOut: z.number().int().nonnegative(),
      publishDenied: z.number().int().nonnegative(),
      subscribeDenied: z.number().int().nonnegative(),
      /** Denials beyond the per-interval cap of individual events, counted here instead. */
      suppressedEvents: z.number().int().nonnegative(),
    })
    .optional(),
  /** The broker node that observed it, in a cluster (scoring sums counters from every node). */
  node: z.string().regex(/^[A-Za-z0-9._-]{1,80}$/).optional(),
});
export type BehaviourEvent = z.infer<typeof behaviourEventSchema>;

/**
 * A behaviour event, parsed once per payload: in one process the broker hands the same packet (the same payload
 * Buffer) to every subscriber, and insights and scoring both read every event (10,000 devices send 1,000 counter
 * events a second). The result is frozen because both keep it.
 */
const parsedEvents = new WeakMap<Buffer, Readonly<BehaviourEvent>>();
export function parseBehaviourEvent(payload: Buffer | string): Readonly<BehaviourEvent> {
  if (typeof payload === 'string') return parseMessage(behaviourEventSchema, payload);
  const known = parsedEvents.get(payload);
  if (known) return known;
  const event = parseMessage(behaviourEventSchema, payload);
  if (event.counters) Object.freeze(event.counters);
  parsedEvents.set(payload, Object.freeze(event));
  return event;
}

/**
 * A peer report on wott/v1/reports/{reporter}/{subject}: what one device observed about another (e.g. it scanned
 * ports, sent malformed frames, impersonated a service). `reportId` increases per reporter so that scoring can
 * drop replays; `rating` is 1 for "behaves as expected" down to 0 for "hostile".
 */
export const peerReportSchema = z.object({
  reporter: deviceIdSchema,
  subject: deviceIdSchema,
  reportId: z.number().int().nonnegative(),
  time: z.string().datetime(),
  rating: z.number().min(0).max(1),
  reason: z.string().min(1).max(300),
});
export type PeerReport = z.infer<typeof peerReportSchema>;
