/**
 * EST admission control (enrollment.maxInProgress), against a real gateway over real TLS. While the CA's work is
 * slow (here: another connection holds the inventory's write lock, as a slow disk or a backup would), at most
 * maxInProgress enrollments and renewals are worked on; the next ones get 503 with Retry-After at once, before any
 * work, so their tokens stay unused and their devices come back later. Clients that send headers and trickle the
 * body (slowloris) hold no slot. When the lock goes, the admitted ones finish with stored certificates and the
 * turned-away ones enroll and renew.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { makeCsr, requireCommand, tempDir } from './helpers.js';
import { enroll, testGateway } from './mqtt-helpers.js';
import { certFromReply, est, type Reply } from './est-helpers.js';
import { EST_PATHS } from '../protocol/index.js';
import { createCsr, EstError, simpleReenroll } from '../agent/index.js';

type TestGateway = Awaited<ReturnType<typeof testGateway>>;

async function metric(gw: TestGateway, name: string): Promise<number> {
  const m = gw.metrics.getSingleMetric(name);
  return m ? ((await m.get()).values[0]?.value ?? 0) : Number.NaN;
}

function tokenEnroll(gw: TestGateway, dir: string, id: string, token: string): Promise<Reply> {
  const { der } = makeCsr(dir, `/CN=${id}`);
  return est(gw, EST_PATHS.simpleenroll, { auth: `${id}:${token}`, body: der.toString('base64') });
}

async function eventually(cond: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A client that sends an enrollment's headers and a few bytes of its body, then nothing more. */
function slowSender(t: Tap.Test, gw: TestGateway): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: gw.httpsPort, ca: gw.caPem, servername: 'localhost' }, () => {
      socket.write(`POST ${EST_PATHS.simpleenroll} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic ${Buffer.from('slow:x').toString('base64')}\r\nContent-Type: application/pkcs10\r\nContent-Length: 600\r\n\r\nMIIB`);
      resolve(socket);
    });
    socket.on('error', () => undefined);
    socket.once('error', reject);
    t.teardown(() => void socket.destroy());
  });
}

t.test('past enrollment.maxInProgress: 503 + Retry-After before any work; slow senders hold nothing; nothing lost', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { enrollment: { maxInProgress: 3, busyRetryAfterSeconds: 7 } });
  const work = tempDir(t);
  const renewer = await enroll(gw, work, 'renewer');

  // Ten slow senders are in the middle of their requests: they hold connections, not enrollment slots.
  const slow = await Promise.all(Array.from({ length: 10 }, () => slowSender(t, gw)));
  const early = await tokenEnroll(gw, work, 'early', (await gw.ca.createToken('early')).token);
  t.equal(early.status, 200, 'an enrollment goes through while ten requests trickle their bodies');
  t.equal(await metric(gw, 'wott_est_in_progress'), 0, 'the slow senders are not counted');

  // The CA's commits stall: another connection holds the inventory's write lock.
  const tokens = new Map<string, string>();
  for (const id of ['held-1', 'held-2', 'held-3', 'turned-away']) tokens.set(id, (await gw.ca.createToken(id)).token);
  const locker = new Database(join(gw.dir, 'inventory.db'));
  t.teardown(() => void (locker.inTransaction && locker.exec('ROLLBACK'), locker.close()));
  locker.exec('BEGIN IMMEDIATE');
  const held = ['held-1', 'held-2', 'held-3'].map((id) => tokenEnroll(gw, work, id, tokens.get(id)!));
  await eventually(async () => (await metric(gw, 'wott_est_in_progress')) === 3, 'three enrollments in progress');

  const busy = await tokenEnroll(gw, work, 'turned-away', tokens.get('turned-away')!);
  t.equal(busy.status, 503, 'the fourth enrollment is turned away at once');
  t.equal(busy.headers['retry-after'], '7', 'with the configured Retry-After');
  t.match(busy.body, /^the CA is busy \(3 enrollments in progress\); retry in 7 s\n$/, 'and a one-line reason');

  // A renewal is turned away the same way, and the agent's EST client carries the Retry-After to its backoff.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = await createCsr('renewer', privateKey, publicKey);
  const refused = await simpleReenroll(`https://localhost:${gw.httpsPort}`, gw.caPem, renewer.key, renewer.cert, csr).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(refused instanceof EstError, 'the renewal is refused');
  t.equal((refused as EstError).status, 503, 'with 503');
  t.equal((refused as EstError).retryAfterSeconds, 7, "and the agent's client reads Retry-After: 7");
  t.equal(await metric(gw, 'wott_est_busy_refusals_total'), 2, 'both refusals are counted in /metrics');

  // Read through the lock holder: the gateway's own reads queue behind its stalled commits.
  const turnedAway = locker.prepare("SELECT used_at FROM tokens WHERE device_id = 'turned-away'").all() as Array<{ used_at: string | null }>;
  t.same(turnedAway, [{ used_at: null }], 'the turned-away device has its token, unused: nothing was done for a refused request');
  t.same(locker.prepare("SELECT serial FROM certificates WHERE device_id = 'turned-away'").all(), [], 'and no certificate was written for it');

  // The lock goes: the three admitted enrollments finish, each certificate stored before it was handed out.
  locker.exec('ROLLBACK');
  for (const [i, reply] of (await Promise.all(held)).entries()) {
    t.equal(reply.status, 200, `held-${i + 1} enrolled once the store was free`);
    const cert = new X509Certificate(certFromReply(reply.body));
    const row = await gw.ca.inventory.certificate(cert.serialNumber.toLowerCase());
    t.equal(row?.deviceId, `held-${i + 1}`, `held-${i + 1}'s certificate is in the inventory`);
  }
  t.equal(await metric(gw, 'wott_est_in_progress'), 0, 'nothing is left in progress');

  // The turned-away device comes back with the same token, and the renewal goes through.
  t.equal((await tokenEnroll(gw, work, 'turned-away', tokens.get('turned-away')!)).status, 200, 'the turned-away device enrolls with its token');
  const renewed = await simpleReenroll(`https://localhost:${gw.httpsPort}`, gw.caPem, renewer.key, renewer.cert, csr);
  t.ok(renewed.publicKey.equals(createPublicKey(privateKey)), 'and the renewal goes through');
  t.ok(slow.every((s) => !s.destroyed), 'the slow senders were left to their own request timeout');
});

t.test('a write lock held past the wait (10 s): 503 with Retry-After, nothing issued, then enrollment works', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const work = tempDir(t);
  const token = (await gw.ca.createToken('patient')).token;
  const locker = new Database(join(gw.dir, 'inventory.db'));
  t.teardown(() => void (locker.inTransaction && locker.exec('ROLLBACK'), locker.close()));
  locker.exec('BEGIN IMMEDIATE');
  const reply = await tokenEnroll(gw, work, 'patient', token);
  t.equal(reply.status, 503, 'the store is unavailable: 503, not 500');
  t.equal(reply.headers['retry-after'], '5', 'with Retry-After');
  t.match(reply.body, /the certificate store is unavailable; retry later/);
  t.same(locker.prepare("SELECT used_at FROM tokens WHERE device_id = 'patient'").all(), [{ used_at: null }], 'the token is unused');
  t.same(locker.prepare("SELECT serial FROM certificates WHERE device_id = 'patient'").all(), [], 'no certificate was recorded');
  locker.exec('ROLLBACK');
  t.equal((await tokenEnroll(gw, work, 'patient', token)).status, 200, 'once the lock is gone the device enrolls with the same token');
});
