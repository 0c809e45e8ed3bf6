/**
 * Credentials (issue 17): what the gateway keeps of each credential — metadata and the value sealed under the
 * credential key (never plaintext) — which devices were sent which version, and which credentials were exposed to
 * a device that later lost trust (until rotated).
 */

export interface CredentialRow {
  name: string;
  /** 1, 2, 3 …: bumped by every set or rotation; only the current version's ciphertext is kept. */
  version: number;
  tags: string[];
  minScore: number;
  linuxUser: string | null;
  /** How long a version stays valid (ms), or null; expiresAt follows from it at each set/rotation. */
  ttlMs: number | null;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** Bytes of the plaintext value (for `show`). */
  size: number;
  /** AES-256-GCM ciphertext of the value (credentials/vault.ts). */
  sealed: Buffer;
}

/** One device that was sent a credential and then lost trust: the credential should be rotated. */
export interface ExposureRow {
  name: string;
  device: string;
  version: number;
  reason: string;
  time: string;
}

/** What was sent to a device (the certificate serial it was encrypted to). */
export interface DeliveryRow {
  device: string;
  name: string;
  version: number;
  serial: string;
  time: string;
}

export interface CredentialStore {
  readonly location: string;
  all(): Promise<CredentialRow[]>;
  get(name: string): Promise<CredentialRow | undefined>;
  /**
   * Writes the next version of credential `name` as one compare-and-set transaction: `build` gets the current row
   * (undefined: none) and the version to write — one more than any version the name ever had, removed ones
   * included, so a number never means two values — and returns the row to store, or throws to store nothing.
   * Writers of one name, in this process or another (the CLI beside the gateway, another cluster node), are
   * serialized: each gets a version of its own. The exposures of the name are cleared with it (they concerned an
   * older value). `build` is synchronous: it runs inside the transaction (sealing the value is).
   */
  writeVersion(name: string, build: (current: CredentialRow | undefined, version: number) => CredentialRow): Promise<CredentialRow>;
  /** Deletes the credential, its exposures and delivery records; false when there was none. */
  remove(name: string): Promise<boolean>;
  exposures(name?: string): Promise<ExposureRow[]>;
  markExposed(row: ExposureRow): Promise<void>;
  deliveries(device?: string): Promise<DeliveryRow[]>;
  recordDelivery(row: DeliveryRow): Promise<void>;
  removeDelivery(device: string, name: string): Promise<void>;
  /**
   * Records `keyId` as the id of the key values are sealed under, unless one is recorded already; returns the
   * recorded one. Every process using this store — every node of a cluster — must seal and open with that key.
   */
  bindKey(keyId: string): Promise<string>;
  /** A number that changes with every credential change (set, rotate, remove), also by another process. */
  generation(): Promise<number>;
  close(): Promise<void>;
}
