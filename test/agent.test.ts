/**
 * The device agent against a real gateway: enrollment with the bootstrap fingerprint, a renewal loop with a
 * two-minute certificate lifetime while telemetry keeps flowing, an unreachable CA, and hostile EST answers.
 */
import t from 'tap';
import { createServer } from 'node:https';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import { AgentStore, RenewalLoop, backoffDelay, renewalDelay, retryDelay, parseCertsOnly, parseRetryAfter, verifyIssued } from '../agent/index.js';
import { CertificateAuthority } from '../ca/index.js';
import { parseCsr } from '../ca/csr.js';
import type { InventoryTransaction } from '../store/index.js';
import { telemetrySchema, topicFilters, type Telemetry } from '../protocol/index.js';
import { CLI, requireCommand, tempDir } from './helpers.js';
import { connect, run, serviceCredentials, testGateway, waitFor } from './mqtt-helpers.js';

const quiet = pino({ level: 'silent' });
const FIXTURE = resolve('test/fixtures/roots/debian12-hardened');

/** Polls an asynchronous condition (an inventory read) until it holds. */
async function eventually(cond: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function enrollWithCli(gw: { httpsPort: number; ca: CertificateAuthority }, dir: string, device: string, extra: string[] = []) {
  const token = (await gw.ca.createToken(device)).token;
  const fingerprint = gw.ca.material.root.fingerprint256;
  return run(process.execPath, [CLI, 'agent', 'enroll', '--server', `https://localhost:${gw.httpsPort}`, '--device', device, '--token', token, '--dir', dir, '--ca-fingerprint', fingerprint, ...extra], 60_000);
}

t.test('renewal timing and backoff are what DESIGN says', async (t) => {
  const L = 7 * 86_400_000;
  for (const r of [0, 0.5, 0.999]) {
    const d = renewalDelay(0, L, 0, () => r);
    t.ok(d <= (2 * L) / 3 && d >= (2 * L) / 3 - L / 20, `delay ${d} within 2/3 L minus jitter <= L/20`);
  }
  t.equal(renewalDelay(0, L, L, () => 0), 0, 'overdue renews now');
  const b = [1, 2, 3, 4, 30].map((n) => backoffDelay(n, L, () => 0.5));
  t.same(b.slice(0, 4), [1000, 2000, 4000, 8000], 'exponential');
  t.equal(b[4], 3_600_000, 'capped at one hour');
  t.equal(backoffDelay(30, 120_000, () => 0.5), 12_000, 'capped at lifetime/10 for short lifetimes');
});

t.test("after a refusal with Retry-After the agent waits at least that long, spread by up to half again", async (t) => {
  const L = 7 * 86_400_000;
  t.equal(retryDelay(1, L, undefined, () => 0.5), 1000, 'without Retry-After: the backoff');
  t.equal(retryDelay(1, L, 5000, () => 0), 5000, 'Retry-After 5 s: at least 5 s');
  t.equal(retryDelay(1, L, 5000, () => 1), 7500, 'and at most half again');
  t.equal(retryDelay(14, L, 5000, () => 0.5), backoffDelay(14, L, () => 0.5), 'a longer backoff wins');
  t.equal(retryDelay(1, L, 10 * 86_400_000, () => 0), 3_600_000, 'a huge Retry-After is capped at an hour');
  // Retry-After is outside data: only plain delta-seconds count, bounded to a day.
  t.equal(parseRetryAfter('7'), 7);
  t.equal(parseRetryAfter(' 12 '), 12);
  t.equal(parseRetryAfter(['3', '9']), 3, 'a repeated header: the first');
  t.equal(parseRetryAfter('999999999'), 86_400, 'bounded to a day');
  for (const bad of [undefined, '', '-1', '1.5', '1e9', 'Wed, 21 Oct 2015 07:28:00 GMT', '0x10', '12345678901', 'NaN', '5; rm -rf /']) {
    t.equal(parseRetryAfter(bad), undefined, `ignored: ${JSON.stringify(bad)}`);
  }
});

t.test('enroll: fingerprint-checked bootstrap, key 0600, refusals write nothing', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = join(tempDir(t), 'wott');
  const ok = await enrollWithCli(gw, dir, 'pi-1');
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /enrolled pi-1/);
  const store = new AgentStore(dir);
  const state = store.state();
  t.equal(state.device, 'pi-1');
  t.equal(statSync(join(dir, `key-${state.generation}.pem`)).mode & 0o777, 0o600, 'private key 0600');
  t.equal(statSync(dir).mode & 0o777, 0o700);
  const cert = new X509Certificate(store.identity().certPem);
  t.match(cert.subject, /CN=pi-1/);
  t.equal((await gw.ca.inventory.device('pi-1'))?.state, 'active');

  const wrongPin = await run(process.execPath, [CLI, 'agent', 'enroll', '--server', `https://localhost:${gw.httpsPort}`, '--device', 'pi-2', '--token', (await gw.ca.createToken('pi-2')).token, '--dir', join(dir, '..', 'x'), '--ca-fingerprint', 'ab'.repeat(32)]);
  t.not(wrongPin.code, 0);
  t.match(wrongPin.stderr, /does not match the pinned one/);
  t.notOk(existsSync(join(dir, '..', 'x')), 'nothing written');
  const badToken = await run(process.execPath, [CLI, 'agent', 'enroll', '--server', `https://localhost:${gw.httpsPort}`, '--device', 'pi-2', '--token', 'nope', '--dir', join(dir, '..', 'y')]);
  t.match(badToken.stderr, /enrollment refused: HTTP 401: unknown enrollment token/);
  t.notOk(existsSync(join(dir, '..', 'y', 'state.json')));
  // No TPM reachable (nothing listens on port 1): a clear error, and nothing written.
  const tpm = await enrollWithCli(gw, join(dir, '..', 'z'), 'pi-3', ['--key-store', 'tpm', '--tpm-tcti', 'swtpm:host=127.0.0.1,port=1']);
  t.not(tpm.code, 0);
  t.match(tpm.stderr, /tpm2_\w+ failed|not found: install tpm2-tools/);
  t.notOk(existsSync(join(dir, '..', 'z', 'state.json')));
});

t.test('print and once: a valid report, the package list in full only when it changed', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = join(tempDir(t), 'wott');
  t.equal((await enrollWithCli(gw, dir, 'pi-1')).code, 0);
  const printed = await run(process.execPath, [CLI, 'agent', 'run', '--dir', dir, '--root', FIXTURE, '--print']);
  t.equal(printed.code, 0, printed.stderr);
  const report = telemetrySchema.parse(JSON.parse(printed.stdout));
  t.equal(report.device, 'pi-1');
  t.ok(report.packages.list?.length, 'print always carries the list');

  const scorer = await connect(gw, { ...(await serviceCredentials(gw, tempDir(t), 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  const got: Telemetry[] = [];
  scorer.on('message', (_topic, payload) => got.push(telemetrySchema.parse(JSON.parse(payload.toString()))));
  await scorer.subscribeAsync(topicFilters.telemetry, { qos: 1 });
  for (let i = 0; i < 2; i++) {
    const once = await run(process.execPath, [CLI, 'agent', 'run', '--dir', dir, '--root', FIXTURE, '--once', '--mqtt', `mqtts://localhost:${gw.mqttPort}`]);
    t.equal(once.code, 0, once.stderr);
  }
  await waitFor(() => got.length === 2, 'two reports');
  t.ok(got[0]!.packages.list, 'first report carries the package list');
  t.notOk(got[1]!.packages.list, 'unchanged list: hash only');
  t.equal(got[1]!.packages.hash, got[0]!.packages.hash);
  t.ok(got[1]!.reportId > got[0]!.reportId, 'report ids increase');
});

t.test('a short-lived certificate renews several times while telemetry keeps flowing', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  t.setTimeout(420_000);
  // 24 s certificates (the CA backdates them by a minute): the agent renews every ~12 s, three times in under 40 s.
  const gw = await testGateway(t, { certLifetimeMs: 24_000 });
  const dir = join(tempDir(t), 'wott');
  t.equal((await enrollWithCli(gw, dir, 'pi-1')).code, 0);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, tempDir(t), 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  const ids: number[] = [];
  scorer.on('message', (_topic, payload) => ids.push(telemetrySchema.parse(JSON.parse(payload.toString())).reportId));
  await scorer.subscribeAsync(topicFilters.telemetry, { qos: 1 });

  // The agent runs as users run it: `wott agent run` in its own process.
  const agent = spawn(process.execPath, [CLI, 'agent', 'run', '--dir', dir, '--mqtt', `mqtts://localhost:${gw.mqttPort}`, '--interval', '2s', '--root', FIXTURE], { stdio: ['ignore', 'ignore', 'pipe'] });
  const agentLog: string[] = [];
  agent.stderr!.on('data', (d: Buffer) => agentLog.push(d.toString()));
  const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
  t.teardown(() => void agent.kill('SIGKILL'));
  const renewed = async () => (await gw.ca.inventory.certificates({ deviceId: 'pi-1' })).filter((c) => c.status === 'superseded').length;
  await eventually(async () => (await renewed()) >= 3, 'three renewals', 400_000);
  await waitFor(() => ids.length > 0 && Math.max(...ids) >= new AgentStore(dir).state().reportId - 1, 'reports after the last renewal', 30_000);
  agent.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops the agent cleanly');
  const store = new AgentStore(dir);
  const renewals = await renewed();
  t.ok(renewals >= 3, `renewed ${renewals} times`);
  t.equal(agentLog.join('').match(/certificate renewed/g)?.length, renewals, 'the agent logged each renewal');
  const unique = [...new Set(ids)].sort((a, b) => a - b);
  t.same(unique, Array.from({ length: unique.length }, (_, i) => i + 1), 'every report id from 1 up arrived (none lost across renewals)');
  t.ok(unique.length >= 10, `${unique.length} reports while renewing`);
  const certs = await gw.ca.inventory.certificates({ deviceId: 'pi-1' });
  t.equal(certs.filter((c) => c.status === 'active').length, 1, 'one active certificate; the rest superseded');
  t.equal(new X509Certificate(store.identity().certPem).serialNumber.toLowerCase(), certs.find((c) => c.status === 'active')!.serial, 'the agent holds the active one');
  t.equal(readFileSync(join(dir, 'state.json'), 'utf8').includes('"generation"'), true);
});

t.test('CA unreachable and hostile EST answers: backoff, no crash, the old certificate kept', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = join(tempDir(t), 'wott');
  t.equal((await enrollWithCli(gw, dir, 'pi-1')).code, 0);
  const store = new AgentStore(dir);
  const original = store.identity();
  const renewed: unknown[] = [];
  const loop = new RenewalLoop(store, (id) => renewed.push(id), quiet);

  // Unreachable: a port nothing listens on.
  store.saveState({ ...store.state(), server: 'https://localhost:1' });
  t.equal(await loop.renewNow(), false);
  t.equal(await loop.renewNow(), false);
  t.same(store.identity(), original, 'old certificate kept');

  // A fake EST server with a valid server certificate from the same CA, answering in hostile ways.
  const other = await CertificateAuthority.open({ dataDir: tempDir(t) });
  t.teardown(() => other.close());
  const server = await gw.ca.issueServer();
  let mode = 'garbage';
  type IssueLeaf = (tx: InventoryTransaction, ...a: unknown[]) => Promise<{ der: Buffer }>;
  const issueLeaf = (ca: CertificateAuthority, cn: string, spki: Buffer) =>
    ca.inventory.transaction((tx) =>
      (ca as unknown as { issueLeaf: IssueLeaf }).issueLeaf.call(ca, tx, 'device', cn, spki, { uris: [`urn:wott:device:${cn}`] }, null, 86_400_000),
    );
  const fake = createServer({ key: server.keyPem, cert: server.pem + gw.ca.material.intermediate.toString(), requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const csr = parseCsr(Buffer.from(Buffer.concat(chunks).toString(), 'base64'));
      let der: Buffer;
      if (mode === 'garbage') return void res.writeHead(200).end('bm90IHBrY3M3');
      if (mode === 'not-base64') return void res.writeHead(200).end('<html>oops</html>');
      if (mode === 'other-cn') der = (await issueLeaf(gw.ca, 'pi-2', csr.spki)).der;
      else if (mode === 'other-key') der = (await issueLeaf(gw.ca, 'pi-1', generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'der', type: 'spki' }))).der;
      else der = (await issueLeaf(other, 'pi-1', csr.spki)).der; // another CA
      res.writeHead(200).end(CertificateAuthority.pkcs7([der]).toString('base64'));
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => fake.close(r)));
  store.saveState({ ...store.state(), server: `https://localhost:${(fake.address() as AddressInfo).port}` });
  for (const m of ['garbage', 'not-base64', 'other-cn', 'other-key', 'other-ca']) {
    mode = m;
    t.equal(await loop.renewNow(), false, `${m}: refused`);
    t.same(store.identity(), original, `${m}: old certificate kept`);
  }
  t.equal(renewed.length, 0);
  t.throws(() => parseCertsOnly('!!'), { message: /not base64/ });
  t.throws(() => verifyIssued(new X509Certificate(original.certPem), 'pi-9', generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, []), { message: /not "pi-9"/ });

  // Back to the real CA: renewal works and re-keys.
  store.saveState({ ...store.state(), server: `https://localhost:${gw.httpsPort}` });
  t.equal(await loop.renewNow(), true);
  t.not(store.identity().keyPem, original.keyPem, 're-keyed');
  t.equal(renewed.length, 1);
});
