/**
 * The `wott` CLI as a user runs it (the built dist/cli/main.js), including commands issued while a gateway
 * process is running: they must take effect in that process.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { CLI, makeCsr, openssl, requireCommand, startGatewayProcess, tempDir, writeTemp } from './helpers.js';
import { CRL_PATH, EST_PATHS } from '../protocol/index.js';

const execFileP = promisify(execFile);

async function wott(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function post(url: string, body: string, auth: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request(url, { method: 'POST', ca, auth }, (r) => {
      let data = '';
      r.on('data', (c) => (data += c));
      r.on('end', () => res({ status: r.statusCode!, body: data }));
    });
    req.on('error', rej);
    req.end(body);
  });
}

t.test('ca init, token create, ca list, ca service, ca revoke, device claim', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const init = await wott(['ca', 'init', '--data', data]);
  t.equal(init.code, 0, init.stderr);
  t.match(init.stdout, /root SHA-256 fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2}/);
  t.equal(statSync(join(data, 'ca', 'intermediate.key')).mode & 0o777, 0o600);

  const token = await wott(['token', 'create', '--device', 'dev1', '--ttl', '1h', '--data', data]);
  t.equal(token.code, 0);
  t.match(token.stdout, /^[A-Za-z0-9_-]{32}\n$/, 'prints only the token');
  t.equal(token.stderr, '');

  const bad = await wott(['token', 'create', '--device', 'Dev One', '--data', data]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /invalid device id "Dev One"/);
  const badTtl = await wott(['token', 'create', '--device', 'dev1', '--ttl', 'forever', '--data', data]);
  t.not(badTtl.code, 0);
  t.match(badTtl.stderr, /duration/);

  const svc = await wott(['ca', 'service', '--role', 'scoring', '--name', 'main', '--out', join(dir, 'svc'), '--data', data]);
  t.equal(svc.code, 0, svc.stderr);
  t.equal(statSync(join(dir, 'svc', 'scoring.key')).mode & 0o777, 0o600);
  t.ok(existsSync(join(dir, 'svc', 'ca.crt')));
  const badRole = await wott(['ca', 'service', '--role', 'root', '--name', 'x', '--out', join(dir, 'x'), '--data', data]);
  t.not(badRole.code, 0);
  t.match(badRole.stderr, /Allowed choices are scoring, admin, broker/);

  const empty = await wott(['ca', 'list', '--json', '--data', data]);
  t.same(JSON.parse(empty.stdout), []);

  const both = await wott(['ca', 'revoke', '--data', data]);
  t.equal(both.code, 2);
  t.match(both.stderr, /exactly one of --device or --serial/);
  const ghost = await wott(['ca', 'revoke', '--device', 'ghost', '--data', data]);
  t.equal(ghost.code, 2);
  t.match(ghost.stderr, /no device "ghost"/);
  const claimGhost = await wott(['device', 'claim', 'ghost', '--data', data]);
  t.equal(claimGhost.code, 2);

  const config = writeTemp(dir, 'bad.yaml', 'ca:\n  certLifetime: 7d\n  lifetime: 3d\n');
  const badConfig = await wott(['token', 'create', '--device', 'dev1', '--data', data, '--config', config]);
  t.equal(badConfig.code, 2);
  t.match(badConfig.stderr, /bad\.yaml:3: ca\.lifetime: unknown field/);
});

t.test('WOTT_CA_PASSPHRASE: keys encrypted at init, required afterwards', async (t) => {
  const data = join(tempDir(t), 'data');
  t.equal((await wott(['ca', 'init', '--data', data], { WOTT_CA_PASSPHRASE: 's3cret' })).code, 0);
  t.match(readFileSync(join(data, 'ca', 'intermediate.key'), 'utf8'), /ENCRYPTED/);
  const without = await wott(['token', 'create', '--device', 'dev1', '--data', data], { WOTT_CA_PASSPHRASE: '' });
  t.not(without.code, 0);
  t.match(without.stderr, /encrypted: set WOTT_CA_PASSPHRASE/);
  t.notMatch(without.stderr, /s3cret/);
  const wrong = await wott(['token', 'create', '--device', 'dev1', '--data', data], { WOTT_CA_PASSPHRASE: 'nope' });
  t.match(wrong.stderr, /wrong WOTT_CA_PASSPHRASE/);
  t.equal((await wott(['token', 'create', '--device', 'dev1', '--data', data], { WOTT_CA_PASSPHRASE: 's3cret' })).code, 0);
});

t.test('commands run beside a running gateway take effect in it', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const claimConfig = writeTemp(dir, 'wott.yaml', 'enrollment:\n  claim: true\n');
  const { child, port, log } = await startGatewayProcess(data, ['--config', claimConfig]);
  t.teardown(() => void child.kill('SIGKILL'));
  const base = `https://localhost:${port}`;
  const ca = readFileSync(join(data, 'ca', 'intermediate.crt'), 'utf8') + readFileSync(join(data, 'ca', 'root.crt'), 'utf8');

  // A token made by the CLI works in the gateway at once.
  const token = (await wott(['token', 'create', '--device', 'dev1', '--data', data])).stdout.trim();
  const enrolled = await post(`${base}${EST_PATHS.simpleenroll}`, makeCsr(dir, '/CN=dev1').der.toString('base64'), `dev1:${token}`, ca);
  t.equal(enrolled.status, 200, enrolled.body);
  const pem = openssl(['pkcs7', '-inform', 'DER', '-print_certs'], Buffer.from(enrolled.body, 'base64')).toString();
  const serial = openssl(['x509', '-noout', '-serial'], pem).toString().trim().split('=')[1]!;

  // Claim mode from the config file; `wott device claim` activates the device.
  const unclaimed = await post(`${base}${EST_PATHS.simpleenroll}`, makeCsr(dir, '/CN=sensor-9').der.toString('base64'), '', ca);
  t.equal(unclaimed.status, 200, unclaimed.body);
  const listed = JSON.parse((await wott(['ca', 'list', '--json', '--data', data])).stdout) as Array<{ id: string; state: string; certificates: Array<{ serial: string; status: string }> }>;
  t.same(listed.map((d) => [d.id, d.state]), [['dev1', 'active'], ['sensor-9', 'unclaimed']]);
  t.equal(listed[0]!.certificates[0]!.serial, serial.toLowerCase());
  const claim = await wott(['device', 'claim', 'sensor-9', '--data', data]);
  t.match(claim.stdout, /sensor-9 is now active/);
  const human = await wott(['ca', 'list', '--data', data]);
  t.match(human.stdout, /^dev1\tactive\t1 certificate\(s\)\n  [0-9a-f]{32}\tactive\tuntil /m);

  // A revocation by the CLI shows in the gateway's served CRL immediately.
  const revoked = await wott(['ca', 'revoke', '--serial', serial, '--reason', 'keyCompromise', '--data', data]);
  t.match(revoked.stdout, new RegExp(`revoked ${serial.toLowerCase()}`));
  const crl = await new Promise<Buffer>((res, rej) => {
    request(`${base}${CRL_PATH}`, { ca }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res(Buffer.concat(chunks)));
    }).on('error', rej).end();
  });
  t.match(openssl(['crl', '-inform', 'DER', '-noout', '-text'], crl).toString(), new RegExp(`Serial Number: ${serial}`, 'i'));

  // SIGTERM stops it cleanly.
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  t.ok(log.some((l) => l.includes('gateway stopped')));
  t.notOk(log.some((l) => l.includes(token)), 'the token never reaches the logs');
});
