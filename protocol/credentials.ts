/**
 * Credential delivery (issue 17): the messages the gateway sends on wott/v1/credentials/{device}. Only the gateway
 * publishes there, only that device reads it; values travel as a JWE encrypted to the device's certificate key.
 */
import { z } from 'zod';
import { MAX_TAGS, TAG_PATTERN, TAG_RULE } from './tags.js';

/** Credential names: also the file name on the device, so never a path (no "/", no "..", no leading dot). */
export const CREDENTIAL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const CREDENTIAL_NAME_RULE = '1-64 of a-z, 0-9, ".", "_", "-", starting with a letter or digit';

/** Linux user names the agent may chown a credential to (the common useradd rule). */
export const LINUX_USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

export function isCredentialName(value: unknown): value is string {
  return typeof value === 'string' && CREDENTIAL_NAME_PATTERN.test(value) && !value.includes('..');
}

export const credentialNameSchema = z.string().refine(isCredentialName, `a credential name is ${CREDENTIAL_NAME_RULE}`);

/**
 * A credential for this device: `jwe` (compact) decrypts to the value and the Linux user that owns the file (inside
 * the encryption: the broker and a recorded copy do not learn it, and it cannot be changed on the way).
 */
export const credentialDeliverySchema = z.object({
  type: z.literal('deliver'),
  name: credentialNameSchema,
  version: z.number().int().positive(),
  /** The device certificate serial the JWE is encrypted to. */
  serial: z.string().max(64),
  jwe: z.string().max(1_500_000),
});

/** The device must delete this credential now. */
export const credentialWithdrawalSchema = z.object({ type: z.literal('withdraw'), name: credentialNameSchema });

/** Everything the device should hold (sent after the deliveries on each subscription): anything else is deleted. */
export const credentialManifestSchema = z.object({
  type: z.literal('manifest'),
  held: z.array(z.object({ name: credentialNameSchema, version: z.number().int().positive() })).max(10_000),
});

export const credentialMessageSchema = z.discriminatedUnion('type', [credentialDeliverySchema, credentialWithdrawalSchema, credentialManifestSchema]);
export type CredentialMessage = z.infer<typeof credentialMessageSchema>;
export type CredentialDelivery = z.infer<typeof credentialDeliverySchema>;

/**
 * The device-only HTTPS route: GET with the device's current certificate over mutual TLS (no other credential, and
 * no other certificate kind, is accepted; a device certificate opens no other route). The reply carries what a new
 * MQTT subscription would bring — a `deliver` per credential the device is entitled to (the same JWE), `withdraw`
 * for what it must give back, then the `manifest` — for agents whose MQTT connection is down.
 */
export const CREDENTIAL_FETCH_PATH = '/device/v1/credentials';
export const credentialFetchReplySchema = z.object({ device: z.string(), messages: z.array(credentialMessageSchema).max(20_001) });
export type CredentialFetchReply = z.infer<typeof credentialFetchReplySchema>;

/**
 * The credential routes of the API (/api/v1/credentials): metadata only. Values go in (set, rotate) and never come
 * back out; a value is text (UTF-8), at most CREDENTIAL_API_MAX_VALUE_CHARS characters (the service's byte bound
 * still applies, and the API's body limit bounds the request as a whole).
 */
export const CREDENTIAL_API_MAX_VALUE_CHARS = 64 * 1024;

export const credentialParamsSchema = z.strictObject({ name: credentialNameSchema });

const credentialValueSchema = z.string().min(1).max(CREDENTIAL_API_MAX_VALUE_CHARS);

export const credentialSetBodySchema = z.strictObject({
  value: credentialValueSchema,
  tags: z.array(z.string().regex(TAG_PATTERN, `a tag: ${TAG_RULE}`)).min(1, 'at least one tag: no tags would mean every device').max(MAX_TAGS),
  minScore: z.number().min(0).max(1),
  linuxUser: z.string().regex(LINUX_USER_PATTERN).optional(),
  /** Each version expires this long after it is set (then it is withdrawn until rotated). */
  ttlSeconds: z.number().int().positive().max(10 * 366 * 86_400).optional(),
});
export type CredentialSetBody = z.infer<typeof credentialSetBodySchema>;

export const credentialRotateBodySchema = z.strictObject({ value: credentialValueSchema });

export const credentialExposureSchema = z.object({ device: z.string(), version: z.number().int(), reason: z.string(), time: z.string() });

export const credentialInfoSchema = z.object({
  name: z.string(),
  version: z.number().int().positive(),
  tags: z.array(z.string()),
  minScore: z.number(),
  linuxUser: z.string().nullable(),
  ttlSeconds: z.number().nullable(),
  expiresAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Bytes of the value (its length, never its content). */
  size: z.number().int(),
  /** Devices that hold a version of it now (delivered, not withdrawn). */
  heldBy: z.array(z.object({ device: z.string(), version: z.number().int(), time: z.string() })),
  /** Devices that held it and lost trust since it was last rotated. */
  exposedTo: z.array(credentialExposureSchema),
  /** "rotate it": it was exposed to a device that lost trust. */
  rotate: z.boolean(),
});
export type CredentialInfoReply = z.infer<typeof credentialInfoSchema>;

export const credentialListSchema = z.object({ items: z.array(credentialInfoSchema) });
export const credentialRemovedSchema = z.strictObject({ name: z.string(), removed: z.literal(true) });
