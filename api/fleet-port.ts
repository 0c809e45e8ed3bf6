/**
 * What the API's routes need from the fleet core, and nothing else: the routes call only this. Today
 * api/fleet-adapter.ts implements it over the CA and FleetService; FleetService is to implement it itself (issue 12).
 *
 * Every mutating call names its `actor` (`cert:{role}:{name}`, `session:{role}:{name}`) and is recorded in the audit
 * log with it, refused or not. A refusal is thrown as an error with a numeric `status` (400, 404, 409: the client's
 * fault, its message shown to the client); anything else is a 500 with the message kept out of the reply.
 */
import type {
  ActionDecision,
  ActionList,
  API_REVOCATION_REASONS,
  AuditPage,
  DeviceDetail,
  DeviceListQuery,
  DevicePage,
  DeviceSummary,
  ExplainResult,
  FleetSummary,
  OperatorCertificate,
  OperatorList,
  OperatorRole,
  PolicyList,
  VulnList,
  VulnSeverityName,
} from '../protocol/index.js';

export type DeviceFilter = Omit<DeviceListQuery, 'format'>;
export type RevocationReasonName = (typeof API_REVOCATION_REASONS)[number];

export interface FleetOperations {
  /** One page of devices, filtered and sorted; `cursor` is opaque (a bad one is a 400). */
  listDevices(filter: DeviceFilter): Promise<DevicePage>;
  /** Undefined when there is no such device. */
  device(id: string): Promise<DeviceDetail | undefined>;
  quarantine(id: string, actor: string): Promise<DeviceSummary>;
  release(id: string, actor: string): Promise<DeviceSummary>;
  claim(id: string, actor: string): Promise<DeviceSummary>;
  /** Refuses an unclaimed device: its certificates revoked, the device marked revoked; the serials revoked now. */
  reject(id: string, actor: string): Promise<{ device: DeviceSummary; revoked: string[] }>;
  /** Revokes every certificate of the device and marks it revoked; the serials revoked now. */
  revoke(id: string, reason: RevocationReasonName, actor: string): Promise<{ device: DeviceSummary; revoked: string[] }>;
  /** Replaces the device's tags. */
  setTags(id: string, tags: string[], actor: string): Promise<DeviceSummary>;
  /** Adds and removes tags, keeping the device's other tags (one transaction). */
  changeTags(id: string, change: { add?: string[]; remove?: string[] }, actor: string): Promise<DeviceSummary>;
  /** A one-time enrollment token (ttlMs undefined: the configured default). */
  createToken(device: string, ttlMs: number | undefined, actor: string): Promise<{ token: string; expiresAt: Date }>;
  /** Audit entries, newest first; `before` is the seq to continue below. */
  auditLog(query: { device?: string; limit: number; before?: number }): Promise<AuditPage>;
  summary(): Promise<FleetSummary>;
  /** SHA-256 fingerprint of the root CA certificate (AB:CD:…), what devices pin at enrollment. */
  rootFingerprint(): string;
  /** Records an action taken outside the fleet (sessions started and ended) in the same audit log. */
  record(entry: { actor: string; action: string; device?: string; target?: string; outcome: 'ok' | 'refused'; detail?: string }): Promise<void>;
  /** Recommended actions across the fleet, grouped by action, each with its devices (those with this status). */
  actions(query: { status: 'open' | 'snoozed' | 'ignored' | 'all'; limit: number; devices: number }): Promise<ActionList>;
  /** Snoozes (ms from now) or ignores an action on a device, or lifts either ('clear'); audited. */
  decideAction(device: string, action: string, decision: { kind: 'snooze'; forMs: number } | { kind: 'ignore' } | { kind: 'clear' }, actor: string): Promise<ActionDecision>;
  /** CVEs across the fleet, worst first, each with its affected devices. */
  vulnerabilities(query: { severity?: VulnSeverityName; q?: string; limit: number }): Promise<VulnList>;
  /** The policy rules with how many devices pass each now. */
  policies(): Promise<PolicyList>;
  /** The decision the broker would make now. */
  explain(device: string, topic: string, action: 'publish' | 'subscribe'): Promise<ExplainResult>;
  /** Issues an operator certificate (audited); the key is returned once and not kept. */
  issueOperator(role: OperatorRole, name: string, actor: string): Promise<{ serial: string; commonName: string; notAfter: Date; pem: string; keyPem: string }>;
  /** Operator certificates from the CA's inventory (expired and revoked ones too): active first, then by name. */
  operators(): Promise<OperatorList>;
  /** Revokes one operator certificate (audited); the API refuses it from then on. */
  revokeOperator(serial: string, reason: RevocationReasonName, actor: string): Promise<OperatorCertificate>;
}

/** An error the API shows to the client with this status. */
export class FleetRefusal extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 503,
    message: string,
  ) {
    super(message);
    this.name = 'FleetRefusal';
  }
}
