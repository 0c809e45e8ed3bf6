/**
 * `--key-store tpm` against a software TPM (swtpm) driven through tpm2-tools: the TLS key never touches the disk,
 * the CA records the TPM key at enrollment, a fresh process gets a new certificate by signing its CSR with the TPM,
 * and renewals not signed by the device's TPM key are refused.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect as netConnect } from 'node:net';
import { generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { AgentStore, RenewalLoop, TpmKey, createCsr, simpleEnroll, simpleReenroll, tpmHeaders, tpmRefresh } from '../agent/index.js';
import { telemetrySchema, topicFilters, TPM_KEY_HEADER, TPM_SIGNATURE_HEADER, type Telemetry } from '../protocol/index.js';
import type { InventoryStore } from '../store/index.js';
import { CLI, inventorySnapshot, requireCommand, tempDir } from './helpers.js';
import { connect, run, serviceCredentials, testGateway, waitFor } from './mqtt-helpers.js';

const quiet = pino({ level: 'silent' });
const FIXTURE = resolve('test/fixtures/roots/debian12-hardened');

function portFree(port: number): Promise<boolean> {
  return new Promise((r) => {
    const srv = createServer();
    srv.once('error', () => r(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => r(true)));
  });
}

/** A port P with P and P+1 both free (swtpm's server and control channels). */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error('no free port pair');
}

function accepts(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

async function startSwtpm(tt: Parameters<typeof tempDir>[0]): Promise<{ tcti: string; child: ChildProcess }> {
  const dir = tempDir(tt, 'wott-swtpm-');
  for (let attempt = 0; ; attempt++) {
    const port = await freePortPair();
    const child = spawn(
      'swtpm',
      ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--server', `type=tcp,port=${port}`, '--ctrl', `type=tcp,port=${port + 1}`, '--flags', 'not-need-init,startup-clear'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let exited = false;
    child.once('exit', () => (exited = true));
    const until = Date.now() + 10_000;
    while (!exited && Date.now() < until && !(await accepts(port))) await new Promise((r) => setTimeout(r, 50));
    if (!exited && Date.now() < until) {
      tt.teardown(() => void child.kill('SIGKILL'));
      return { tcti: `swtpm:host=127.0.0.1,port=${port}`, child };
    }
    child.kill('SIGKILL');
    if (attempt >= 3) throw new Error('swtpm did not start');
  }
}

/** Every file under `dir` (recursively) that holds a PEM private key. */
function privateKeyFiles(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...privateKeyFiles(path));
    else if (readFileSync(path, 'latin1').includes('PRIVATE KEY')) found.push(path);
  }
  return found;
}

async function deviceTpmKey(gw: { ca: { inventory: InventoryStore } }, id: string): Promise<Buffer | null> {
  return (await gw.ca.inventory.device(id))?.tpmKey ?? null;
}

t.test('key store tpm: enroll, restart, renew, and refusals', async (t) => {
  if (!requireCommand(t, 'swtpm', 'swtpm')) return;
  if (!requireCommand(t, 'tpm2_sign', 'tpm2-tools')) return;
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  t.setTimeout(240_000);
  const { tcti } = await startSwtpm(t);
  const gw = await testGateway(t);
  const server = `https://localhost:${gw.httpsPort}`;
  const dir = join(tempDir(t), 'wott');

  // --- enrollment through the CLI
  const token = (await gw.ca.createToken('tpm-1')).token;
  const enrolled = await run(
    process.execPath,
    [CLI, 'agent', 'enroll', '--server', server, '--device', 'tpm-1', '--token', token, '--dir', dir, '--ca-fingerprint', gw.ca.material.root.fingerprint256, '--key-store', 'tpm', '--tpm-tcti', tcti],
    120_000,
  );
  t.equal(enrolled.code, 0, enrolled.stderr);
  t.match(enrolled.stdout, /enrolled tpm-1/);
  t.same(privateKeyFiles(dir), [], 'no private key anywhere in the agent directory');
  const state = new AgentStore(dir).state();
  t.equal(state.keyStore, 'tpm');
  t.equal(state.tpmHandle, '0x81010001');
  t.equal(state.tpmTcti, tcti);
  const tpm = new TpmKey({ tcti });
  const tpmSpki = await tpm.ensure();
  t.ok((await deviceTpmKey(gw, 'tpm-1'))?.equals(tpmSpki), 'the inventory records the TPM public key');
  t.throws(() => new AgentStore(dir).identity(), { message: /no TLS key in memory/ }, 'a new process has no TLS key');
  const firstSerial = new X509Certificate(readFileSync(join(dir, `cert-${state.generation}.pem`))).serialNumber.toLowerCase();

  // --- a new process: `agent run --once` gets a fresh certificate through the TPM and publishes a report
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, tempDir(t), 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  const got: Telemetry[] = [];
  scorer.on('message', (_topic, payload) => got.push(telemetrySchema.parse(JSON.parse(payload.toString()))));
  await scorer.subscribeAsync(topicFilters.telemetry, { qos: 1 });
  const once = await run(process.execPath, [CLI, 'agent', 'run', '--dir', dir, '--root', FIXTURE, '--once', '--mqtt', `mqtts://localhost:${gw.mqttPort}`], 120_000);
  t.equal(once.code, 0, once.stderr);
  await waitFor(() => got.length === 1, 'a telemetry report');
  t.equal(got[0]!.device, 'tpm-1');
  t.equal(got[0]!.keyStore, 'tpm');
  t.same(privateKeyFiles(dir), [], 'still no private key on disk after run');
  const certs = await gw.ca.inventory.certificates({ deviceId: 'tpm-1' });
  t.equal(certs.length, 2, 'run obtained a second certificate');
  t.equal(certs.find((c) => c.serial === firstSerial)?.status, 'superseded', 'the enrollment certificate was superseded');
  const afterRun = new AgentStore(dir).state();
  const runSerial = new X509Certificate(readFileSync(join(dir, `cert-${afterRun.generation}.pem`))).serialNumber.toLowerCase();
  t.equal(certs.find((c) => c.status === 'active')?.serial, runSerial, 'the agent holds the active certificate');

  // --- in-process: refresh through the TPM, then a TPM-signed renewal
  const store = new AgentStore(dir);
  await tpmRefresh(store);
  const renewed: unknown[] = [];
  const loop = new RenewalLoop(store, (id) => renewed.push(id), quiet, (csr) => tpm.sign(csr));
  t.equal(await loop.renewNow(), true, 'a renewal signed by the TPM succeeds');
  t.equal(renewed.length, 1);
  t.same(privateKeyFiles(dir), [], 'renewal wrote no private key');
  const current = store.identity();
  t.equal(
    new X509Certificate(current.certPem).serialNumber.toLowerCase(),
    (await gw.ca.inventory.certificates({ deviceId: 'tpm-1', status: 'active' }))[0]?.serial,
    'renewed certificate is the active one',
  );

  // --- renewals not signed by the TPM are refused and change nothing
  const caPem = store.caPem();
  const fresh = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = await createCsr('tpm-1', fresh.privateKey, fresh.publicKey);
  const before = await inventorySnapshot(gw.dir);
  await t.rejects(simpleReenroll(server, caPem, current.keyPem, current.certPem, csr), { status: 403, message: /TPM/ }, 'unsigned renewal refused');
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const otherSig = sign('sha256', csr, { key: other.privateKey, dsaEncoding: 'der' });
  await t.rejects(
    simpleReenroll(server, caPem, current.keyPem, current.certPem, csr, tpmHeaders(otherSig)),
    { status: 403, message: /TPM/ },
    'renewal signed by another P-256 key refused',
  );
  await t.rejects(
    simpleReenroll(server, caPem, current.keyPem, current.certPem, csr, { [TPM_SIGNATURE_HEADER]: '!!not base64!!' }),
    { status: 400, message: /base64/ },
    'bad base64 refused',
  );
  t.same(await inventorySnapshot(gw.dir), before, 'refused renewals changed nothing');

  // --- enrollment by TPM signature alone: wrong signatures are refused, nothing changes
  await t.rejects(gw.ca.enrollWithTpm(csr, otherSig), { status: 403, message: /TPM/ });
  await t.rejects(gw.ca.enrollWithTpm(csr, Buffer.from('3006020101020101', 'hex')), { status: 403 });
  // Over EST the caller is unauthenticated: the same 401 as for an unknown or revoked id (no enumeration).
  await t.rejects(simpleEnroll(server, caPem, 'tpm-1', undefined, csr, tpmHeaders(otherSig)), { status: 401, message: /TPM key/ });
  const stranger = await createCsr('tpm-unknown', fresh.privateKey, fresh.publicKey);
  const strangerSig = await tpm.sign(stranger);
  await t.rejects(gw.ca.enrollWithTpm(stranger, strangerSig), { status: 403, message: /not enrolled/ });
  t.same(await inventorySnapshot(gw.dir), before, 'refused TPM enrollments changed nothing');
  t.ok((await deviceTpmKey(gw, 'tpm-1'))?.equals(tpmSpki), 'TPM key unchanged');

  // --- the right signature works (what `agent run` did), superseding the previous certificate
  const issued = await gw.ca.enrollWithTpm(csr, await tpm.sign(csr));
  t.equal(issued.deviceId, 'tpm-1');
  t.equal((await gw.ca.inventory.certificates({ deviceId: 'tpm-1', status: 'active' })).length, 1, 'one active certificate');

  // --- revoked devices cannot use the TPM path
  await gw.ca.revoke({ deviceId: 'tpm-1' });
  const csr2 = await createCsr('tpm-1', other.privateKey, other.publicKey);
  await t.rejects(gw.ca.enrollWithTpm(csr2, sign('sha256', csr2, { key: fresh.privateKey, dsaEncoding: 'der' })), { status: 403 });
  await t.rejects(gw.ca.enrollWithTpm(csr2, Buffer.alloc(0)), { status: 403, message: /revoked/ });
});

t.test('token enrollment with a TPM key: checked before anything is recorded', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const device = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = await createCsr('tpm-2', device.privateKey, device.publicKey);
  const token = (await gw.ca.createToken('tpm-2')).token;
  const before = await inventorySnapshot(gw.dir);
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const p384Spki = p384.publicKey.export({ format: 'der', type: 'spki' });
  await t.rejects(gw.ca.enrollWithToken('tpm-2', token, csr, { spki: p384Spki, signature: sign('sha256', csr, { key: p384.privateKey, dsaEncoding: 'der' }) }), {
    status: 400,
    message: /P-256/,
  });
  const tpmish = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = tpmish.publicKey.export({ format: 'der', type: 'spki' });
  await t.rejects(gw.ca.enrollWithToken('tpm-2', token, csr, { spki, signature: sign('sha256', Buffer.from('other'), { key: tpmish.privateKey, dsaEncoding: 'der' }) }), {
    status: 400,
    message: /does not verify/,
  });
  const caPem = gw.caPem;
  const server = `https://localhost:${gw.httpsPort}`;
  await t.rejects(simpleEnroll(server, caPem, 'tpm-2', token, csr, { [TPM_KEY_HEADER]: 'a', [TPM_SIGNATURE_HEADER]: 'b' }), { status: 400, message: /base64/ });
  t.same(await inventorySnapshot(gw.dir), before, 'refusals changed nothing (token still unused)');
  const cert = await simpleEnroll(server, caPem, 'tpm-2', token, csr, tpmHeaders(sign('sha256', csr, { key: tpmish.privateKey, dsaEncoding: 'der' }), spki));
  t.match(cert.subject, /CN=tpm-2/);
  t.ok((await deviceTpmKey(gw, 'tpm-2'))?.equals(spki), 'TPM key recorded');
});
