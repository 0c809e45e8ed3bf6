/**
 * OCSP against a real `wott gateway` process over real TLS, asked by the real `openssl ocsp` at the URL the device
 * certificate itself names (authorityInfoAccess): good, then revoked (reason and time) after `wott ca revoke` in
 * another process; a serial we never issued and another CA's certificate are unknown; the GET form; nonces; and
 * hostile requests (empty, huge, garbage, wrong method, a flood) get an OCSP error status or a 4xx, never a 5xx.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { OCSPResponse, OCSPResponseStatus } from '@peculiar/asn1-ocsp';
import { CertificateAuthority } from '../ca/index.js';
import { EST_PATHS, OCSP_PATH } from '../protocol/index.js';
import { CLI, inventorySnapshot, makeCsr, openssl, requireCommand, startGatewayProcess, tempDir, writeTemp } from './helpers.js';
import { certFromReply, est, serialOf, type Reply } from './est-helpers.js';
import { run } from './mqtt-helpers.js';

/** stdout + stderr of an openssl run and its exit code (`openssl ocsp` reports verification on stderr). */
function opensslText(args: string[]): { code: number | null; text: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, text: `${r.stdout}${r.stderr}` };
}

/** A time as openssl prints it: "Nov  3 06:48:22 2026 GMT". */
function opensslTime(d: Date): string {
  const month = d.toUTCString().slice(8, 11);
  return `${month} ${String(d.getUTCDate()).padStart(2, ' ')} ${d.toISOString().slice(11, 19)} ${d.getUTCFullYear()} GMT`;
}

const bytes = (reply: Reply) => Buffer.from(reply.body, 'latin1');
const ocspStatus = (der: Buffer) => OCSPResponseStatus[AsnConvert.parse(der, OCSPResponse).responseStatus];

t.test('openssl ocsp against the gateway: good, revoked after `wott ca revoke`, unknown; GET; hostile requests', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  // ocspValidity from wott.yaml reaches the answers' nextUpdate.
  const config = writeTemp(dir, 'wott.yaml', 'ca:\n  ocspValidity: 10m\n');
  const { child, port, log } = await startGatewayProcess(data, ['--config', config]);
  t.teardown(() => void child.kill('SIGKILL'));
  const interPath = join(data, 'ca', 'intermediate.crt');
  const rootPath = join(data, 'ca', 'root.crt');
  const gw = { httpsPort: port, caPem: readFileSync(interPath, 'utf8') + readFileSync(rootPath, 'utf8') };

  // A device enrolls over EST with a token the CLI made.
  const token = await run(process.execPath, [CLI, 'token', 'create', '--device', 'dev-1', '--data', data]);
  t.equal(token.code, 0, token.stderr);
  const enrolled = await est(gw, EST_PATHS.simpleenroll, { body: makeCsr(dir, '/CN=dev-1').der.toString('base64'), auth: `dev-1:${token.stdout.trim()}` });
  t.equal(enrolled.status, 200, enrolled.body);
  const devPem = certFromReply(enrolled.body);
  const devPath = writeTemp(dir, 'dev.pem', devPem);
  const serial = serialOf(devPem);

  // The certificate names the responder (AIA), and that is the URL openssl asks.
  const certText = openssl(['x509', '-noout', '-text', '-in', devPath]).toString();
  t.match(certText, /Authority Information Access:\s+OCSP - URI:https:\/\/localhost:\d+\/ocsp/);
  const url = openssl(['x509', '-noout', '-ocsp_uri', '-in', devPath]).toString().trim();
  t.equal(url, `https://localhost:${port}${OCSP_PATH}`);
  const ask = (cert: string, ...extra: string[]) =>
    opensslText(['ocsp', '-issuer', interPath, '-cert', cert, '-url', url, '-CAfile', rootPath, '-resp_text', ...extra]);

  const good = ask(devPath);
  t.equal(good.code, 0, 'openssl ocsp exits 0', { output: good.text });
  t.match(good.text, /Response verify OK/, 'signed by the issuing CA, verified up to the root');
  t.match(good.text, new RegExp(`${devPath}: good`));
  t.match(good.text, /OCSP Nonce:/, 'openssl sent a nonce and it came back (openssl checks that it matches)');
  const [, thisUpdate, nextUpdate] = /This Update: (.*)\n\s+Next Update: (.*)\n/.exec(good.text) ?? [];
  t.equal(Date.parse(nextUpdate!) - Date.parse(thisUpdate!), 600_000, 'nextUpdate = thisUpdate + ca.ocspValidity');

  // Revoked by another process (the CLI on the same inventory): the very next answer says so.
  const revoke = await run(process.execPath, [CLI, 'ca', 'revoke', '--serial', serial, '--reason', 'keyCompromise', '--data', data]);
  t.equal(revoke.code, 0, revoke.stderr);
  const revoked = ask(devPath);
  t.equal(revoked.code, 0, 'openssl ocsp exits 0', { output: revoked.text });
  t.match(revoked.text, /Response verify OK/);
  t.match(revoked.text, new RegExp(`${devPath}: revoked`));
  t.match(revoked.text, /Reason: keyCompromise/);
  const rows = ((await inventorySnapshot(data)) as { revocations: Array<{ serial: string; revokedAt: string; reason: string }> }).revocations;
  t.same(rows.map((r) => [r.serial, r.reason]), [[serial, 'keyCompromise']]);
  t.match(revoked.text, `Revocation Time: ${opensslTime(new Date(rows[0]!.revokedAt))}`, 'the time the CA recorded');

  // A serial we never issued, and another CA's certificate: unknown (and still a verified, signed answer).
  const never = opensslText(['ocsp', '-issuer', interPath, '-serial', '0x1234567890abcdef', '-url', url, '-CAfile', rootPath]);
  t.equal(never.code, 0, 'openssl ocsp exits 0', { output: never.text });
  t.match(never.text, /0x1234567890abcdef: unknown/);
  const other = await CertificateAuthority.open({ dataDir: join(dir, 'other') });
  const foreign = await other.issueService('admin', 'elsewhere');
  const otherInter = writeTemp(dir, 'other-inter.pem', other.material.intermediate.toString());
  await other.close();
  const foreignPath = writeTemp(dir, 'foreign.pem', foreign.pem);
  const foreignAnswer = opensslText(['ocsp', '-issuer', otherInter, '-cert', foreignPath, '-url', url, '-noverify']);
  t.match(foreignAnswer.text, new RegExp(`${foreignPath}: unknown`));

  // The GET form (RFC 6960 A.1): url-encoded base64 of the DER request; cacheable when it carries no nonce.
  const reqPath = join(dir, 'get-req.der');
  openssl(['ocsp', '-issuer', interPath, '-cert', devPath, '-no_nonce', '-reqout', reqPath]);
  const reqDer = readFileSync(reqPath);
  const got = await est(gw, `${OCSP_PATH}/${encodeURIComponent(reqDer.toString('base64'))}`);
  t.equal(got.status, 200);
  t.equal(got.headers['content-type'], 'application/ocsp-response');
  t.match(got.headers['cache-control'], /^max-age=\d+, public, no-transform, must-revalidate$/);
  const getResp = writeTemp(dir, 'get-resp.der', bytes(got));
  const getText = opensslText(['ocsp', '-issuer', interPath, '-reqin', reqPath, '-respin', getResp, '-CAfile', rootPath, '-resp_text']);
  t.equal(getText.code, 0, 'openssl ocsp exits 0', { output: getText.text });
  t.match(getText.text, /Response verify OK/);
  t.match(getText.text, /Cert Status: revoked/);
  t.match(getText.text, /Revocation Reason: keyCompromise/);

  // POST by hand with a nonce: echoed, and such an answer is not for HTTP caches.
  const nonceReq = join(dir, 'nonce-req.der');
  openssl(['ocsp', '-issuer', interPath, '-cert', devPath, '-reqout', nonceReq]);
  const posted = await est(gw, OCSP_PATH, { body: readFileSync(nonceReq), headers: { 'Content-Type': 'application/ocsp-request' } });
  t.equal(posted.status, 200);
  t.equal(posted.headers['cache-control'], 'no-store');
  const postResp = writeTemp(dir, 'post-resp.der', bytes(posted));
  const postText = opensslText(['ocsp', '-issuer', interPath, '-reqin', nonceReq, '-respin', postResp, '-CAfile', rootPath, '-resp_text']);
  t.equal(postText.code, 0, 'openssl ocsp exits 0', { output: postText.text });
  t.match(postText.text, /OCSP Nonce:/);
  t.notMatch(postText.text, /Nonce Verify error/);

  // Hostile requests: an OCSP error status (or a 4xx for the HTTP mistakes), never a 5xx, and the gateway lives on.
  const malformed: Array<[string, Promise<Reply>]> = [
    ['empty POST', est(gw, OCSP_PATH, { body: Buffer.alloc(0), method: 'POST' })],
    ['garbage POST', est(gw, OCSP_PATH, { body: Buffer.from('this is not DER at all') })],
    ['a certificate POSTed', est(gw, OCSP_PATH, { body: openssl(['x509', '-outform', 'DER', '-in', devPath]) })],
    ['1 MiB POST', est(gw, OCSP_PATH, { body: Buffer.alloc(1024 * 1024, 0x30) })],
    ['GET, not base64', est(gw, `${OCSP_PATH}/${encodeURIComponent('!!not*base64!!')}`)],
    ['GET, bad percent-encoding', est(gw, `${OCSP_PATH}/%ZZ%E0%A4%A`)],
    ['GET, base64 of garbage', est(gw, `${OCSP_PATH}/AAAAAAAA`)],
    ['GET, base64 too long', est(gw, `${OCSP_PATH}/${'A'.repeat(12_000)}`)],
  ];
  for (const [what, pending] of malformed) {
    const reply = await pending;
    t.equal(reply.status, 200, `${what}: HTTP 200`);
    t.equal(reply.headers['content-type'], 'application/ocsp-response', what);
    t.equal(ocspStatus(bytes(reply)), 'malformedRequest', `${what}: malformedRequest`);
  }
  const put = await est(gw, OCSP_PATH, { method: 'PUT', body: readFileSync(nonceReq) });
  t.same([put.status, put.headers.allow], [405, 'POST']);
  const getRoot = await est(gw, OCSP_PATH);
  t.same([getRoot.status, getRoot.headers.allow], [405, 'POST'], 'GET needs the request in the path');
  const postGetForm = await est(gw, `${OCSP_PATH}/${encodeURIComponent(reqDer.toString('base64'))}`, { body: reqDer });
  t.same([postGetForm.status, postGetForm.headers.allow], [405, 'GET']);
  t.equal(ask(devPath).code, 0, 'still answering after all that');

  // A flood from one address is limited (429, Retry-After, tryLater); another address is still served.
  const flood = await Promise.all(Array.from({ length: 130 }, () => est(gw, OCSP_PATH, { body: reqDer, localAddress: '127.0.0.7' })));
  const limited = flood.filter((r) => r.status === 429);
  t.ok(limited.length > 0 && limited.length < 130, `${limited.length} of 130 limited`);
  t.match(limited[0]!.headers['retry-after'], /^\d+$/);
  t.equal(ocspStatus(bytes(limited[0]!)), 'tryLater');
  t.notOk(flood.some((r) => r.status >= 500), 'no 5xx');
  const elsewhere = await est(gw, OCSP_PATH, { body: reqDer, localAddress: '127.0.0.8' });
  t.equal(elsewhere.status, 200);
  t.equal(ocspStatus(bytes(elsewhere)), 'successful');

  t.notOk(log.some((l) => /"level":50/.test(l)), 'no errors logged');
});
