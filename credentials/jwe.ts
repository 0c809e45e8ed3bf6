/**
 * End-to-end encryption of one credential to one device: a compact JWE (ECDH-ES, A256GCM) to the P-256 public key
 * of the device's current certificate, with `jose`. The plaintext names the device, the credential and its
 * version, so a JWE cannot be replayed to another name or device, and carries the Linux user the file is for, so
 * neither the broker nor a recorded copy learns it, and nobody on the way can change who owns the file.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { z } from 'zod';
import { LINUX_USER_PATTERN } from '../protocol/index.js';

const ALG = 'ECDH-ES';
const ENC = 'A256GCM';

const payloadSchema = z.object({ device: z.string(), name: z.string(), version: z.number().int(), linuxUser: z.string().regex(LINUX_USER_PATTERN).nullable(), value: z.string() });

export interface SecretPayload {
  device: string;
  name: string;
  version: number;
  /** Who owns the file on the device (null: the agent's user). */
  linuxUser: string | null;
  value: Buffer;
}

/** Encrypts to the certificate's public key; `kid` is the certificate serial. */
export async function encryptForCertificate(certPem: string | Buffer, payload: SecretPayload): Promise<string> {
  const cert = new X509Certificate(certPem);
  const key = cert.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('credentials are encrypted to P-256 device keys only');
  }
  const plain = JSON.stringify({ device: payload.device, name: payload.name, version: payload.version, linuxUser: payload.linuxUser, value: payload.value.toString('base64') });
  return new CompactEncrypt(new TextEncoder().encode(plain)).setProtectedHeader({ alg: ALG, enc: ENC, kid: cert.serialNumber.toLowerCase() }).encrypt(key);
}

/** Decrypts with the device's private key; throws on any tampering, another key, or a payload for someone else. */
export async function openSecret(jwe: string, keyPem: string, expect: { device: string; name: string; version: number }): Promise<{ value: Buffer; linuxUser: string | null }> {
  const { plaintext } = await compactDecrypt(jwe, createPrivateKey(keyPem), { keyManagementAlgorithms: [ALG], contentEncryptionAlgorithms: [ENC] });
  const parsed = payloadSchema.parse(JSON.parse(new TextDecoder().decode(plaintext)));
  if (parsed.device !== expect.device || parsed.name !== expect.name || parsed.version !== expect.version) {
    throw new Error(`the JWE is for ${parsed.device}/${parsed.name} v${parsed.version}, not ${expect.device}/${expect.name} v${expect.version}`);
  }
  return { value: Buffer.from(parsed.value, 'base64'), linuxUser: parsed.linuxUser };
}

/** The value only (openSecret without the owner). */
export async function decryptWithKey(jwe: string, keyPem: string, expect: { device: string; name: string; version: number }): Promise<Buffer> {
  return (await openSecret(jwe, keyPem, expect)).value;
}
