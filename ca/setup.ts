/**
 * Creation and loading of the CA's own key material: a long-lived root and an issuing intermediate, both P-256.
 * Created in a temporary directory and renamed into place, so a crash during `ca init` leaves no half-made CA.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { renameDirAtomic, writeFileAtomic } from '../lib/atomic-file.js';
import { decryptPrivateKeyPem, generateP256, keyProtection, readPrivateKey, toCryptoKey, toCryptoPublicKey, writePrivateKey } from './keys.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
export const ROOT_LIFETIME_MS = 20 * 365 * DAY;
export const INTERMEDIATE_LIFETIME_MS = 5 * 365 * DAY;

export interface CaMaterial {
  root: X509Certificate;
  intermediate: X509Certificate;
  intermediateKey: KeyObject;
  /** The same intermediate as a @peculiar/x509 object (CRL generation needs it). */
  intermediateX509: x509.X509Certificate;
}

export const caPaths = (dataDir: string) => {
  const dir = join(dataDir, 'ca');
  return {
    dir,
    rootCert: join(dir, 'root.crt'),
    rootKey: join(dir, 'root.key'),
    intermediateCert: join(dir, 'intermediate.crt'),
    intermediateKey: join(dir, 'intermediate.key'),
  };
};

function serialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and no leading zero byte
  return bytes.toString('hex');
}

export async function createCaFiles(dataDir: string, passphrase?: string, now = new Date()): Promise<void> {
  const paths = caPaths(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const staging = join(dataDir, `.ca-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging, { mode: 0o700 });
  try {
    const tag = randomBytes(3).toString('hex'); // tells one deployment's CA from another's at a glance
    const notBefore = new Date(now.getTime() - 60_000);
    const rootKeys = generateP256();
    const rootCrypto = { privateKey: await toCryptoKey(rootKeys.privateKey), publicKey: await toCryptoPublicKey(rootKeys.publicKey) };
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialHex(),
      name: `CN=wott Root CA ${tag}, O=wott`,
      notBefore,
      notAfter: new Date(now.getTime() + ROOT_LIFETIME_MS),
      keys: rootCrypto,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootCrypto.publicKey),
      ],
    });
    const interKeys = generateP256();
    const interPublic = await toCryptoPublicKey(interKeys.publicKey);
    const intermediate = await x509.X509CertificateGenerator.create({
      serialNumber: serialHex(),
      subject: `CN=wott Issuing CA ${tag}, O=wott`,
      issuer: root.subject,
      notBefore,
      notAfter: new Date(now.getTime() + INTERMEDIATE_LIFETIME_MS),
      publicKey: interPublic,
      signingKey: rootCrypto.privateKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(interPublic),
        await x509.AuthorityKeyIdentifierExtension.create(root),
      ],
    });
    writePrivateKey(join(staging, 'root.key'), rootKeys.privateKey, passphrase);
    writePrivateKey(join(staging, 'intermediate.key'), interKeys.privateKey, passphrase);
    writeFileAtomic(join(staging, 'root.crt'), root.toString('pem') + '\n');
    writeFileAtomic(join(staging, 'intermediate.crt'), intermediate.toString('pem') + '\n');
    renameDirAtomic(staging, paths.dir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export function caExists(dataDir: string): boolean {
  return existsSync(caPaths(dataDir).intermediateCert);
}

/**
 * Loads the CA certificates and the issuing key. With a passphrase, keys encrypted the old way (PBKDF2, 2,048
 * iterations) are re-encrypted with scrypt, one atomic rewrite per file: a crash leaves each file old or new, and
 * both open with the same passphrase. A passphrase given to keys that are not encrypted is reported to `warn`.
 */
export function loadCaMaterial(dataDir: string, passphrase?: string, warn: (message: string) => void = () => {}): CaMaterial {
  const paths = caPaths(dataDir);
  const intermediatePem = readFileSync(paths.intermediateCert, 'utf8');
  if (passphrase) {
    const plain: string[] = [];
    for (const path of [paths.rootKey, paths.intermediateKey]) {
      const pem = readFileSync(path, 'utf8');
      const protection = keyProtection(pem);
      if (protection.kind === 'plain') plain.push(path);
      else if (!protection.strong) {
        writePrivateKey(path, decryptPrivateKeyPem(path, pem, passphrase), passphrase);
        warn(`${path} was encrypted with ${protection.kdf}: re-encrypted with scrypt`);
      }
    }
    if (plain.length) {
      warn(
        `WOTT_CA_PASSPHRASE is set but ${plain.join(' and ')} ${plain.length > 1 ? 'are' : 'is'} not encrypted: ` +
          'the passphrase is ignored for ' + (plain.length > 1 ? 'them' : 'it') + '. Run `wott ca encrypt` to encrypt the CA keys with it',
      );
    }
  }
  return {
    root: new X509Certificate(readFileSync(paths.rootCert)),
    intermediate: new X509Certificate(intermediatePem),
    intermediateKey: readPrivateKey(paths.intermediateKey, passphrase),
    intermediateX509: new x509.X509Certificate(intermediatePem),
  };
}

/**
 * `wott ca encrypt`: encrypts the CA keys with `passphrase` (scrypt). Each file is rewritten atomically; a key
 * already encrypted must open with the same passphrase (it is re-encrypted if its KDF is weak). Safe to run again
 * after a crash: what is done stays done. Returns one line per key file.
 */
export function encryptCaKeys(dataDir: string, passphrase: string): string[] {
  if (!passphrase) throw new Error('set WOTT_CA_PASSPHRASE to the passphrase to encrypt the CA keys with');
  if (!caExists(dataDir)) throw new Error(`no CA in ${dataDir}`);
  const paths = caPaths(dataDir);
  const done: string[] = [];
  for (const path of [paths.rootKey, paths.intermediateKey]) {
    const pem = readFileSync(path, 'utf8');
    const protection = keyProtection(pem);
    const key = decryptPrivateKeyPem(path, pem, protection.kind === 'plain' ? undefined : passphrase);
    if (protection.kind === 'encrypted' && protection.strong) {
      done.push(`${path}: already encrypted (${protection.kdf})`);
      continue;
    }
    writePrivateKey(path, key, passphrase);
    done.push(`${path}: encrypted (${protection.kind === 'plain' ? 'was not encrypted' : `was ${protection.kdf}`})`);
  }
  return done;
}

/**
 * The root certificate's SHA-256 fingerprint (AB:CD:… as openssl prints it): what a device pins at enrollment.
 * Read from the certificate alone, so neither the keys nor their passphrase are needed.
 */
export function rootFingerprint(dataDir: string): string {
  return new X509Certificate(readFileSync(caPaths(dataDir).rootCert)).fingerprint256;
}

/**
 * Which CA key files are in the data folder and whether each is encrypted at rest (for the fleet audit). Reads the
 * PEM headers only: no passphrase needed, nothing decrypted.
 */
export function caKeyStatus(dataDir: string): Array<{ name: 'root' | 'intermediate'; encrypted: boolean }> {
  const paths = caPaths(dataDir);
  const out: Array<{ name: 'root' | 'intermediate'; encrypted: boolean }> = [];
  for (const [name, path] of [['root', paths.rootKey], ['intermediate', paths.intermediateKey]] as const) {
    if (!existsSync(path)) continue;
    out.push({ name, encrypted: keyProtection(readFileSync(path, 'utf8')).kind === 'encrypted' });
  }
  return out;
}
