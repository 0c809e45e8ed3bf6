/**
 * The device's TPM key, through tpm2-tools (run with execFile, never a shell). An ECC P-256 signing key is created
 * under the owner hierarchy's primary and made persistent at `handle`; it never leaves the TPM. The agent uses it to
 * sign its CSRs so the CA can tell that a request comes from this device's TPM.
 *
 * Without a resource manager (e.g. talking straight to swtpm), transient objects pile up in the TPM, so every
 * command is followed by `tpm2_flushcontext -t`.
 */
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_TPM_HANDLE = '0x81010001';

export interface TpmOptions {
  /** TCTI string (e.g. "device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321"); default: $TPM2TOOLS_TCTI. */
  tcti?: string;
  /** Persistent handle of the signing key. */
  handle?: string;
  /** Per-command timeout in milliseconds. */
  timeoutMs?: number;
}

export class TpmError extends Error {
  override name = 'TpmError';
}

export class TpmKey {
  readonly handle: string;
  readonly tcti: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: TpmOptions = {}) {
    this.handle = options.handle ?? DEFAULT_TPM_HANDLE;
    if (!/^0x81[0-9a-fA-F]{6}$/.test(this.handle)) throw new TpmError(`TPM handle "${this.handle}" is not a persistent handle (0x81xxxxxx)`);
    this.tcti = options.tcti ?? process.env.TPM2TOOLS_TCTI;
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  private run(tool: string, args: string[]): Promise<string> {
    const env = { ...process.env };
    if (this.tcti) env.TPM2TOOLS_TCTI = this.tcti;
    return new Promise((resolve, reject) => {
      execFile(tool, args, { env, timeout: this.timeoutMs, maxBuffer: 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') return reject(new TpmError(`${tool} not found: install tpm2-tools`));
          return reject(new TpmError(`${tool} failed: ${(stderr || err.message).trim().split('\n').slice(-2).join(' ').slice(0, 300)}`));
        }
        resolve(stdout);
      });
    });
  }

  /** Runs one tool, then flushes transient objects (best effort). */
  private async step(tool: string, args: string[]): Promise<string> {
    try {
      return await this.run(tool, args);
    } finally {
      await this.run('tpm2_flushcontext', ['-t']).catch(() => undefined);
    }
  }

  private async withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = mkdtempSync(join(tmpdir(), 'wott-tpm-'));
    try {
      return await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private spkiDer?: Buffer;

  /** Makes sure the persistent key exists (creating it if `tpm2_readpublic` fails); returns its public key (DER SPKI). */
  async ensure(): Promise<Buffer> {
    try {
      return await this.readPublic();
    } catch (err) {
      // Only a key that is missing gets created; no tools, or a foreign key at the handle, is an error.
      if (!(err instanceof TpmError) || !err.message.startsWith('tpm2_readpublic failed')) throw err;
    }
    await this.withTemp(async (dir) => {
      const f = (n: string) => join(dir, n);
      await this.step('tpm2_createprimary', ['-C', 'o', '-g', 'sha256', '-G', 'ecc256', '-c', f('primary.ctx'), '-Q']);
      await this.step('tpm2_create', [
        '-C', f('primary.ctx'), '-G', 'ecc256:ecdsa-sha256', '-u', f('key.pub'), '-r', f('key.priv'),
        '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign', '-Q',
      ]);
      await this.step('tpm2_load', ['-C', f('primary.ctx'), '-u', f('key.pub'), '-r', f('key.priv'), '-c', f('key.ctx'), '-Q']);
      await this.step('tpm2_evictcontrol', ['-C', 'o', '-c', f('key.ctx'), this.handle, '-Q']);
    });
    return this.readPublic();
  }

  private async readPublic(): Promise<Buffer> {
    return this.withTemp(async (dir) => {
      const out = join(dir, 'key.pem');
      await this.step('tpm2_readpublic', ['-c', this.handle, '-f', 'pem', '-o', out, '-Q']);
      const key = createPublicKey(readFileSync(out, 'utf8'));
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new TpmError(`the key at TPM handle ${this.handle} is not an EC P-256 key`);
      }
      this.spkiDer = key.export({ format: 'der', type: 'spki' });
      return this.spkiDer;
    });
  }

  /** The public key (DER SPKI); call ensure() first. */
  spki(): Buffer {
    if (!this.spkiDer) throw new TpmError('TPM key not loaded: call ensure() first');
    return this.spkiDer;
  }

  /** A DER ECDSA-SHA256 signature over `data`, made inside the TPM. */
  async sign(data: Buffer): Promise<Buffer> {
    return this.withTemp(async (dir) => {
      writeFileSync(join(dir, 'data'), data, { mode: 0o600 });
      await this.step('tpm2_sign', ['-c', this.handle, '-g', 'sha256', '-f', 'plain', '-o', join(dir, 'sig.der'), join(dir, 'data')]);
      return readFileSync(join(dir, 'sig.der'));
    });
  }
}
