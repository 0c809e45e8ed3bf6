/**
 * EST (RFC 7030) over HTTPS: /cacerts, /simpleenroll, /simplereenroll, /csrattrs, plus the CRL at /crl.
 * Errors are a 4xx with a one-line plain-text reason. Secrets (the Authorization header) are never logged, and
 * refusals are logged through a LogThrottle (per status, path and source), so a flood becomes a summary line.
 *
 * Enrollment without credentials (claim mode, TPM-only re-enrollment) is limited per source address, and every
 * refusal of it that depends on the device id (unknown, revoked, unclaimed, active, no TPM key, wrong TPM
 * signature) gets one and the same answer, so device ids cannot be enumerated; the precise reason goes to the log.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { readLimitedBody } from '../lib/http-body.js';
import { LogThrottle, type LogThrottleOptions } from '../lib/log-throttle.js';
import { CRL_PATH, EST_PATHS, TPM_KEY_HEADER, TPM_SIGNATURE_HEADER } from '../protocol/index.js';
import { SourceRateLimiter, sourceKey } from '../lib/rate-limit.js';
import { CertificateAuthority, type IssuedCertificate } from './authority.js';
import { decodeBase64Body } from './csr.js';
import { StoreUnavailableError } from '../store/index.js';
import { CaError } from './errors.js';
import ms from 'ms';

/** Larger than any P-256 CSR in base64 with line breaks, small enough that a flood costs nothing. */
export const MAX_BODY_BYTES = 16 * 1024;

export interface EstLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Limits on enrollment without credentials (the `enrollment:` section of wott.yaml). */
export interface EnrollmentLimits {
  /** simpleenroll without HTTP Basic credentials (claim mode, TPM-only), per source address (IPv6: per /64). */
  rateLimit: { perMinute: number; burst: number; maxSources: number };
  /** Claim mode refuses new unclaimed devices (503) while this many wait to be claimed. */
  maxUnclaimed: number;
  /** Unclaimed devices nobody claims within this time are revoked. */
  unclaimedTtlMs: number;
  /** How often to look for expired unclaimed devices; default a tenth of the TTL, between 1 s and 1 min. */
  sweepIntervalMs?: number;
  /**
   * Enrollments and renewals being worked on at once (CSR checks, signing, the commit), counted from a complete
   * request body to the answer. Past it EST answers 503 with Retry-After at once, before any work: under a renewal
   * storm devices come back later instead of queueing past their own timeout while the gateway finishes work they
   * gave up on. Slow senders hold nothing: a request counts only once its body has arrived.
   */
  maxInProgress: number;
  /** The Retry-After (seconds) of that 503; agents wait at least this long, plus their own jitter. */
  busyRetryAfterSeconds: number;
}

export const DEFAULT_ENROLLMENT_LIMITS: EnrollmentLimits = {
  rateLimit: { perMinute: 6, burst: 20, maxSources: 10_000 },
  maxUnclaimed: 1000,
  unclaimedTtlMs: 3 * 86_400_000,
  maxInProgress: 128,
  busyRetryAfterSeconds: 5,
};

export function enrollmentLimits(partial: Partial<EnrollmentLimits> = {}): EnrollmentLimits {
  return { ...DEFAULT_ENROLLMENT_LIMITS, ...partial, rateLimit: { ...DEFAULT_ENROLLMENT_LIMITS.rateLimit, ...partial.rateLimit } };
}

/**
 * The one answer (401) to every unauthenticated simpleenroll refused because of what the device id is: unknown,
 * revoked, unclaimed or active, with or without a TPM key, wrong TPM signature.
 */
export const UNAUTHENTICATED_REFUSAL =
  "enrollment requires HTTP Basic credentials (user = device id, password = enrollment token) or a CSR signed by the device's registered TPM key";

export interface EstOptions {
  /** Claim mode: simpleenroll without credentials enrolls a new device as unclaimed. */
  claim?: boolean;
  log?: EstLogger;
  limits?: Partial<EnrollmentLimits>;
  /** How refusals are summarised in the log (default: 5 lines per status, path and source a minute). */
  logThrottle?: LogThrottleOptions;
  /** Told of every refused enrollment with a token (the device id it named, unverified: anyone can name any id). */
  onRefused?: (refusal: { device: string; reason: string; remoteAddress: string | undefined }) => void;
}

/**
 * What EST needs from the fleet: the enrollment use cases (FleetService implements it; the CA alone does too), so
 * EST, the CLI and the API share one path to the inventory.
 */
export interface EnrollmentService {
  now(): Date;
  caCertificates(): Array<{ raw: Buffer }>;
  currentCrl(): Promise<Buffer>;
  enrollWithToken(deviceId: string, token: string, csr: Buffer, tpm?: { spki: Buffer; signature: Buffer }): Promise<IssuedCertificate>;
  enrollUnclaimed(csr: Buffer, limits: { maxUnclaimed?: number; unclaimedTtlMs?: number }): Promise<IssuedCertificate>;
  enrollWithTpm(csr: Buffer, signature: Buffer): Promise<IssuedCertificate>;
  renew(current: Buffer, csr: Buffer, tpmSignature?: Buffer): Promise<IssuedCertificate>;
}

export interface EstStats {
  /** Enrollments and renewals being worked on now (see EnrollmentLimits.maxInProgress). */
  inProgress: number;
  /** Enrollments and renewals answered 503 because maxInProgress were under way, since start. */
  busyRefusals: number;
}

export type EstHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /** Flushes the log throttle's pending summary and stops its timer. */
  close(): void;
  readonly stats: EstStats;
};

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  const body = await readLimitedBody(req, limit);
  if (body === 'too-large') throw new CaError(413, declared > limit ? `request body too large: ${declared} bytes (limit ${limit})` : `request body too large: over ${limit} bytes`);
  if (body === 'aborted') throw new CaError(400, 'the request body was cut off');
  return body;
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

const KNOWN_PATHS = new Set<string>([...Object.values(EST_PATHS), CRL_PATH]);

export function createEstHandler(ca: EnrollmentService, options: EstOptions = {}): EstHandler {
  const log = options.log;
  const limits = enrollmentLimits(options.limits);
  const limiter = new SourceRateLimiter({ ...limits.rateLimit, now: () => ca.now().getTime() });
  const refusals = log ? new LogThrottle(log, options.logThrottle) : undefined;
  const stats: EstStats = { inProgress: 0, busyRefusals: 0 };
  let cacerts: Buffer[] | undefined;

  /** Runs one enrollment or renewal within maxInProgress, or refuses it with 503 before any work. */
  async function admitted<T>(work: () => Promise<T>): Promise<T> {
    if (stats.inProgress >= limits.maxInProgress) {
      stats.busyRefusals++;
      throw new CaError(503, `the CA is busy (${limits.maxInProgress} enrollments in progress); retry in ${limits.busyRetryAfterSeconds} s`, {
        headers: { 'Retry-After': String(limits.busyRetryAfterSeconds) },
      });
    }
    stats.inProgress++;
    try {
      return await work();
    } finally {
      stats.inProgress--;
    }
  }

  /** simpleenroll without credentials: TPM-only, claim mode, or refused; id-dependent refusals all look alike. */
  async function enrollUnauthenticated(csr: Buffer, tpmSignature: Buffer | undefined): Promise<IssuedCertificate> {
    try {
      if (tpmSignature) return await ca.enrollWithTpm(csr, tpmSignature);
      if (options.claim) return await ca.enrollUnclaimed(csr, { maxUnclaimed: limits.maxUnclaimed, unclaimedTtlMs: limits.unclaimedTtlMs });
      throw new CaError(401, 'no credentials and claim mode is off');
    } catch (err) {
      if (err instanceof CaError && (err.status === 401 || err.status === 403)) {
        throw new CaError(401, UNAUTHENTICATED_REFUSAL, { detail: err.message });
      }
      throw err;
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    const allow = (m: string) => {
      if (method !== m) throw Object.assign(new CaError(400, `${path} accepts ${m} only`), { status: 405, allow: m });
    };
    switch (path) {
      case EST_PATHS.cacerts:
        allow('GET');
        return sendPkcs7(res, (cacerts ??= ca.caCertificates().map((c) => c.raw)));
      case EST_PATHS.csrattrs:
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
      case EST_PATHS.simpleenroll: {
        allow('POST');
        const credentials = basicCredentials(req);
        if (!credentials) {
          // Checked before any work: without credentials every request costs the source a token.
          const decision = limiter.take(req.socket.remoteAddress);
          if (!decision.ok) {
            throw new CaError(429, `too many enrollment requests without credentials from this address; retry in ${decision.retryAfterSeconds} s`, {
              headers: { 'Retry-After': String(decision.retryAfterSeconds) },
            });
          }
        }
        const tpmKey = base64Header(req, TPM_KEY_HEADER);
        const tpmSignature = base64Header(req, TPM_SIGNATURE_HEADER);
        const body = await readBody(req, MAX_BODY_BYTES);
        const issued = await admitted(async () => {
          const csr = decodeBase64Body(body);
          if (!credentials) return enrollUnauthenticated(csr, tpmSignature);
          const tpm = tpmKey && tpmSignature ? { spki: tpmKey, signature: tpmSignature } : undefined;
          try {
            return await ca.enrollWithToken(credentials.user, credentials.password, csr, tpm);
          } catch (err) {
            if (err instanceof CaError && (err.status === 401 || err.status === 403)) options.onRefused?.({ device: credentials.user, reason: err.message, remoteAddress: req.socket.remoteAddress });
            throw err;
          }
        });
        log?.info({ device: issued.deviceId, serial: issued.serial, claim: !credentials && !tpmSignature, tpm: Boolean(tpmSignature) }, 'enrolled');
        return sendPkcs7(res, [issued.der]);
      }
      case EST_PATHS.simplereenroll: {
        allow('POST');
        const current = clientCertificate(req);
        const tpmSignature = base64Header(req, TPM_SIGNATURE_HEADER);
        const body = await readBody(req, MAX_BODY_BYTES);
        const issued = await admitted(() => ca.renew(current, decodeBase64Body(body), tpmSignature));
        log?.info({ device: issued.deviceId, serial: issued.serial }, 'renewed');
        return sendPkcs7(res, [issued.der]);
      }
      default:
        throw new CaError(404, `no such endpoint: ${path.slice(0, 100)}`);
    }
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((err: unknown) => {
      const path = (req.url ?? '/').split('?')[0]!.slice(0, 100);
      if (err instanceof CaError) {
        const status = (err as CaError & { allow?: string }).allow ? 405 : err.status;
        const extra: Record<string, string> = { ...err.extra.headers };
        if (status === 401) extra['WWW-Authenticate'] = 'Basic realm="wott EST"';
        if (status === 405) extra['Allow'] = (err as CaError & { allow?: string }).allow!;
        if (status === 413) extra['Connection'] = 'close';
        const source = sourceKey(req.socket.remoteAddress);
        const key = `${status} ${KNOWN_PATHS.has(path) ? path : '(other)'} ${source}`;
        refusals?.warn(key, { path, status, reason: err.extra.detail ?? err.message, remote: source }, 'EST request refused');
        return sendError(res, status, err.message, extra);
      }
      if (err instanceof StoreUnavailableError) {
        // Nothing is handed out that could not be recorded: the client retries later.
        log?.warn({ err: err.message, path }, 'EST request refused: the store is unavailable');
        return sendError(res, 503, 'the certificate store is unavailable; retry later', { 'Retry-After': '5' });
      }
      log?.error({ err: err instanceof Error ? err.message : String(err), path }, 'EST request failed');
      sendError(res, 500, 'internal error');
    });
  };
  return Object.assign(handler, { close: () => refusals?.close(), stats });
}

/**
 * Revokes unclaimed devices nobody claimed within `limits.unclaimedTtlMs` (see CertificateAuthority.expireUnclaimed),
 * checking every `sweepIntervalMs`. Runs whether or not claim mode is on now: unclaimed devices from an earlier
 * claim-mode period expire too.
 */
export function startUnclaimedSweeper(ca: CertificateAuthority, partial: Partial<EnrollmentLimits> = {}, log?: EstLogger): { close(): void } {
  const limits = enrollmentLimits(partial);
  const every = limits.sweepIntervalMs ?? Math.max(1000, Math.min(limits.unclaimedTtlMs / 10, 60_000));
  let running = false;
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      const expired = await ca.expireUnclaimed(limits.unclaimedTtlMs);
      if (expired.length) {
        log?.warn({ count: expired.length, devices: expired.slice(0, 20), ttl: ms(limits.unclaimedTtlMs) }, 'unclaimed devices expired: certificates revoked');
      }
    } catch (err) {
      log?.error({ err: err instanceof Error ? err.message : String(err) }, 'unclaimed device sweep failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void sweep(), every);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
