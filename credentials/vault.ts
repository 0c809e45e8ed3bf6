/**
 * At-rest encryption of credential values: AES-256-GCM under one key kept in `<dataDir>/credentials.key` (0600,
 * created on first use), optionally wrapped with a passphrase (scrypt), as the CA keys are. Each ciphertext is
 * bound to its credential's name and version (GCM additional data), so rows cannot be swapped.
 * Node's crypto is used directly: GCM with a random IV and a tag is a few lines, and no library would add to it.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, linkSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { PRIVATE_KEY_MODE } from '../lib/private.js';
import type { CredentialStore } from '../store/index.js';

export const CREDENTIAL_KEY_FILE = 'credentials.key';
const FORMAT = 'wott-credential-key-1';
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const SEALED_VERSION = 1;

const keyFileSchema = z.union([
  z.object({ format: z.literal(FORMAT), key: z.string() }),
  z.object({ format: z.literal(FORMAT), salt: z.string(), iv: z.string(), tag: z.string(), wrapped: z.string() }),
]);

function gcmSeal(key: Buffer, plain: Buffer, aad: Buffer): { iv: Buffer; tag: Buffer; data: Buffer } {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const data = Buffer.concat([cipher.update(plain), cipher.final()]);
  return { iv, tag: cipher.getAuthTag(), data };
}

function gcmOpen(key: Buffer, iv: Buffer, tag: Buffer, data: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(data), decipher.final()]);
}

export class CredentialVault {
  private constructor(private readonly key: Buffer) {}

  /** Opens (or creates) the key in `dataDir`; with a passphrase a new key file is wrapped with it. */
  static open(dataDir: string, passphrase?: string): CredentialVault {
    const path = join(dataDir, CREDENTIAL_KEY_FILE);
    if (!existsSync(path)) {
      const key = randomBytes(32);
      let file: z.infer<typeof keyFileSchema>;
      if (passphrase) {
        const salt = randomBytes(16);
        const wrapping = scryptSync(Buffer.from(passphrase, 'utf8'), salt, 32, SCRYPT);
        const sealed = gcmSeal(wrapping, key, Buffer.from(FORMAT));
        file = { format: FORMAT, salt: salt.toString('base64'), iv: sealed.iv.toString('base64'), tag: sealed.tag.toString('base64'), wrapped: sealed.data.toString('base64') };
      } else {
        file = { format: FORMAT, key: key.toString('base64') };
      }
      // Written whole under a temporary name, then linked into place: a link never replaces an existing file, so
      // when several processes start at once (`wott gateway --workers`), one key wins and the others read it.
      const tmp = `${path}.${randomBytes(6).toString('hex')}.new`;
      writeFileAtomic(tmp, JSON.stringify(file) + '\n', PRIVATE_KEY_MODE);
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        return CredentialVault.open(dataDir, passphrase); // another process made it first: use that one
      } finally {
        rmSync(tmp, { force: true });
      }
      return new CredentialVault(key);
    }
    let parsed: z.infer<typeof keyFileSchema>;
    try {
      parsed = keyFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch {
      throw new Error(`${path} is damaged: it is not a wott credential key`);
    }
    if ('key' in parsed) return new CredentialVault(Buffer.from(parsed.key, 'base64'));
    if (!passphrase) throw new Error(`${path} is encrypted: set WOTT_CA_PASSPHRASE to the passphrase it was created with`);
    const wrapping = scryptSync(Buffer.from(passphrase, 'utf8'), Buffer.from(parsed.salt, 'base64'), 32, SCRYPT);
    try {
      return new CredentialVault(gcmOpen(wrapping, Buffer.from(parsed.iv, 'base64'), Buffer.from(parsed.tag, 'base64'), Buffer.from(parsed.wrapped, 'base64'), Buffer.from(FORMAT)));
    } catch {
      throw new Error(`${path}: wrong passphrase`);
    }
  }

  /**
   * Opens the key in `dataDir` and checks it against the store: the first key to use a store is recorded there (its
   * id), and any other is refused — on a cluster every node must hold the same `credentials.key`, or values sealed
   * on one node could not be opened on another.
   */
  static async openFor(store: CredentialStore, dataDir: string, passphrase?: string): Promise<CredentialVault> {
    const vault = CredentialVault.open(dataDir, passphrase);
    const bound = await store.bindKey(vault.keyId);
    if (bound !== vault.keyId) {
      throw new Error(
        `${join(dataDir, CREDENTIAL_KEY_FILE)} is not the key the credentials in ${store.location} are sealed with (key id ${vault.keyId}, the store's ${bound}): ` +
          `copy ${CREDENTIAL_KEY_FILE} from the data folder of the node that made it (every node of a cluster needs the same one, as it needs ca/)`,
      );
    }
    return vault;
  }

  /** Tells keys apart without revealing anything of them: an HMAC of a fixed label under the key. */
  get keyId(): string {
    return createHmac('sha256', this.key).update('wott credential key id').digest('hex').slice(0, 32);
  }

  /** version byte | IV (12) | tag (16) | ciphertext. */
  seal(name: string, version: number, value: Buffer): Buffer {
    const { iv, tag, data } = gcmSeal(this.key, value, aad(name, version));
    return Buffer.concat([Buffer.from([SEALED_VERSION]), iv, tag, data]);
  }

  open(name: string, version: number, sealed: Buffer): Buffer {
    if (sealed.length < 29 || sealed[0] !== SEALED_VERSION) throw new Error(`credential "${name}": unknown ciphertext format`);
    try {
      return gcmOpen(this.key, sealed.subarray(1, 13), sealed.subarray(13, 29), sealed.subarray(29), aad(name, version));
    } catch {
      throw new Error(`credential "${name}" cannot be decrypted with ${CREDENTIAL_KEY_FILE} (damaged, or another key)`);
    }
  }
}

function aad(name: string, version: number): Buffer {
  return Buffer.from(`${name}\0${version}`);
}
