/**
 * The EST fuzzer: requests to a real gateway's HTTPS listener with generated methods, paths, headers and bodies
 * (the csr target's DER-structure-aware CSRs, base64 damage). No request carries a valid credential, so each must
 * be refused. Properties: never a 5xx, a 4xx carries a reason, and the inventory snapshot (devices, certificates,
 * tokens, revocations, feed head) is the same after every case.
 */
import { rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Gateway } from '../gateway/index.js';
import { EST_PATHS } from '../protocol/index.js';
import { openSqliteInventory } from '../store/index.js';
import { startFuzzGateway } from './mqtt.js';
import { PARSER_TARGETS, PropertyFailure, type FuzzTarget } from './targets.js';

interface Request {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

let state: { gw: Gateway; dir: string; caPem: string } | undefined;

async function snapshot(dir: string): Promise<string> {
  const store = openSqliteInventory(join(dir, 'inventory.db'));
  try {
    return JSON.stringify({
      feed: await store.feed.head(),
      devices: (await store.devices()).map(({ id, state, tags }) => ({ id, state, tags })),
      certificates: (await store.certificates()).map(({ serial, deviceId, status, replacedBy }) => ({ serial, deviceId, status, replacedBy })),
      tokens: await store.tokens(),
      revocations: await store.revocations(),
    });
  } finally {
    await store.close();
  }
}

function send(port: number, ca: string, r: Request): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // A fresh connection each: a kept-alive socket the server just closed (413 closes) would fail as a client race.
    const req = request({ host: '127.0.0.1', port, servername: 'localhost', ca, agent: false, method: r.method, path: r.path, headers: r.headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    // Bodies only where HTTP has them (Node's client would send HEAD/GET bodies chunked, which no client does).
    req.end(r.method === 'POST' || r.method === 'PUT' ? r.body : undefined);
  });
}

const csrTarget = PARSER_TARGETS.get('csr')!;

export const estTarget: FuzzTarget<Request> = {
  name: 'est',
  description: 'EST over real HTTPS: generated methods, paths, headers and CSR bodies without valid credentials: never a 5xx, a 4xx with a reason, the inventory unchanged',
  prepare: async () => {
    await csrTarget.prepare?.();
    if (state) return;
    const { gw, dir } = await startFuzzGateway('est');
    // A pending token for a device: a request that guesses wrong must leave it as it is.
    await gw.ca.createToken('fuzz-est');
    state = { gw, dir, caPem: gw.ca.caCertificates().map((c) => c.toString()).join('') };
  },
  close: async () => {
    const s = state;
    state = undefined;
    if (!s) return;
    await s.gw.close();
    rmSync(s.dir, { recursive: true, force: true });
  },
  input: () =>
    fc.record({
      method: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'),
      path: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(EST_PATHS.simpleenroll, EST_PATHS.simplereenroll) },
        { weight: 1, arbitrary: fc.constantFrom(...Object.values(EST_PATHS)).chain((p) => fc.constantFrom(p + '/', p + '?x=1', p.toUpperCase(), p + '/..', p.replace('/', '//'), p + '%00', p + '/../../../etc/passwd')) },
      ),
      headers: fc.record(
        {
          'content-type': fc.constantFrom('application/pkcs10', 'application/json', 'text/plain; charset=utf-8', '', 'application/pkcs10; x=' + 'a'.repeat(2000)),
          'content-transfer-encoding': fc.constantFrom('base64', 'binary', 'gzip'),
          authorization: fc.oneof(
            fc.constantFrom('Basic ' + Buffer.from('fuzz-est:wrong-token').toString('base64'), 'Basic ' + Buffer.from('fuzz-est:').toString('base64'), 'Basic', 'Basic !!!', 'Bearer x', 'Basic ' + Buffer.from(':').toString('base64')),
            fc.string({ maxLength: 40 }).map((s) => 'Basic ' + Buffer.from(`fuzz-est:${s}`).toString('base64')),
          ),
        },
        { requiredKeys: [] },
      ),
      body: fc.oneof({ weight: 4, arbitrary: csrTarget.input() as fc.Arbitrary<string> }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) }),
    }),
  check: async (r) => {
    const s = state;
    if (!s) throw new Error('est: prepare() first');
    const before = await snapshot(s.dir);
    const res = await send(s.gw.httpsPort, s.caPem, r);
    if (res.status >= 500) throw new PropertyFailure(`est: ${r.method} ${r.path} answered ${res.status}: ${res.body.slice(0, 200)}`);
    if (res.status >= 400 && r.method !== 'HEAD' && res.body.trim().length === 0) throw new PropertyFailure(`est: ${res.status} without a reason`);
    if (res.status >= 200 && res.status < 300 && r.method === 'POST') throw new PropertyFailure(`est: POST ${r.path} without a valid credential answered ${res.status}`);
    const after = await snapshot(s.dir);
    if (after !== before) throw new PropertyFailure(`est: ${r.method} ${r.path} answered ${res.status} but the inventory changed`);
  },
};
