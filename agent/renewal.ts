/**
 * Automatic renewal: at 2/3 of the certificate's lifetime minus random jitter (at most lifetime/20), re-keyed
 * through EST simplereenroll over mTLS; exponential backoff on failure; the old certificate stays in use until a
 * new one has been verified and committed.
 */
import { createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createCsr, retryAfterMs, simpleReenroll, tpmHeaders, verifyIssued } from './est-client.js';
import { estServers, type AgentState, type AgentStore, type Identity } from './store.js';
import { ServerList } from './failover.js';
import ms from 'ms';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Milliseconds from `now` until renewal is due (0 when already due). */
export function renewalDelay(notBefore: number, notAfter: number, now: number, random: () => number = Math.random): number {
  const lifetime = notAfter - notBefore;
  const due = notBefore + (lifetime * 2) / 3 - random() * (lifetime / 20);
  return Math.max(0, due - now);
}

/** Backoff after `failures` consecutive failures: 1 s doubling, capped at lifetime/10 (and 1 h), ±20 % jitter. */
export function backoffDelay(failures: number, lifetimeMs: number, random: () => number = Math.random): number {
  const cap = Math.max(1000, Math.min(lifetimeMs / 10, 3_600_000));
  const base = Math.min(cap, 1000 * 2 ** Math.min(failures - 1, 30));
  return base * (0.8 + 0.4 * random());
}

/**
 * The wait after a failed attempt: the backoff, but never less than the server's Retry-After (a busy CA says when
 * to come back), stretched by up to half again at random so that the devices it turned away do not return together.
 */
export function retryDelay(failures: number, lifetimeMs: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  const backoff = backoffDelay(failures, lifetimeMs, random);
  if (!retryAfterMs) return backoff;
  return Math.max(backoff, Math.min(retryAfterMs, 3_600_000) * (1 + 0.5 * random()));
}

function certTimes(pem: string): { notBefore: number; notAfter: number } {
  const cert = new X509Certificate(pem);
  return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}

export class RenewalLoop {
  private timer?: NodeJS.Timeout;
  private failures = 0;
  /** The Retry-After of the last refusal, if it gave one. */
  private retryAfterMs: number | undefined;
  private stopped = false;
  private justRenewed = false;
  renewals = 0;

  constructor(
    private readonly store: AgentStore,
    private readonly onRenewed: (identity: Identity) => void,
    private readonly log: Logger,
    /** keyStore tpm: signs each renewal CSR with the TPM key (sent as X-Wott-Tpm-Signature). */
    private readonly signCsr?: (csr: Buffer) => Promise<Buffer>,
  ) {}

  private serverList?: ServerList;

  /** The gateways to renew with; the one that answered last is tried first next time. */
  private servers(state: AgentState): ServerList {
    const urls = estServers(state);
    if (!this.serverList || this.serverList.servers.join() !== urls.join()) this.serverList = new ServerList(urls);
    return this.serverList;
  }

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    const { notBefore, notAfter } = certTimes(this.store.identity().certPem);
    const now = Date.now();
    let delay = this.failures ? retryDelay(this.failures, notAfter - notBefore, this.retryAfterMs) : renewalDelay(notBefore, notAfter, now);
    // The CA backdates certificates, so for very short lifetimes 2/3 of (notAfter - notBefore) can already be past
    // at issuance; never renew a fresh certificate before half of its remaining time is gone.
    if (this.justRenewed) delay = Math.max(delay, (notAfter - now) / 2);
    this.justRenewed = false;
    this.log.info({ renewIn: ms(Math.round(delay)), failures: this.failures, notAfter: new Date(notAfter).toISOString() }, `next renewal in ${ms(Math.round(delay), { long: true })}`);
    this.timer = setTimeout(() => void this.renewNow().finally(() => this.schedule()), Math.min(delay, 2_147_483_647));
  }

  /** One renewal attempt; true when a new certificate is in place. Never throws. */
  async renewNow(): Promise<boolean> {
    const state = this.store.state();
    const current = this.store.identity(state);
    try {
      const ca = this.store.caPem();
      const caCerts = splitPem(ca).map((p) => new X509Certificate(p));
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const csr = await createCsr(state.device, privateKey, publicKey);
      const headers = this.signCsr ? tpmHeaders(await this.signCsr(csr)) : {};
      const cert = await this.servers(state).call((server) => simpleReenroll(server, ca, current.keyPem, current.certPem, csr, headers));
      verifyIssued(cert, state.device, privateKey, caCerts);
      const identity = { keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), certPem: cert.toString() };
      this.store.commitIdentity(identity, { ...this.store.state() });
      this.failures = 0;
      this.renewals++;
      this.justRenewed = true;
      this.log.info({ serial: cert.serialNumber.toLowerCase(), notAfter: cert.validTo, key: createPublicKey(privateKey).asymmetricKeyType }, 'certificate renewed');
      this.onRenewed(identity);
      return true;
    } catch (err) {
      this.failures++;
      this.retryAfterMs = retryAfterMs(err);
      this.log.warn({ err: (err as Error).message, failures: this.failures }, 'renewal failed; keeping the current certificate');
      return false;
    }
  }
}

export function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
