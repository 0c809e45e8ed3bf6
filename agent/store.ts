/**
 * The agent's files under its directory (default /var/lib/wott), crash-safe: key and certificate of each
 * generation are written under new names, then `state.json` (the pointer to the current generation) is replaced
 * atomically, then the previous generation is removed. A crash at any point leaves a matching key and certificate.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { deviceIdSchema } from '../protocol/index.js';

const stateSchema = z.object({
  device: deviceIdSchema,
  server: z.string().url(),
  /** Every gateway the agent may use, in order (several nodes of a cluster); `server` is the first. */
  servers: z.array(z.string().url()).min(1).max(16).optional(),
  generation: z.number().int().nonnegative(),
  keyStore: z.enum(['file', 'tpm']),
  /** Last report id used; the next report takes reportId + 1 (persisted before publishing, so never reused). */
  reportId: z.number().int().nonnegative(),
  /** Hash of the package list last delivered in full. */
  packagesHash: z.string().optional(),
  /** keyStore tpm: persistent handle of the TPM signing key and the TCTI to reach the TPM. */
  tpmHandle: z.string().optional(),
  tpmTcti: z.string().optional(),
});
export type AgentState = z.infer<typeof stateSchema>;

/** The gateways an enrolled agent talks to, in order. */
export function estServers(state: AgentState): string[] {
  return state.servers ?? [state.server];
}

export interface Identity {
  keyPem: string;
  certPem: string;
}

export class AgentStore {
  /**
   * keyStore tpm: the TLS private key lives only here, in memory (never on disk); a new process gets a new key and
   * certificate through the TPM-signed enrollment path.
   */
  memoryKeyPem?: string;

  constructor(readonly dir: string) {}

  private path(name: string): string {
    return join(this.dir, name);
  }

  exists(): boolean {
    return existsSync(this.path('state.json'));
  }

  state(): AgentState {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.path('state.json'), 'utf8'));
    } catch (err) {
      throw new Error(`no usable agent state in ${this.dir} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}): run \`wott agent enroll\` first`);
    }
    const parsed = stateSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`${this.path('state.json')} is damaged: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  saveState(state: AgentState): void {
    writeFileAtomic(this.path('state.json'), JSON.stringify(stateSchema.parse(state), null, 2) + '\n', 0o600);
  }

  caPem(): string {
    return readFileSync(this.path('ca.pem'), 'utf8');
  }

  saveCa(pem: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.path('ca.pem'), pem);
  }

  identity(state = this.state()): Identity {
    if (state.keyStore === 'tpm') {
      if (!this.memoryKeyPem) throw new Error('no TLS key in memory (key store tpm): a new certificate must be obtained with the TPM first');
      return { keyPem: this.memoryKeyPem, certPem: readFileSync(this.path(`cert-${state.generation}.pem`), 'utf8') };
    }
    return {
      keyPem: readFileSync(this.path(`key-${state.generation}.pem`), 'utf8'),
      certPem: readFileSync(this.path(`cert-${state.generation}.pem`), 'utf8'),
    };
  }

  /** Installs a new key + certificate as the next generation and makes it current. */
  commitIdentity(identity: Identity, base: Omit<AgentState, 'generation'> & { generation?: number }): AgentState {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const previous = this.exists() ? this.state().generation : undefined;
    const generation = (previous ?? base.generation ?? 0) + (previous === undefined ? 0 : 1);
    const tpm = base.keyStore === 'tpm';
    if (!tpm) writeFileAtomic(this.path(`key-${generation}.pem`), identity.keyPem, 0o600);
    writeFileAtomic(this.path(`cert-${generation}.pem`), identity.certPem);
    const state = { ...base, generation };
    this.saveState(state);
    if (tpm) {
      this.memoryKeyPem = identity.keyPem;
      rmSync(this.path(`key-${generation}.pem`), { force: true }); // never leave a TLS key on disk in tpm mode
    }
    if (previous !== undefined && previous !== generation) {
      rmSync(this.path(`key-${previous}.pem`), { force: true });
      rmSync(this.path(`cert-${previous}.pem`), { force: true });
    }
    return state;
  }
}
