/**
 * EST (RFC 7030) over HTTPS: /cacerts, /simpleenroll, /simplereenroll, /csrattrs, plus the CRL at /crl.
 * Errors are a 4xx with a one-line plain-text reason. Secrets (the Authorization header) are never logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { CertificateAuthority, type IssuedCertificate } from './authority.js';
import { decodeBase64Body } from './csr.js';
import { CaError } from './errors.js';

export const EST_PREFIX = '/.well-known/est';
export const CRL_PATH = '/crl';
/** Larger than any P-256 CSR in base64 with line breaks, small enough that a flood costs nothing. */
export const MAX_BODY_BYTES = 16 * 1024;

export interface EstLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface EstOptions {
  /** Claim mode: simpleenroll without credentials enrolls a new device as unclaimed. */
  claim?: boolean;
  log?: EstLogger;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) return reject(new CaError(413, `request body too large: ${declared} bytes (limit ${limit})`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new CaError(413, `request body too large: over ${limit} bytes`));
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function basicCredentials(req: IncomingMessage): { user: string; password: string } | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) throw new CaError(401, 'Authorization must be HTTP Basic with user = device id and password = enrollment token');
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) throw new CaError(401, 'malformed Basic credentials');
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** A base64 header value as bytes; undefined when absent, 400 when not base64. */
function base64Header(req: IncomingMessage, name: string): Buffer | undefined {
  const raw = req.headers[name];
  if (raw === undefined) return undefined;
  const text = (Array.isArray(raw) ? raw.join('') : raw).trim();
  if (!text || text.length > 4096 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.replace(/=+$/, '').length % 4 === 1) {
    throw new CaError(400, `${name} must be base64`);
  }
  return Buffer.from(text, 'base64');
}

export const TPM_KEY_HEADER = 'x-wott-tpm-key';
export const TPM_SIGNATURE_HEADER = 'x-wott-tpm-signature';

function sendPkcs7(res: ServerResponse, certs: Buffer[]): void {
  const body = CertificateAuthority.pkcs7(certs).toString('base64').replace(/.{64}/g, '$&\n');
  res.writeHead(200, {
    'Content-Type': 'application/pkcs7-mime; smime-type=certs-only',
    'Content-Transfer-Encoding': 'base64',
  });
  res.end(body + '\n');
}

function sendError(res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...extra });
  res.end(message + '\n');
}

/** The peer certificate presented over mTLS (DER), or a 401 explaining why there is none usable. */
function clientCertificate(req: IncomingMessage): Buffer {
  const socket = req.socket as TLSSocket;
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (!peer || !peer.raw) throw new CaError(401, 'renewal requires the current client certificate over mutual TLS');
  if (!socket.authorized) {
    const why = String(socket.authorizationError ?? 'not trusted');
    throw new CaError(why === 'CERT_HAS_EXPIRED' ? 403 : 401, `client certificate rejected: ${why}`);
  }
  return peer.raw;
}

export function createEstHandler(ca: CertificateAuthority, options: EstOptions = {}) {
  const log = options.log;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    const allow = (m: string) => {
      if (method !== m) throw Object.assign(new CaError(400, `${path} accepts ${m} only`), { status: 405, allow: m });
    };
    switch (path) {
      case `${EST_PREFIX}/cacerts`:
        allow('GET');
        return sendPkcs7(res, ca.caCertificates().map((c) => c.raw));
      case `${EST_PREFIX}/csrattrs`:
        allow('GET');
        res.writeHead(204).end();
        return;
      case CRL_PATH: {
        allow('GET');
        const der = await ca.currentCrl();
        res.writeHead(200, { 'Content-Type': 'application/pkix-crl', 'Content-Length': der.length });
        res.end(der);
        return;
      }
      case `${EST_PREFIX}/simpleenroll`: {
        allow('POST');
        const credentials = basicCredentials(req);
        const tpmKey = base64Header(req, TPM_KEY_HEADER);
        const tpmSignature = base64Header(req, TPM_SIGNATURE_HEADER);
        const csr = decodeBase64Body(await readBody(req, MAX_BODY_BYTES));
        let issued: IssuedCertificate;
        if (credentials) {
          const tpm = tpmKey && tpmSignature ? { spki: tpmKey, signature: tpmSignature } : undefined;
          issued = ca.enrollWithToken(credentials.user, credentials.password, csr, tpm);
        } else if (tpmSignature) issued = ca.enrollWithTpm(csr, tpmSignature);
        else if (options.claim) issued = ca.enrollUnclaimed(csr);
        else throw new CaError(401, 'enrollment requires HTTP Basic credentials: user = device id, password = enrollment token');
        log?.info({ device: issued.deviceId, serial: issued.serial, claim: !credentials && !tpmSignature, tpm: Boolean(tpmSignature) }, 'enrolled');
        return sendPkcs7(res, [issued.der]);
      }
      case `${EST_PREFIX}/simplereenroll`: {
        allow('POST');
        const current = clientCertificate(req);
        const tpmSignature = base64Header(req, TPM_SIGNATURE_HEADER);
        const csr = decodeBase64Body(await readBody(req, MAX_BODY_BYTES));
        const issued = ca.reenroll(current, csr, tpmSignature);
        log?.info({ device: issued.deviceId, serial: issued.serial }, 'renewed');
        return sendPkcs7(res, [issued.der]);
      }
      default:
        throw new CaError(404, `no such endpoint: ${path.slice(0, 100)}`);
    }
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof CaError) {
        const status = (err as CaError & { allow?: string }).allow ? 405 : err.status;
        const extra: Record<string, string> = {};
        if (status === 401) extra['WWW-Authenticate'] = 'Basic realm="wott EST"';
        if (status === 405) extra['Allow'] = (err as CaError & { allow?: string }).allow!;
        if (status === 413) extra['Connection'] = 'close';
        log?.warn({ path: req.url?.slice(0, 100), status, reason: err.message }, 'EST request refused');
        return sendError(res, status, err.message, extra);
      }
      log?.error({ err: err instanceof Error ? err.message : String(err), path: req.url?.slice(0, 100) }, 'EST request failed');
      sendError(res, 500, 'internal error');
    });
  };
}
