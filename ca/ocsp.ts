/**
 * OCSP (RFC 6960) answers for the certificates the issuing CA signs: OCSPRequest DER in, OCSPResponse DER out.
 * No HTTP here (ca/ocsp-http.ts carries it) and no storage: the status of a serial comes from an injected async
 * lookup, so the same responder works over the SQLite inventory now and an async store later.
 *
 * The issuing CA signs the answers itself (RFC 6960 4.2.2.2, "the CA who issued the certificate"): no delegated
 * responder certificate to issue, renew or revoke, and a relying party verifies with the issuer it already has.
 *
 * Parsing of outside bytes goes through @peculiar/asn1-ocsp, after a size bound and a check that the bytes are
 * exactly one DER SEQUENCE; anything it cannot read is answered malformedRequest, never an exception.
 */
import { createHash, sign, type KeyObject, type X509Certificate } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, CRLReason, CRLReasons, Extension } from '@peculiar/asn1-x509';
import {
  CertStatus,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  KeyHash,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  type CertID,
} from '@peculiar/asn1-ocsp';
import * as der from './der.js';
import { certificateParts, publicKeyBits } from './profile.js';

/** openssl's request for one certificate is ~80 bytes, with a nonce ~120; 8 KiB leaves room for signed requests. */
export const MAX_OCSP_REQUEST_BYTES = 8 * 1024;
/** CertIDs answered in one request: each costs a lookup, and real clients ask about one certificate (the chain's leaf). */
export const MAX_OCSP_CERT_IDS = 10;
/**
 * How long an answer may be relied on (nextUpdate - thisUpdate). Answers are made live from the inventory, so this
 * only bounds how long a cached or stapled "good" outlives a revocation: an hour is a small share of a 7-day device
 * certificate, and a caching relying party asks ~24 times a day per certificate rather than per handshake.
 */
export const DEFAULT_OCSP_VALIDITY_MS = 3_600_000;
/** RFC 8954: a nonce is 1..32 octets; its extnValue is that OCTET STRING (2 header bytes). Longer is refused. */
const MAX_NONCE_EXTENSION_BYTES = 34;

const OID = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
} as const;
const HASHES: Record<string, 'sha1' | 'sha256'> = { [OID.sha1]: 'sha1', [OID.sha256]: 'sha256' };

export type OcspCertStatus =
  | { status: 'good' }
  | { status: 'revoked'; revokedAt: Date; reason?: string }
  | { status: 'unknown' };

/** The revocation status of a serial (lowercase hex, no leading zero bytes) this CA issued; `unknown` if it never did. */
export type OcspLookup = (serialHex: string) => Promise<OcspCertStatus>;

export interface OcspResponderOptions {
  /** The issuing CA certificate: the one CertIDs must name and whose key signs the answers. */
  issuer: X509Certificate;
  key: KeyObject;
  lookup: OcspLookup;
  /** nextUpdate - thisUpdate (default DEFAULT_OCSP_VALIDITY_MS). */
  validityMs?: number;
  now?: () => Date;
}

export type OcspResponseStatusName = 'successful' | 'malformedRequest' | 'internalError' | 'tryLater';

export interface OcspAnswer {
  responseStatus: OcspResponseStatusName;
  /** The DER OCSPResponse to send. */
  der: Buffer;
  /** Per CertID, in request order (successful answers only). */
  statuses: Array<OcspCertStatus['status']>;
  /** The answers' nextUpdate (successful answers only): how long HTTP caches may keep it. */
  nextUpdate?: Date;
  /** True when the request carried a nonce (echoed; such an answer is for this request only). */
  nonce: boolean;
  /** Why a request was refused (for the log). */
  detail?: string;
}

/** An OCSPResponse with no responseBytes: how every non-successful status is sent. */
export function ocspErrorResponse(status: Exclude<OcspResponseStatusName, 'successful'>): Buffer {
  return Buffer.from(AsnConvert.serialize(new OCSPResponse({ responseStatus: OCSPResponseStatus[status] })));
}

/** The CRLReason code for the CA's reason names (they are RFC 5280's names); unspecified for anything else. */
export function crlReasonCode(reason: string): CRLReasons {
  const code = Object.hasOwn(CRLReasons, reason) ? (CRLReasons as unknown as Record<string, unknown>)[reason] : undefined;
  return typeof code === 'number' ? (code as CRLReasons) : CRLReasons.unspecified;
}

/** Whole seconds: GeneralizedTime in DER may carry fractions, but relying parties print and compare seconds. */
const seconds = (date: Date) => new Date(Math.floor(date.getTime() / 1000) * 1000);

class Malformed extends Error {}

export class OcspResponder {
  private readonly issuerHashes: Record<'sha1' | 'sha256', { name: Buffer; key: Buffer }>;
  private readonly responderId: ResponderID;
  private readonly validityMs: number;
  private readonly now: () => Date;

  constructor(private readonly options: OcspResponderOptions) {
    const parts = certificateParts(options.issuer.raw);
    const keyBits = publicKeyBits(Buffer.from(parts.spki));
    const hash = (alg: string, data: Buffer) => createHash(alg).update(data).digest();
    // CertID names the issuer by hashes of its subject Name (DER) and its public key bits; both algorithms up front.
    this.issuerHashes = {
      sha1: { name: hash('sha1', Buffer.from(parts.subjectName)), key: hash('sha1', keyBits) },
      sha256: { name: hash('sha256', Buffer.from(parts.subjectName)), key: hash('sha256', keyBits) },
    };
    // byKey (RFC 6960 4.2.1: SHA-1 of the key bits): shorter than the Name, and what openssl matches first.
    this.responderId = new ResponderID({ byKey: new KeyHash(this.issuerHashes.sha1.key) });
    this.validityMs = options.validityMs ?? DEFAULT_OCSP_VALIDITY_MS;
    if (!(this.validityMs > 0)) throw new Error('OCSP validity must be positive');
    this.now = options.now ?? (() => new Date());
  }

  /** Answers one OCSPRequest (DER). Never throws: bad input is malformedRequest, a failing lookup internalError. */
  async respond(request: Buffer): Promise<OcspAnswer> {
    let parsed: { request: OCSPRequest; nonce?: Extension };
    try {
      parsed = parseRequest(request);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      return { responseStatus: 'malformedRequest', der: ocspErrorResponse('malformedRequest'), statuses: [], nonce: false, detail };
    }
    const certIds = parsed.request.tbsRequest.requestList.map((r) => r.reqCert);
    let statuses: OcspCertStatus[];
    try {
      statuses = await Promise.all(certIds.map((id) => this.status(id)));
    } catch (err) {
      const detail = `status lookup failed: ${err instanceof Error ? err.message : String(err)}`;
      return { responseStatus: 'internalError', der: ocspErrorResponse('internalError'), statuses: [], nonce: Boolean(parsed.nonce), detail };
    }
    const now = seconds(this.now());
    const nextUpdate = new Date(now.getTime() + this.validityMs);
    const data = new ResponseData({
      responderID: this.responderId,
      producedAt: now,
      responses: certIds.map(
        (certID, i) => new SingleResponse({ certID, certStatus: certStatus(statuses[i]!), thisUpdate: now, nextUpdate }),
      ),
      ...(parsed.nonce ? { responseExtensions: [parsed.nonce] } : {}),
    });
    let tbs: Buffer;
    try {
      tbs = Buffer.from(AsnConvert.serialize(data));
    } catch (err) {
      // Each CertID goes back into the response as it came: one the parser read but the encoder cannot write (an
      // AlgorithmIdentifier parameter mutated into an empty UTCTime, found by the mutation test) is malformed.
      const detail = `a CertID cannot be encoded again: ${err instanceof Error ? err.message : String(err)}`;
      return { responseStatus: 'malformedRequest', der: ocspErrorResponse('malformedRequest'), statuses: [], nonce: false, detail };
    }
    const signature = sign('sha256', tbs, { key: this.options.key, dsaEncoding: 'der' });
    // ECDSA AlgorithmIdentifiers carry no parameters (RFC 5758 3.2). No `certs`: the signer is the issuer itself,
    // which every relying party already holds to build the CertID.
    const basic = der.sequence(
      tbs,
      Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: OID.ecdsaWithSha256 }))),
      der.bitString(signature),
    );
    const response = new OCSPResponse({
      responseStatus: OCSPResponseStatus.successful,
      responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(basic) }),
    });
    return {
      responseStatus: 'successful',
      der: Buffer.from(AsnConvert.serialize(response)),
      statuses: statuses.map((s) => s.status),
      nextUpdate,
      nonce: Boolean(parsed.nonce),
    };
  }

  private async status(id: CertID): Promise<OcspCertStatus> {
    const alg = HASHES[id.hashAlgorithm.algorithm];
    // Another CA's certificate (or a hash we do not compute): we know nothing about it.
    if (!alg) return { status: 'unknown' };
    const ours = this.issuerHashes[alg];
    if (!ours.name.equals(Buffer.from(id.issuerNameHash.buffer)) || !ours.key.equals(Buffer.from(id.issuerKeyHash.buffer))) {
      return { status: 'unknown' };
    }
    const serial = Buffer.from(id.serialNumber);
    // Our serials are positive and at most 20 bytes (RFC 5280 4.1.2.2); a negative or longer one was never issued.
    let start = 0;
    while (start < serial.length - 1 && serial[start] === 0) start++;
    const magnitude = serial.subarray(start);
    if (magnitude.length === 0 || magnitude.length > 20 || (start === 0 && serial[0]! & 0x80)) return { status: 'unknown' };
    return this.options.lookup(magnitude.toString('hex'));
  }
}

function certStatus(s: OcspCertStatus): CertStatus {
  switch (s.status) {
    case 'good':
      return new CertStatus({ good: null });
    case 'revoked':
      return new CertStatus({
        revoked: new RevokedInfo({
          revocationTime: seconds(s.revokedAt),
          ...(s.reason !== undefined ? { revocationReason: new CRLReason(crlReasonCode(s.reason)) } : {}),
        }),
      });
    default:
      return new CertStatus({ unknown: null });
  }
}

/** Parses and checks an OCSPRequest; throws Malformed (or whatever the ASN.1 parser throws) when it is not one. */
function parseRequest(bytes: Buffer): { request: OCSPRequest; nonce?: Extension } {
  if (bytes.length === 0) throw new Malformed('empty request');
  if (bytes.length > MAX_OCSP_REQUEST_BYTES) throw new Malformed(`request over ${MAX_OCSP_REQUEST_BYTES} bytes`);
  // Exactly one SEQUENCE, nothing after it: the generic parser would otherwise ignore trailing bytes.
  const outer = der.readTlv(bytes);
  if (outer.tag !== 0x30 || outer.end !== bytes.length) throw new Malformed('not a single DER SEQUENCE');
  // Known gap: @peculiar/asn1-ocsp 2.6.1 declares Request.singleRequestExtensions without its [0] tag, so a request
  // carrying per-certificate extensions (rare: openssl, browsers and nginx send none) is malformedRequest until the
  // fix merged upstream (PeculiarVentures/asn1-schema#158) is released.
  const request = AsnConvert.parse(bytes, OCSPRequest);
  const tbs = request.tbsRequest;
  if (tbs.version !== 0) throw new Malformed(`unsupported request version ${tbs.version}`);
  const count = tbs.requestList.length;
  if (count === 0) throw new Malformed('no CertID in the request');
  if (count > MAX_OCSP_CERT_IDS) throw new Malformed(`${count} CertIDs in one request (limit ${MAX_OCSP_CERT_IDS})`);
  let nonce: Extension | undefined;
  for (const ext of tbs.requestExtensions ?? []) {
    if (ext.extnID === id_pkix_ocsp_nonce) {
      const size = ext.extnValue.byteLength;
      if (nonce || size === 0 || size > MAX_NONCE_EXTENSION_BYTES) throw new Malformed(`bad nonce (${size} bytes)`);
      // Echoed as sent, so the client's own comparison decides (RFC 6960 4.4.1).
      nonce = new Extension({ extnID: id_pkix_ocsp_nonce, extnValue: ext.extnValue });
    } else if (ext.critical) {
      throw new Malformed(`unsupported critical request extension ${ext.extnID}`);
    }
  }
  return { request, ...(nonce ? { nonce } : {}) };
}
