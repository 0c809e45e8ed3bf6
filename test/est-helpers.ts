/** Raw EST requests over real HTTPS for the hardening tests: any local address, any credentials, any headers. */
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import { makeCsr, openssl } from './helpers.js';
import { EST_PATHS } from '../protocol/index.js';

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface EstRequest {
  method?: string;
  body?: string | Buffer;
  /** HTTP Basic `user:password`. */
  auth?: string;
  /** Client certificate and key (PEM) for mTLS. */
  cert?: string;
  key?: string;
  /** Source address (any 127.x.y.z on Linux loopback): how the tests play several clients. */
  localAddress?: string;
  headers?: Record<string, string>;
}

/**
 * Keep-alive connections, one pool per gateway: floods here are floods of requests, as an attacker would send them
 * to get past the gateway's limits on connections per source (and sockets are not the point of these tests).
 */
const agents = new Map<number, Agent>();
function agentFor(port: number): Agent {
  let agent = agents.get(port);
  if (!agent) agents.set(port, (agent = new Agent({ keepAlive: true, maxSockets: 16 })));
  return agent;
}

/** One request to the gateway's HTTPS port (127.0.0.1, verified against the CA). */
export function est(gw: { httpsPort: number; caPem: string }, path: string, opts: EstRequest = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `https://127.0.0.1:${gw.httpsPort}${path}`,
      {
        method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
        ca: gw.caPem,
        agent: agentFor(gw.httpsPort),
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        ...(opts.auth ? { auth: opts.auth } : {}),
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        headers: { 'Content-Type': 'application/pkcs10', ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('latin1'), headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The bytes of a GET (the CRL). */
export function getBytes(gw: { httpsPort: number; caPem: string }, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(`https://127.0.0.1:${gw.httpsPort}${path}`, { ca: gw.caPem, agent: agentFor(gw.httpsPort) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}

/** The certificate (PEM) inside an EST PKCS#7 reply. */
export function certFromReply(body: string): string {
  const pem = openssl(['pkcs7', '-inform', 'DER', '-print_certs'], Buffer.from(body, 'base64')).toString();
  return /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/.exec(pem)![0];
}

export function serialOf(certPem: string): string {
  return openssl(['x509', '-noout', '-serial'], certPem).toString().trim().split('=')[1]!.toLowerCase();
}

/**
 * Unauthenticated simpleenroll (claim mode) of `id` with a fresh key from `localAddress`; on success, credentials
 * in the shape mqtt-helpers' connect() takes.
 */
export async function claimEnroll(
  gw: { httpsPort: number; caPem: string },
  dir: string,
  id: string,
  localAddress?: string,
): Promise<{ reply: Reply; creds?: { id: string; key: string; cert: string; ca: string; serial: string } }> {
  const { der, keyPath } = makeCsr(dir, `/CN=${id}`);
  const reply = await est(gw, EST_PATHS.simpleenroll, { body: der.toString('base64'), ...(localAddress ? { localAddress } : {}) });
  if (reply.status !== 200) return { reply };
  const cert = certFromReply(reply.body);
  return { reply, creds: { id, key: readFileSync(keyPath, 'utf8'), cert, ca: gw.caPem, serial: serialOf(cert) } };
}

/** Serials listed in a DER CRL (openssl's reading, not ours). */
export function crlSerials(der: Buffer): string[] {
  const text = openssl(['crl', '-inform', 'DER', '-noout', '-text'], der).toString();
  return [...text.matchAll(/Serial Number: ([0-9A-Fa-f]+)/g)].map((m) => m[1]!.toLowerCase());
}

export function crlNumber(der: Buffer): number {
  const text = openssl(['crl', '-inform', 'DER', '-noout', '-crlnumber'], der).toString();
  return parseInt(text.trim().split('=')[1]!, 16);
}
