/**
 * Parsing and checking of PKCS#10 requests from the outside world. Every rejection names what is wrong.
 * The CA uses nothing from a CSR but its public key, and only after every check here has passed.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { readTlv } from './der.js';
import { CaError } from './errors.js';

export const MAX_CSR_BYTES = 8 * 1024;
const COMMON_NAME = '2.5.4.3';
const EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const SIGNATURE_HASH: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

export interface CheckedCsr {
  commonName: string;
  /** DER SubjectPublicKeyInfo of a verified P-256 key. */
  spki: Buffer;
  publicKey: KeyObject;
}

/**
 * Decodes an EST body: base64 with or without line breaks (RFC 7030 §4.2 uses Content-Transfer-Encoding: base64).
 * Strict: anything but the base64 alphabet, padding and whitespace is refused rather than silently skipped.
 */
export function decodeBase64Body(body: Buffer | string): Buffer {
  const text = (typeof body === 'string' ? body : body.toString('latin1')).replace(/[\r\n\t ]/g, '');
  if (!text) throw new CaError(400, 'empty request body: expected a base64-encoded PKCS#10 request');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 === 1) {
    throw new CaError(400, 'request body is not valid base64');
  }
  return Buffer.from(text, 'base64');
}

function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') return `RSA-${details?.modulusLength ?? '?'}`;
  if (key.asymmetricKeyType === 'ec') return `EC ${details?.namedCurve ?? 'unknown curve'}`;
  return key.asymmetricKeyType ?? 'unknown key type';
}

/** Parses a DER PKCS#10 request and checks signature, key type and size. Does not check the subject. */
export function parseCsr(der: Buffer): CheckedCsr {
  if (der.length > MAX_CSR_BYTES) throw new CaError(413, `CSR too large: ${der.length} bytes (limit ${MAX_CSR_BYTES})`);
  let csr: CertificationRequest;
  try {
    const outer = readTlv(der);
    if (outer.tag !== 0x30 || outer.end !== der.length) throw new Error('not a single DER SEQUENCE');
    csr = AsnConvert.parse(der, CertificationRequest);
  } catch {
    throw new CaError(400, 'body is not a DER-encoded PKCS#10 certification request');
  }
  const info = csr.certificationRequestInfo;
  const infoRaw = csr.certificationRequestInfoRaw;
  if (!infoRaw) throw new CaError(400, 'body is not a DER-encoded PKCS#10 certification request');

  let spki: Buffer;
  let publicKey: KeyObject;
  try {
    // Re-encoding throws on what parsing let through (e.g. an algorithm OID that is not one).
    spki = Buffer.from(AsnConvert.serialize(info.subjectPKInfo));
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CaError(400, 'CSR public key cannot be decoded');
  }
  if (info.subjectPKInfo.algorithm.algorithm !== EC_PUBLIC_KEY || publicKey.asymmetricKeyType !== 'ec') {
    throw new CaError(400, `CSR key is ${describeKey(publicKey)}: only ECDSA P-256 keys are accepted`);
  }
  if (publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new CaError(400, `CSR key is ${describeKey(publicKey)}: only ECDSA P-256 (prime256v1) keys are accepted`);
  }

  const hash = SIGNATURE_HASH[csr.signatureAlgorithm.algorithm];
  if (!hash) {
    throw new CaError(400, `CSR signature algorithm ${csr.signatureAlgorithm.algorithm} is not ECDSA with SHA-2`);
  }
  let valid = false;
  try {
    valid = verify(hash, Buffer.from(infoRaw), { key: publicKey, dsaEncoding: 'der' }, Buffer.from(csr.signature));
  } catch {
    valid = false;
  }
  if (!valid) throw new CaError(400, 'CSR signature does not verify with its own public key');

  const commonNames: string[] = [];
  for (const rdn of info.subject) {
    for (const attribute of rdn) {
      if (attribute.type === COMMON_NAME) commonNames.push(attribute.value.toString());
    }
  }
  if (commonNames.length !== 1) {
    throw new CaError(400, `CSR subject must carry exactly one CN (found ${commonNames.length})`);
  }
  return { commonName: commonNames[0]!, spki: Buffer.from(spki), publicKey };
}
