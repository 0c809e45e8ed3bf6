/**
 * The fleet inventory: devices, certificates, one-time tokens, revocations, CRLs and the operator audit log, with
 * the change feed that followers (FleetView) read. Every method is asynchronous because a PostgreSQL client is;
 * writes happen only inside `transaction`, which commits durably before its promise resolves (a certificate is
 * handed out only after that) and leaves no trace when its function throws.
 */
import type { DeviceState } from '../protocol/index.js';
import type { ChangeFeed } from './feed.js';

export type CertificateKind = 'device' | 'server' | 'service';
export type CertificateStatus = 'active' | 'superseded' | 'revoked';

export interface DeviceRow {
  id: string;
  state: DeviceState;
  tags: string[];
  createdAt: string;
  updatedAt: string;
  /** The TPM public key (DER SPKI) the device enrolled with, if any. */
  tpmKey: Buffer | null;
}

export interface CertificateRow {
  serial: string;
  deviceId: string | null;
  kind: CertificateKind;
  commonName: string;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
  status: CertificateStatus;
  replacedBy: string | null;
  issuedAt: string;
  der: Buffer;
}

/** A certificate without its DER: what lists and read models need. */
export type CertificateSummary = Omit<CertificateRow, 'der'>;

export interface TokenRow {
  hash: string;
  deviceId: string;
  expiresAt: string;
  usedAt: string | null;
}

export interface RevocationRow {
  serial: string;
  revokedAt: string;
  reason: string;
}

export interface CrlRow {
  number: number;
  thisUpdate: string;
  nextUpdate: string;
  der: Buffer;
}

export interface AuditEntry {
  seq: number;
  time: string;
  /** Who: `local:{os user}` for the CLI on the gateway's host, a certificate or session identity through the API. */
  actor: string;
  action: string;
  device: string | null;
  /** What else the action was about (a serial, a service name), never a secret. */
  target: string | null;
  outcome: 'ok' | 'refused';
  detail: string | null;
}

export interface CertificateFilter {
  deviceId?: string;
  status?: CertificateStatus;
  kind?: CertificateKind;
}

/** Everything a read model needs, read in one snapshot together with the feed position it corresponds to. */
export interface InventorySnapshot {
  /** The feed's head when the snapshot was read: follow the feed from here. */
  seq: number;
  devices: DeviceRow[];
  /** Certificates not yet expired at `now` (expired ones no longer matter to anyone enforcing). */
  certificates: CertificateSummary[];
}

export interface InventoryReads {
  device(id: string): Promise<DeviceRow | undefined>;
  /** Every device, ordered by id. */
  devices(): Promise<DeviceRow[]>;
  countDevices(state: DeviceState): Promise<number>;
  /** Ids of devices in `state` created at or before `createdBefore` (ISO time), oldest first. */
  devicesCreatedBefore(state: DeviceState, createdBefore: string): Promise<string[]>;
  /** Creation time (ISO) of the oldest device in `state`, if any. */
  oldestCreated(state: DeviceState): Promise<string | undefined>;
  certificate(serial: string): Promise<CertificateRow | undefined>;
  /** Ordered by issue time, then serial. */
  certificates(filter?: CertificateFilter): Promise<CertificateRow[]>;
  revocation(serial: string): Promise<RevocationRow | undefined>;
  revocations(): Promise<RevocationRow[]>;
  revocationCount(): Promise<number>;
  token(hash: string): Promise<TokenRow | undefined>;
  /** Tokens (only their hashes are stored), oldest first. */
  tokens(filter?: { deviceId?: string }): Promise<TokenRow[]>;
  latestCrl(): Promise<CrlRow | undefined>;
  auditEntries(filter?: { device?: string }): Promise<AuditEntry[]>;
  /** True when nothing was ever recorded (no device, certificate or token). */
  isEmpty(): Promise<boolean>;
}

export interface InventoryWrites {
  /** Creates the device in `state`, or moves an existing one to `state`. */
  upsertDevice(id: string, state: DeviceState, now: string): Promise<void>;
  setTpmKey(id: string, spki: Buffer | null): Promise<void>;
  setDeviceTags(id: string, tags: string[], now: string): Promise<void>;
  insertCertificate(row: Omit<CertificateRow, 'replacedBy' | 'status'>): Promise<void>;
  /** Marks an active certificate superseded by `replacedBy`. */
  supersede(serial: string, replacedBy: string): Promise<void>;
  /** Revokes a certificate; false when it was already revoked (or does not exist). */
  revoke(serial: string, reason: string, now: string): Promise<boolean>;
  insertToken(hash: string, deviceId: string, now: string, expiresAt: string): Promise<void>;
  /** Uses the token once: false when it was already used (by a concurrent enrollment, say). */
  useToken(hash: string, now: string): Promise<boolean>;
  appendAudit(entry: Omit<AuditEntry, 'seq'>): Promise<void>;
  /** Records a CRL; older ones beyond a few are dropped, and the feed is pruned to what followers may still need. */
  insertCrl(row: CrlRow): Promise<void>;
}

export type InventoryTransaction = InventoryReads & InventoryWrites;

export interface InventoryStore extends InventoryReads {
  /**
   * Runs `fn` in one write transaction, committed durably before the returned promise resolves; rolled back when
   * `fn` throws. Inside `fn`, use only `tx` (not the store's own methods: they wait for the transaction to end).
   */
  transaction<T>(fn: (tx: InventoryTransaction) => Promise<T>): Promise<T>;
  snapshot(now: Date): Promise<InventorySnapshot>;
  /** Summaries of the named certificates (those that exist). */
  certificateSummaries(serials: string[]): Promise<CertificateSummary[]>;
  readonly feed: ChangeFeed;
  /** The backend's own consistency check: the problems it found (none: consistent). */
  integrityCheck(): Promise<string[]>;
  /**
   * An online, consistent copy to `destination` while the store stays in use (SQLite: the backup API). Backends
   * with their own backup tools (PostgreSQL: pg_dump) leave it out.
   */
  backup?(destination: string): Promise<void>;
  /** Where it lives, for messages (a file path, a database URL without credentials). */
  readonly location: string;
  close(): Promise<void>;
}
