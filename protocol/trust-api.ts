/**
 * Trust for services (issue 13): the shapes of `GET /api/v1/trust/{device}`, `POST /api/v1/trust/check` and the
 * events of `GET /api/v1/trust/stream` (Server-Sent Events). The gateway validates and documents with these, and
 * the `wott/trust` library parses the stream with them.
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from './device-id.js';
import { DEVICE_STATES, scoreFactorSchema } from './messages.js';

const isoTime = z.string().describe('ISO 8601 time');
const score = z.number().min(0).max(1);

export const TRUST_PATHS = {
  device: '/trust/{id}',
  check: '/trust/check',
  stream: '/trust/stream',
} as const;

export const trustParamsSchema = z.strictObject({
  id: z.string().regex(DEVICE_ID_PATTERN, 'a device id: 1-63 of a-z, 0-9, ".", "_", "-", starting with a letter or digit'),
});

export const trustCertificateSchema = z.strictObject({
  serial: z.string().describe('hex, lower case'),
  fingerprint: z.string().describe('SHA-256 of the DER certificate, hex, lower case'),
  notAfter: isoTime,
});
export type TrustCertificate = z.infer<typeof trustCertificateSchema>;

export const deviceTrustSchema = z.strictObject({
  device: z.string(),
  score: score.describe('the effective score the broker enforces now: the latest score under its state ceiling'),
  rawScore: score.nullable().describe('the latest score message, before the state ceiling; null: none seen yet (the initial score applies)'),
  state: z.enum(DEVICE_STATES),
  factors: z.array(scoreFactorSchema),
  modelVersion: z.string().nullable(),
  scoredAt: isoTime.nullable().describe('time of the score message'),
  certificate: trustCertificateSchema.nullable().describe('the current (newest active) device certificate; null: none'),
  time: isoTime.describe('when this answer was made'),
});
export type DeviceTrust = z.infer<typeof deviceTrustSchema>;

/** Largest certificate PEM /trust/check reads (a P-256 device certificate is under 1 KiB). */
export const TRUST_CHECK_MAX_PEM = 16 * 1024;

export const trustCheckBodySchema = z.union([
  z.strictObject({
    certificate: z.string().max(TRUST_CHECK_MAX_PEM).describe('the peer certificate (PEM) from the service’s own mTLS handshake'),
    minScore: score,
  }),
  z.strictObject({
    certificate: z.string().max(TRUST_CHECK_MAX_PEM),
    topic: z.string().min(1).max(1024).describe('a policy topic: pass when the device may publish or subscribe to it now'),
    action: z.enum(['publish', 'subscribe']),
  }),
]);
export type TrustCheckBody = z.infer<typeof trustCheckBodySchema>;

/** Why /trust/check said no (or `trusted`). */
export const TRUST_VERDICTS = ['trusted', 'malformed', 'not-ours', 'not-a-device', 'not-yet-valid', 'expired', 'unknown-device', 'revoked', 'superseded', 'not-current', 'state', 'score', 'policy'] as const;

export const trustCheckResultSchema = z.strictObject({
  trusted: z.boolean(),
  verdict: z.enum(TRUST_VERDICTS),
  reason: z.string().describe('one line a person can act on'),
  device: z.string().nullable(),
  score: score.nullable(),
  state: z.enum(DEVICE_STATES).nullable(),
  serial: z.string().nullable(),
  fingerprint: z.string().nullable(),
  time: isoTime,
});
export type TrustCheckResult = z.infer<typeof trustCheckResultSchema>;

export const trustStreamQuerySchema = z.strictObject({});

/** SSE event names on /trust/stream. */
export const TRUST_EVENTS = ['ready', 'score', 'device', 'revoked', 'reset'] as const;
export type TrustEventName = (typeof TRUST_EVENTS)[number];

/** `score`: a new score message (and the effective score it gives now). */
export const trustScoreEventSchema = z.object({
  device: z.string(),
  score,
  rawScore: score,
  state: z.enum(DEVICE_STATES).nullable(),
  modelVersion: z.string(),
  scoredAt: isoTime,
});
/** `device`: its state or current certificate changed (from the inventory's change feed). */
export const trustDeviceEventSchema = z.object({
  device: z.string(),
  state: z.enum(DEVICE_STATES).nullable().describe('null: no such device any more'),
  score,
  certificate: trustCertificateSchema.nullable(),
});
/** `revoked`: a certificate was revoked. */
export const trustRevokedEventSchema = z.object({ serial: z.string(), device: z.string().nullable() });
/** `ready`: the stream is live from here; `reset`: what the client holds may be stale: load it again. */
export const trustReadyEventSchema = z.object({ position: z.number().int(), resumed: z.boolean() });
export const trustResetEventSchema = z.object({ reason: z.string() });

/** One event type of a Server-Sent Events route: what it means and the JSON in its `data:` line. */
export interface SseEventSpec {
  description: string;
  data: z.ZodType;
  /** Whether it carries an `id:` (a position to resume from with Last-Event-ID). */
  id: 'always' | 'never' | 'last of a group';
}

/** The events of /trust/stream, in the order a stream can first meet them (the OpenAPI document lists them). */
export const TRUST_STREAM_EVENTS = {
  score: { description: 'a new score message for a device, with the effective score it gives now (the one the broker enforces)', data: trustScoreEventSchema, id: 'always' },
  device: { description: "a device's state or current certificate changed (inventory change feed); state null: the device is gone", data: trustDeviceEventSchema, id: 'last of a group' },
  revoked: { description: 'a certificate was revoked (device null: not a device certificate)', data: trustRevokedEventSchema, id: 'last of a group' },
  reset: { description: 'on resume: the change feed no longer holds every change since Last-Event-ID: load the devices again', data: trustResetEventSchema, id: 'never' },
  ready: { description: 'after the replay of a resumed stream (or at once): live from here', data: trustReadyEventSchema, id: 'always' },
} as const satisfies Record<TrustEventName, SseEventSpec>;

export type TrustScoreEvent = z.infer<typeof trustScoreEventSchema>;
export type TrustDeviceEvent = z.infer<typeof trustDeviceEventSchema>;
export type TrustRevokedEvent = z.infer<typeof trustRevokedEventSchema>;
