/**
 * The device side of EST (RFC 7030): fetch CA certificates (with the bootstrap fingerprint check), enroll with a
 * one-time token, re-enroll over mTLS. Every certificate that comes back is verified before it is trusted.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { deviceUri, EST_PATHS, TPM_KEY_HEADER, TPM_SIGNATURE_HEADER } from '../protocol/index.js';

const MAX_REPLY_BYTES = 64 * 1024;

export class EstError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** The server's Retry-After on a 503 or 429 (seconds), when it gave one. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'EstError';
  }
}

/** Retry-After in seconds (the delta-seconds form, which wott's gateway sends), bounded to a day; else undefined. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\s*\d{1,9}\s*$/.test(text)) return undefined;
  return Math.min(Number(text), 86_400);
}

/** What a failed EST call's server asked for as Retry-After, in milliseconds, if it asked (else undefined). */
export function retryAfterMs(err: unknown): number | undefined {
  return err instanceof EstError && err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 : undefined;
}

/** An EstError for a reply that is not 200, carrying its status and Retry-After. */
function refused(what: string, reply: Reply): EstError {
  return new EstError(`${what}: HTTP ${reply.status}: ${reply.body.trim().slice(0, 200)}`, reply.status, parseRetryAfter(reply.retryAfter));
}

interface Reply {
  status: number;
  body: string;
  retryAfter?: string;
}

interface TlsOptions {
  ca?: string;
  key?: string;
  cert?: string;
  /** Only for the bootstrap /cacerts call, which is verified by fingerprint instead. */
  insecure?: boolean;
}

function call(
  url: URL,
  method: 'GET' | 'POST',
  tls: TlsOptions,
  body?: string,
  auth?: string,
  extraHeaders: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: tls.ca,
        key: tls.key,
        cert: tls.cert,
        rejectUnauthorized: !tls.insecure,
        auth,
        headers: body ? { 'Content-Type': 'application/pkcs10', 'Content-Transfer-Encoding': 'base64', ...extraHeaders } : { ...extraHeaders },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) return req.destroy(new EstError('EST reply too large'));
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1'), retryAfter: res.headers['retry-after'] }));
      },
    );
    req.on('timeout', () => req.destroy(new EstError('EST request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Certificates out of a base64 PKCS#7 certs-only reply. */
export function parseCertsOnly(body: string): X509Certificate[] {
  const text = body.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) throw new EstError('EST reply is not base64');
  try {
    const list = new x509.X509Certificates(new Uint8Array(Buffer.from(text, 'base64')));
    if (list.length === 0) throw new Error('empty');
    return list.map((c) => new X509Certificate(Buffer.from(c.rawData)));
  } catch {
    throw new EstError('EST reply is not a PKCS#7 certs-only structure');
  }
}

export const sha256Fingerprint = (cert: X509Certificate) => createHash('sha256').update(cert.raw).digest('hex');

/** A pin as the user gave it, in the one format wott prints (AB:CD:…), or as given when it is not a fingerprint. */
function formatFingerprint(value: string): string {
  try {
    return normalizeFingerprint(value).toUpperCase().match(/../g)!.join(':');
  } catch {
    return value;
  }
}

/** Accepts "AB:CD:..." or "abcd..." forms, any case, with an optional "sha256:" prefix. */
export function normalizeFingerprint(value: string): string {
  const hex = value.replace(/^sha256[:=]/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new EstError('a CA fingerprint is 64 hex digits (SHA-256), with or without colons');
  return hex;
}

/**
 * GET /cacerts. Without a pinned fingerprint this is trust on first use (and the caller should say so); with one,
 * the self-signed root in the reply must have that SHA-256 fingerprint.
 */
export async function fetchCaCertificates(server: string, fingerprint?: string, ca?: string): Promise<X509Certificate[]> {
  const reply = await call(new URL(EST_PATHS.cacerts, server), 'GET', ca ? { ca } : { insecure: true });
  if (reply.status !== 200) throw refused('cacerts', reply);
  const certs = parseCertsOnly(reply.body);
  const root = certs.find((c) => c.ca && c.checkIssued(c) && c.verify(c.publicKey));
  if (!root) throw new EstError('cacerts reply holds no self-signed root');
  if (fingerprint && sha256Fingerprint(root) !== normalizeFingerprint(fingerprint)) {
    // Printed as `wott ca fingerprint` and the gateway's start log print it (AB:CD:…), so the two compare at a glance.
    throw new EstError(`CA root fingerprint ${root.fingerprint256} does not match the pinned one ${formatFingerprint(fingerprint)} (wott ca fingerprint on the gateway prints the right one)`);
  }
  for (const cert of certs) {
    if (cert !== root && !chainsTo(cert, certs, root)) throw new EstError('cacerts reply holds a certificate that does not chain to the root');
  }
  return certs;
}

function chainsTo(cert: X509Certificate, pool: X509Certificate[], root: X509Certificate, depth = 0): boolean {
  if (depth > 4) return false;
  if (cert.raw.equals(root.raw)) return true;
  const issuer = pool.find((c) => c.ca && cert.checkIssued(c) && cert.verify(c.publicKey));
  return issuer !== undefined && !issuer.raw.equals(cert.raw) && chainsTo(issuer, pool, root, depth + 1);
}

/**
 * A certificate the CA returned is accepted only if it is for our device, for our new key, chains to the CA and is
 * currently valid. Anything else (a confused or hostile server) is an error and the old certificate stays.
 */
export function verifyIssued(cert: X509Certificate, device: string, key: KeyObject, caCerts: X509Certificate[], now = Date.now()): void {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  if (cn !== device) throw new EstError(`issued certificate is for "${cn}", not "${device}"`);
  if (!(cert.subjectAltName ?? '').split(', ').includes(`URI:${deviceUri(device)}`)) throw new EstError('issued certificate lacks our SAN URI');
  const ours = key.type === 'private' ? cert.checkPrivateKey(key) : cert.publicKey.equals(key);
  if (!ours) throw new EstError('issued certificate is for another key');
  const root = caCerts.find((c) => c.checkIssued(c));
  if (!root || !chainsTo(cert, caCerts, root)) throw new EstError('issued certificate does not chain to the CA');
  if (Date.parse(cert.validFrom) > now + 5 * 60_000 || Date.parse(cert.validTo) <= now) throw new EstError('issued certificate is not currently valid');
}

/** Headers that carry the device's TPM key and its signature over the CSR (base64 DER). */
export function tpmHeaders(signature: Buffer, spki?: Buffer): Record<string, string> {
  const headers: Record<string, string> = { [TPM_SIGNATURE_HEADER]: signature.toString('base64') };
  if (spki) headers[TPM_KEY_HEADER] = spki.toString('base64');
  return headers;
}

/** simpleenroll with a token (device + token), or with no token at all (`token` undefined: TPM-signed or claim mode). */
export async function simpleEnroll(
  server: string,
  caPem: string,
  device: string,
  token: string | undefined,
  csrDer: Buffer,
  headers: Record<string, string> = {},
): Promise<X509Certificate> {
  const auth = token === undefined ? undefined : `${device}:${token}`;
  const reply = await call(new URL(EST_PATHS.simpleenroll, server), 'POST', { ca: caPem }, csrDer.toString('base64'), auth, headers);
  if (reply.status !== 200) throw refused('enrollment refused', reply);
  const [cert] = parseCertsOnly(reply.body);
  return cert!;
}

export async function simpleReenroll(
  server: string,
  caPem: string,
  keyPem: string,
  certPem: string,
  csrDer: Buffer,
  headers: Record<string, string> = {},
): Promise<X509Certificate> {
  const reply = await call(
    new URL(EST_PATHS.simplereenroll, server),
    'POST',
    { ca: caPem, key: keyPem, cert: certPem },
    csrDer.toString('base64'),
    undefined,
    headers,
  );
  if (reply.status !== 200) throw refused('renewal refused', reply);
  const [cert] = parseCertsOnly(reply.body);
  return cert!;
}

/** A PKCS#10 request for `device`, signed by `key` (P-256). */
export async function createCsr(device: string, key: KeyObject, publicKey: KeyObject): Promise<Buffer> {
  const { webcrypto } = await import('node:crypto');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = {
    privateKey: (await webcrypto.subtle.importKey('pkcs8', key.export({ format: 'der', type: 'pkcs8' }), alg, false, ['sign'])) as CryptoKey,
    publicKey: (await webcrypto.subtle.importKey('spki', publicKey.export({ format: 'der', type: 'spki' }), alg, true, ['verify'])) as CryptoKey,
  };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${device}`, keys, signingAlgorithm: alg });
  return Buffer.from(csr.rawData);
}
