/** Test plumbing for the HTTPS API: real requests over real TLS, with operator, device and foreign certificates. */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { join } from 'node:path';
import type { Gateway } from '../../gateway/index.js';
import { API_PREFIX, SESSION_COOKIE, type OperatorRole } from '../../protocol/index.js';
import { SqliteSessionStore } from '../../store/index.js';
import { Sessions } from '../../api/index.js';
import { openssl } from '../helpers.js';

export type Gw = Gateway & { dir: string; caPem: string };

export interface ApiReply {
  status: number;
  body: string;
  json: any;
  headers: Record<string, string | string[] | undefined>;
}

export interface ApiCall {
  /** Client certificate and key (PEM). */
  cert?: string;
  key?: string;
  /** Session cookie value and CSRF header. */
  cookie?: string;
  csrf?: string;
  /** JSON body: an object is serialised; a string is sent as it is (malformed JSON tests). */
  body?: unknown;
  headers?: Record<string, string>;
  localAddress?: string;
}

/** One request to the gateway's HTTPS port, verified against our CA; path is below /api/v1 unless it is /, EST, /crl or /metrics. */
export function api(gw: { httpsPort: number; caPem: string }, method: string, path: string, call: ApiCall = {}): Promise<ApiReply> {
  const absolute = path === '/' || ['/api', '/.well-known', '/crl', '/metrics'].some((p) => path.startsWith(p));
  const url = `https://127.0.0.1:${gw.httpsPort}${absolute ? path : API_PREFIX + path}`;
  const body = call.body === undefined ? undefined : typeof call.body === 'string' || Buffer.isBuffer(call.body) ? call.body : JSON.stringify(call.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: gw.caPem,
        agent: false,
        servername: 'localhost',
        ...(call.cert ? { cert: call.cert, key: call.key } : {}),
        ...(call.localAddress ? { localAddress: call.localAddress } : {}),
        headers: {
          ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
          ...(call.cookie ? { Cookie: `${SESSION_COOKIE}=${call.cookie}` } : {}),
          ...(call.csrf ? { 'X-CSRF-Token': call.csrf } : {}),
          ...call.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, body: text, json, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** An operator certificate from the gateway's CA. */
export async function operatorCredentials(gw: Gw, role: OperatorRole, name: string): Promise<{ cert: string; key: string; serial: string }> {
  const issued = await gw.ca.issueOperator(role, name);
  return { cert: issued.pem, key: issued.keyPem, serial: issued.serial };
}

/** A self-signed certificate that names an operator exactly as ours do: from another CA, so no credential. */
export function foreignOperator(dir: string, role: OperatorRole, name: string): { cert: string; key: string } {
  const keyPath = join(dir, `foreign-${role}-${name}.key`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath]);
  const cert = openssl(['req', '-new', '-x509', '-key', keyPath, '-subj', `/CN=operator:${role}:${name}`, '-days', '1', '-addext', `subjectAltName=URI:urn:wott:operator:${role}:${name}`, '-addext', 'extendedKeyUsage=clientAuth']).toString();
  return { cert, key: openssl(['pkey', '-in', keyPath]).toString() };
}

/** What a browser's Sign in button sends: an empty form. */
export const FORM_POST: ApiCall = { body: '', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Sec-Fetch-Site': 'same-origin' } };

/** Signs a browser in: a login link made through the session store (as the CLI does), redeemed over HTTPS. */
export async function sessionFor(gw: Gw, role: OperatorRole, name: string): Promise<{ cookie: string; csrf: string; id: string }> {
  const store = SqliteSessionStore.open(gw.dir);
  try {
    const link = await new Sessions(store).createLink(role, name, 'test');
    const reply = await api(gw, 'POST', `/login/${link.secret}`, FORM_POST);
    if (reply.status !== 303) throw new Error(`login: ${reply.status} ${reply.body}`);
    const cookie = cookieFrom(reply);
    const who = await api(gw, 'GET', '/whoami', { cookie });
    return { cookie, csrf: who.json.csrfToken, id: cookie.split('.')[0]! };
  } finally {
    await store.close();
  }
}

/** The session cookie value a reply sets. */
export function cookieFrom(reply: ApiReply): string {
  const set = ([] as string[]).concat(reply.headers['set-cookie'] ?? []);
  const line = set.find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  if (!line) throw new Error(`no session cookie in ${JSON.stringify(reply.headers)}`);
  return line.slice(SESSION_COOKIE.length + 1).split(';')[0]!;
}

/** A session that expired an hour ago, put in through the store interface (no clock to wait for). */
export async function expiredSession(gw: Gw, role: OperatorRole, name: string): Promise<string> {
  const store = SqliteSessionStore.open(gw.dir);
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  try {
    const linkSecret = randomBytes(32).toString('base64url');
    const sessionSecret = randomBytes(32).toString('base64url');
    const id = randomBytes(16).toString('base64url');
    const now = new Date();
    await store.createLoginLink({ hash: sha(linkSecret), role, name, createdBy: 'test', createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60_000).toISOString() });
    const result = await store.redeemLoginLink(sha(linkSecret), now.toISOString(), { id, secretHash: sha(sessionSecret), expiresAt: new Date(now.getTime() - 3_600_000).toISOString(), source: null });
    if (!result.ok) throw new Error('could not make an expired session');
    return `${id}.${sessionSecret}`;
  } finally {
    await store.close();
  }
}
