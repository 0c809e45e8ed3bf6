/**
 * Crash safety: kill -9 the gateway repeatedly while clients enroll. After every restart the inventory must be
 * intact, serials unique, tokens consumed at most once, and every certificate a client received must be in it.
 */
import t from 'tap';
import { request } from 'node:https';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CertificateAuthority } from '../ca/index.js';
import { makeCsr, openssl, requireCommand, startGatewayProcess, tempDir } from './helpers.js';
import { EST_PATHS } from '../protocol/index.js';

function enroll(port: number, id: string, token: string, csr: Buffer, ca: string): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = request(`https://localhost:${port}${EST_PATHS.simpleenroll}`, { method: 'POST', ca, auth: `${id}:${token}`, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
      res.on('error', () => resolve(undefined));
    });
    req.on('error', () => resolve(undefined)); // the gateway died mid-request: the client got nothing
    req.on('timeout', () => req.destroy());
    req.end(csr.toString('base64'));
  });
}

t.test('kill -9 during enrollment never loses or half-stores a certificate', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  // Create the CA and a pool of devices with tokens and CSRs up front.
  const setup = await CertificateAuthority.open({ dataDir: data });
  const devices = Array.from({ length: 60 }, (_, i) => {
    const id = `crash-${i}`;
    return { id, token: setup.createToken(id).token, csr: makeCsr(dir, `/CN=${id}`).der };
  });
  setup.close();
  const ca = readFileSync(join(data, 'ca', 'intermediate.crt'), 'utf8') + readFileSync(join(data, 'ca', 'root.crt'), 'utf8');

  const received: Buffer[] = [];
  const refused: string[] = [];
  let pending = [...devices];
  for (let round = 0; round < 10 && pending.length; round++) {
    const { child, port } = await startGatewayProcess(data);
    const exited = new Promise((res) => child.once('exit', res));
    // Fire every pending enrollment at once, then kill the gateway part-way through.
    const inFlight = pending.map(async (d) => ({ d, reply: await enroll(port, d.id, d.token, d.csr, ca) }));
    await new Promise((res) => setTimeout(res, 60 + round * 40));
    child.kill('SIGKILL');
    await exited;
    const results = await Promise.all(inFlight);
    const next: typeof pending = [];
    for (const { d, reply } of results) {
      if (reply?.status === 200) {
        const pem = openssl(['pkcs7', '-inform', 'DER', '-print_certs'], Buffer.from(reply.body, 'base64')).toString();
        received.push(new X509Certificate(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(pem)![0]).raw);
      } else if (reply) {
        refused.push(`${d.id}: ${reply.status} ${reply.body.trim()}`); // e.g. token used by a request whose reply was lost
      } else {
        next.push(d);
      }
    }
    pending = next;
    t.comment(`round ${round}: ${results.length - next.length} answered, ${next.length} cut off`);
  }
  t.ok(received.length > 0, `clients received ${received.length} certificates`);

  const db = new Database(join(data, 'inventory.db'));
  t.teardown(() => db.close());
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'SQLite integrity check');
  const certs = db.prepare('SELECT serial, device_id, status, fingerprint, der FROM certificates').all() as Array<{ serial: string; device_id: string; status: string; fingerprint: string; der: Buffer }>;
  t.equal(new Set(certs.map((c) => c.serial)).size, certs.length, 'serials unique');
  for (const c of certs) {
    const x = new X509Certificate(c.der);
    if (x.serialNumber.toLowerCase().replace(/^(00)+/, '') !== c.serial) t.fail(`serial mismatch for ${c.serial}`);
    if (createHash('sha256').update(c.der).digest('hex') !== c.fingerprint) t.fail(`fingerprint mismatch for ${c.serial}`);
  }
  const fingerprints = new Set(certs.map((c) => c.fingerprint));
  const missing = received.filter((der) => !fingerprints.has(createHash('sha256').update(der).digest('hex')));
  t.equal(missing.length, 0, 'every certificate a client received is in the inventory');
  // A consumed token always has its certificate; an unconsumed one has none.
  const tokens = db.prepare('SELECT device_id, used_at FROM tokens').all() as Array<{ device_id: string; used_at: string | null }>;
  for (const tok of tokens) {
    const has = certs.some((c) => c.device_id === tok.device_id);
    if (Boolean(tok.used_at) !== has) t.fail(`token/certificate disagree for ${tok.device_id}`);
  }
  const perDevice = new Map<string, number>();
  for (const c of certs) if (c.status === 'active') perDevice.set(c.device_id, (perDevice.get(c.device_id) ?? 0) + 1);
  t.ok([...perDevice.values()].every((n) => n === 1), 'at most one active certificate per device');
  t.comment(`inventory: ${certs.length} certificates; refused after a lost reply: ${refused.length}`);

  // And the CA still works after all that: a final restart serves a late enrollment.
  const { child, port } = await startGatewayProcess(data);
  t.teardown(() => void child.kill('SIGKILL'));
  const late = await CertificateAuthority.open({ dataDir: data });
  const token = late.createToken('late-1').token;
  late.close();
  const reply = await enroll(port, 'late-1', token, makeCsr(dir, '/CN=late-1').der, ca);
  t.equal(reply?.status, 200);
});
