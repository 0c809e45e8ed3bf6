/**
 * The files `wott operator create NAME --role R --out DIR` writes: {name}.key (0600), {name}.crt, ca.crt (the chain
 * to pin) and {name}.p12, a password-protected PKCS#12 a browser or OS key store can import.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { PRIVATE_KEY_MODE } from '../lib/private.js';
import type { OperatorRole } from '../protocol/index.js';
import type { CertificateAuthority, KeyAndCertificate } from './authority.js';

export interface OperatorFiles {
  key: string;
  cert: string;
  ca: string;
  p12: string;
}

/** A password for the PKCS#12 file: 144 random bits, URL-safe so that it survives copy and paste. */
export function generateP12Password(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * PKCS#12 of key + certificate + CA chain, encrypted under `password` (PBES2 AES-256-CBC, HMAC-SHA256 MAC: what
 * current Firefox, Chrome and macOS import). Made by the openssl command: Node has no PKCS#12 writer, node-forge
 * cannot hold EC keys, and pkijs would mean hand-assembling the SafeBags; openssl is already a requirement of wott's
 * curl workflow. The password reaches openssl through its environment, never its argument list (visible in ps).
 */
export function pkcs12(keyPath: string, certPath: string, caPath: string, password: string, friendlyName: string): Buffer {
  return execFileSync(
    'openssl',
    ['pkcs12', '-export', '-inkey', keyPath, '-in', certPath, '-certfile', caPath, '-name', friendlyName,
      '-keypbe', 'AES-256-CBC', '-certpbe', 'AES-256-CBC', '-macalg', 'sha256', '-iter', '100000', '-passout', 'env:WOTT_P12_PASSWORD'],
    { env: { ...process.env, WOTT_P12_PASSWORD: password }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

/** Writes an issued operator certificate and its key, chain and PKCS#12 under `dir`; returns the paths. */
export function writeOperatorFiles(ca: CertificateAuthority, issued: Pick<KeyAndCertificate, 'keyPem' | 'pem' | 'commonName'>, dir: string, name: string, password: string): OperatorFiles {
  mkdirSync(dir, { recursive: true });
  const files: OperatorFiles = { key: join(dir, `${name}.key`), cert: join(dir, `${name}.crt`), ca: join(dir, 'ca.crt'), p12: join(dir, `${name}.p12`) };
  writeFileAtomic(files.key, issued.keyPem, PRIVATE_KEY_MODE);
  writeFileAtomic(files.cert, issued.pem);
  writeFileAtomic(files.ca, ca.caCertificates().map((c) => c.toString()).join(''));
  let p12: Buffer;
  try {
    p12 = pkcs12(files.key, files.cert, files.ca, password, `wott ${issued.commonName}`);
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`could not write the PKCS#12 file (needs the openssl command): ${stderr || (err as Error).message}`);
  }
  writeFileAtomic(files.p12, p12, PRIVATE_KEY_MODE);
  return files;
}

/** Issues an operator certificate of `role` for `name` and writes its files (see writeOperatorFiles). */
export async function createOperator(ca: CertificateAuthority, role: OperatorRole, name: string, dir: string, password: string): Promise<{ issued: KeyAndCertificate; files: OperatorFiles }> {
  const issued = await ca.issueOperator(role, name);
  return { issued, files: writeOperatorFiles(ca, issued, dir, name, password) };
}
