/** P-256 key generation and storage. Private keys are written 0600, optionally encrypted with a passphrase. */
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './files.js';

export const PRIVATE_KEY_MODE = 0o600;

export function generateP256(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

export function privateKeyPem(key: KeyObject, passphrase?: string): string {
  return (
    passphrase
      ? key.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase })
      : key.export({ format: 'pem', type: 'pkcs8' })
  ).toString();
}

export function writePrivateKey(path: string, key: KeyObject, passphrase?: string): void {
  writeFileAtomic(path, privateKeyPem(key, passphrase), PRIVATE_KEY_MODE);
}

export function readPrivateKey(path: string, passphrase?: string): KeyObject {
  const pem = readFileSync(path, 'utf8');
  const encrypted = pem.includes('ENCRYPTED');
  if (encrypted && !passphrase) {
    throw new Error(`${path} is encrypted: set WOTT_CA_PASSPHRASE to the passphrase it was created with`);
  }
  try {
    return createPrivateKey(encrypted ? { key: pem, passphrase: passphrase! } : pem);
  } catch {
    throw new Error(encrypted ? `cannot decrypt ${path}: wrong WOTT_CA_PASSPHRASE` : `${path} is not a readable private key`);
  }
}

export function spkiDer(key: KeyObject): Buffer {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
}

/** The same key as a WebCrypto CryptoKey, for @peculiar/x509 (used only on the slow paths: CA creation, CRLs). */
export async function toCryptoKey(key: KeyObject): Promise<CryptoKey> {
  return webcrypto.subtle.importKey(
    'pkcs8',
    key.export({ format: 'der', type: 'pkcs8' }),
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  ) as Promise<CryptoKey>;
}

export async function toCryptoPublicKey(key: KeyObject): Promise<CryptoKey> {
  return webcrypto.subtle.importKey('spki', spkiDer(key), { name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'verify',
  ]) as Promise<CryptoKey>;
}
