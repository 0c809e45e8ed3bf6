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
  /** End (ms since the epoch) of the intrusion window last reported: the next report covers the time since. */
  intrusionsSince: z.number().int().nonnegative().optional(),
  /** Hash of the package list last delivered in full. */
  packagesHash: z.string().optional(),
  /** keyStore tpm: persistent handle of the TPM signing key and the TCTI to reach the TPM. */
  tpmHandle: z.string().optional(),
  tpmTcti: z.string().optional(),
});
export type AgentState = z.infer<typeof stateSchema>;

/** The most distinct addresses the TLS-peer ledger keeps between two reports. */
export const MAX_TLS_LEDGER = 256;
const tlsLedgerSchema = z.array(z.object({ address: z.string().max(64), count: z.number().int().positive() })).max(MAX_TLS_LEDGER);
export type TlsLedger = z.infer<typeof tlsLedgerSchema>;

/** Peer-report bookkeeping: the last report id used and recent reports (for the client-side rate bound). */
const peerStateSchema = z.object({
  lastId: z.number().int().nonnegative(),
  recent: z.array(z.object({ subject: deviceIdSchema, at: z.number() })).max(1024),
});
export type PeerState = z.infer<typeof peerStateSchema>;

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

  /**
   * Peer-report bookkeeping lives in its own file: `wott agent report-peer` and device-to-device links run beside
   * `wott agent run`, which rewrites state.json on every report, and must not lose an id to its read-modify-write.
   */
  peerState(): PeerState {
    try {
      return peerStateSchema.parse(JSON.parse(readFileSync(this.path('peer-reports.json'), 'utf8')));
    } catch {
      return { lastId: 0, recent: [] };
    }
  }

  savePeerState(state: PeerState): void {
    writeFileAtomic(this.path('peer-reports.json'), JSON.stringify(peerStateSchema.parse(state)) + '\n', 0o600);
  }

  /**
   * Device-to-device TLS peers whose certificate did not chain to our CA, by address, until the next report takes
   * them (a file, because the link usually runs in the application's process, not the agent's).
   */
  recordTlsPeer(address: string): void {
    const ledger = this.tlsLedger();
    const entry = ledger.find((e) => e.address === address);
    if (entry) entry.count = Math.min(entry.count + 1, 1_000_000_000);
    else if (ledger.length < MAX_TLS_LEDGER) ledger.push({ address, count: 1 });
    else return; // bounded: the report already names the earliest sources
    writeFileAtomic(this.path('tls-peers.json'), JSON.stringify(ledger) + '\n', 0o600);
  }

  tlsLedger(): TlsLedger {
    try {
      return tlsLedgerSchema.parse(JSON.parse(readFileSync(this.path('tls-peers.json'), 'utf8')));
    } catch {
      return [];
    }
  }

  /** The ledger's entries, emptied: they go into the report being built. */
  takeTlsLedger(): TlsLedger {
    const ledger = this.tlsLedger();
    if (ledger.length) rmSync(this.path('tls-peers.json'), { force: true });
    return ledger;
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
