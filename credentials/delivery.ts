/**
 * CredentialDelivery: keeps what each device holds in line with what it is entitled to. The gateway calls
 * `reconcile` when anything that decides entitlement changes (a score, tags, a state, a certificate, a credential)
 * and `listening` when a device subscribes to its credentials topic (then it gets everything it should hold again,
 * and a manifest so that it deletes anything else). Each delivery is a JWE to the device's current certificate key;
 * a withdrawal from a device that held a credential marks the credential exposed to that device until rotated.
 * Work is serialized: one reconcile at a time, in order.
 */
import type { Logger } from 'pino';
import type { CredentialMessage } from '../protocol/index.js';
import type { CredentialRow, CredentialStore, ExposureRow } from '../store/index.js';
import { whyNotEntitled, type DeviceStanding } from './entitlement.js';
import { encryptForCertificate } from './jwe.js';
import type { CredentialVault } from './vault.js';

export interface DeliveryPort {
  /** Publishes on the device's own credentials topic (QoS 1); resolves once the broker routed it. */
  send(device: string, message: CredentialMessage): Promise<void>;
  /** State, tags, effective score and current certificate serial of a device (undefined: unknown). */
  standing(device: string): (DeviceStanding & { serial?: string }) | undefined;
  /** Every device id known. */
  devices(): Iterable<string>;
  /** The device's current certificate (DER or PEM), by serial. */
  certificate(device: string, serial: string): Promise<Buffer | undefined>;
  /** The device has a session subscribed to its credentials topic now. */
  listening(device: string): boolean;
  /** An audit entry as the gateway (deliveries and withdrawals). */
  audit(entry: { action: string; device: string; target: string; outcome: 'ok' | 'refused'; detail: string }): Promise<void>;
}

/** At most one full sync per device this often, however often it subscribes. */
const FULL_SYNC_INTERVAL_MS = 1000;

export class CredentialDelivery {
  private queue: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private lastGeneration = -1;
  private closed = false;
  /** A full pass queued and not started yet: another request joins it (a busy queue must not pile up passes). */
  private pendingAll: Promise<void> | undefined;
  /** Per device: a queued full sync not started yet, and when the last one ran (a device that subscribes in a loop
   *  gets at most one sync a second, not one per SUBSCRIBE). Keys are devices of ours that connected. */
  private readonly pendingFull = new Map<string, Promise<void>>();
  private readonly lastFull = new Map<string, number>();
  /** A pass for some devices queued and not started yet, and the devices it will take (those named until it starts). */
  private pendingSome: Promise<void> | undefined;
  private readonly pendingDevices = new Set<string>();

  constructor(
    private readonly store: CredentialStore,
    private readonly vault: CredentialVault,
    private readonly port: DeliveryPort,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** Told the exposures after each piece of work that may have changed them (recommended actions). */
    private readonly onExposures?: (rows: ExposureRow[]) => void,
  ) {}

  /**
   * Follows changes made by other processes (the CLI) by the store's generation, every `pollMs`, and re-checks
   * everything every `sweepMs` (expiries).
   */
  start(pollMs = 1000, sweepMs = 60_000): void {
    let sinceSweep = 0;
    let expired = '';
    this.timer = setInterval(() => {
      sinceSweep += pollMs;
      void (async () => {
        if ((await this.store.generation()) !== this.lastGeneration) return this.reconcile();
        if (sinceSweep < sweepMs) return;
        sinceSweep = 0;
        // A full pass only when the set of expired credentials changed (a pass touches every device).
        const now = this.now();
        const names = (await this.store.all()).filter((c) => c.expiresAt !== null && Date.parse(c.expiresAt) <= now).map((c) => c.name).join(',');
        if (names !== expired) {
          expired = names;
          return this.reconcile();
        }
      })().catch((err: Error) => this.log.error({ err: err.message }, 'credentials: poll failed'));
    }, pollMs);
    this.timer.unref();
  }

  /**
   * Brings `devices` (default: all) in line; resolves when done. Devices named while the queue is busy join one
   * pending pass: every score message names its device, and a connect ramp's thousands of first scores would
   * otherwise each cost a pass of its own (store generation, every credential, exposures) on the way.
   */
  reconcile(devices?: Iterable<string>): Promise<void> {
    if (!devices) {
      if (this.pendingAll) return this.pendingAll;
      return (this.pendingAll = this.enqueue(async () => {
        this.pendingAll = undefined;
        await this.pass(undefined);
      }));
    }
    for (const device of devices) this.pendingDevices.add(device);
    if (this.pendingSome) return this.pendingSome;
    return (this.pendingSome = this.enqueue(async () => {
      const list = [...this.pendingDevices];
      this.pendingDevices.clear();
      this.pendingSome = undefined;
      await this.pass(list);
    }));
  }

  private async pass(list: string[] | undefined): Promise<void> {
    this.lastGeneration = await this.store.generation();
    const credentials = await this.store.all();
    const targets = new Set(list ?? [...this.port.devices(), ...(await this.store.deliveries()).map((d) => d.device)]);
    for (const device of targets) await this.syncDevice(device, credentials, false);
  }

  /** The device (re)subscribed: send it everything it should hold, then the manifest. */
  listening(device: string): Promise<void> {
    const pending = this.pendingFull.get(device);
    if (pending) return pending;
    const wait = Math.max(0, (this.lastFull.get(device) ?? -Infinity) + FULL_SYNC_INTERVAL_MS - this.now());
    const work = new Promise<void>((resolve) => (wait > 0 ? setTimeout(resolve, wait).unref() : resolve())).then(() =>
      this.enqueue(async () => {
        this.pendingFull.delete(device);
        this.lastFull.set(device, this.now());
        await this.syncDevice(device, await this.store.all(), true);
      }),
    );
    this.pendingFull.set(device, work);
    return work;
  }

  /** Withdraws everything `device` holds now (before its session is closed, e.g. at revocation). */
  withdrawAll(device: string, reason: string): Promise<void> {
    return this.enqueue(async () => {
      for (const held of await this.store.deliveries(device)) await this.withdraw(device, held.name, held.version, reason, true);
    });
  }

  /**
   * The device fetches over HTTPS with its current certificate (`serial`): everything it should hold, what it must
   * give back, and the manifest, as the messages a subscription would bring — returned instead of published.
   * Deliveries are recorded and audited as over MQTT (so a later loss of trust withdraws and flags them).
   */
  fetch(device: string, serial: string): Promise<CredentialMessage[]> {
    const messages: CredentialMessage[] = [];
    return this.enqueue(async () => {
      if (this.port.standing(device)?.serial !== serial) return;
      await this.syncDevice(device, await this.store.all(), true, async (_device, message) => void messages.push(message));
    }).then(() => messages);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  /** Waits for work queued so far (tests, shutdown). */
  idle(): Promise<void> {
    return this.queue;
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(async () => {
      if (this.closed) return;
      await work();
      if (this.onExposures) this.onExposures(await this.store.exposures());
    });
    this.queue = next.catch((err: Error) => this.log.error({ err: err.message }, 'credentials: delivery failed'));
    return next;
  }

  /** `sink`: where the messages go instead of the device's topic (an HTTPS fetch; the device is listening then). */
  private async syncDevice(device: string, credentials: CredentialRow[], full: boolean, sink?: DeliveryPort['send']): Promise<void> {
    const send = sink ?? ((d: string, m: CredentialMessage) => this.port.send(d, m));
    const standing = this.port.standing(device);
    const held = new Map((await this.store.deliveries(device)).map((d) => [d.name, d]));
    const listening = sink !== undefined || this.port.listening(device);
    const manifest: Array<{ name: string; version: number }> = [];
    for (const credential of credentials) {
      const why = whyNotEntitled(credential, standing, this.now());
      const had = held.get(credential.name);
      held.delete(credential.name);
      if (why === undefined) {
        manifest.push({ name: credential.name, version: credential.version });
        const serial = standing?.serial;
        if (!listening || !serial) continue;
        const same = !!had && had.version === credential.version && had.serial === serial;
        if (!full && same) continue;
        await this.deliver(device, serial, credential, same, send);
      } else if (had) {
        await this.withdraw(device, credential.name, had.version, why, true, send);
      }
    }
    // Held but removed by an operator: withdraw, nothing to flag (the credential is gone).
    for (const gone of held.values()) await this.withdraw(device, gone.name, gone.version, 'credential removed', false, send);
    if (full && listening) await send(device, { type: 'manifest', held: manifest });
  }

  /** `resend`: the device already holds this version for this certificate (it subscribed again): not audited again. */
  private async deliver(device: string, serial: string, credential: CredentialRow, resend = false, send: DeliveryPort['send'] = (d, m) => this.port.send(d, m)): Promise<void> {
    const cert = await this.port.certificate(device, serial);
    if (!cert) {
      this.log.warn({ device, serial }, 'credentials: no certificate to encrypt to');
      return;
    }
    const value = this.vault.open(credential.name, credential.version, credential.sealed);
    const jwe = await encryptForCertificate(cert, { device, name: credential.name, version: credential.version, linuxUser: credential.linuxUser, value });
    value.fill(0);
    await send(device, { type: 'deliver', name: credential.name, version: credential.version, serial, jwe });
    await this.store.recordDelivery({ device, name: credential.name, version: credential.version, serial, time: new Date(this.now()).toISOString() });
    if (resend) return void this.log.debug({ device, credential: credential.name, version: credential.version }, 'credential sent again');
    await this.port.audit({ action: 'credential.deliver', device, target: `credential:${credential.name}`, outcome: 'ok', detail: `version ${credential.version} to certificate ${serial}` });
    this.log.info({ device, credential: credential.name, version: credential.version }, 'credential delivered');
  }

  private async withdraw(device: string, name: string, version: number, reason: string, exposed: boolean, send: DeliveryPort['send'] = (d, m) => this.port.send(d, m)): Promise<void> {
    await send(device, { type: 'withdraw', name });
    await this.store.removeDelivery(device, name);
    if (exposed) await this.store.markExposed({ name, device, version, reason, time: new Date(this.now()).toISOString() });
    await this.port.audit({ action: 'credential.withdraw', device, target: `credential:${name}`, outcome: 'ok', detail: `version ${version}: ${reason}${exposed ? '; exposed: rotate it' : ''}` });
    this.log.info({ device, credential: name, reason }, 'credential withdrawn');
  }
}
