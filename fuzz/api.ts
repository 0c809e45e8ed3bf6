/**
 * The HTTPS API fuzzer: requests to every /api/v1 route of a real gateway (ROUTES, the table the OpenAPI document is
 * built from, plus the login link), with generated path parameters, query strings, headers and JSON bodies (each
 * route's valid body as the seed, then structurally and textually mutated), made by one of several callers:
 * nobody, a self-signed "operator", a device certificate, a forged cookie, a viewer, an admin session without its
 * CSRF token, and a real admin (mTLS certificate or signed-in session).
 *
 * Properties, for every case: never a 5xx, a 4xx carries a reason. A caller without the route's credential gets a
 * 401/403 (404/400 on a mangled path) and the inventory snapshot (devices, certificates, tokens, revocations,
 * credentials, action decisions) is the same afterwards. For the admin: a 4xx changes nothing; a success changes
 * only what its route may change (the device, credential or operator it names; a bulk action exactly the devices
 * it reports done, as it reports them).
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import fc from 'fast-check';
import { ROUTES, Sessions, type RouteSpec } from '../api/index.js';
import type { Gateway } from '../gateway/index.js';
import { API_MAX_BODY_BYTES, API_PREFIX, SESSION_COOKIE } from '../protocol/index.js';
import { SqliteSessionStore } from '../store/index.js';
import { enrollDevice, startFuzzGateway, type Creds } from './mqtt.js';
import { hostileValue, mutatedJson, mutatedText } from './mutate.js';
import { PropertyFailure, type FuzzTarget } from './targets.js';

export type CallerKind = 'none' | 'foreign' | 'device' | 'cookie' | 'viewer' | 'nocsrf' | 'admin' | 'session';

export interface ApiCase {
  caller: CallerKind;
  /** "METHOD /path/{param}" of the route (or the login link) the request was made from. */
  route: string;
  method: string;
  /** The path below the origin as sent (parameters filled in, maybe mangled) with its query string. */
  path: string;
  mangled: boolean;
  headers: Record<string, string>;
  body: string | null;
}

const DEVICES = ['fuzz-a', 'fuzz-b', 'fuzz-c', 'fuzz-d'];
const PENDING = 'fuzz-pending';
const TAG = fc.constantFrom('a', 'b', 'site:paris', 'x.y-z/1');

/** The routes fuzzed: the API's own table (what the OpenAPI document lists) and the public login link. */
const SPECS: Array<{ method: string; path: string; role: string | null }> = [
  ...ROUTES.map((r: RouteSpec) => ({ method: r.method, path: r.path, role: r.access.role as string })),
  { method: 'GET', path: '/login/{secret}', role: null },
  { method: 'POST', path: '/login/{secret}', role: null },
];
const RANK: Record<string, number> = { viewer: 0, operator: 1, admin: 2 };

interface State {
  gw: Gateway;
  dir: string;
  caPem: string;
  device: Creds;
  foreign: Creds;
  viewer: Creds;
  admin: Creds;
  victimSerial: string;
  victimSession: string;
  session?: { cookie: string; csrf: string };
}
let state: State | undefined;

/** Replies seen since the last prepare(), by "caller status-class" and by route: a run that only ever hit refusals shows. */
export const apiTally = { byCaller: new Map<string, number>(), writesDone: new Set<string>(), routes: new Set<string>() };

/** Seeds: a valid body per route, so mutations reach past the schema into the handlers. */
function seedBodies(route: string, s: () => State | undefined): unknown[] {
  const [method, path] = route.split(' ') as [string, string];
  const cert = s()?.device.cert ?? '';
  const table: Record<string, unknown[]> = {
    'POST /devices/{id}/revoke': [{ reason: 'superseded' }, { reason: 'keyCompromise' }],
    'PUT /devices/{id}/tags': [{ tags: ['a', 'b'] }, { tags: [] }],
    'POST /devices/{id}/tags': [{ add: ['x'], remove: ['a'] }, { add: ['site:paris'] }],
    'POST /tokens': [{ device: 'fuzz-new', ttlSeconds: 3600 }, { device: 'fuzz-a' }],
    'POST /operators/{serial}/revoke': [{ reason: 'keyCompromise' }],
    'POST /devices/{id}/actions/{action}/snooze': [{ duration: '24h' }, { duration: '7d' }],
    'POST /policies/explain': [{ device: 'fuzz-a', topic: 'fuzz/fuzz-a', action: 'publish' }],
    'POST /trust/check': [{ certificate: cert, minScore: 0.5 }, { certificate: cert, topic: 'fuzz/x', action: 'subscribe' }],
    'POST /devices/actions': [
      { ids: ['fuzz-a', 'fuzz-b', 'nobody'], action: 'quarantine' },
      { ids: ['fuzz-a', 'fuzz-c'], action: 'release' },
      { ids: ['fuzz-b', 'fuzz-d', PENDING], action: 'tag', tags: ['bulk'] },
      { ids: ['fuzz-b'], action: 'untag', tags: ['bulk', 'a'] },
    ],
    'PUT /credentials/{name}': [{ value: 's3cret', tags: ['a'], minScore: 0.5 }, { value: 'v', tags: ['b'], minScore: 0, linuxUser: 'app', ttlSeconds: 3600 }],
    'POST /credentials/{name}/rotate': [{ value: 'next' }],
  };
  return table[`${method} ${path}`] ?? (method === 'GET' || method === 'DELETE' ? [undefined] : [{}]);
}

/** Percent-encoded for a URL; a lone surrogate (which encodeURIComponent refuses) goes as U+FFFD, as a browser sends it. */
const enc = (v: string) => encodeURIComponent(Buffer.from(v, 'utf8').toString('utf8'));
const encoded = (a: fc.Arbitrary<unknown>) => a.map((v) => enc(typeof v === 'string' ? v : JSON.stringify(v) ?? ''));

function paramArb(name: string, clean = false): fc.Arbitrary<string> {
  const hostile = encoded(hostileValue);
  const pools: Record<string, fc.Arbitrary<string>> = {
    id: fc.constantFrom(...DEVICES, PENDING, 'nobody', 'FUZZ-A'),
    action: fc.constantFrom('update-packages', 'open-port:22', 'x'),
    name: fc.constantFrom('cred-a', 'cred-b', 'Bad Name'),
    // The victim operator's serial, never the fuzzer's own (revoking that would end the run's admin).
    serial: fc.constantFrom(state!.victimSerial, state!.victimSerial.toUpperCase(), 'ff'.repeat(20), '0'),
    secret: fc.oneof(fc.constant('a'.repeat(43)), fc.base64String({ minLength: 20, maxLength: 100 }).map((b) => b.replace(/[+/=]/g, '_'))),
  };
  // DELETE /sessions/{id}: another admin's session, never the fuzzer's own.
  if (name === 'id') pools.id = fc.oneof({ weight: 6, arbitrary: pools.id! }, { weight: 1, arbitrary: fc.constant(state!.victimSession.split('.')[0]!) });
  const valid = (pools[name] ?? fc.constant('x')).map(enc);
  return clean ? valid : fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostile });
}

const QUERY_KEYS = ['state', 'tag', 'q', 'minScore', 'maxScore', 'below', 'sort', 'order', 'limit', 'cursor', 'format', 'device', 'status', 'devices', 'severity', 'backlog'];
const queryArb: fc.Arbitrary<string> = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 8 })),
      fc.oneof(fc.constantFrom('active', 'quarantined', 'pending', 'csv', 'json', 'pdf', 'score', 'desc', '0', '1', '-1', '0.5', '1e9', 'NaN', 'fuzz-a', 'open', 'critical', ''), hostileValue.map((v) => (typeof v === 'string' ? v : JSON.stringify(v) ?? ''))),
    ),
    { maxLength: 4 },
  )
  .map((pairs) => (pairs.length ? '?' + pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&') : ''));

/** Path damage the router and the handlers must both survive: bad escapes, traversal, case, doubled slashes. */
const MANGLE: Array<(p: string) => string> = [
  (p) => p + '/',
  (p) => p.replace('/api/v1/', '/api/v1//'),
  (p) => p.toUpperCase(),
  (p) => p + '/..',
  (p) => p + '/../../../etc/passwd',
  (p) => p + '%00',
  (p) => p + '%zz',
  (p) => p + '%',
  (p) => p.replace('/api/v1', '/api/v2'),
  (p) => p + ';x=1',
  (p) => p.replace(/\/[^/]*$/, '/' + 'a'.repeat(300)),
];

/** Header values Node's client will send (no CR/LF or other controls), some of them hostile. */
const headerValue = fc.oneof(fc.constantFrom('', 'null', '0', '-1', 'a'.repeat(4000), '../../etc/passwd', '%00'), fc.string({ unit: 'grapheme-ascii', maxLength: 60 }));

function caseArb(): fc.Arbitrary<ApiCase> {
  return fc.record({ spec: fc.constantFrom(...SPECS), caller: fc.constantFrom<CallerKind>('none', 'foreign', 'device', 'cookie', 'viewer', 'nocsrf', 'admin', 'admin', 'admin', 'session', 'session') }).chain(({ spec, caller }) => {
    const names = [...spec.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const seeds = seedBodies(`${spec.method} ${spec.path}`, () => state);
    const jsonSeed = fc.constantFrom(...seeds);
    const body: fc.Arbitrary<string | null> = fc.oneof(
      { weight: 3, arbitrary: jsonSeed.map((s) => (s === undefined ? null : JSON.stringify(s))) },
      { weight: 4, arbitrary: jsonSeed.chain((s) => mutatedJson(s ?? {})).map((v) => JSON.stringify(v) ?? 'null') },
      { weight: 2, arbitrary: jsonSeed.chain((s) => mutatedText(JSON.stringify(s ?? {}))) },
      { weight: 1, arbitrary: fc.oneof(fc.constant(null), fc.json(), fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('x'.repeat(API_MAX_BODY_BYTES + 1), `{"a":"${'x'.repeat(API_MAX_BODY_BYTES)}"}`)) },
    );
    const hostileRequest = fc.record({
      method: fc.oneof({ weight: 9, arbitrary: fc.constant(spec.method) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD') }),
      params: fc.tuple(...names.map((n) => paramArb(n))),
      query: fc.oneof({ weight: 3, arbitrary: fc.constant('') }, { weight: 2, arbitrary: queryArb }),
      mangle: fc.oneof({ weight: 8, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(MANGLE.length - 1) }),
      headers: fc.record(
        {
          'content-type': fc.constantFrom('application/json', 'application/json', 'application/json', 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', ''),
          accept: fc.constantFrom('text/csv', 'application/json', 'text/event-stream', '*/*', 'application/pdf'),
          'x-csrf-token': headerValue,
          'sec-fetch-site': fc.constantFrom('cross-site', 'same-origin', 'none', 'same-site'),
          'last-event-id': headerValue,
          origin: fc.constantFrom('https://evil.example', 'null'),
          'x-forwarded-for': fc.constantFrom('10.0.0.1', '::1, 1.2.3.4', 'unknown'),
        },
        { requiredKeys: [] },
      ),
      body,
    });
    // Well-formed requests too, or the admin would rarely get past validation to the writes it must keep whole.
    const cleanRequest = fc.record({
      method: fc.constant(spec.method),
      params: fc.tuple(...names.map((n) => paramArb(n, true))),
      query: fc.constant(''),
      mangle: fc.constant(-1),
      headers: fc.constant({ 'content-type': 'application/json' }),
      body: jsonSeed.map((s) => (s === undefined ? null : JSON.stringify(s))),
    });
    return fc.oneof({ weight: 3, arbitrary: hostileRequest }, { weight: 2, arbitrary: cleanRequest }).map(({ method, params, query, mangle, headers, body }) => {
      let path = API_PREFIX + spec.path.replace(/\{(\w+)\}/g, (_m, n: string) => params[names.indexOf(n)]!);
      if (mangle >= 0) path = MANGLE[mangle]!(path);
      const h = { ...headers } as Record<string, string>;
      if (body === null || h['content-type'] === '') delete h['content-type'];
      return { caller, route: `${spec.method} ${spec.path}`, method, path: path + query, mangled: mangle >= 0, headers: h, body: method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? null : body };
    });
  });
}

interface Reply {
  status: number;
  body: string;
  json: any;
}

function send(s: State, c: ApiCase, extra: { cert?: Creds; cookie?: string; csrf?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...c.headers };
    if (extra.cookie) headers.cookie = `${SESSION_COOKIE}=${extra.cookie}`;
    if (extra.csrf) headers['x-csrf-token'] = extra.csrf;
    // Stated, since Node's client sends a DELETE body with neither a length nor chunks (the next request, to a server).
    if (c.body !== null) headers['content-length'] = String(Buffer.byteLength(c.body));
    // A fresh connection each: a kept-alive socket the server just closed (413 closes) would fail as a client race.
    const req = request({ host: '127.0.0.1', port: s.gw.httpsPort, servername: 'localhost', ca: s.caPem, agent: false, method: c.method, path: c.path, headers, ...(extra.cert ? { cert: extra.cert.cert, key: extra.cert.key } : {}) }, (res) => {
      // Event streams stay open for as long as the credential holds: the status and headers are the answer.
      if (String(res.headers['content-type']).startsWith('text/event-stream')) {
        res.destroy();
        return resolve({ status: res.statusCode ?? 0, body: 'stream', json: undefined });
      }
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(c.body ?? undefined);
  });
}

/** A signed-in admin browser: a login link made through the session store (as the CLI does), redeemed over HTTPS. */
async function signIn(s: State, name: string): Promise<{ cookie: string; csrf: string }> {
  const store = SqliteSessionStore.open(s.dir);
  try {
    const link = await new Sessions(store).createLink('admin', name, 'fuzz');
    const base: ApiCase = { caller: 'none', route: '', method: 'POST', path: `${API_PREFIX}/login/${link.secret}`, mangled: false, headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' }, body: '' };
    const login = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: s.gw.httpsPort, servername: 'localhost', ca: s.caPem, agent: false, method: 'POST', path: base.path, headers: base.headers }, (res) => {
        res.resume();
        const set = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((v) => v.startsWith(`${SESSION_COOKIE}=`));
        return set ? resolve(set.slice(SESSION_COOKIE.length + 1).split(';')[0]!) : reject(new Error(`sign in: ${res.statusCode}`));
      });
      req.on('error', reject);
      req.end('');
    });
    const who = await send(s, { ...base, method: 'GET', path: `${API_PREFIX}/whoami`, headers: {}, body: null }, { cookie: login });
    return { cookie: login, csrf: (who.json as { csrfToken: string }).csrfToken };
  } finally {
    await store.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The inventory snapshot and what a request may change of it

type Item = { key: string; owner: string; value: string };

/** Everything persistent an API call can change, flattened to keyed items, each with the device/name it belongs to. */
async function snapshot(s: State): Promise<Map<string, Item>> {
  const inv = s.gw.ca.inventory;
  const items = new Map<string, Item>();
  const put = (key: string, owner: string | null, value: unknown) => items.set(key, { key, owner: owner ?? '', value: JSON.stringify(value) });
  const certs = await inv.certificates();
  const ownerOf = new Map(certs.map((c) => [c.serial, c.deviceId ?? c.commonName]));
  for (const d of await inv.devices()) put(`device ${d.id}`, d.id, { state: d.state, tags: d.tags });
  for (const c of certs) put(`certificate ${c.serial}`, c.deviceId ?? c.commonName, { status: c.status, replacedBy: c.replacedBy });
  for (const t of await inv.tokens()) put(`token ${t.hash}`, t.deviceId, { usedAt: t.usedAt, expiresAt: t.expiresAt });
  for (const r of await inv.revocations()) put(`revocation ${r.serial}`, ownerOf.get(r.serial) ?? r.serial, { reason: r.reason });
  for (const c of await s.gw.credentials.list()) put(`credential ${c.name}`, c.name, { version: c.version, tags: c.tags, minScore: c.minScore, linuxUser: c.linuxUser, ttlMs: c.ttlMs });
  for (const d of await s.gw.fleet.actionDecisions()) put(`decision ${d.device} ${d.action}`, d.device, d);
  return items;
}

function changes(before: Map<string, Item>, after: Map<string, Item>): Item[] {
  const out: Item[] = [];
  for (const [k, a] of after) if (before.get(k)?.value !== a.value) out.push(a);
  for (const [k, b] of before) if (!after.has(k)) out.push({ ...b, value: '(removed)' });
  return out;
}

const decode = (v: string) => {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
};

/**
 * What a successful call of `route` may change: items owned by the device, credential or operator its path names
 * (and, for a token, the device its body names). Everything else must stay as it was.
 */
function allowed(c: ApiCase, reply: Reply, s: State): (item: Item) => boolean {
  const segs = c.path.split('?')[0]!.slice(API_PREFIX.length).split('/').map(decode);
  switch (c.route) {
    case 'POST /tokens':
      return (i) => i.key.startsWith('token ') && i.owner === (reply.json as { device?: string })?.device;
    case 'POST /operators/{serial}/revoke': {
      const serial = segs[2]!.toLowerCase();
      return (i) => i.key === `certificate ${serial}` || i.key === `revocation ${serial}`;
    }
    case 'PUT /credentials/{name}':
    case 'POST /credentials/{name}/rotate':
    case 'DELETE /credentials/{name}':
      return (i) => i.key === `credential ${segs[2]}`;
    case 'POST /devices/actions':
      return () => true; // checked item by item against the reply (bulkConsistent)
    default:
      if (c.route.startsWith('POST /devices/{id}/') || c.route.startsWith('PUT /devices/{id}/') || c.route.startsWith('DELETE /devices/{id}/')) return (i) => i.owner === segs[2];
      void s;
      return () => false;
  }
}

/** A bulk action: a device reported done is as the reply says; one reported refused, and any other, is unchanged. */
function bulkConsistent(before: Map<string, Item>, after: Map<string, Item>, reply: Reply): string | undefined {
  const results = (reply.json as { results?: Array<{ id: string; ok: boolean; device?: { state: string; tags: string[] } }> })?.results;
  if (!Array.isArray(results)) return 'bulk: a success without results';
  const done = new Map(results.filter((r) => r.ok).map((r) => [r.id, r.device!]));
  for (const item of changes(before, after)) {
    const d = done.get(item.owner);
    if (!d || !item.key.startsWith('device ')) return `bulk: ${item.key} changed but the reply reports no such success`;
    if (item.value !== JSON.stringify({ state: d.state, tags: d.tags })) return `bulk: ${item.key} is ${item.value}, the reply says ${JSON.stringify(d)}`;
  }
  return undefined;
}

/** The statuses an uncredentialed (or under-privileged) call may get on an intact path of a protected route. */
const REFUSED = new Set([401, 403]);

async function check(c: ApiCase): Promise<void> {
  const s = state;
  if (!s) throw new Error('api: prepare() first');
  const spec = SPECS.find((x) => `${x.method} ${x.path}` === c.route)!;
  let extra: { cert?: Creds; cookie?: string; csrf?: string } = {};
  switch (c.caller) {
    case 'foreign':
      extra = { cert: s.foreign };
      break;
    case 'device':
      extra = { cert: s.device };
      break;
    case 'cookie':
      extra = { cookie: `${s.victimSession.split('.')[0]}.${'A'.repeat(43)}` };
      break;
    case 'viewer':
      extra = { cert: s.viewer };
      break;
    case 'admin':
      extra = { cert: s.admin };
      break;
    case 'nocsrf':
    case 'session':
      s.session ??= await signIn(s, 'fuzz-session');
      extra = c.caller === 'session' ? { ...s.session } : { cookie: s.session.cookie };
      break;
  }
  const before = await snapshot(s);
  const reply = await send(s, c, extra);
  const after = await snapshot(s);
  const what = `api: ${c.caller} ${c.method} ${c.path.slice(0, 200)} answered ${reply.status} ${reply.body.slice(0, 160)}`;
  if (reply.status >= 500) throw new PropertyFailure(`${what}: ${reply.body.slice(0, 300)}`);
  if (reply.status >= 400 && c.method !== 'HEAD' && !(typeof reply.json?.message === 'string' && reply.json.message.trim()) && !reply.body.trim())
    throw new PropertyFailure(`${what} without a reason`);
  const changed = changes(before, after);
  const bump = (k: string) => apiTally.byCaller.set(k, (apiTally.byCaller.get(k) ?? 0) + 1);
  bump(`${c.caller} ${Math.floor(reply.status / 100)}xx`);
  apiTally.routes.add(c.route);
  if (reply.status < 300 && c.method === spec.method && spec.method !== 'GET') apiTally.writesDone.add(c.route);
  const credentialed = c.caller === 'admin' || c.caller === 'session' || (c.caller === 'viewer' && spec.role === 'viewer') || (c.caller === 'nocsrf' && ['GET', 'HEAD'].includes(c.method));
  // The router answers a parameter over its 200-character bound with a 400 before anything else runs.
  const intact = !c.mangled && c.method === spec.method && spec.role !== null && c.path.split('?')[0]!.split('/').every((seg) => seg.length <= 200);
  if (!credentialed) {
    if (changed.length) throw new PropertyFailure(`${what} but changed ${changed.map((i) => i.key).join(', ')}`);
    if (intact && !REFUSED.has(reply.status)) throw new PropertyFailure(`${what}: a ${spec.role} route without that credential must be refused (401/403)`);
    // No credential at all: nothing but the login link's page (a form, whatever the secret looks like) answers.
    const anonymous = c.caller === 'none' || c.caller === 'foreign' || c.caller === 'device' || c.caller === 'cookie';
    if (anonymous && reply.status < 400 && !(c.route === 'GET /login/{secret}' && (c.method === 'GET' || c.method === 'HEAD')))
      throw new PropertyFailure(`${what}: a success without a credential`);
    return;
  }
  if (reply.status >= 400 || c.method === 'GET' || c.method === 'HEAD' || c.method === 'OPTIONS') {
    if (changed.length) throw new PropertyFailure(`${what} but changed ${changed.map((i) => `${i.key} -> ${i.value}`).join(', ')} (a partial write)`);
    return;
  }
  if (c.route === 'POST /devices/actions') {
    const broken = bulkConsistent(before, after, reply);
    if (broken) throw new PropertyFailure(`${what}: ${broken}`);
  }
  const may = allowed(c, reply, s);
  const stray = changed.filter((i) => !may(i));
  if (stray.length) throw new PropertyFailure(`${what} but changed ${stray.map((i) => `${i.key} -> ${i.value}`).join(', ')}, which ${c.route} does not touch`);
  // A device route's reply describes the device as it now is.
  const dev = reply.json as { id?: string; state?: string; tags?: string[] } | undefined;
  if (c.route.startsWith('POST /devices/{id}/') && dev?.id && dev.state) {
    const now = after.get(`device ${dev.id}`)?.value;
    if (now !== undefined && now !== JSON.stringify({ state: dev.state, tags: dev.tags ?? JSON.parse(now).tags })) throw new PropertyFailure(`${what}: replied ${JSON.stringify(dev)} but the device is ${now}`);
  }
  // Its own ending: the next session case signs in again.
  if (c.caller === 'session' && c.route === 'POST /logout') s.session = undefined;
}

export const apiTarget: FuzzTarget<ApiCase> = {
  name: 'api',
  description: 'every /api/v1 route over real HTTPS with generated paths, queries, headers and JSON bodies, by callers from nobody to an admin: never a 5xx, a 4xx with a reason, no write without the credential, no partial write',
  prepare: async () => {
    if (state) return;
    apiTally.byCaller.clear();
    apiTally.writesDone.clear();
    apiTally.routes.clear();
    const { gw, dir } = await startFuzzGateway('api', {
      // The fuzzer is one source refused on purpose many times a second: the limiter's block is tested on its own.
      api: { refusalLimits: { burst: 1_000_000_000, perMinute: 1_000_000_000 } },
    });
    const caPem = gw.ca.caCertificates().map((c) => c.toString()).join('');
    const devices: Creds[] = [];
    for (const id of DEVICES) devices.push(await enrollDevice(gw, caPem, dir, id));
    await gw.ca.createToken(PENDING);
    const issue = async (role: 'viewer' | 'admin', name: string) => {
      const o = await gw.ca.issueOperator(role, name);
      return { creds: { cert: o.pem, key: o.keyPem }, serial: o.serial };
    };
    const viewer = (await issue('viewer', 'fuzz-viewer')).creds;
    const admin = (await issue('admin', 'fuzz-admin')).creds;
    const victim = await issue('admin', 'fuzz-victim');
    // A certificate naming an admin exactly as ours do, from no CA of ours.
    const keyPath = join(dir, 'foreign.key');
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath]);
    const foreignCert = execFileSync('openssl', ['req', '-new', '-x509', '-key', keyPath, '-subj', '/CN=operator:admin:fuzz-admin', '-days', '1', '-addext', 'subjectAltName=URI:urn:wott:operator:admin:fuzz-admin', '-addext', 'extendedKeyUsage=clientAuth']).toString();
    const foreign = { cert: foreignCert, key: execFileSync('openssl', ['pkey', '-in', keyPath]).toString() };
    const partial = { gw, dir, caPem, device: devices[0]!, foreign, viewer, admin, victimSerial: victim.serial, victimSession: '' } as State;
    const other = await signIn(partial, 'fuzz-victim-session');
    partial.victimSession = other.cookie;
    state = partial;
  },
  close: async () => {
    const s = state;
    state = undefined;
    if (!s) return;
    await s.gw.close();
    rmSync(s.dir, { recursive: true, force: true });
  },
  input: caseArb,
  check,
};
