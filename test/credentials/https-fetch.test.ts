/**
 * Credentials over HTTPS with mutual TLS (issue 17), on a real gateway: `GET /device/v1/credentials` with a device's
 * current certificate (curl, as a device without the agent would) brings its own credentials as JWEs for its key
 * and the manifest, never anyone else's; no certificate, an operator's, a revoked one or a superseded one get
 * nothing; a device certificate opens no other route (the API, metrics). The agent fetches over it when MQTT is down.
 */
import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { enrollAgent, runAgent } from '../../agent/index.js';
import { createCsr, simpleReenroll } from '../../agent/est-client.js';
import { decryptWithKey, openSecret } from '../../credentials/index.js';
import { CREDENTIAL_FETCH_PATH, credentialFetchReplySchema } from '../../protocol/index.js';
import { makeKey, memoryLogger, requireCommand, tempDir } from '../helpers.js';
import { operatorCredentials } from '../api/helpers.js';
import { connect, enroll, serviceCredentials, setScore, testGateway, waitFor } from '../mqtt-helpers.js';

/** curl with a client certificate (asynchronous: the gateway answers in this process); returns status and body. */
async function curl(port: number, path: string, caPath: string, client?: { certPath: string; keyPath: string }, method = 'GET'): Promise<{ status: number; body: string }> {
  const args = ['-s', '-m', '30', '-X', method, '-o', '-', '-w', '\n%{http_code}', '--cacert', caPath, ...(client ? ['--cert', client.certPath, '--key', client.keyPath] : []), `https://localhost:${port}${path}`];
  const out = (await promisify(execFile)('curl', args, { encoding: 'utf8' })).stdout;
  const at = out.lastIndexOf('\n');
  return { status: Number(out.slice(at + 1)), body: out.slice(0, at) };
}

/** Polls an asynchronous condition until it holds (waitFor's, for conditions that need a request). */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('a device fetches its own credentials with its certificate, and nothing else', async (t) => {
  if (!requireCommand(t, 'curl', 'curl')) return;
  const gw = await testGateway(t, { credentials: { fetchIntervalMs: 1 } });
  const dir = tempDir(t);
  const caPath = join(dir, 'ca.pem');
  writeFileSync(caPath, gw.caPem);
  const a = await enroll(gw, dir, 'fetch-a'); // tag db, score 0.9
  const b = await enroll(gw, dir, 'fetch-b'); // no tag
  await gw.fleet.setTags('fetch-a', ['db']);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'fetch')), id: 'scoring:fetch' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'fetch-a', 0.9);
  await setScore(gw, scorer, 'fetch-b', 0.9);
  const secret = `s-${randomBytes(8).toString('hex')}`;
  await gw.credentials.as('local:tester').set('db-password', Buffer.from(secret), { tags: ['db'], minScore: 0.8, linuxUser: 'root' });

  const got = await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, a);
  t.equal(got.status, 200, got.body);
  const reply = credentialFetchReplySchema.parse(JSON.parse(got.body));
  t.equal(reply.device, 'fetch-a');
  t.match(reply.messages, [{ type: 'deliver', name: 'db-password', version: 1, serial: a.serial }, { type: 'manifest', held: [{ name: 'db-password', version: 1 }] }]);
  t.notOk(got.body.includes(secret), 'no plaintext on the wire');
  const deliver = reply.messages[0]!;
  if (deliver.type !== 'deliver') throw new Error('expected a delivery');
  t.equal((await decryptWithKey(deliver.jwe, a.key, { device: 'fetch-a', name: 'db-password', version: 1 })).toString(), secret, 'decrypts with the device key');
  t.equal((await openSecret(deliver.jwe, a.key, { device: 'fetch-a', name: 'db-password', version: 1 })).linuxUser, 'root', 'the Linux user is inside the JWE');
  t.notOk(got.body.includes('linuxUser'), 'and not beside it');
  await t.rejects(decryptWithKey(deliver.jwe, b.key, { device: 'fetch-a', name: 'db-password', version: 1 }), 'not with another device key');
  t.match(await gw.credentials.holders('db-password'), [{ device: 'fetch-a', version: 1 }], 'recorded as delivered (a loss of trust withdraws and flags it)');
  t.ok((await gw.ca.inventory.auditEntries()).some((e) => e.action === 'credential.deliver' && e.device === 'fetch-a'), 'audited');

  const other = await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, b);
  t.equal(other.status, 200);
  t.same(JSON.parse(other.body), { device: 'fetch-b', messages: [{ type: 'manifest', held: [] }] }, 'a device without the tag gets nothing but an empty manifest');

  // Who may not fetch.
  t.equal((await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath)).status, 401, 'no certificate: 401');
  const op = await operatorCredentials(gw, 'admin', 'ada');
  const opPaths = { certPath: join(dir, 'op.crt'), keyPath: join(dir, 'op.key') };
  writeFileSync(opPaths.certPath, op.cert);
  writeFileSync(opPaths.keyPath, op.key, { mode: 0o600 });
  t.equal((await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, opPaths)).status, 403, 'an operator certificate: 403');
  const svc = await serviceCredentials(gw, dir, 'scoring', 'fetch2');
  t.equal((await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, svc)).status, 403, 'a service certificate: 403');
  const selfSigned = { keyPath: makeKey(dir), certPath: join(dir, 'self.crt') };
  execFileSync('openssl', ['req', '-new', '-x509', '-key', selfSigned.keyPath, '-subj', '/CN=fetch-a', '-addext', 'subjectAltName=URI:urn:wott:device:fetch-a', '-days', '1', '-out', selfSigned.certPath]);
  t.equal((await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, selfSigned)).status, 401, "a certificate from another CA naming the device: 401");
  t.equal((await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, a, 'POST')).status, 405, 'GET only');

  // A device certificate opens no other route.
  for (const path of ['/api/v1/devices', '/api/v1/devices/fetch-a', '/api/v1/credentials', '/api/v1/credentials/db-password', '/api/v1/whoami', '/api/v1/trust/fetch-a', '/metrics']) {
    const r = await curl(gw.httpsPort, path, caPath, a);
    t.ok([401, 403].includes(r.status), `${path} with a device certificate: ${r.status}`);
    t.notOk(r.body.includes('db-password') && path !== '/api/v1/credentials/db-password', `${path}: nothing of the credentials`);
  }

  // A renewed device: the old certificate is not the current one any more (credentials go to the new key).
  const newKey = makeKey(dir);
  const keyPem = readFileSync(newKey, 'utf8');
  const csr = await createCsr('fetch-a', createPrivateKey(keyPem), createPublicKey(keyPem));
  const renewed = await simpleReenroll(`https://localhost:${gw.httpsPort}`, gw.caPem, a.key, a.cert, csr);
  const newPaths = { certPath: join(dir, 'renewed.crt'), keyPath: newKey };
  writeFileSync(newPaths.certPath, renewed.toString());
  let fresh = { status: 0, body: '' };
  await until(async () => (fresh = await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, newPaths)).status === 200, 'the renewed certificate fetches');
  const freshReply = credentialFetchReplySchema.parse(JSON.parse(fresh.body));
  const again = freshReply.messages[0]!;
  if (again.type !== 'deliver') throw new Error('expected a delivery');
  t.equal((await decryptWithKey(again.jwe, keyPem, { device: 'fetch-a', name: 'db-password', version: 1 })).toString(), secret, 'encrypted to the new key');
  t.equal((await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, a)).status, 409, 'the superseded certificate: 409');

  // Revoked: nothing.
  await gw.fleet.revoke({ deviceId: 'fetch-a' }, 'keyCompromise');
  await until(async () => (await curl(gw.httpsPort, CREDENTIAL_FETCH_PATH, caPath, newPaths)).status === 403, 'a revoked certificate: 403');
});

t.test('the agent fetches over HTTPS while MQTT is down', async (t) => {
  const gw = await testGateway(t, { credentials: { fetchIntervalMs: 1 } });
  const dir = tempDir(t);
  const agentDir = join(dir, 'agent');
  const credDir = join(dir, 'run', 'credentials');
  const log = memoryLogger();
  const token = (await gw.ca.createToken('fetch-agent')).token;
  await enrollAgent({ server: `https://localhost:${gw.httpsPort}`, device: 'fetch-agent', token, dir: agentDir, caFingerprint: gw.ca.material.root.fingerprint256, keyStore: 'file', log });
  await gw.fleet.setTags('fetch-agent', ['db']);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'agent')), id: 'scoring:agent' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'fetch-agent', 0.9);
  const secret = `s-${randomBytes(8).toString('hex')}`;
  await gw.credentials.as('local:tester').set('api-key', Buffer.from(secret), { tags: ['db'], minScore: 0.8 });

  // MQTT points at a port where nothing listens: only HTTPS can bring the credential.
  const dead = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  const agent = (await runAgent({ dir: agentDir, mqtt: `mqtts://localhost:${dead}`, intervalMs: 3_600_000, root: dir, credentialsDir: credDir, credentialFetchMs: 200, log }))!;
  t.teardown(() => agent.stop());
  const file = join(credDir, 'api-key');
  await waitFor(() => existsSync(file), 'fetched and written at start');
  t.equal(readFileSync(file, 'utf8'), secret);
  t.equal(statSync(file).mode & 0o777, 0o400);
  // Withdrawn while MQTT is still down: the next fetch (on the timer) deletes it.
  await gw.fleet.setTags('fetch-agent', []);
  await waitFor(() => !existsSync(file), 'deleted on a later fetch');
  t.ok(agent.credentials.fetched >= 2, 'fetched on the timer');
  t.notOk(JSON.stringify(log.lines ?? []).includes(secret), 'the value is never logged');
});
