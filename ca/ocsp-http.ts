/**
 * OCSP over HTTP (RFC 6960 appendix A): POST {OCSP_PATH} with a DER OCSPRequest body, or GET
 * {OCSP_PATH}/{url-encoded base64 of the DER request}; the answer is a DER OCSPResponse (application/ocsp-response).
 * A plain (req, res) handler on purpose: it mounts under node:https today and any framework tomorrow.
 *
 * No client authentication, as everywhere OCSP is served: relying parties (TLS servers, openssl, nginx stapling)
 * have no wott credentials, and an answer reveals only the revocation status of a serial the asker already holds
 * (a CertID names the issuer by hashes and the certificate by serial). The signing work is bounded instead: the
 * request size before parsing, the CertIDs per request, and requests per source address.
 *
 * OCSP-level refusals (malformed, unparseable, too large) are HTTP 200 with the OCSP error status in the body, as
 * openssl's own responder does, so OCSP clients read the reason; only the rate limit (429, Retry-After, tryLater)
 * and a wrong method or path speak plain HTTP.
 */
import { readLimitedBody } from '../lib/http-body.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LogThrottle, type LogThrottleOptions } from '../lib/log-throttle.js';
import { SourceRateLimiter, sourceKey, type RateLimitOptions } from '../lib/rate-limit.js';
import { OCSP_PATH } from '../protocol/index.js';
import type { CertificateAuthority } from './authority.js';
import type { EstLogger } from './est.js';
import { MAX_OCSP_REQUEST_BYTES, ocspErrorResponse, OcspResponder, type OcspAnswer } from './ocsp.js';

const CONTENT_TYPE = 'application/ocsp-response';

/**
 * Per source address. A relying party that caches asks about each certificate about once per validity period
 * (an hour); one that does not (a TLS server checking every client handshake) may ask several times a second. Each
 * answer costs one ECDSA signature and one indexed read, so 10/s sustained with a burst of 100 serves a busy server
 * while a flood from one address costs little.
 */
export const DEFAULT_OCSP_RATE_LIMIT: Omit<RateLimitOptions, 'now'> = { perMinute: 600, burst: 100, maxSources: 10_000 };

export interface OcspHandlerOptions {
  log?: EstLogger;
  rateLimit?: Partial<Omit<RateLimitOptions, 'now'>>;
  /** nextUpdate - thisUpdate of the answers (default DEFAULT_OCSP_VALIDITY_MS). */
  validityMs?: number;
  logThrottle?: LogThrottleOptions;
}

export type OcspHandler = ((req: IncomingMessage, res: ServerResponse) => void) & { close(): void };

/** True for the paths the OCSP handler serves: OCSP_PATH itself (POST) and OCSP_PATH/… (GET). */
export function isOcspPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?')[0]!;
  return path === OCSP_PATH || path.startsWith(`${OCSP_PATH}/`);
}

class Refused extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The body, at most `limit` bytes; undefined past that or when the upload was cut off. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const body = await readLimitedBody(req, limit);
  return typeof body === 'string' ? undefined : body;
}

/** The DER request inside a GET path; undefined when it is not url-encoded base64 of a bounded size. */
function requestFromPath(path: string): Buffer | undefined {
  let text: string;
  try {
    text = decodeURIComponent(path.slice(OCSP_PATH.length + 1));
  } catch {
    return undefined;
  }
  // base64 of MAX_OCSP_REQUEST_BYTES; the URL alphabet too, since some clients send it.
  if (text.length > Math.ceil(MAX_OCSP_REQUEST_BYTES / 3) * 4 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(text) || text.replace(/=+$/, '').length % 4 === 1) {
    return undefined;
  }
  return Buffer.from(text, 'base64');
}

export function createOcspHandler(ca: CertificateAuthority, options: OcspHandlerOptions = {}): OcspHandler {
  const responder = new OcspResponder({
    issuer: ca.material.intermediate,
    key: ca.material.intermediateKey,
    lookup: (serial) => ca.certificateStatus(serial),
    now: ca.now,
    ...(options.validityMs !== undefined ? { validityMs: options.validityMs } : {}),
  });
  const limiter = new SourceRateLimiter({ ...DEFAULT_OCSP_RATE_LIMIT, ...options.rateLimit, now: () => ca.now().getTime() });
  const log = options.log;
  const refusals = log ? new LogThrottle(log, options.logThrottle) : undefined;

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    const isGet = path !== OCSP_PATH && path !== `${OCSP_PATH}/`;
    if (isGet ? method !== 'GET' : method !== 'POST') {
      throw new Refused(405, `${path.slice(0, 100)} accepts ${isGet ? 'GET' : 'POST'} only`, { Allow: isGet ? 'GET' : 'POST' });
    }
    // Before any reading or signing: every request costs its source a token.
    const decision = limiter.take(req.socket.remoteAddress);
    if (!decision.ok) {
      throw new Refused(429, 'too many OCSP requests from this address', { 'Retry-After': String(decision.retryAfterSeconds) });
    }
    let request: Buffer | undefined;
    let tooLarge = false;
    if (isGet) request = requestFromPath(path);
    else {
      request = await readBody(req, MAX_OCSP_REQUEST_BYTES);
      tooLarge = request === undefined;
    }
    const result: OcspAnswer = request
      ? await responder.respond(request)
      : { responseStatus: 'malformedRequest', der: ocspErrorResponse('malformedRequest'), statuses: [], nonce: false, detail: tooLarge ? 'request too large' : 'GET path is not base64 of a request' };
    const headers: Record<string, string | number> = { 'Content-Type': CONTENT_TYPE, 'Content-Length': result.der.length };
    if (tooLarge) headers['Connection'] = 'close';
    if (result.responseStatus === 'successful' && isGet && !result.nonce && result.nextUpdate) {
      // RFC 5019 6.2: a GET answer may be cached by HTTP caches, but not beyond its own nextUpdate.
      const maxAge = Math.max(0, Math.floor((result.nextUpdate.getTime() - ca.now().getTime()) / 1000));
      headers['Cache-Control'] = `max-age=${maxAge}, public, no-transform, must-revalidate`;
    } else headers['Cache-Control'] = 'no-store';
    if (result.responseStatus === 'internalError') {
      log?.error({ reason: result.detail }, 'OCSP request failed');
    } else if (result.responseStatus !== 'successful') {
      const source = sourceKey(req.socket.remoteAddress);
      refusals?.warn(`${result.responseStatus} ${source}`, { status: result.responseStatus, reason: result.detail, remote: source }, 'OCSP request refused');
    }
    res.writeHead(result.responseStatus === 'internalError' ? 500 : 200, headers);
    res.end(result.der);
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    answer(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (err instanceof Refused) {
        const source = sourceKey(req.socket.remoteAddress);
        refusals?.warn(`${err.httpStatus} ${source}`, { status: err.httpStatus, reason: err.message, remote: source }, 'OCSP request refused');
        // The rate limit is an OCSP-level "try later" too, for clients that read the body whatever the HTTP status.
        const body = err.httpStatus === 429 ? ocspErrorResponse('tryLater') : Buffer.from(`${err.message}\n`);
        res.writeHead(err.httpStatus, {
          'Content-Type': err.httpStatus === 429 ? CONTENT_TYPE : 'text/plain; charset=utf-8',
          'Content-Length': body.length,
          ...err.headers,
        });
        return void res.end(body);
      }
      log?.error({ err: err instanceof Error ? err.message : String(err) }, 'OCSP request failed');
      const body = ocspErrorResponse('internalError');
      res.writeHead(500, { 'Content-Type': CONTENT_TYPE, 'Content-Length': body.length }).end(body);
    });
  };
  return Object.assign(handler, { close: () => refusals?.close() });
}
