/**
 * FleetService: the operator use cases (tokens, claim, quarantine, release, revoke, service identities, list, show),
 * each recorded in the append-only audit log with who did it and whether it was refused. The CLI goes through
 * this, as the EST handlers and the HTTPS API are to (issue 12): one place that decides and records.
 *
 * The audit entry is appended right after the action's own transaction commits (or is refused), never with the
 * secret it produced (a token is recorded as "token created for dev-1", not its value).
 */
import { userInfo } from 'node:os';
import type {
  AuditEntry,
  CertificateAuthority,
  CertificateRow,
  DeviceRow,
  KeyAndCertificate,
  RevocationReason,
  RevocationTarget,
} from '../ca/index.js';
import type { ServiceRole } from '../protocol/index.js';

export type AuditAction = 'token.create' | 'device.claim' | 'device.quarantine' | 'device.release' | 'certificate.revoke' | 'service.issue';

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

export class FleetService {
  constructor(
    private readonly ca: CertificateAuthority,
    readonly actor: string,
  ) {}

  /** Runs one operator action and records it, refused or not; a refusal is rethrown after it is recorded. */
  private async audited<T>(action: AuditAction, about: { device?: string; target?: string }, run: () => T | Promise<T>, detail?: (result: T) => string): Promise<T> {
    const record = (outcome: AuditEntry['outcome'], text: string | null) =>
      this.ca.inventory.transaction(() =>
        this.ca.inventory.appendAudit({
          time: new Date().toISOString(),
          actor: this.actor,
          action,
          device: about.device ?? null,
          target: about.target ?? null,
          outcome,
          detail: text === null ? null : text.slice(0, 500),
        }),
      );
    let result: T;
    try {
      result = await run();
    } catch (err) {
      record('refused', err instanceof Error ? err.message : String(err));
      throw err;
    }
    record('ok', detail ? detail(result) : null);
    return result;
  }

  createToken(device: string, ttlMs?: number): Promise<{ token: string; expiresAt: Date }> {
    return this.audited('token.create', { device }, () => this.ca.createToken(device, ttlMs), (r) => `expires ${r.expiresAt.toISOString()}`);
  }

  claim(device: string): Promise<DeviceRow> {
    return this.audited('device.claim', { device }, () => this.ca.claimDevice(device));
  }

  quarantine(device: string): Promise<DeviceRow> {
    return this.audited('device.quarantine', { device }, () => this.ca.setQuarantine(device, true));
  }

  release(device: string): Promise<DeviceRow> {
    return this.audited('device.release', { device }, () => this.ca.setQuarantine(device, false));
  }

  revoke(target: RevocationTarget, reason: RevocationReason): Promise<string[]> {
    const about = 'deviceId' in target ? { device: target.deviceId } : { target: target.serial };
    return this.audited('certificate.revoke', about, () => this.ca.revoke(target, reason), (serials) => `reason ${reason}; revoked ${serials.join(', ') || 'nothing'}`);
  }

  issueService(role: ServiceRole, name: string): Promise<KeyAndCertificate> {
    return this.audited('service.issue', { target: `${role}:${name}` }, () => this.ca.issueService(role, name), (c) => `serial ${c.serial}`);
  }

  list(): Array<DeviceRow & { certificates: CertificateRow[] }> {
    return this.ca.list();
  }

  auditLog(filter: { device?: string } = {}): AuditEntry[] {
    return this.ca.inventory.auditEntries(filter);
  }
}
