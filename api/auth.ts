/**
 * Who is calling the API, and whether they may: an operator certificate from our CA over mTLS
 * (urn:wott:operator:{role}:{name}), a service certificate (the admin service acts as admin; other services reach
 * only routes open to services), or a browser session from a login link. Device certificates are refused (403),
 * certificates the handshake did not verify against our CA (another CA, expired) are not credentials (401).
 */
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { identityFromCertificate } from '../broker/index.js';
import { normalizeSerial, operatorFromNames, roleAtLeast, type OperatorRole } from '../protocol/index.js';
import { SourceRateLimiter, sourceKey } from '../lib/rate-limit.js';
import type { SessionCaller, Sessions } from './sessions.js';

export type CallerRole = OperatorRole | 'service';

export interface Caller {
  via: 'certificate' | 'session';
  role: CallerRole;
  name: string;
  /** The actor recorded in the audit log: cert:{role}:{name}, cert:service:{role}:{name}, session:{role}:{name}. */
  identity: string;
  session?: SessionCaller;
  /** The client certificate's serial (normalised) and notAfter (ms), when the caller used one. */
  certificate?: { serial: string; notAfter: number };
}

export class Refusal extends Error {
  constructor(
    readonly status: 401 | 403 | 429,
    message: string,
    /** Who was refused, when known: refusals are also limited per identity. */
    readonly identity?: string,
    readonly retryAfterSeconds?: number,
    /** The credential of the connection itself is gone (certificate revoked or expired): answer, then close it. */
    readonly closeConnection = false,
  ) {
    super(message);
    this.name = 'Refusal';
  }
}

function sanUris(altNames: string | undefined): string[] {
  return (altNames ?? '').split(/,\s*/).filter((e) => e.startsWith('URI:')).map((e) => e.slice(4));
}

/**
 * The peer certificate, read once per connection: getPeerCertificate() builds a new object on every call, which
 * was the largest cost of a keep-alive API request. Revocation and expiry are still checked on every request below
 * (a keep-alive connection outlives its handshake): a Set lookup and a number comparison.
 */
const peers = new WeakMap<TLSSocket, { peer: PeerCertificate; serial: string; notAfter: number } | undefined>();
function peerCertificate(socket: TLSSocket): { peer: PeerCertificate; serial: string; notAfter: number } | undefined {
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  if (!peers.has(socket)) {
    const peer = socket.getPeerCertificate();
    // No valid_to (none read): expired from the start, so never a credential.
    peers.set(socket, peer?.raw ? { peer, serial: normalizeSerial(peer.serialNumber ?? ''), notAfter: Date.parse(peer.valid_to) || 0 } : undefined);
  }
  return peers.get(socket);
}

/** The caller of `req`; throws a Refusal saying why there is none. */
export async function resolveCaller(
  req: IncomingMessage,
  cookie: string | undefined,
  sessions: Sessions,
  isRevoked: (serial: string) => boolean,
  now: () => number = Date.now,
): Promise<Caller> {
  const socket = req.socket as TLSSocket;
  const cert = peerCertificate(socket);
  if (cert) {
    const { peer, serial, notAfter } = cert;
    // rejectUnauthorized is off on this listener (devices renew here with expiring certificates), so the chain
    // check's verdict is read here: anything it did not accept is no credential at all.
    if (!socket.authorized) throw new Refusal(401, `client certificate not accepted: ${String(socket.authorizationError ?? 'not issued by this CA')}`);
    const cn = typeof peer.subject?.CN === 'string' ? peer.subject.CN : '';
    const operator = operatorFromNames(cn, sanUris(peer.subjectaltname));
    // Checked on every request, not only at the handshake: a keep-alive connection is refused, then closed, the
    // moment its certificate is revoked (the gateway's in-memory revocation view) or expires.
    const stillGood = (identity: string) => {
      if (isRevoked(serial)) throw new Refusal(401, 'client certificate revoked', identity, undefined, true);
      if (now() >= notAfter) throw new Refusal(401, 'client certificate expired', identity, undefined, true);
    };
    if (operator) {
      const identity = `cert:${operator.role}:${operator.name}`;
      stillGood(identity);
      return { via: 'certificate', role: operator.role, name: operator.name, identity, certificate: { serial, notAfter } };
    }
    const who = identityFromCertificate(peer);
    if ('error' in who) throw new Refusal(403, `client certificate names no operator: ${who.error}`);
    if (who.kind === 'device') throw new Refusal(403, 'device certificates cannot use the API: use an operator certificate (wott operator create)', `device:${who.id}`);
    const identity = `cert:service:${who.role}:${who.name}`;
    stillGood(identity);
    return { via: 'certificate', role: who.role === 'admin' ? 'admin' : 'service', name: who.name, identity, certificate: { serial, notAfter } };
  }
  if (cookie !== undefined) {
    const found = await sessions.authenticate(cookie);
    if ('error' in found) throw new Refusal(401, found.error);
    const { session } = found;
    return { via: 'session', role: session.role, name: session.name, identity: `session:${session.role}:${session.name}`, session: found };
  }
  throw new Refusal(401, 'authentication required: an operator certificate over mutual TLS, or a session from a `wott operator login` link');
}

/** What a route demands of its caller. */
export interface Access {
  /** The least operator role that may call it. */
  role: OperatorRole;
  /** Service certificates (scoring, broker) may call it too. */
  services?: boolean;
}

export const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Throws a Refusal when `caller` may not call a route with `access` using `method`. */
export function authorize(caller: Caller, access: Access, method: string, csrfHeader: string | string[] | undefined, sessions: Sessions): void {
  if (caller.role === 'service') {
    if (!access.services) throw new Refusal(403, 'service certificates may not call this route', caller.identity);
  } else if (!roleAtLeast(caller.role, access.role)) {
    throw new Refusal(403, `role ${caller.role} may not call this route (needs ${access.role})`, caller.identity);
  }
  // A cookie is sent by the browser whoever made the page; a header only by our own scripts (same origin).
  if (caller.session && MUTATING.has(method) && !sessions.checkCsrf(caller.session, csrfHeader)) {
    throw new Refusal(403, 'missing or wrong X-CSRF-Token header (GET /api/v1/whoami gives the token of this session)', caller.identity);
  }
}

export interface RefusalLimits {
  /** Refused calls (401, 403, failed logins) a source or an identity may make at once, then this many a minute. */
  burst: number;
  perMinute: number;
  maxSources: number;
}

export const DEFAULT_REFUSAL_LIMITS: RefusalLimits = { burst: 20, perMinute: 10, maxSources: 10_000 };

/**
 * Refused calls cost the source address and the identity a token each; the refusal that finds the bucket empty
 * (after `burst`) starts a block: every call from that source or identity is then a 429 until a token is back
 * (guessing links, cookies or roles gets slow fast).
 */
export class RefusalLimiter {
  private readonly limiter: SourceRateLimiter;
  private readonly blockedUntil = new Map<string, number>();

  constructor(
    private readonly limits: RefusalLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.limiter = new SourceRateLimiter({ ...limits, now });
  }

  private keys(address: string | undefined, identity: string | undefined): string[] {
    return [`source ${sourceKey(address)}`, ...(identity ? [`identity ${identity}`] : [])];
  }

  /** Seconds to wait when the source or identity is blocked now. */
  blocked(address: string | undefined, identity?: string): number | undefined {
    const now = this.now();
    for (const key of this.keys(address, identity)) {
      const until = this.blockedUntil.get(key);
      if (until === undefined) continue;
      if (until > now) return Math.max(1, Math.ceil((until - now) / 1000));
      this.blockedUntil.delete(key);
    }
    return undefined;
  }

  record(address: string | undefined, identity?: string): void {
    const now = this.now();
    for (const key of this.keys(address, identity)) {
      const decision = this.limiter.take(key);
      if (decision.ok) continue;
      if (this.blockedUntil.size >= this.limits.maxSources) {
        for (const [k, until] of this.blockedUntil) if (until <= now) this.blockedUntil.delete(k);
      }
      if (this.blockedUntil.size < this.limits.maxSources) this.blockedUntil.set(key, now + decision.retryAfterSeconds * 1000);
    }
  }
}
