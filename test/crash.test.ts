/**
 * Crash safety: kill -9 the gateway repeatedly while clients enroll. After every restart the inventory must be
 * intact, serials unique, tokens consumed at most once, and every certificate a client received must be in it.
 */
import t from 'tap';
import { request } from 'node:https';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSqliteInventory } from '../store/index.js';
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
    return { id, csr: makeCsr(dir, `/CN=${id}`).der };
  });
  const withTokens: Array<{ id: string; token: string; csr: Buffer }> = [];
  for (const d of devices) withTokens.push({ ...d, token: (await setup.createToken(d.id)).token });
  await setup.close();
  const ca = readFileSync(join(data, 'ca', 'intermediate.crt'), 'utf8') + readFileSync(join(data, 'ca', 'root.crt'), 'utf8');

  const received: Buffer[] = [];
  const refused: string[] = [];
  let pending = [...withTokens];
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

  const store = openSqliteInventory(join(data, 'inventory.db'));
  t.teardown(() => store.close());
  t.same(await store.integrityCheck(), [], 'the store\'s integrity check finds nothing');
  const certs = await store.certificates();
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
  for (const tok of await store.tokens()) {
    const has = certs.some((c) => c.deviceId === tok.deviceId);
    if (Boolean(tok.usedAt) !== has) t.fail(`token/certificate disagree for ${tok.deviceId}`);
  }
  // The change feed lost nothing: gap-free from 1, and every certificate has its entry.
  const feed = await store.feed.after(0, 1_000_000);
  if (feed === 'reload') throw new Error('feed pruned');
  t.ok(feed.every((c, i) => c.seq === i + 1), `the feed is gap-free (${feed.length} entries)`);
  const fed = new Set(feed.filter((c) => c.kind === 'certificate').map((c) => c.key));
  t.ok(certs.every((c) => fed.has(c.serial)), 'every stored certificate is in the feed');
  const perDevice = new Map<string, number>();
  for (const c of certs) if (c.status === 'active' && c.deviceId) perDevice.set(c.deviceId, (perDevice.get(c.deviceId) ?? 0) + 1);
  t.ok([...perDevice.values()].every((n) => n === 1), 'at most one active certificate per device');
  t.comment(`inventory: ${certs.length} certificates; refused after a lost reply: ${refused.length}`);

  // And the CA still works after all that: a final restart serves a late enrollment.
  const { child, port } = await startGatewayProcess(data);
  t.teardown(() => void child.kill('SIGKILL'));
  const late = await CertificateAuthority.open({ dataDir: data });
  const token = (await late.createToken('late-1')).token;
  await late.close();
  const reply = await enroll(port, 'late-1', token, makeCsr(dir, '/CN=late-1').der, ca);
  t.equal(reply?.status, 200);
});
