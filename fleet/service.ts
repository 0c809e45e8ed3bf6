/**
 * FleetService: the fleet's use cases — enrollment and renewal (for EST), tokens, claim, quarantine, release,
 * tags, revocation, service identities, list and show — that the CLI, EST and the HTTPS API all call. Nothing
 * else changes the inventory.
 *
 * Every operator action is recorded in the append-only audit log with who did it: in the same transaction as the
 * action itself when it succeeds (so an action is never committed without its record), and in a transaction of its
 * own, as refused, when it is refused. Secrets it produces are never recorded (a token is "token created for
 * dev-1", not its value).
 */
import type { X509Certificate } from 'node:crypto';
import { userInfo } from 'node:os';
import type {
  CertificateAuthority,
  EnrollmentService,
  IssuedCertificate,
  KeyAndCertificate,
  RevocationReason,
  RevocationTarget,
} from '../ca/index.js';
import { CaError } from '../ca/index.js';
import { assertDeviceId, assertTags, normalizeSerial, parseOperatorCommonName, type OperatorRole, type ServiceRole } from '../protocol/index.js';
import type { ActionDecisionRow, ActionDecisionStore, AuditEntry, CertificateRow, DeviceRow, InventoryStore, InventoryTransaction } from '../store/index.js';

export type AuditAction =
  | 'token.create'
  | 'device.claim'
  | 'device.reject'
  | 'device.quarantine'
  | 'device.release'
  | 'device.tag'
  | 'certificate.revoke'
  | 'service.issue'
  | 'policy.reload'
  | 'inventory.backup'
  | 'operator.issue'
  | 'operator.revoke'
  | 'action.snooze'
  | 'action.ignore'
  | 'action.unignore';

/** Who acts through the local CLI: the OS user on the gateway's host. */
export function localActor(): string {
  let name = 'unknown';
  try {
    name = userInfo().username;
  } catch {
    // no passwd entry (some containers): keep "unknown"
  }
  return `local:${name}`;
}

export type DeviceWithCertificates = DeviceRow & { certificates: CertificateRow[] };

/** An operator certificate (viewer, operator, admin) as the CA's inventory holds it. */
export interface OperatorCertificateRow {
  role: OperatorRole;
  name: string;
  certificate: Omit<CertificateRow, 'der'>;
  revocation: { revokedAt: string; reason: string } | null;
}

export class FleetService implements EnrollmentService {
  private readonly store: InventoryStore;

  constructor(
    private readonly ca: CertificateAuthority,
    readonly actor: string,
    /** Operators' snooze and ignore decisions on recommended actions (the gateway's actions.db). */
    private readonly actions?: ActionDecisionStore,
  ) {
    this.store = ca.inventory;
  }

  /** The same service acting for someone else (an API caller). */
  as(actor: string): FleetService {
    return new FleetService(this.ca, actor, this.actions);
  }

  /**
   * Runs one operator action in a transaction together with its audit entry; when it is refused, records the
   * refusal in a transaction of its own and rethrows.
   */
  private async audited<T>(
    action: AuditAction,
    about: { device?: string; target?: string },
    run: (tx: InventoryTransaction) => Promise<T>,
    detail?: (result: T) => string,
  ): Promise<T> {
    const entry = (outcome: AuditEntry['outcome'], text: string | null): Omit<AuditEntry, 'seq'> => ({
      time: new Date().toISOString(),
      actor: this.actor,
      action,
      device: about.device ?? null,
      target: about.target ?? null,
      outcome,
      detail: text === null ? null : text.slice(0, 500),
    });
    try {
      return await this.store.transaction(async (tx) => {
        const result = await run(tx);
        await tx.appendAudit(entry('ok', detail ? detail(result) : null));
        return result;
      });
    } catch (err) {
      await this.store.transaction((tx) => tx.appendAudit(entry('refused', err instanceof Error ? err.message : String(err))));
      throw err;
    }
  }

  // ------------------------------------------------------------------ enrollment (EST)

  now(): Date {
    return this.ca.now();
  }

  /** [intermediate, root]. */
  caCertificates(): X509Certificate[] {
    return this.ca.caCertificates();
  }

  currentCrl(): Promise<Buffer> {
    return this.ca.currentCrl();
  }

  enrollWithToken(deviceId: string, token: string, csr: Buffer, tpm?: { spki: Buffer; signature: Buffer }): Promise<IssuedCertificate> {
    return this.ca.enrollWithToken(deviceId, token, csr, tpm);
  }

  enrollUnclaimed(csr: Buffer, limits: { maxUnclaimed?: number; unclaimedTtlMs?: number } = {}): Promise<IssuedCertificate> {
    return this.ca.enrollUnclaimed(csr, limits);
  }

  enrollWithTpm(csr: Buffer, signature: Buffer): Promise<IssuedCertificate> {
    return this.ca.enrollWithTpm(csr, signature);
  }

  renew(current: Buffer, csr: Buffer, tpmSignature?: Buffer): Promise<IssuedCertificate> {
    return this.ca.reenroll(current, csr, tpmSignature);
  }

  // ------------------------------------------------------------------ operator actions

  createToken(device: string, ttlMs?: number): Promise<{ token: string; expiresAt: Date }> {
    return this.audited('token.create', { device }, (tx) => this.ca.createToken(device, ttlMs, tx), (r) => `expires ${r.expiresAt.toISOString()}`);
  }

  claim(device: string): Promise<DeviceRow> {
    return this.audited('device.claim', { device }, async (tx) => {
      const row = await this.requireDevice(tx, device);
      if (row.state !== 'unclaimed') throw new CaError(409, `device "${device}" is ${row.state}, not unclaimed`);
      return this.setState(tx, device, 'active');
    });
  }

  /**
   * Refuses a device waiting in the claim queue: whatever certificate claim mode issued it is revoked (reason
   * privilegeWithdrawn: the CRL lists it and the broker closes its sessions) and the device becomes `revoked`, as an
   * unclaimed device that expires does. The id stays in the inventory so that the same unknown key cannot enroll
   * it again without credentials; the real device can still enroll it with a token. Only unclaimed devices: an
   * active one is revoked (admin), not rejected.
   */
  async reject(device: string): Promise<{ device: DeviceRow; revoked: string[] }> {
    const result = await this.audited(
      'device.reject',
      { device },
      async (tx) => {
        const row = await this.requireDevice(tx, device);
        if (row.state !== 'unclaimed') throw new CaError(409, `device "${device}" is ${row.state}, not unclaimed: only a device waiting to be claimed can be rejected`);
        const revoked = await this.ca.revoke({ deviceId: device }, 'privilegeWithdrawn', tx);
        return { device: (await tx.device(device))!, revoked };
      },
      (r) => `revoked ${r.revoked.join(', ') || 'nothing'}`,
    );
    await this.ca.refreshCrl(true); // after the commit: the CRL must list what was committed
    return result;
  }

  quarantine(device: string): Promise<DeviceRow> {
    return this.audited('device.quarantine', { device }, (tx) => this.setQuarantine(tx, device, true));
  }

  release(device: string): Promise<DeviceRow> {
    return this.audited('device.release', { device }, (tx) => this.setQuarantine(tx, device, false));
  }

  /** Replaces the device's tags. */
  setTags(device: string, tags: string[]): Promise<DeviceRow> {
    return this.audited(
      'device.tag',
      { device },
      async (tx) => {
        const checked = assertTags(tags);
        await this.requireDevice(tx, device);
        await tx.setDeviceTags(device, checked, this.ca.now().toISOString());
        return (await tx.device(device))!;
      },
      (row) => `tags ${row.tags.join(', ') || '(none)'}`,
    );
  }

  /**
   * Adds and removes tags, keeping the others: one transaction, so two operators tagging the same device at once
   * cannot lose each other's change (a read in the page and a PUT of the whole list could).
   */
  changeTags(device: string, change: { add?: readonly string[]; remove?: readonly string[] }): Promise<DeviceRow> {
    return this.audited(
      'device.tag',
      { device },
      async (tx) => {
        const add = assertTags(change.add ?? []);
        const remove = new Set(assertTags(change.remove ?? []));
        const row = await this.requireDevice(tx, device);
        const next = assertTags([...row.tags.filter((t) => !remove.has(t)), ...add.filter((t) => !remove.has(t))]);
        await tx.setDeviceTags(device, next, this.ca.now().toISOString());
        return (await tx.device(device))!;
      },
      (row) => `tags ${row.tags.join(', ') || '(none)'}`,
    );
  }

  async revoke(target: RevocationTarget, reason: RevocationReason): Promise<string[]> {
    const about = 'deviceId' in target ? { device: target.deviceId } : { target: target.serial };
    const serials = await this.audited(
      'certificate.revoke',
      about,
      (tx) => this.ca.revoke(target, reason, tx),
      (serials) => `reason ${reason}; revoked ${serials.join(', ') || 'nothing'}`,
    );
    await this.ca.refreshCrl(true); // after the commit: the CRL must list what was committed
    return serials;
  }

  issueService(role: ServiceRole, name: string): Promise<KeyAndCertificate> {
    return this.audited('service.issue', { target: `${role}:${name}` }, (tx) => this.ca.issueService(role, name, tx), (c) => `serial ${c.serial}`);
  }

  /** An online, consistent copy of the inventory to `destination` (a new file), while the gateway keeps running. */
  async backup(destination: string): Promise<void> {
    const store = this.store;
    if (!store.backup) throw new Error(`the inventory at ${store.location} is backed up with its database's own tools`);
    const copy = store.backup.bind(store);
    // Recorded before the copy is made, so that the copy holds its own audit entry.
    await this.audited('inventory.backup', { target: destination }, async () => undefined);
    await copy(destination);
  }

  /** An operator certificate (viewer, operator, admin) for the HTTPS API; the key is returned once and not kept. */
  issueOperator(role: OperatorRole, name: string): Promise<KeyAndCertificate> {
    return this.audited('operator.issue', { target: `operator:${role}:${name}` }, (tx) => this.ca.issueOperator(role, name, tx), (c) => `serial ${c.serial}`);
  }

  /** Every operator certificate ever issued (expired and revoked ones too), oldest first. */
  async operatorCertificates(): Promise<OperatorCertificateRow[]> {
    const out: OperatorCertificateRow[] = [];
    for (const { der: _der, ...c } of await this.store.certificates({ kind: 'service' })) {
      const who = parseOperatorCommonName(c.commonName);
      if (!who) continue; // a service (scoring, broker), not a person or tool with a role
      const revocation = c.status === 'revoked' ? ((await this.store.revocation(c.serial)) ?? null) : null;
      out.push({ ...who, certificate: c, revocation: revocation && { revokedAt: revocation.revokedAt, reason: revocation.reason } });
    }
    return out;
  }

  /**
   * Revokes one operator certificate (the API refuses it at its next request, its open streams within a second, and
   * the CRL lists it). Only operator certificates: a device is revoked as a device, a service with `wott ca revoke`.
   */
  async revokeOperator(serial: string, reason: RevocationReason): Promise<OperatorCertificateRow> {
    const key = normalizeSerial(serial);
    const row = await this.audited(
      'operator.revoke',
      { target: key },
      async (tx) => {
        const cert = await tx.certificate(key);
        const who = cert && cert.kind === 'service' ? parseOperatorCommonName(cert.commonName) : undefined;
        if (!cert || !who) throw new CaError(404, `no operator certificate with serial ${key}`);
        await this.ca.revoke({ serial: key }, reason, tx);
        return { who, cert };
      },
      ({ who }) => `operator:${who.role}:${who.name}; reason ${reason}`,
    );
    await this.ca.refreshCrl(true); // after the commit: the CRL must list what was committed
    const revocation = await this.store.revocation(key);
    const { der: _der, ...certificate } = (await this.store.certificate(key))!;
    return { ...row.who, certificate, revocation: revocation ? { revokedAt: revocation.revokedAt, reason: revocation.reason } : null };
  }

  /**
   * Snoozes (until `until`) or ignores a recommended action on one device, or lifts either ('clear'). Only the
   * action lists change: the score still counts the action. Returns the decision stored (undefined when cleared).
   */
  decideAction(device: string, action: string, decision: { kind: 'snooze'; until: Date } | { kind: 'ignore' } | { kind: 'clear' }): Promise<ActionDecisionRow | undefined> {
    const store = this.actions;
    const name = decision.kind === 'snooze' ? 'action.snooze' : decision.kind === 'ignore' ? 'action.ignore' : 'action.unignore';
    return this.audited(
      name,
      { device, target: action },
      async (tx) => {
        if (!store) throw new CaError(409, 'action decisions are kept by the gateway (no action store here)');
        await this.requireDevice(tx, device);
        if (decision.kind === 'clear') {
          if (!(await store.remove(device, action))) throw new CaError(404, `action "${action}" on "${device}" is neither snoozed nor ignored`);
          return undefined;
        }
        const row: ActionDecisionRow = { device, action, kind: decision.kind, until: decision.kind === 'snooze' ? decision.until.toISOString() : null, actor: this.actor, time: this.ca.now().toISOString() };
        await store.put(row);
        return row;
      },
      (row) => (row?.until ? `until ${row.until}` : row ? 'ignored' : 'cleared'),
    );
  }

  /** Every snooze and ignore decision held. */
  actionDecisions(): Promise<ActionDecisionRow[]> {
    return this.actions ? this.actions.all() : Promise.resolve([]);
  }

  /** SHA-256 fingerprint of the root CA certificate (AB:CD:…): what devices pin at enrollment. */
  rootFingerprint(): string {
    return this.ca.material.root.fingerprint256;
  }

  /**
   * Records an action taken outside the inventory (a browser session started or ended) in the same audit log,
   * as this actor. `action` is a dotted name such as `session.start`.
   */
  record(entry: { action: string; device?: string; target?: string; outcome: AuditEntry['outcome']; detail?: string }): Promise<void> {
    return this.store.transaction((tx) =>
      tx.appendAudit({
        time: new Date().toISOString(),
        actor: this.actor,
        action: entry.action.slice(0, 64),
        device: entry.device ?? null,
        target: entry.target?.slice(0, 200) ?? null,
        outcome: entry.outcome,
        detail: entry.detail?.slice(0, 500) ?? null,
      }),
    );
  }

  /** Records a policy reload (the gateway re-read its policies) or its refusal. */
  recordPolicyReload(outcome: AuditEntry['outcome'], detail: string): Promise<void> {
    return this.store.transaction((tx) =>
      tx.appendAudit({ time: new Date().toISOString(), actor: this.actor, action: 'policy.reload', device: null, target: null, outcome, detail: detail.slice(0, 500) }),
    );
  }

  private async requireDevice(tx: InventoryTransaction, device: string): Promise<DeviceRow> {
    const row = await tx.device(assertDeviceId(device));
    if (!row) throw new CaError(404, `no device "${device}" in the inventory`);
    return row;
  }

  private async setState(tx: InventoryTransaction, device: string, state: DeviceRow['state']): Promise<DeviceRow> {
    await tx.upsertDevice(device, state, this.ca.now().toISOString());
    return (await tx.device(device))!;
  }

  /** Moves a device between active and quarantined (revoked and unclaimed are changed by their own commands). */
  private async setQuarantine(tx: InventoryTransaction, device: string, quarantined: boolean): Promise<DeviceRow> {
    const row = await this.requireDevice(tx, device);
    if (row.state !== 'active' && row.state !== 'quarantined') throw new CaError(409, `device "${device}" is ${row.state}`);
    return this.setState(tx, device, quarantined ? 'quarantined' : 'active');
  }

  // ------------------------------------------------------------------ reading

  /** Every device with its certificates. */
  async list(): Promise<DeviceWithCertificates[]> {
    // Two queries, not one per device: at 10,000 devices the per-device reads held the gateway's event loop for a
    // second (the scheduled fleet audit lists the fleet; seen in the soak's CPU profile).
    const [devices, certificates] = await Promise.all([this.store.devices(), this.store.certificates()]);
    const byDevice = new Map<string, CertificateRow[]>();
    for (const c of certificates) {
      if (c.deviceId === null) continue;
      const list = byDevice.get(c.deviceId);
      if (list) list.push(c);
      else byDevice.set(c.deviceId, [c]);
    }
    return devices.map((d) => ({ ...d, certificates: byDevice.get(d.id) ?? [] }));
  }

  /** One device with its certificates, or undefined. */
  async show(device: string): Promise<DeviceWithCertificates | undefined> {
    const row = await this.store.device(assertDeviceId(device));
    return row && { ...row, certificates: await this.store.certificates({ deviceId: row.id }) };
  }

  /** Tokens not used and not expired, without their hashes (the fleet audit looks for long-lived ones). */
  async outstandingTokens(): Promise<Array<{ deviceId: string; expiresAt: string }>> {
    const now = this.ca.now().getTime();
    return (await this.store.tokens()).filter((t) => t.usedAt === null && Date.parse(t.expiresAt) > now).map((t) => ({ deviceId: t.deviceId, expiresAt: t.expiresAt }));
  }

  auditLog(filter: { device?: string } = {}): Promise<AuditEntry[]> {
    return this.store.auditEntries(filter);
  }
}
