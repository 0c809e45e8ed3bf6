/**
 * Parsing and checking of PKCS#10 requests from the outside world. Every rejection names what is wrong.
 * The CA uses nothing from a CSR but its public key, and only after every check here has passed.
 *
 * Why a small DER walk instead of @peculiar/asn1-csr: the generic ASN.1 parse + re-serialise cost ~0.3 ms per
 * request, a quarter of a whole enrollment (issue 20 profile). A CSR has six fields we read; the walk below is
 * strict (one definite-length TLV tree, no trailing bytes anywhere, fixed shapes), and the signature, key and curve
 * checks stay with OpenSSL through node:crypto.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { children, oid, readTlv, type Tlv } from './der.js';
import { CaError } from './errors.js';

export const MAX_CSR_BYTES = 8 * 1024;
const hex = (b: Buffer) => b.toString('hex');
const COMMON_NAME = hex(oid('2.5.4.3'));
const EC_PUBLIC_KEY = hex(oid('1.2.840.10045.2.1'));
const PRIME256V1 = hex(oid('1.2.840.10045.3.1.7'));
const SIGNATURE_HASH = new Map<string, string>([
  [hex(oid('1.2.840.10045.4.3.2')), 'sha256'],
  [hex(oid('1.2.840.10045.4.3.3')), 'sha384'],
  [hex(oid('1.2.840.10045.4.3.4')), 'sha512'],
]);
/** The DER SubjectPublicKeyInfo of a P-256 key up to its 65-byte uncompressed point. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const NULL = '0500';

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

/** Dotted form of an OID TLV, for messages only (bounded: at most 16 arcs shown). */
function dotted(der: Buffer, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.contentStart) return '(not an OID)';
  const arcs: number[] = [];
  let n = 0;
  for (let i = t.contentStart; i < t.end && arcs.length < 16; i++) {
    n = n * 128 + (der[i]! & 0x7f);
    if (!(der[i]! & 0x80)) {
      if (arcs.length === 0) arcs.push(n < 80 ? Math.floor(n / 40) : 2, n < 80 ? n % 40 : n - 80);
      else arcs.push(n);
      n = 0;
    }
  }
  return arcs.join('.');
}

const STRUCTURE = 'body is not a DER-encoded PKCS#10 certification request';
function shape(ok: boolean): void {
  if (!ok) throw new Error(STRUCTURE);
}
const content = (der: Buffer, t: Tlv) => der.subarray(t.contentStart, t.end);

/** X.690 §8.19: non-empty, every subidentifier minimal (no leading 0x80) and the last one complete. */
function wellFormedOid(der: Buffer, t: Tlv): boolean {
  if (t.tag !== 0x06 || t.end === t.contentStart || der[t.end - 1]! & 0x80) return false;
  for (let i = t.contentStart; i < t.end; i++) {
    if (der[i] === 0x80 && (i === t.contentStart || !(der[i - 1]! & 0x80))) return false;
  }
  return true;
}
/** Attribute values in a subject: the string types X.520 names use; anything else is refused outright. */
const STRING_TAGS = new Set([0x0c, 0x12, 0x13, 0x14, 0x16, 0x1a, 0x1c, 0x1e]);

/** The structure of a CSR: exactly the PKCS#10 shape (RFC 2986), every length definite and inside its parent. */
function walk(der: Buffer) {
  const outer = readTlv(der);
  shape(outer.tag === 0x30 && outer.end === der.length);
  const top = children(der, outer);
  shape(top.length === 3);
  const [info, signatureAlgorithm, signature] = top as [Tlv, Tlv, Tlv];
  shape(info.tag === 0x30 && signatureAlgorithm.tag === 0x30 && signature.tag === 0x03);
  const fields = children(der, info);
  shape(fields.length === 3 || fields.length === 4);
  const [version, subject, spki, attributes] = fields as [Tlv, Tlv, Tlv, Tlv | undefined];
  // version v1(0) is the only one PKCS#10 defines.
  shape(version.tag === 0x02 && version.end - version.contentStart === 1 && der[version.contentStart] === 0);
  shape(subject.tag === 0x30 && spki.tag === 0x30 && (!attributes || attributes.tag === 0xa0));
  if (attributes) for (const a of children(der, attributes)) shape(a.tag === 0x30);
  // Name: SEQUENCE OF SET OF SEQUENCE { type OID, value }.
  const names: Array<{ type: Tlv; value: Tlv }> = [];
  for (const rdn of children(der, subject)) {
    shape(rdn.tag === 0x31);
    const atvs = children(der, rdn);
    shape(atvs.length > 0);
    for (const atv of atvs) {
      shape(atv.tag === 0x30);
      const parts = children(der, atv);
      shape(parts.length === 2 && wellFormedOid(der, parts[0]!) && STRING_TAGS.has(parts[1]!.tag));
      names.push({ type: parts[0]!, value: parts[1]! });
    }
  }
  // SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }.
  const keyParts = children(der, spki);
  shape(keyParts.length === 2 && keyParts[0]!.tag === 0x30 && keyParts[1]!.tag === 0x03);
  const keyAlg = children(der, keyParts[0]!);
  shape((keyAlg.length === 1 || keyAlg.length === 2) && keyAlg[0]!.tag === 0x06);
  // AlgorithmIdentifier of the signature: ECDSA with SHA-2 takes no parameters (RFC 5758 §3.2); NULL is tolerated.
  const sigAlg = children(der, signatureAlgorithm);
  shape(sigAlg[0]?.tag === 0x06 && (sigAlg.length === 1 || (sigAlg.length === 2 && hex(der.subarray(sigAlg[1]!.start, sigAlg[1]!.end)) === NULL)));
  const sigBits = content(der, signature);
  shape(sigBits.length > 1 && sigBits[0] === 0);
  return { info, names, spki, keyAlg, point: content(der, keyParts[1]!), sigAlg: sigAlg[0]!, signature: sigBits.subarray(1) };
}

/** A P-256 public key from its SPKI fields: the common uncompressed point through JWK import (OpenSSL checks the point
 * is on the curve), which skips OpenSSL 3's generic decoder (~2x the cost); anything else through that decoder. */
function publicKeyOf(der: Buffer, parts: ReturnType<typeof walk>): { spki: Buffer; publicKey: KeyObject } {
  const { keyAlg, point } = parts;
  const algorithm = hex(der.subarray(keyAlg[0]!.start, keyAlg[0]!.end));
  const p256 = algorithm === EC_PUBLIC_KEY && keyAlg[1] !== undefined && hex(der.subarray(keyAlg[1].start, keyAlg[1].end)) === PRIME256V1;
  if (p256 && point.length === 66 && point[0] === 0 && point[1] === 0x04) {
    const x = point.subarray(2, 34).toString('base64url');
    const y = point.subarray(34).toString('base64url');
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
    } catch {
      throw new CaError(400, 'CSR public key cannot be decoded');
    }
    return { spki: Buffer.concat([P256_SPKI_PREFIX, point.subarray(1)]), publicKey };
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: der.subarray(parts.spki.start, parts.spki.end), format: 'der', type: 'spki' });
  } catch {
    throw new CaError(400, 'CSR public key cannot be decoded');
  }
  if (algorithm !== EC_PUBLIC_KEY || publicKey.asymmetricKeyType !== 'ec') {
    throw new CaError(400, `CSR key is ${describeKey(publicKey)}: only ECDSA P-256 keys are accepted`);
  }
  if (publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new CaError(400, `CSR key is ${describeKey(publicKey)}: only ECDSA P-256 (prime256v1) keys are accepted`);
  }
  // OpenSSL's own encoding: canonical whatever form (e.g. a compressed point) the request used.
  return { spki: publicKey.export({ format: 'der', type: 'spki' }), publicKey };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const UTF16BE = new TextDecoder('utf-16be', { fatal: true });
/** A DirectoryString CN (RFC 5280 §4.1.2.4; IA5String as some clients send it). Anything else is refused. */
function directoryString(der: Buffer, t: Tlv): string {
  const bytes = content(der, t);
  try {
    switch (t.tag) {
      case 0x0c: // UTF8String
        return UTF8.decode(bytes);
      case 0x13: // PrintableString
      case 0x16: // IA5String
        if (bytes.some((b) => b > 0x7f)) break;
        return bytes.toString('latin1');
      case 0x14: // TeletexString, read as Latin-1 as OpenSSL does
        return bytes.toString('latin1');
      case 0x1e: // BMPString
        if (bytes.length % 2) break;
        return UTF16BE.decode(bytes);
    }
  } catch {
    // invalid encoding: refused below
  }
  throw new CaError(400, 'CSR subject CN is not a valid directory string');
}

/** Everything parseCsr checks before the signature: size, structure, key, signature algorithm. */
function prepare(der: Buffer) {
  if (der.length > MAX_CSR_BYTES) throw new CaError(413, `CSR too large: ${der.length} bytes (limit ${MAX_CSR_BYTES})`);
  let parts: ReturnType<typeof walk>;
  try {
    parts = walk(der);
  } catch {
    throw new CaError(400, STRUCTURE);
  }
  const { spki, publicKey } = publicKeyOf(der, parts);
  const hash = SIGNATURE_HASH.get(hex(der.subarray(parts.sigAlg.start, parts.sigAlg.end)));
  if (!hash) {
    throw new CaError(400, `CSR signature algorithm ${dotted(der, parts.sigAlg)} is not ECDSA with SHA-2`);
  }
  return { parts, spki, publicKey, hash, signed: der.subarray(parts.info.start, parts.info.end) };
}

/** What parseCsr checks once the signature is known to verify: the subject. */
function finish(der: Buffer, p: ReturnType<typeof prepare>, valid: boolean): CheckedCsr {
  if (!valid) throw new CaError(400, 'CSR signature does not verify with its own public key');
  const commonNames = p.parts.names.filter((n) => hex(der.subarray(n.type.start, n.type.end)) === COMMON_NAME);
  if (commonNames.length !== 1) {
    throw new CaError(400, `CSR subject must carry exactly one CN (found ${commonNames.length})`);
  }
  return { commonName: directoryString(der, commonNames[0]!.value), spki: p.spki, publicKey: p.publicKey };
}

/** Parses a DER PKCS#10 request and checks signature, key type and size. Does not check the subject. */
export function parseCsr(der: Buffer): CheckedCsr {
  const p = prepare(der);
  let valid = false;
  try {
    valid = verify(p.hash, p.signed, { key: p.publicKey, dsaEncoding: 'der' }, p.parts.signature);
  } catch {
    valid = false;
  }
  return finish(der, p, valid);
}

/**
 * parseCsr with the signature check on libuv's threadpool (node:crypto's one-shot verify with a callback), so
 * the event loop goes on with other requests meanwhile: the same checks in the same order, the same answers.
 * The signature check was the largest share of an enrollment's main-thread CPU (issue 20 profile).
 */
export async function checkCsr(der: Buffer): Promise<CheckedCsr> {
  const p = prepare(der);
  const valid = await new Promise<boolean>((resolve) => {
    try {
      verify(p.hash, p.signed, { key: p.publicKey, dsaEncoding: 'der' }, p.parts.signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
  return finish(der, p, valid);
}
