/**
 * Credential delivery (issue 17): the messages the gateway sends on wott/v1/credentials/{device}. Only the gateway
 * publishes there, only that device reads it; values travel as a JWE encrypted to the device's certificate key.
 */
import { z } from 'zod';

/** Credential names: also the file name on the device, so never a path (no "/", no "..", no leading dot). */
export const CREDENTIAL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const CREDENTIAL_NAME_RULE = '1-64 of a-z, 0-9, ".", "_", "-", starting with a letter or digit';

/** Linux user names the agent may chown a credential to (the common useradd rule). */
export const LINUX_USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

export function isCredentialName(value: unknown): value is string {
  return typeof value === 'string' && CREDENTIAL_NAME_PATTERN.test(value) && !value.includes('..');
}

export const credentialNameSchema = z.string().refine(isCredentialName, `a credential name is ${CREDENTIAL_NAME_RULE}`);

/** A credential for this device: `jwe` (compact) decrypts to the value. */
export const credentialDeliverySchema = z.object({
  type: z.literal('deliver'),
  name: credentialNameSchema,
  version: z.number().int().positive(),
  linuxUser: z.string().regex(LINUX_USER_PATTERN).nullable(),
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
