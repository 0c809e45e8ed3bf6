/**
 * P-256 key generation and storage. Private keys are written 0600, optionally encrypted with a passphrase.
 *
 * Encryption: Node's PKCS#8 export uses PBES2 with PBKDF2 at 2,048 iterations and offers no way to raise it, so the
 * EncryptedPrivateKeyInfo (RFC 5958) is built here: PBES2 (RFC 8018) with scrypt (RFC 7914) N = 2^14, r = 8, p = 5
 * (an OWASP-recommended setting; 16 MiB, under OpenSSL's 32 MiB scrypt limit, so `openssl pkey` and Node's
 * createPrivateKey read it) and AES-256-CBC. Keys written by older versions are rewritten at load (see loadCaMaterial).
 */
import { createCipheriv, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scryptSync, webcrypto, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { children, octetString, oid, readTlv, sequence, smallInteger } from './der.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { PRIVATE_KEY_MODE } from '../lib/private.js';

export function generateP256(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

const OID = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  scrypt: '1.3.6.1.4.1.11591.4.11',
  aes256cbc: '2.16.840.1.101.3.4.1.42',
};

/** scrypt cost: N = 2^14, r = 8, p = 5 (OWASP Password Storage Cheat Sheet); memory 128·N·r = 16 MiB. */
export const SCRYPT = { N: 2 ** 14, r: 8, p: 5 } as const;
/** Weakest key protection accepted without rewriting: scrypt of at least this N·r·p, or PBKDF2 of this many iterations. */
const MIN_SCRYPT_WORK = SCRYPT.N * SCRYPT.r * SCRYPT.p;
export const MIN_PBKDF2_ITERATIONS = 600_000;

function pem(der: Buffer, label: string): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

/** PKCS#8 EncryptedPrivateKeyInfo, PBES2 + scrypt + AES-256-CBC, as PEM ("ENCRYPTED PRIVATE KEY"). */
export function encryptPrivateKey(key: KeyObject, passphrase: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const aesKey = scryptSync(Buffer.from(passphrase, 'utf8'), salt, 32, { ...SCRYPT, maxmem: 64 * 1024 * 1024 });
  const cipher = createCipheriv('aes-256-cbc', aesKey, iv);
  const encrypted = Buffer.concat([cipher.update(key.export({ format: 'der', type: 'pkcs8' })), cipher.final()]);
  const kdf = sequence(
    oid(OID.scrypt),
    sequence(octetString(salt), smallInteger(SCRYPT.N), smallInteger(SCRYPT.r), smallInteger(SCRYPT.p), smallInteger(32)),
  );
  const algorithm = sequence(oid(OID.pbes2), sequence(kdf, sequence(oid(OID.aes256cbc), octetString(iv))));
  return pem(sequence(algorithm, octetString(encrypted)), 'ENCRYPTED PRIVATE KEY');
}

export function privateKeyPem(key: KeyObject, passphrase?: string): string {
  return passphrase ? encryptPrivateKey(key, passphrase) : key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export type KeyProtection =
  | { kind: 'plain' }
  | { kind: 'encrypted'; kdf: string; strong: boolean };

function oidText(buf: Buffer, at: { contentStart: number; end: number }): string {
  const bytes = buf.subarray(at.contentStart, at.end);
  const arcs: number[] = [Math.floor(bytes[0]! / 40), bytes[0]! % 40];
  let n = 0;
  for (const b of bytes.subarray(1)) {
    n = n * 128 + (b & 0x7f);
    if (!(b & 0x80)) (arcs.push(n), (n = 0));
  }
  return arcs.join('.');
}

const intOf = (buf: Buffer, at: { contentStart: number; end: number }) =>
  [...buf.subarray(at.contentStart, at.end)].reduce((n, b) => n * 256 + b, 0);

/** How a PEM private key is protected; "strong" = scrypt at least as costly as ours, or PBKDF2 with ≥ 600,000 iterations. */
export function keyProtection(keyPem: string): KeyProtection {
  const match = /-----BEGIN ENCRYPTED PRIVATE KEY-----([^-]+)-----END ENCRYPTED PRIVATE KEY-----/.exec(keyPem);
  if (!match) return keyPem.includes('ENCRYPTED') ? { kind: 'encrypted', kdf: 'legacy PEM encryption', strong: false } : { kind: 'plain' };
  try {
    const der = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
    const [algorithm] = children(der, readTlv(der));
    const [scheme, params] = children(der, algorithm!);
    if (oidText(der, scheme!) !== OID.pbes2) return { kind: 'encrypted', kdf: `scheme ${oidText(der, scheme!)}`, strong: false };
    const [kdf] = children(der, params!);
    const [kdfOid, kdfParams] = children(der, kdf!);
    const fields = children(der, kdfParams!);
    if (oidText(der, kdfOid!) === OID.scrypt) {
      const [N, r, p] = fields.slice(1, 4).map((f) => intOf(der, f));
      return { kind: 'encrypted', kdf: `scrypt N=${N} r=${r} p=${p}`, strong: N! * r! * p! >= MIN_SCRYPT_WORK };
    }
    if (oidText(der, kdfOid!) === OID.pbkdf2) {
      const iterations = intOf(der, fields[1]!);
      return { kind: 'encrypted', kdf: `PBKDF2 ${iterations} iterations`, strong: iterations >= MIN_PBKDF2_ITERATIONS };
    }
    return { kind: 'encrypted', kdf: `KDF ${oidText(der, kdfOid!)}`, strong: false };
  } catch {
    return { kind: 'encrypted', kdf: 'unparsable', strong: false };
  }
}

export function writePrivateKey(path: string, key: KeyObject, passphrase?: string): void {
  writeFileAtomic(path, privateKeyPem(key, passphrase), PRIVATE_KEY_MODE);
}

export function readPrivateKey(path: string, passphrase?: string): KeyObject {
  return decryptPrivateKeyPem(path, readFileSync(path, 'utf8'), passphrase);
}

/** The key in `pem` (read from `path`, named in errors). */
export function decryptPrivateKeyPem(path: string, pem: string, passphrase?: string): KeyObject {
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
