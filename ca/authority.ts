/**
 * The certificate authority: issues device, server and service certificates from the intermediate, keeps the
 * inventory, handles one-time tokens, claims and revocation, and produces CRLs.
 *
 * Every issuance is a single inventory transaction that checks credentials, records the certificate and
 * consumes the token; the certificate is returned only after the commit. So a certificate a client holds is always
 * in the inventory, and a failed or interrupted request changes nothing.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLNumber, id_ce_cRLNumber } from '@peculiar/asn1-x509';
import { createHash, createPublicKey, randomBytes, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import {
  assertDeviceId,
  deviceUri,
  isDeviceId,
  normalizeSerial,
  serviceCommonName,
  serviceUri,
  operatorCommonName,
  operatorUri,
  type OperatorRole,
  type DeviceState,
  type ServiceRole,
} from '../protocol/index.js';
import { checkCsr, type CheckedCsr } from './csr.js';
import * as der from './der.js';
import { CaError, NoCaError } from './errors.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { openSqliteInventory, type CertificateKind, type CertificateRow, type InventoryStore, type InventoryTransaction } from '../store/index.js';
import { generateP256, privateKeyPem, spkiDer, toCryptoKey } from './keys.js';
import { assembleCertificate, certificateParts, keyIdentifier, LeafProfile } from './profile.js';
import type { OcspCertStatus } from './ocsp.js';
import { caExists, createCaFiles, loadCaMaterial, SIGNING_ALGORITHM, type CaMaterial } from './setup.js';
import { checkInventoryCurrent, checkInventoryPresent, inventoryPath } from './recovery.js';
import { makeTreePrivate } from '../lib/private.js';

const DAY = 86_400_000;
export const DEFAULT_CERT_LIFETIME_MS = 7 * DAY;
export const DEFAULT_TOKEN_TTL_MS = DAY;
const BACKDATE_MS = 60_000;
/** RFC 5652 ContentInfo type signedData, and the empty id-data content of a certs-only message. */
const PKCS7_SIGNED_DATA = der.oid('1.2.840.113549.1.7.2');
const PKCS7_EMPTY_DATA = der.sequence(der.oid('1.2.840.113549.1.7.1'), der.explicit(0, der.octetString(Buffer.alloc(0))));
const SERVER_LIFETIME_MS = 90 * DAY;
const SERVICE_LIFETIME_MS = 30 * DAY;

export interface AuthorityOptions {
  dataDir: string;
  /** Encrypts the CA keys at creation and decrypts them at load (WOTT_CA_PASSPHRASE). */
  passphrase?: string;
  certLifetimeMs?: number;
  serviceLifetimeMs?: number;
  serverLifetimeMs?: number;
  crlValidityMs?: number;
  /** URL written into every leaf's CRL distribution point. */
  crlUrl?: string;
  /** OCSP responder URL written into every leaf's authorityInfoAccess. */
  ocspUrl?: string;
  /** Clock, injectable so tests can make expired tokens and certificates without sleeping. */
  now?: () => Date;
  /** The inventory to use; default: SQLite in `dataDir/inventory.db`. */
  inventory?: InventoryStore;
  /** SQLite: how often commits by other processes are looked for while the feed is followed (ms, default 200). */
  inventoryPollMs?: number;
  /** Warnings at open (passphrase ignored, file modes, lifetimes beyond the issuing CA); default: a line on stderr. */
  onWarning?: (message: string) => void;
  /**
   * Create root, intermediate and inventory when `dataDir` has no CA (default true). False: throw NoCaError and
   * touch nothing, so a command run from the wrong folder cannot start a second CA.
   */
  create?: boolean;
}

export interface IssuedCertificate {
  serial: string;
  commonName: string;
  deviceId: string | null;
  notBefore: Date;
  notAfter: Date;
  fingerprint: string;
  der: Buffer;
  pem: string;
}

export interface KeyAndCertificate extends IssuedCertificate {
  keyPem: string;
}

export type RevocationTarget = { deviceId: string } | { serial: string };

export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];
const REASON_CODE: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  certificateHold: x509.X509CrlReason.certificateHold,
  privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
};

export { normalizeSerial };

/** A TPM public key (DER SPKI): it must be an EC P-256 key, else a 400 saying why. */
export function tpmPublicKey(spki: Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CaError(400, 'TPM key is not a DER SubjectPublicKeyInfo');
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new CaError(400, 'TPM key must be an EC P-256 key');
  }
  return key;
}

/** True when `signature` (DER ECDSA-SHA256) by `key` covers exactly `data`. */
export function tpmSignatureValid(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

export const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');
export const fingerprintOf = (der: Buffer) => createHash('sha256').update(der).digest('hex');

export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** A leaf signed ahead of its transaction (see draftLeaf): handed out only once its transaction records it. */
interface LeafDraft {
  serialBytes: Buffer;
  now: Date;
  notBefore: Date;
  notAfter: Date;
  der: Buffer;
}

/** node:crypto's one-shot sign with a callback: runs on libuv's threadpool, not on the event loop. */
function signAsync(data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => sign('sha256', data, { key, dsaEncoding: 'der' }, (err, signature) => (err ? reject(err) : resolve(signature))));
}

export class CertificateAuthority {
  readonly inventory: InventoryStore;
  private profile: LeafProfile;
  /** Where leafs point relying parties for revocation (CRL distribution point, AIA OCSP). */
  private readonly urls: { crl?: string; ocsp?: string };
  private readonly key: KeyObject;
  /** The CA's clock (injectable through AuthorityOptions.now); EST limits and the unclaimed sweep use it too. */
  readonly now: () => Date;
  readonly certLifetimeMs: number;
  /** The CRL served from memory: regenerated or reloaded only when the inventory changed or it is half-way stale. */
  private crl?: { der: Buffer; number: number; entries: number; refreshAt: number; seq: number };
  private crlPending?: Promise<Buffer>;

  private constructor(
    readonly dataDir: string,
    readonly material: CaMaterial,
    private readonly options: AuthorityOptions,
    inventory: InventoryStore,
  ) {
    this.inventory = inventory;
    this.key = material.intermediateKey;
    this.now = options.now ?? (() => new Date());
    this.certLifetimeMs = options.certLifetimeMs ?? DEFAULT_CERT_LIFETIME_MS;
    this.urls = { crl: options.crlUrl, ocsp: options.ocspUrl };
    this.profile = this.makeProfile();
  }

  private makeProfile(): LeafProfile {
    const inter = certificateParts(this.material.intermediate.raw);
    return new LeafProfile({
      issuerName: Buffer.from(inter.subjectName),
      issuerKeyId: keyIdentifier(Buffer.from(inter.spki)),
      crlUrl: this.urls.crl,
      ocspUrl: this.urls.ocsp,
    });
  }

  /** Sets the CRL distribution point for certificates issued from now on (known once the HTTPS port is bound). */
  setCrlUrl(url: string): void {
    this.urls.crl = url;
    this.profile = this.makeProfile();
  }

  /** Sets the OCSP responder URL (authorityInfoAccess) for certificates issued from now on, like setCrlUrl. */
  setOcspUrl(url: string): void {
    this.urls.ocsp = url;
    this.profile = this.makeProfile();
  }

  /**
   * Opens the CA under `dataDir`, creating root, intermediate and inventory on first use. The data folder and
   * everything in it is made private (0700 / 0600) first. Refuses a CA whose inventory is missing or older than
   * its last CRL (see ca/recovery.ts).
   */
  static async open(options: AuthorityOptions): Promise<CertificateAuthority> {
    const warn = options.onWarning ?? ((message: string) => void process.stderr.write(`wott: warning: ${message}\n`));
    // Before anything else: even making the folder private would create it.
    if (options.create === false && !caExists(options.dataDir)) throw new NoCaError(options.dataDir);
    for (const problem of makeTreePrivate(options.dataDir)) warn(problem);
    // The file checks are about the embedded SQLite inventory; another backend answers for itself.
    if (!options.inventory) await checkInventoryPresent(options.dataDir);
    if (!caExists(options.dataDir)) await createCaFiles(options.dataDir, options.passphrase, options.now?.());
    const material = loadCaMaterial(options.dataDir, options.passphrase, warn);
    const inventory = options.inventory ?? openSqliteInventory(inventoryPath(options.dataDir), { pollMs: options.inventoryPollMs ?? 200 });
    const ca = new CertificateAuthority(options.dataDir, material, options, inventory);
    try {
      await checkInventoryCurrent(options.dataDir, ca.inventory, ca.material.intermediate.toString());
    } catch (err) {
      await ca.close();
      throw err;
    }
    const left = Date.parse(ca.material.intermediate.validTo) - ca.now().getTime();
    for (const [what, ms] of [['device certificate lifetime', ca.certLifetimeMs], ['server certificate lifetime', options.serverLifetimeMs ?? SERVER_LIFETIME_MS], ['service certificate lifetime', options.serviceLifetimeMs ?? SERVICE_LIFETIME_MS]] as const) {
      if (ms > left) warn(`the ${what} (${Math.round(ms / DAY)} d) exceeds what the issuing CA has left (${Math.max(0, Math.floor(left / DAY))} d, until ${ca.material.intermediate.validTo}): such certificates will be refused`);
    }
    return ca;
  }

  close(): Promise<void> {
    return this.inventory.close();
  }

  /** [intermediate, root]: what EST /cacerts returns and what TLS peers need to build the chain. */
  caCertificates(): X509Certificate[] {
    return [this.material.intermediate, this.material.root];
  }

  /** PKCS#7 certs-only (DER) holding `certs`, as EST returns certificates. */
  static pkcs7(certs: Buffer[]): Buffer {
    // Spliced from constant parts (the same bytes @peculiar/x509's X509Certificates.export writes, test/ca-issue
    // compares): that generic path re-parsed and re-serialised every certificate, ~45% of an EST enrollment's
    // CPU on the gateway (issue 20 profile). Certificates go in as given, in order.
    return der.sequence(
      PKCS7_SIGNED_DATA,
      der.explicit(0, der.sequence(der.smallInteger(1), der.set(), PKCS7_EMPTY_DATA, der.explicit(0, ...certs), der.set())),
    );
  }

  // ------------------------------------------------------------------ issuing

  private serial(): Buffer {
    for (;;) {
      const bytes = randomBytes(16);
      if (bytes[0] !== 0) return bytes; // a stable hex form: no leading zero byte
    }
  }

  /** Runs `fn` in the caller's transaction when it holds one (FleetService records its audit entry there), else in a new one. */
  private within<T>(tx: InventoryTransaction | undefined, fn: (tx: InventoryTransaction) => Promise<T>): Promise<T> {
    return tx ? fn(tx) : this.inventory.transaction(fn);
  }

  /** The validity of a leaf issued now; refuses one that would outlive its issuer. */
  private validity(kind: CertificateKind, lifetimeMs: number): { now: Date; notBefore: Date; notAfter: Date } {
    const now = this.now();
    const notBefore = new Date(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000);
    const notAfter = new Date(Math.floor((now.getTime() + lifetimeMs) / 1000) * 1000);
    const issuerNotAfter = new Date(this.material.intermediate.validTo);
    if (notAfter > issuerNotAfter) {
      // A leaf outliving its issuer fails path validation after the issuer expires: refuse it instead.
      throw new Error(
        `cannot issue a ${kind} certificate until ${notAfter.toISOString()}: the issuing CA expires ${issuerNotAfter.toISOString()}; ` +
          'shorten the lifetime (ca.certLifetime), or replace the issuing CA',
      );
    }
    return { now, notBefore, notAfter };
  }

  /**
   * Signs a device leaf off the event loop (libuv's threadpool) while the request waits for its transaction, so
   * concurrent enrollments sign in parallel instead of one after another inside the shared group commit. The
   * draft is only bytes in memory: deviceLeaf records it (or signs afresh on a serial clash) after every check in
   * the transaction has passed, and nothing is handed out before the commit. Any error (e.g. a lifetime beyond
   * the issuer's) surfaces where the transaction awaits the draft, after the credential checks, as before.
   */
  private draftLeaf(kind: CertificateKind, commonName: string, spki: Buffer, sans: { uris?: string[] }, lifetimeMs: number): Promise<LeafDraft> {
    const draft = (async () => {
      const { now, notBefore, notAfter } = this.validity(kind, lifetimeMs);
      const serialBytes = this.serial();
      const tbs = this.profile.tbs({ kind, serial: serialBytes, commonName, notBefore, notAfter, spki, ...sans });
      return { serialBytes, now, notBefore, notAfter, der: assembleCertificate(tbs, await signAsync(tbs, this.key)) };
    })();
    draft.catch(() => undefined); // awaited in the transaction, or dropped when a check there refuses first
    return draft;
  }

  /** Records a leaf in `tx`: the signed `draft` when its serial is unused, else one signed now. */
  private async issueLeaf(
    tx: InventoryTransaction,
    kind: CertificateKind,
    commonName: string,
    spki: Buffer,
    sans: { uris?: string[]; dnsNames?: string[]; ips?: string[] },
    deviceId: string | null,
    lifetimeMs: number,
    draft?: Promise<LeafDraft>,
  ): Promise<IssuedCertificate> {
    const record = async (leaf: LeafDraft): Promise<IssuedCertificate> => {
      const { serialBytes, now, notBefore, notAfter, der } = leaf;
      const serial = serialBytes.toString('hex');
      const fingerprint = fingerprintOf(der);
      await tx.insertCertificate({
        serial,
        deviceId,
        kind,
        commonName,
        notBefore: notBefore.toISOString(),
        notAfter: notAfter.toISOString(),
        fingerprint,
        issuedAt: now.toISOString(),
        der,
      });
      return { serial, commonName, deviceId, notBefore, notAfter, fingerprint, der, pem: toPem(der) };
    };
    if (draft) {
      const leaf = await draft;
      if (!(await tx.certificate(leaf.serialBytes.toString('hex')))) return record(leaf);
    }
    const { now, notBefore, notAfter } = this.validity(kind, lifetimeMs);
    for (let attempt = 0; ; attempt++) {
      const serialBytes = this.serial();
      if (await tx.certificate(serialBytes.toString('hex'))) {
        if (attempt > 5) throw new Error('could not find an unused serial number');
        continue;
      }
      const tbs = this.profile.tbs({ kind, serial: serialBytes, commonName, notBefore, notAfter, spki, ...sans });
      return record({ serialBytes, now, notBefore, notAfter, der: assembleCertificate(tbs, sign('sha256', tbs, { key: this.key, dsaEncoding: 'der' })) });
    }
  }

  /** A device leaf for `csr`, signed now off the event loop (see draftLeaf); deviceLeaf records it. */
  private draftDeviceLeaf(deviceId: string, csr: CheckedCsr): Promise<LeafDraft> {
    return this.draftLeaf('device', deviceId, csr.spki, { uris: [deviceUri(deviceId)] }, this.certLifetimeMs);
  }

  private deviceLeaf(tx: InventoryTransaction, deviceId: string, csr: CheckedCsr, draft: Promise<LeafDraft>): Promise<IssuedCertificate> {
    return this.issueLeaf(tx, 'device', deviceId, csr.spki, { uris: [deviceUri(deviceId)] }, deviceId, this.certLifetimeMs, draft);
  }

  /** Supersedes the device's other active certificates by `issued`. */
  private async supersedeOthers(tx: InventoryTransaction, deviceId: string, issued: IssuedCertificate): Promise<void> {
    for (const old of await tx.certificates({ deviceId, status: 'active' })) {
      if (old.serial !== issued.serial) await tx.supersede(old.serial, issued.serial);
    }
  }

  private async requireCsrFor(deviceId: string, csrDer: Buffer): Promise<CheckedCsr> {
    const csr = await checkCsr(csrDer);
    if (csr.commonName !== deviceId) {
      throw new CaError(403, `CSR subject CN "${csr.commonName.slice(0, 80)}" does not match the authenticated device "${deviceId}"`);
    }
    return csr;
  }

  /** EST simpleenroll with HTTP Basic: user = device id, password = one-time token. */
  async enrollWithToken(deviceId: string, token: string, csrDer: Buffer, tpm?: { spki: Buffer; signature: Buffer }, tx?: InventoryTransaction): Promise<IssuedCertificate> {
    if (!isDeviceId(deviceId)) throw new CaError(401, 'user name is not a valid device id');
    const csr = await this.requireCsrFor(deviceId, csrDer);
    if (tpm && !tpmSignatureValid(tpmPublicKey(tpm.spki), csrDer, tpm.signature)) {
      throw new CaError(400, 'TPM signature does not verify over the CSR with the given TPM key');
    }
    const draft = this.draftDeviceLeaf(deviceId, csr);
    return this.within(tx, async (tx) => {
      const now = this.now();
      const hash = hashToken(token);
      const row = await tx.token(hash);
      if (!row) throw new CaError(401, 'unknown enrollment token');
      if (row.deviceId !== deviceId) throw new CaError(403, `token was issued for another device, not "${deviceId}"`);
      if (row.usedAt) throw new CaError(403, 'enrollment token has already been used');
      if (Date.parse(row.expiresAt) <= now.getTime()) throw new CaError(403, 'enrollment token has expired');
      // Single use even against a concurrent enrollment through another store connection or node.
      if (!(await tx.useToken(hash, now.toISOString()))) throw new CaError(403, 'enrollment token has already been used');
      const existing = await tx.device(deviceId);
      // An operator-issued token (re)activates the device, except that quarantine outlives re-enrollment.
      const state: DeviceState = existing?.state === 'quarantined' ? 'quarantined' : 'active';
      await tx.upsertDevice(deviceId, state, now.toISOString());
      if (tpm) await tx.setTpmKey(deviceId, tpm.spki);
      const issued = await this.deviceLeaf(tx, deviceId, csr, draft);
      await this.supersedeOthers(tx, deviceId, issued);
      return issued;
    });
  }

  /**
   * Claim mode: a new device enrolls without credentials and stays unclaimed (score ceiling 0) until claimed.
   * With `maxUnclaimed`, a 503 (Retry-After: when the oldest unclaimed device expires, given `unclaimedTtlMs`)
   * refuses every such enrollment while that many unclaimed devices wait; it is checked before the id is looked
   * at, so the answer says nothing about the id.
   */
  async enrollUnclaimed(csrDer: Buffer, limits: { maxUnclaimed?: number; unclaimedTtlMs?: number } = {}, tx?: InventoryTransaction): Promise<IssuedCertificate> {
    const csr = await checkCsr(csrDer);
    const deviceId = csr.commonName;
    if (!isDeviceId(deviceId)) throw new CaError(400, `CSR subject CN "${csr.commonName.slice(0, 80)}" is not a valid device id`);
    const draft = this.draftDeviceLeaf(deviceId, csr);
    return this.within(tx, async (tx) => {
      const { maxUnclaimed, unclaimedTtlMs } = limits;
      if (maxUnclaimed !== undefined && (await tx.countDevices('unclaimed')) >= maxUnclaimed) {
        const oldest = await tx.oldestCreated('unclaimed');
        const wait = oldest && unclaimedTtlMs ? Date.parse(oldest) + unclaimedTtlMs - this.now().getTime() : 60_000;
        const seconds = Math.max(1, Math.ceil(wait / 1000));
        throw new CaError(503, `too many unclaimed devices are waiting for an operator to claim them (limit ${maxUnclaimed}); try again later`, {
          headers: { 'Retry-After': String(seconds) },
        });
      }
      if (await tx.device(deviceId)) {
        throw new CaError(401, `device "${deviceId}" is already enrolled: authenticate with a token or renew with its certificate`);
      }
      await tx.upsertDevice(deviceId, 'unclaimed', this.now().toISOString());
      return this.deviceLeaf(tx, deviceId, csr, draft);
    });
  }

  /**
   * EST simplereenroll: `currentDer` is the client certificate presented over mTLS (already chain-verified by TLS).
   * It must be ours, active (not revoked, not superseded), unexpired; the CSR must name the same device with a new key.
   */
  async reenroll(currentDer: Buffer, csrDer: Buffer, tpmSignature?: Buffer, tx?: InventoryTransaction): Promise<IssuedCertificate> {
    const current = await this.currentCertificate(currentDer);
    const deviceId = current.deviceId!;
    const csr = await this.requireCsrFor(deviceId, csrDer);
    if (csr.spki.equals(Buffer.from(certificateParts(currentDer).spki))) {
      throw new CaError(400, 'renewal must use a new key: the CSR carries the current certificate\'s key');
    }
    const draft = this.draftDeviceLeaf(deviceId, csr);
    return this.within(tx, async (tx) => {
      // Re-read inside the transaction: a concurrent renewal or revocation may have won the race.
      const row = (await tx.certificate(current.serial))!;
      this.assertRenewable(row);
      const device = await tx.device(deviceId);
      if (!device || device.state === 'revoked') throw new CaError(403, `device "${deviceId}" is revoked`);
      if (device.tpmKey && (!tpmSignature || !tpmSignatureValid(tpmPublicKey(device.tpmKey), csrDer, tpmSignature))) {
        throw new CaError(403, "renewal must be signed by the device's TPM key");
      }
      const issued = await this.deviceLeaf(tx, deviceId, csr, draft);
      await tx.supersede(row.serial, issued.serial);
      return issued;
    });
  }

  /**
   * EST simpleenroll authenticated only by the device's TPM: the CSR (CN = device id) must be signed by the TPM key
   * recorded at token enrollment. This is how a TPM device whose in-memory TLS key was lost gets a new certificate;
   * its previous active certificates are superseded.
   */
  async enrollWithTpm(csrDer: Buffer, signature: Buffer, tx?: InventoryTransaction): Promise<IssuedCertificate> {
    const csr = await checkCsr(csrDer);
    const deviceId = csr.commonName;
    if (!isDeviceId(deviceId)) throw new CaError(400, `CSR subject CN "${csr.commonName.slice(0, 80)}" is not a valid device id`);
    const draft = this.draftDeviceLeaf(deviceId, csr);
    return this.within(tx, async (tx) => {
      const device = await tx.device(deviceId);
      if (!device) throw new CaError(403, `device "${deviceId}" is not enrolled`);
      if (device.state === 'revoked') throw new CaError(403, `device "${deviceId}" is revoked`);
      if (!device.tpmKey) throw new CaError(403, `device "${deviceId}" has no TPM key on record`);
      if (!tpmSignatureValid(tpmPublicKey(device.tpmKey), csrDer, signature)) {
        throw new CaError(403, "CSR is not signed by the device's TPM key");
      }
      const issued = await this.deviceLeaf(tx, deviceId, csr, draft);
      await this.supersedeOthers(tx, deviceId, issued);
      return issued;
    });
  }

  private assertRenewable(row: CertificateRow): void {
    if (row.status === 'revoked') throw new CaError(403, 'client certificate has been revoked');
    if (row.status === 'superseded') throw new CaError(403, 'client certificate has already been renewed; use its successor');
    if (Date.parse(row.notAfter) <= this.now().getTime()) throw new CaError(403, 'client certificate has expired');
  }

  /** The inventory row of a presented client certificate, or a 403 saying why it is not acceptable. */
  async currentCertificate(der: Buffer): Promise<CertificateRow> {
    let serial: string;
    try {
      // The serial straight from the DER: node's X509Certificate parse was the largest single cost of a renewal in
      // the renewal-storm profile (~0.7 ms). Whatever this reads, the row must also match the whole DER's fingerprint.
      serial = normalizeSerial(certificateParts(der).serial.toString('hex'));
    } catch {
      throw new CaError(401, 'client certificate cannot be parsed');
    }
    const row = await this.inventory.certificate(serial);
    if (!row || row.fingerprint !== fingerprintOf(der)) throw new CaError(403, 'client certificate was not issued by this CA');
    if (row.kind !== 'device' || !row.deviceId) throw new CaError(403, 'client certificate is not a device certificate');
    this.assertRenewable(row);
    return row;
  }

  /** A server certificate for our own listeners (EKU serverAuth; SAN localhost, 127.0.0.1, ::1 and `hosts`). */
  async issueServer(hosts: string[] = []): Promise<KeyAndCertificate> {
    const keys = generateP256();
    const ipHosts = hosts.filter((h) => /^[\d.]+$/.test(h) || h.includes(':'));
    const dnsHosts = hosts.filter((h) => !ipHosts.includes(h));
    const dnsNames = [...new Set(['localhost', ...dnsHosts])];
    const ips = [...new Set(['127.0.0.1', '::1', ...ipHosts])];
    const issued = await this.inventory.transaction((tx) =>
      this.issueLeaf(tx, 'server', dnsNames[0]!, spkiDer(keys.publicKey), { dnsNames, ips }, null, this.options.serverLifetimeMs ?? SERVER_LIFETIME_MS),
    );
    return { ...issued, keyPem: privateKeyPem(keys.privateKey) };
  }

  /** A service or operator certificate: CN `{role}:{name}`, SAN URI urn:wott:service:{role}:{name}, clientAuth. */
  async issueService(role: ServiceRole, name: string, tx?: InventoryTransaction): Promise<KeyAndCertificate> {
    const keys = generateP256();
    const cn = serviceCommonName(role, name);
    const issued = await this.within(tx, (tx) =>
      this.issueLeaf(tx, 'service', cn, spkiDer(keys.publicKey), { uris: [serviceUri(role, name)] }, null, this.options.serviceLifetimeMs ?? SERVICE_LIFETIME_MS),
    );
    return { ...issued, keyPem: privateKeyPem(keys.privateKey) };
  }

  // ------------------------------------------------------------------ tokens, claims, inventory

  /** A one-time enrollment token for `deviceId`; only its SHA-256 is stored. */
  async createToken(deviceId: string, ttlMs = DEFAULT_TOKEN_TTL_MS, tx?: InventoryTransaction): Promise<{ token: string; expiresAt: Date }> {
    assertDeviceId(deviceId);
    if (!(ttlMs > 0)) throw new Error('token lifetime must be positive');
    const token = randomBytes(24).toString('base64url');
    const now = this.now();
    const expiresAt = new Date(now.getTime() + ttlMs);
    await this.within(tx, (tx) => tx.insertToken(hashToken(token), deviceId, now.toISOString(), expiresAt.toISOString()));
    return { token, expiresAt };
  }

  /**
   * Unclaimed devices nobody claimed within `ttlMs` of enrolling: every certificate is revoked (reason
   * privilegeWithdrawn, so the CRL lists them and the broker refuses and disconnects them) and the device becomes
   * `revoked`. The id stays in the inventory, so nobody can squat it again without credentials; an operator can
   * still enroll it with a token. Returns the expired ids.
   */
  async expireUnclaimed(ttlMs: number): Promise<string[]> {
    const now = this.now();
    const cutoff = new Date(now.getTime() - ttlMs).toISOString();
    const expired = await this.inventory.transaction(async (tx) => {
      const ids = await tx.devicesCreatedBefore('unclaimed', cutoff);
      for (const id of ids) {
        await tx.upsertDevice(id, 'revoked', now.toISOString());
        for (const cert of await tx.certificates({ deviceId: id })) {
          if (cert.status !== 'revoked') await tx.revoke(cert.serial, 'privilegeWithdrawn', now.toISOString());
        }
      }
      return ids;
    });
    if (expired.length) await this.refreshCrl(true);
    return expired;
  }

  // ------------------------------------------------------------------ revocation and CRLs

  /**
   * Revokes one certificate, or every unexpired certificate of a device (and marks the device revoked), and
   * publishes a new CRL. In the caller's transaction `tx`, the caller refreshes the CRL after its commit.
   */
  async revoke(target: RevocationTarget, reason: RevocationReason = 'unspecified', tx?: InventoryTransaction): Promise<string[]> {
    if (!REVOCATION_REASONS.includes(reason)) throw new Error(`unknown revocation reason "${reason}"; one of: ${REVOCATION_REASONS.join(', ')}`);
    const revoked = await this.within(tx, async (tx) => {
      const now = this.now().toISOString();
      let rows: CertificateRow[];
      if ('deviceId' in target) {
        const device = await tx.device(assertDeviceId(target.deviceId));
        if (!device) throw new CaError(404, `no device "${target.deviceId}" in the inventory`);
        rows = (await tx.certificates({ deviceId: device.id })).filter((c) => c.status !== 'revoked');
        await tx.upsertDevice(device.id, 'revoked', now);
      } else {
        const row = await tx.certificate(normalizeSerial(target.serial));
        if (!row) throw new CaError(404, `no certificate with serial ${target.serial}`);
        if (row.status === 'revoked') throw new CaError(409, `certificate ${row.serial} is already revoked`);
        rows = [row];
      }
      const done: string[] = [];
      for (const r of rows) if (await tx.revoke(r.serial, reason, now)) done.push(r.serial);
      return done;
    });
    if (!tx) await this.refreshCrl(true);
    return revoked;
  }

  /**
   * What OCSP answers for `serial` (hex): revoked with time and reason, good for any other certificate we issued
   * (a superseded one is still valid until it expires, as the CRL says too), unknown for a serial we never issued.
   */
  async certificateStatus(serial: string): Promise<OcspCertStatus> {
    const key = normalizeSerial(serial);
    const row = await this.inventory.certificate(key);
    if (!row) return { status: 'unknown' };
    if (row.status !== 'revoked') return { status: 'good' };
    const revocation = await this.inventory.revocation(key);
    // A revoked row always has its revocation (one transaction writes both); fall back to "now, no reason" anyway.
    return revocation
      ? { status: 'revoked', revokedAt: new Date(revocation.revokedAt), reason: revocation.reason }
      : { status: 'revoked', revokedAt: this.now() };
  }

  private crlPaths() {
    return { der: join(this.dataDir, 'crl.der'), pem: join(this.dataDir, 'crl.pem') };
  }

  /**
   * Regenerates the CRL when forced, when none exists, when it misses a revocation, or when over half of its
   * validity has passed; otherwise adopts the latest one in the inventory. Returns the current CRL (DER). The files
   * crl.der / crl.pem are written only when the CRL this process serves changes (a new CRL number). Safe to run from
   * several processes at once: CRL numbers are allocated in the insert transaction and a lost race simply retries.
   * Concurrent unforced calls share one refresh.
   */
  refreshCrl(force = false): Promise<Buffer> {
    if (!force && this.crlPending) return this.crlPending;
    const pending = this.loadOrGenerateCrl(force).finally(() => {
      if (this.crlPending === pending) this.crlPending = undefined;
    });
    if (!force) this.crlPending = pending;
    return pending;
  }

  private async loadOrGenerateCrl(force: boolean): Promise<Buffer> {
    const validity = this.options.crlValidityMs ?? DAY;
    for (let attempt = 0; attempt < 5; attempt++) {
      // Read the feed position first: a change after this point makes the next currentCrl() look again.
      const seq = await this.inventory.feed.head();
      const latest = await this.inventory.latestCrl();
      const revocations = await this.inventory.revocationCount();
      const now = this.now();
      if (latest && !force) {
        const entries = this.crl?.number === latest.number ? this.crl.entries : new x509.X509Crl(new Uint8Array(latest.der)).entries.length;
        const refreshAt = Date.parse(latest.nextUpdate) - validity / 2;
        if (now.getTime() < refreshAt && entries === revocations) return this.adoptCrl(latest.der, latest.number, entries, refreshAt, seq);
      }
      const number = (latest?.number ?? 0) + 1;
      const rows = await this.inventory.revocations();
      const nextUpdate = new Date(now.getTime() + validity);
      const crl = await x509.X509CrlGenerator.create({
        issuer: this.material.intermediateX509.subjectName,
        thisUpdate: now,
        nextUpdate,
        entries: rows.map((r) => ({
          serialNumber: r.serial,
          revocationDate: new Date(r.revokedAt),
          reason: REASON_CODE[r.reason as RevocationReason] ?? x509.X509CrlReason.unspecified,
        })),
        extensions: [
          new x509.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(number))),
          await x509.AuthorityKeyIdentifierExtension.create(this.material.intermediateX509),
        ],
        signingKey: await toCryptoKey(this.key),
        signingAlgorithm: SIGNING_ALGORITHM,
      });
      const der = Buffer.from(crl.rawData);
      const inserted = await this.inventory.transaction(async (tx) => {
        if (((await tx.latestCrl())?.number ?? 0) !== number - 1) return false;
        await tx.insertCrl({ number, thisUpdate: now.toISOString(), nextUpdate: nextUpdate.toISOString(), der });
        return true;
      });
      if (inserted) return this.adoptCrl(der, number, rows.length, nextUpdate.getTime() - validity / 2, seq);
      force = false; // someone else just made one; take theirs if it is complete
    }
    throw new Error('could not publish a CRL: too much contention');
  }

  /** Serves `der` from now on; writes the files when it is a different CRL from the one served so far. */
  private adoptCrl(der: Buffer, number: number, entries: number, refreshAt: number, seq: number): Buffer {
    if (this.crl && this.crl.number > number) return der; // a newer one was adopted meanwhile
    if (this.crl?.number !== number) this.writeCrlFiles(der);
    this.crl = { der, number, entries, refreshAt, seq };
    return der;
  }

  private writeCrlFiles(der: Buffer): void {
    const paths = this.crlPaths();
    writeFileAtomic(paths.der, der);
    writeFileAtomic(paths.pem, toPem(der, 'X509 CRL'));
  }

  /**
   * The current CRL, from memory while no revocation or CRL reached the inventory's change feed since it was read
   * (a CLI `wott ca revoke` in another process, say) and it is not half-way to its nextUpdate; otherwise from
   * refreshCrl. Enrollments move the feed too, but only revocation and CRL entries make it look again.
   */
  async currentCrl(): Promise<Buffer> {
    const cached = this.crl;
    if (cached && this.now().getTime() < cached.refreshAt) {
      const changes = await this.inventory.feed.after(cached.seq, 10_000);
      if (changes !== 'reload' && changes.length < 10_000 && !changes.some((c) => c.kind === 'revocation' || c.kind === 'crl')) {
        if (changes.length > 0 && this.crl === cached) cached.seq = changes[changes.length - 1]!.seq;
        return cached.der;
      }
    }
    return this.refreshCrl(false);
  }

  /**
   * An operator certificate for a person or tool using the HTTPS API: CN `operator:{role}:{name}`, SAN URI
   * urn:wott:operator:{role}:{name}, clientAuth, the service lifetime. Recorded as kind `service` (the inventory's
   * kinds are device, server, service); the CN and URI tell it apart. (Added for issue 13; ca/operator-credentials.ts
   * writes the files.)
   */
  async issueOperator(role: OperatorRole, name: string, tx?: InventoryTransaction): Promise<KeyAndCertificate> {
    const keys = generateP256();
    const cn = operatorCommonName(role, name);
    const issued = await this.within(tx, (tx) =>
      this.issueLeaf(tx, 'service', cn, spkiDer(keys.publicKey), { uris: [operatorUri(role, name)] }, null, this.options.serviceLifetimeMs ?? SERVICE_LIFETIME_MS),
    );
    return { ...issued, keyPem: privateKeyPem(keys.privateKey) };
  }
}
