/**
 * EST over real HTTPS. The happy path is driven by curl + openssl only (not our code); hostile requests each get a
 * clear 4xx and leave the inventory exactly as it was.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CertificateAuthority, MAX_BODY_BYTES } from '../ca/index.js';
import { startGateway, type Gateway } from '../gateway/index.js';
import { inventorySnapshot, makeCsr, makeKey, openssl, requireCommand, tempDir, writeTemp, csrWithKey } from './helpers.js';
import { CRL_PATH, EST_PATHS, EST_PREFIX } from '../protocol/index.js';

const DAY = 86_400_000;
const execFileP = promisify(execFile);

/** curl runs as a separate process; async so the in-process server keeps serving. */
async function runCurl(cwd: string, args: string[]): Promise<Buffer> {
  const { stdout } = await execFileP('curl', args, { cwd, encoding: 'buffer', timeout: 30_000 });
  return stdout;
}

async function gateway(t: Tap.Test, claim = false): Promise<{ gw: Gateway; dir: string; base: string }> {
  const dir = tempDir(t);
  const gw = await startGateway({
    dataDir: dir,
    httpsPort: 0,
    hosts: [],
    certLifetimeMs: 7 * DAY,
    crlValidityMs: DAY,
    claim,
    log: pino({ level: 'silent' }),
    mqttPort: 0,
    policies: [],
    initialScore: 0.5,
    onDowngrade: 'filter',
    eventIntervalMs: 10_000,
  });
  t.teardown(() => gw.close());
  return { gw, dir, base: `https://localhost:${gw.httpsPort}` };
}

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function est(
  base: string,
  path: string,
  opts: { method?: string; body?: string | Buffer; auth?: string; cert?: string; key?: string; ca: string; headers?: Record<string, string> },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      {
        method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        auth: opts.auth,
        headers: { 'Content-Type': 'application/pkcs10', ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** PEM certificate out of an EST certs-only reply, via openssl. */
function certFromReply(body: string): string {
  return openssl(['pkcs7', '-inform', 'DER', '-print_certs'], Buffer.from(body, 'base64')).toString();
}

t.test('curl + openssl: cacerts -> simpleenroll with a token -> simplereenroll -> revoke -> CRL check', async (t) => {
  if (!requireCommand(t, 'curl', 'curl') || !requireCommand(t, 'openssl', 'openssl')) return;
  const { gw, dir, base } = await gateway(t);
  const work = tempDir(t);
  const curl = (...args: string[]) => runCurl(work, ['-sS', '--fail-with-body', ...args]);
  const p = (name: string) => join(work, name);

  // Bootstrap trust: fetch the CA certificates, then compare the root fingerprint out of band.
  const cacerts = await curl('-k', `${base}${EST_PATHS.cacerts}`);
  openssl(['pkcs7', '-inform', 'DER', '-print_certs', '-out', p('cacerts.pem')], Buffer.from(cacerts.toString(), 'base64'));
  const pem = readFileSync(p('cacerts.pem'), 'utf8');
  t.equal(pem.match(/BEGIN CERTIFICATE/g)?.length, 2, 'intermediate and root');
  t.match(pem, gw.ca.material.root.toString().trim().split('\n')[1]!, 'contains our root');

  const token = (await gw.ca.createToken('dev1')).token;
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('dev.key')]);
  const csr = openssl(['req', '-new', '-key', p('dev.key'), '-subj', '/CN=dev1', '-outform', 'DER']);
  writeTemp(work, 'dev.csr.b64', csr.toString('base64').replace(/.{64}/g, '$&\n'));
  const enrolled = await curl('--cacert', p('cacerts.pem'), '-u', `dev1:${token}`, '-H', 'Content-Type: application/pkcs10', '-H', 'Content-Transfer-Encoding: base64', '--data-binary', `@${p('dev.csr.b64')}`, `${base}${EST_PATHS.simpleenroll}`);
  openssl(['pkcs7', '-inform', 'DER', '-print_certs', '-out', p('dev.crt')], Buffer.from(enrolled.toString(), 'base64'));
  t.match(openssl(['verify', '-purpose', 'sslclient', '-CAfile', p('cacerts.pem'), p('dev.crt')]).toString(), /dev.crt: OK/);

  // Renewal over mTLS with the new certificate and a new key, base64 on one line this time.
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('dev2.key')]);
  writeTemp(work, 'dev2.csr.b64', openssl(['req', '-new', '-key', p('dev2.key'), '-subj', '/CN=dev1', '-outform', 'DER']).toString('base64'));
  const renewed = await curl('--cacert', p('cacerts.pem'), '--cert', p('dev.crt'), '--key', p('dev.key'), '--data-binary', `@${p('dev2.csr.b64')}`, `${base}${EST_PATHS.simplereenroll}`);
  openssl(['pkcs7', '-inform', 'DER', '-print_certs', '-out', p('dev2.crt')], Buffer.from(renewed.toString(), 'base64'));
  t.match(openssl(['verify', '-purpose', 'sslclient', '-CAfile', p('cacerts.pem'), p('dev2.crt')]).toString(), /OK/);
  t.not(readFileSync(p('dev2.crt'), 'utf8'), readFileSync(p('dev.crt'), 'utf8'));

  t.equal((await runCurl(work, ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', p('cacerts.pem'), `${base}${EST_PATHS.csrattrs}`])).toString(), '204');

  // Revoke through the CLI code path's CA object; the served CRL must make openssl refuse the certificate.
  const serial = openssl(['x509', '-in', p('dev2.crt'), '-noout', '-serial']).toString().trim().split('=')[1]!;
  await gw.ca.revoke({ serial });
  writeTemp(work, 'crl.der', await curl('--cacert', p('cacerts.pem'), `${base}${CRL_PATH}`));
  openssl(['crl', '-inform', 'DER', '-in', p('crl.der'), '-out', p('crl.pem')]);
  let verdict = '';
  try {
    verdict = openssl(['verify', '-crl_check', '-CAfile', p('cacerts.pem'), '-CRLfile', p('crl.pem'), p('dev2.crt')]).toString();
  } catch (e) {
    verdict = String((e as { stdout: Buffer }).stdout) + String((e as { stderr: Buffer }).stderr);
  }
  t.match(verdict, /certificate revoked/);
  t.match(openssl(['verify', '-crl_check', '-CAfile', p('cacerts.pem'), '-CRLfile', p('crl.pem'), p('dev.crt')]).toString(), /OK/, 'the superseded cert was not revoked');
  t.same(readFileSync(join(dir, 'crl.der')), readFileSync(p('crl.der')), 'the CRL is also written to the data folder');
});

t.test('hostile input: a clear 4xx and an unchanged inventory', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const { gw, dir, base } = await gateway(t);
  const work = tempDir(t);
  const ca = gw.ca.caCertificates().map((c) => c.toString()).join('');
  const b64 = (der: Buffer) => der.toString('base64');
  const enroll = (body: string | Buffer, auth?: string, headers?: Record<string, string>) =>
    est(base, EST_PATHS.simpleenroll, { body, auth, ca, headers });
  const reenroll = (body: string | Buffer, cert?: string, key?: string) => est(base, EST_PATHS.simplereenroll, { body, cert, key, ca });

  // Set-up: devices with certificates in every state we need.
  const keyA = makeKey(work);
  const a = await gw.ca.enrollWithToken('dev-a', (await gw.ca.createToken('dev-a')).token, csrWithKey(keyA, '/CN=dev-a'));
  const keyB = makeKey(work);
  const b = await gw.ca.enrollWithToken('dev-b', (await gw.ca.createToken('dev-b')).token, csrWithKey(keyB, '/CN=dev-b'));
  const keyOld = makeKey(work);
  const old = await gw.ca.enrollWithToken('dev-c', (await gw.ca.createToken('dev-c')).token, csrWithKey(keyOld, '/CN=dev-c'));
  await gw.ca.reenroll(old.der, makeCsr(work, '/CN=dev-c').der); // old is now superseded
  const keyRevoked = makeKey(work);
  const revoked = await gw.ca.enrollWithToken('dev-d', (await gw.ca.createToken('dev-d')).token, csrWithKey(keyRevoked, '/CN=dev-d'));
  await gw.ca.revoke({ serial: revoked.serial });
  // An expired certificate and an expired token: made by the same CA with its clock set back.
  const past = await CertificateAuthority.open({ dataDir: dir, now: () => new Date(Date.now() - 3 * DAY), certLifetimeMs: DAY });
  const keyExpired = makeKey(work);
  const expired = await past.enrollWithToken('dev-e', (await past.createToken('dev-e')).token, csrWithKey(keyExpired, '/CN=dev-e'));
  const expiredToken = (await past.createToken('dev-f', 60_000)).token;
  await past.close();
  // A certificate from another CA with a valid device's CN.
  const other = await CertificateAuthority.open({ dataDir: tempDir(t) });
  const keyForeign = makeKey(work);
  const foreign = await other.enrollWithToken('dev-a', (await other.createToken('dev-a')).token, csrWithKey(keyForeign, '/CN=dev-a'));
  await other.close();

  const tokenF = (await gw.ca.createToken('dev-f')).token;
  const usedToken = (await gw.ca.createToken('dev-g')).token;
  await gw.ca.enrollWithToken('dev-g', usedToken, makeCsr(work, '/CN=dev-g').der);
  const goodCsrF = makeCsr(work, '/CN=dev-f').der;
  const broken = Buffer.from(goodCsrF);
  broken.writeUInt8(broken.readUInt8(broken.length - 5) ^ 0xff, broken.length - 5); // inside the signature
  const pemOf = (path: string) => readFileSync(path, 'utf8');

  const before = await inventorySnapshot(dir);
  const cases: Array<[string, () => Promise<Reply>, number, RegExp]> = [
    ['garbage base64', () => enroll('!!! not base64 ***', `dev-f:${tokenF}`), 400, /not valid base64/],
    ['base64 of non-DER', () => enroll(Buffer.from('hello, I am not a CSR').toString('base64'), `dev-f:${tokenF}`), 400, /not a DER-encoded PKCS#10/],
    ['empty body', () => enroll('', `dev-f:${tokenF}`), 400, /empty request body/],
    ['broken signature', () => enroll(b64(broken), `dev-f:${tokenF}`), 400, /signature does not verify/],
    ['RSA-2048 CSR', () => enroll(b64(makeCsr(work, '/CN=dev-f', 'rsa2048').der), `dev-f:${tokenF}`), 400, /RSA-2048: only ECDSA P-256/],
    ['P-384 CSR', () => enroll(b64(makeCsr(work, '/CN=dev-f', 'p384').der), `dev-f:${tokenF}`), 400, /secp384r1: only ECDSA P-256/],
    ['Ed25519 CSR', () => enroll(b64(makeCsr(work, '/CN=dev-f', 'ed25519').der), `dev-f:${tokenF}`), 400, /only ECDSA P-256/],
    ['CN different from the token device', () => enroll(b64(makeCsr(work, '/CN=dev-x').der), `dev-f:${tokenF}`), 403, /does not match the authenticated device "dev-f"/],
    ['reused token', () => enroll(b64(makeCsr(work, '/CN=dev-g').der), `dev-g:${usedToken}`), 403, /already been used/],
    ['expired token', () => enroll(b64(goodCsrF), `dev-f:${expiredToken}`), 403, /expired/],
    ["another device's token", () => enroll(b64(makeCsr(work, '/CN=dev-a').der), `dev-a:${tokenF}`), 403, /issued for another device/],
    ['unknown token', () => enroll(b64(goodCsrF), 'dev-f:guess'), 401, /unknown enrollment token/],
    ['no credentials (claim mode off)', () => enroll(b64(goodCsrF)), 401, /requires HTTP Basic/],
    ['bearer instead of basic', () => enroll(b64(goodCsrF), undefined, { Authorization: 'Bearer xyz' }), 401, /HTTP Basic/],
    ['body over the size limit', () => enroll('A'.repeat(MAX_BODY_BYTES + 10), `dev-f:${tokenF}`), 413, /too large/],
    ['CSR over the CSR size limit', () => enroll(Buffer.alloc(9000, 0x30).toString('base64'), `dev-f:${tokenF}`), 413, /CSR too large/],
    ["reenroll with another device's cert", () => reenroll(b64(makeCsr(work, '/CN=dev-a').der), pemOf(writeTemp(work, 'b.crt', b.pem)), pemOf(keyB)), 403, /does not match the authenticated device "dev-b"/],
    ['reenroll with an expired cert', () => reenroll(b64(makeCsr(work, '/CN=dev-e').der), expired.pem, pemOf(keyExpired)), 403, /CERT_HAS_EXPIRED/],
    ['reenroll with a revoked cert', () => reenroll(b64(makeCsr(work, '/CN=dev-d').der), revoked.pem, pemOf(keyRevoked)), 403, /revoked/],
    ['reenroll with a superseded cert', () => reenroll(b64(makeCsr(work, '/CN=dev-c').der), old.pem, pemOf(keyOld)), 403, /already been renewed/],
    ['reenroll with a cert from another CA', () => reenroll(b64(makeCsr(work, '/CN=dev-a').der), foreign.pem, pemOf(keyForeign)), 401, /client certificate rejected/],
    ['reenroll without a client cert', () => reenroll(b64(makeCsr(work, '/CN=dev-a').der)), 401, /requires the current client certificate/],
    ['reenroll with the same key', () => reenroll(b64(csrWithKey(keyA, '/CN=dev-a')), a.pem, pemOf(keyA)), 400, /new key/],
    ['GET on simpleenroll', () => est(base, EST_PATHS.simpleenroll, { ca }), 405, /accepts POST only/],
    ['unknown path', () => est(base, `${EST_PREFIX}/../../etc/passwd`, { ca }), 404, /no such endpoint/],
  ];
  for (const [name, run, status, reason] of cases) {
    const reply = await run();
    t.equal(reply.status, status, `${name}: status`);
    t.match(reply.body, reason, `${name}: reason`);
    t.match(String(reply.headers['content-type']), /^text\/plain/, `${name}: plain text`);
  }
  t.same(await inventorySnapshot(dir), before, 'inventory unchanged by every refused request');
  // And the good request still works afterwards: the token was not consumed by the refusals.
  const ok = await enroll(b64(goodCsrF), `dev-f:${tokenF}`);
  t.equal(ok.status, 200);
  t.match(certFromReply(ok.body), /BEGIN CERTIFICATE/);
});

t.test('claim mode: unauthenticated enrollment over EST, then wott device claim', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const { gw, base } = await gateway(t, true);
  const work = tempDir(t);
  const ca = gw.ca.caCertificates().map((c) => c.toString()).join('');
  const reply = await est(base, EST_PATHS.simpleenroll, { body: makeCsr(work, '/CN=sensor-1').der.toString('base64'), ca });
  t.equal(reply.status, 200);
  t.match(openssl(['x509', '-noout', '-subject'], certFromReply(reply.body)).toString(), /CN = sensor-1/);
  t.equal((await gw.ca.inventory.device('sensor-1'))?.state, 'unclaimed');
  const again = await est(base, EST_PATHS.simpleenroll, { body: makeCsr(work, '/CN=sensor-1').der.toString('base64'), ca });
  t.equal(again.status, 401, 'a known device cannot re-enroll unauthenticated');
  await gw.fleet.claim('sensor-1');
  t.equal((await gw.ca.inventory.device('sensor-1'))?.state, 'active');
});
