/**
 * Message shapes on the wott/v1 topics, validated at runtime. Later components add their messages here so that
 * producers and consumers share one definition.
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from './device-id.js';

export const deviceIdSchema = z.string().regex(DEVICE_ID_PATTERN, 'invalid device id');

/** One explained contribution to a Trust Score. */
export const scoreFactorSchema = z.object({
  id: z.string().min(1).max(64),
  contribution: z.number().finite(),
  reason: z.string().max(300),
  fix: z.string().max(300).optional(),
});

/** Retained on wott/v1/scores/{device}. */
export const scoreMessageSchema = z.object({
  device: deviceIdSchema,
  score: z.number().min(0).max(1),
  factors: z.array(scoreFactorSchema).max(200),
  modelVersion: z.string().min(1).max(64),
  time: z.string().datetime(),
});

export type ScoreFactor = z.infer<typeof scoreFactorSchema>;
export type ScoreMessage = z.infer<typeof scoreMessageSchema>;

/** Device lifecycle states kept by the CA inventory. */
export const DEVICE_STATES = ['unclaimed', 'active', 'quarantined', 'revoked'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

/** Upper bound on any single wott/v1 message, checked before parsing. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

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
