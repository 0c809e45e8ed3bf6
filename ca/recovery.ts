/**
 * The inventory is where revocations live: losing it (or restoring an older copy) must never silently bring
 * revoked certificates back. `checkInventory` refuses to open a CA whose inventory is missing or older than the CRL
 * it last published; `recoverInventory` (`wott ca recover-inventory`) rebuilds what can be rebuilt: the revoked
 * serials, from a CRL this CA signed.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLNumber, id_ce_cRLNumber } from '@peculiar/asn1-x509';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeSerial } from '../protocol/index.js';
import { renameDirAtomic } from '../lib/atomic-file.js';
import { openSqliteInventory, type InventoryStore } from '../store/index.js';
import { caExists, caPaths } from './setup.js';

export class InventoryStateError extends Error {
  override name = 'InventoryStateError';
}

export const inventoryPath = (dataDir: string) => join(dataDir, 'inventory.db');
const crlDerPath = (dataDir: string) => join(dataDir, 'crl.der');
const HELP = 'see "Lost or restored inventory" in docs/operations.md';

const REASON_NAMES: Record<number, string> = {
  [x509.X509CrlReason.unspecified]: 'unspecified',
  [x509.X509CrlReason.keyCompromise]: 'keyCompromise',
  [x509.X509CrlReason.affiliationChanged]: 'affiliationChanged',
  [x509.X509CrlReason.superseded]: 'superseded',
  [x509.X509CrlReason.cessationOfOperation]: 'cessationOfOperation',
  [x509.X509CrlReason.certificateHold]: 'certificateHold',
  [x509.X509CrlReason.privilegeWithdrawn]: 'privilegeWithdrawn',
};

export interface SignedCrl {
  path: string;
  number: number;
  thisUpdate: Date;
  der: Buffer;
  entries: Array<{ serial: string; revokedAt: string; reason: string }>;
}

/** Reads a CRL (DER or PEM) and checks that this CA's issuing certificate signed it. */
export async function readSignedCrl(path: string, intermediatePem: string): Promise<SignedCrl> {
  const raw = readFileSync(path);
  const text = raw.toString('latin1');
  const der = text.includes('-----BEGIN')
    ? Buffer.from(text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
    : raw;
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(new Uint8Array(der));
  } catch {
    throw new InventoryStateError(`${path} is not a CRL`);
  }
  const issuer = new x509.X509Certificate(intermediatePem);
  if (!(await crl.verify({ publicKey: issuer }))) throw new InventoryStateError(`${path} is not a CRL signed by this CA's issuing certificate`);
  const ext = crl.getExtension(id_ce_cRLNumber);
  const number = ext ? AsnConvert.parse(ext.value, CRLNumber).value : 0;
  return {
    path,
    number,
    thisUpdate: crl.thisUpdate,
    der,
    entries: crl.entries.map((e) => ({
      serial: normalizeSerial(e.serialNumber),
      revokedAt: e.revocationDate.toISOString(),
      reason: REASON_NAMES[e.reason ?? x509.X509CrlReason.unspecified] ?? 'unspecified',
    })),
  };
}

/**
 * Before the CA opens its inventory: refuses when the CA exists without its inventory (a new empty one would drop
 * every revocation), or a used inventory exists without the CA. Before a new CA is made, its (empty) inventory is
 * made first, so a crash between the two leaves a state the next start accepts.
 */
export async function checkInventoryPresent(dataDir: string): Promise<void> {
  const db = inventoryPath(dataDir);
  const hasCa = caExists(dataDir);
  const hasDb = existsSync(db);
  if (hasCa && !hasDb) {
    const wal = existsSync(`${db}-wal`) ? ` (${db}-wal is still there: it belongs to the lost database and is not enough on its own)` : '';
    throw new InventoryStateError(
      `the CA in ${caPaths(dataDir).dir} exists but its inventory ${db} is missing${wal}. Starting with a new, empty ` +
        'inventory would forget every revocation and let revoked certificates connect again, so wott will not start. ' +
        `Restore inventory.db (with its inventory.db-wal, if the backup has one) from a backup, or run ` +
        `\`wott ca recover-inventory --data ${dataDir}\` to rebuild the revocations from ${crlDerPath(dataDir)}; ${HELP}`,
    );
  }
  if (hasCa) return;
  const inventory = openSqliteInventory(db); // creates it when missing
  try {
    if (hasDb && !(await inventory.isEmpty())) {
      throw new InventoryStateError(
        `${db} is in use (devices, certificates or tokens) but the CA it belongs to (${caPaths(dataDir).dir}) is missing: restore ca/ from a ` +
          `backup (a new CA would not match the certificates in the inventory); ${HELP}`,
      );
    }
  } finally {
    await inventory.close();
  }
}

/** Refuses an inventory older than the CRL last published from it (restored from a backup): it misses revocations. */
export async function checkInventoryCurrent(dataDir: string, inventory: InventoryStore, intermediatePem: string): Promise<void> {
  const path = crlDerPath(dataDir);
  if (!existsSync(path)) return;
  let published: SignedCrl;
  try {
    published = await readSignedCrl(path, intermediatePem);
  } catch {
    return; // not ours or damaged: it says nothing about our revocations (and is rewritten from the inventory)
  }
  const latest = (await inventory.latestCrl())?.number ?? 0;
  if (published.number <= latest) return;
  const revoked = new Set((await inventory.revocations()).map((r) => r.serial));
  const missing = published.entries.filter((e) => !revoked.has(e.serial)).length;
  throw new InventoryStateError(
    `${inventoryPath(dataDir)} is older than the CRL it published (${path} is CRL number ${published.number}, the inventory's ` +
      `latest is ${latest}; ${missing} revocation(s) in the CRL are not in the inventory): it looks restored from a backup. ` +
      `Run \`wott ca recover-inventory --data ${dataDir}\` to re-apply the CRL's revocations; ${HELP}`,
  );
}

export interface RecoveryResult {
  created: boolean;
  crl?: { path: string; number: number; thisUpdate: Date };
  /** Serials newly marked revoked in the inventory. */
  revoked: string[];
  /** Leftover -wal / -shm files of a lost database, moved aside. */
  movedAside: string[];
}

/** Adds the CRL's revocations the inventory lacks, and the CRL itself so numbering continues. One transaction. */
function applyCrl(inventory: InventoryStore, crl: SignedCrl): Promise<string[]> {
  return inventory.transaction(async (tx) => {
    const added: string[] = [];
    for (const e of crl.entries) {
      const row = await tx.certificate(e.serial);
      if (row?.status === 'revoked') continue;
      if (!row) {
        // Only the serial is known: a placeholder row carries the revocation (never expires, never matches a certificate).
        await tx.insertCertificate({
          serial: e.serial,
          deviceId: null,
          kind: 'device',
          commonName: `(recovered from CRL ${crl.number})`,
          notBefore: e.revokedAt,
          notAfter: '9999-12-31T23:59:59.000Z',
          fingerprint: `recovered-from-crl:${e.serial}`,
          issuedAt: e.revokedAt,
          der: Buffer.alloc(0),
        });
      }
      if (await tx.revoke(e.serial, e.reason, e.revokedAt)) added.push(e.serial);
    }
    if (((await tx.latestCrl())?.number ?? 0) < crl.number) {
      await tx.insertCrl({ number: crl.number, thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.thisUpdate.toISOString(), der: crl.der });
    }
    return added;
  });
}

/**
 * `wott ca recover-inventory`. With the inventory missing: builds a new one holding the CRL's revocations (or none,
 * with `empty`), in a temporary file renamed into place, so a crash leaves no half-made inventory. With an
 * inventory present (restored from a backup): adds the CRL's revocations it lacks. The CRL must be signed by this CA.
 */
export async function recoverInventory(dataDir: string, options: { crlPath?: string; empty?: boolean } = {}): Promise<RecoveryResult> {
  if (!caExists(dataDir)) throw new InventoryStateError(`no CA in ${caPaths(dataDir).dir}: nothing to recover an inventory for`);
  const intermediatePem = readFileSync(caPaths(dataDir).intermediateCert, 'utf8');
  const db = inventoryPath(dataDir);
  const exists = existsSync(db);
  let crl: SignedCrl | undefined;
  if (!options.empty) {
    const path = options.crlPath ?? crlDerPath(dataDir);
    if (!existsSync(path)) {
      throw new InventoryStateError(
        `no CRL at ${path}: give --crl FILE (a copy of crl.der or crl.pem, the Mosquitto folder's crl.pem, or the gateway's ` +
          '/crl saved by a relying party), or --empty to knowingly start with no revocations',
      );
    }
    crl = await readSignedCrl(path, intermediatePem);
  } else if (exists) {
    throw new InventoryStateError(`${db} exists: --empty only applies when the inventory is lost`);
  }

  if (exists) {
    const inventory = openSqliteInventory(db);
    try {
      return { created: false, crl: crl && { path: crl.path, number: crl.number, thisUpdate: crl.thisUpdate }, revoked: await applyCrl(inventory, crl!), movedAside: [] };
    } finally {
      await inventory.close();
    }
  }

  // A -wal left from the lost database would be replayed into the new one: move it (and the -shm) aside.
  const movedAside: string[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(db + suffix)) {
      renameSync(db + suffix, `${db}${suffix}.orphaned-${stamp}`);
      movedAside.push(`${db}${suffix}.orphaned-${stamp}`);
    }
  }
  const tmp = `${db}.recovering`;
  for (const p of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(p, { force: true });
  const inventory = openSqliteInventory(tmp);
  let revoked: string[] = [];
  try {
    if (crl) revoked = await applyCrl(inventory, crl);
  } finally {
    await inventory.close();
  }
  // Closing the last connection checkpoints the WAL into the file and removes it: one self-contained file to rename.
  if (existsSync(`${tmp}-wal`)) throw new InventoryStateError(`${tmp}-wal is still there after closing ${tmp}; nothing was changed`);
  renameDirAtomic(tmp, db); // rename + fsync of the folder
  return { created: true, crl: crl && { path: crl.path, number: crl.number, thisUpdate: crl.thisUpdate }, revoked, movedAside };
}
