/**
 * The certificate profile: what goes into every certificate this CA signs. Pure functions over bytes; decided by
 * the CA, never copied from a CSR (only the CSR's public key is used, after it has been checked).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import * as der from './der.js';

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  crlDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  ocsp: '1.3.6.1.5.5.7.48.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

export type CertificateKind = 'device' | 'server' | 'service';

/** What the issuing CA contributes to every certificate it signs. */
export interface IssuerTemplate {
  /** DER of the issuing certificate's subject Name, copied byte-for-byte so chains build. */
  issuerName: Buffer;
  /** The issuing certificate's subject key identifier. */
  issuerKeyId: Buffer;
  /** CRL distribution point URL written into every leaf (omitted when empty). */
  crlUrl?: string;
  /** OCSP responder URL written into every leaf's authorityInfoAccess (omitted when empty). */
  ocspUrl?: string;
}

export interface LeafRequest {
  kind: CertificateKind;
  serial: Buffer;
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  /** DER SubjectPublicKeyInfo of the (already validated) subject key. */
  spki: Buffer;
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
}

const ALGORITHM = der.sequence(der.oid(OID.ecdsaWithSha256));
const VERSION_3 = der.explicit(0, der.smallInteger(2));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? der.sequence(der.oid(id), der.boolean(true), der.octetString(value))
    : der.sequence(der.oid(id), der.octetString(value));
}

export function name(commonName: string): Buffer {
  return der.sequence(der.set(der.sequence(der.oid(OID.commonName), der.utf8String(commonName))));
}

/** The subjectPublicKey BIT STRING's value (without the unused-bits byte): what key identifiers and OCSP hash. */
export function publicKeyBits(spki: Buffer): Buffer {
  const outer = der.readTlv(spki);
  const [, bits] = der.children(spki, outer);
  if (!bits || bits.tag !== 0x03) throw new Error('malformed SubjectPublicKeyInfo');
  return spki.subarray(bits.contentStart + 1, bits.end);
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING's value. */
export function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(publicKeyBits(spki)).digest();
}

function ipBytes(ip: string): Buffer {
  const family = isIP(ip);
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  if (family === 6) {
    const [head = '', tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = ip.includes('::') && tail ? tail.split(':') : [];
    const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    return Buffer.from(groups.flatMap((g: string) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
  }
  throw new Error(`not an IP address: ${ip}`);
}

/** Extensions that depend only on the issuer and the certificate kind, built once per issuer. */
export class LeafProfile {
  private readonly fixed: Record<CertificateKind, Buffer>;
  private readonly issuerName: Buffer;

  constructor(issuer: IssuerTemplate) {
    this.issuerName = issuer.issuerName;
    const common = [
      extension(OID.basicConstraints, true, der.sequence()),
      extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, issuer.issuerKeyId))),
      ...(issuer.crlUrl
        ? [
            extension(
              OID.crlDistributionPoints,
              false,
              der.sequence(der.sequence(der.explicit(0, der.explicit(0, der.implicitPrimitive(6, Buffer.from(issuer.crlUrl)))))),
            ),
          ]
        : []),
      // AIA with one OCSP access description: lets any TLS stack find the responder from the certificate alone.
      ...(issuer.ocspUrl
        ? [
            extension(
              OID.authorityInfoAccess,
              false,
              der.sequence(der.sequence(der.oid(OID.ocsp), der.implicitPrimitive(6, Buffer.from(issuer.ocspUrl)))),
            ),
          ]
        : []),
    ];
    // keyUsage digitalSignature = bit 0: BIT STRING with 7 unused bits, value 0x80.
    const digitalSignature = extension(OID.keyUsage, true, der.tlv(0x03, Buffer.from([0x07, 0x80])));
    const eku = (purpose: string) => extension(OID.extKeyUsage, false, der.sequence(der.oid(purpose)));
    this.fixed = {
      device: Buffer.concat([...common, digitalSignature, eku(OID.clientAuth)]),
      service: Buffer.concat([...common, digitalSignature, eku(OID.clientAuth)]),
      server: Buffer.concat([...common, digitalSignature, eku(OID.serverAuth)]),
    };
  }

  /** The DER TBSCertificate for one leaf. */
  tbs(req: LeafRequest): Buffer {
    const names: Buffer[] = [
      ...(req.uris ?? []).map((u) => der.implicitPrimitive(6, Buffer.from(u))),
      ...(req.dnsNames ?? []).map((d) => der.implicitPrimitive(2, Buffer.from(d))),
      ...(req.ips ?? []).map((ip) => der.implicitPrimitive(7, ipBytes(ip))),
    ];
    const extensions = der.explicit(
      3,
      der.sequence(
        this.fixed[req.kind],
        extension(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(req.spki))),
        ...(names.length ? [extension(OID.subjectAltName, false, der.sequence(...names))] : []),
      ),
    );
    return der.sequence(
      VERSION_3,
      der.unsignedInteger(req.serial),
      ALGORITHM,
      this.issuerName,
      der.sequence(der.time(req.notBefore), der.time(req.notAfter)),
      name(req.commonName),
      req.spki,
      extensions,
    );
  }
}

/** Wraps a TBSCertificate and its ECDSA (DER) signature into a Certificate. */
export function assembleCertificate(tbs: Buffer, signature: Buffer): Buffer {
  return der.sequence(tbs, ALGORITHM, der.bitString(signature));
}

/** Offsets of the TBS fields in a v3 certificate, for reading back what we issued. */
export function certificateParts(cert: Buffer): { tbs: Buffer; subjectName: Buffer; spki: Buffer; serial: Buffer } {
  const outer = der.readTlv(cert);
  const [tbsTlv] = der.children(cert, outer);
  if (!tbsTlv) throw new Error('malformed certificate');
  const fields = der.children(cert, tbsTlv);
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = fields[offset];
  const subject = fields[offset + 4];
  const spki = fields[offset + 5];
  if (!serial || !subject || !spki) throw new Error('malformed certificate');
  return {
    tbs: cert.subarray(tbsTlv.start, tbsTlv.end),
    serial: cert.subarray(serial.contentStart, serial.end),
    subjectName: cert.subarray(subject.start, subject.end),
    spki: cert.subarray(spki.start, spki.end),
  };
}
