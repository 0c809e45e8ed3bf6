/**
 * Issue 11 item 15 (keys): CA keys are encrypted with scrypt as a standard PBES2 EncryptedPrivateKeyInfo that
 * real openssl reads; keys from older versions (PBKDF2, 2,048 iterations) are re-encrypted at load; a passphrase
 * given to an unencrypted CA is reported and `wott ca encrypt` encrypts it; a leaf outliving the issuing CA is refused.
 */
import t from 'tap';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { keyProtection } from '../ca/keys.js';
import { CLI, makeCsr, openssl, tempDir } from './helpers.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { hashToken } from '../ca/authority.js';

const PASS = 'correct horse battery staple';
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

/** What `openssl asn1parse` shows of a PEM key file. */
const asn1 = (path: string) => openssl(['asn1parse', '-in', path]).toString();
const publicOf = (pem: string, passphrase?: string) =>
  createPublicKey(createPrivateKey(passphrase ? { key: pem, passphrase } : pem)).export({ format: 'der', type: 'spki' }).toString('hex');

t.test('CA keys are PBES2 + scrypt (N=2^14, r=8, p=5) + AES-256-CBC, readable by openssl and Node', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir, passphrase: PASS });
  await ca.close();
  for (const name of ['root', 'intermediate']) {
    const path = join(dir, 'ca', `${name}.key`);
    const parsed = asn1(path);
    t.match(parsed, /OBJECT\s+:PBES2/, `${name}: PBES2`);
    t.match(parsed, /OBJECT\s+:scrypt/, `${name}: scrypt KDF`);
    t.match(parsed, /INTEGER\s+:4000\n.*INTEGER\s+:08\n.*INTEGER\s+:05\n/, `${name}: N = 0x4000, r = 8, p = 5`);
    t.match(parsed, /OBJECT\s+:aes-256-cbc/, `${name}: AES-256-CBC`);
    t.notMatch(parsed, /PBKDF2/);
    const fromOpenssl = openssl(['pkey', '-in', path, '-passin', `pass:${PASS}`, '-pubout', '-outform', 'DER']).toString('hex');
    t.equal(fromOpenssl, publicOf(readFileSync(path, 'utf8'), PASS), `${name}: openssl and Node decrypt the same key`);
    t.throws(() => openssl(['pkey', '-in', path, '-passin', 'pass:wrong', '-noout']), undefined, `${name}: openssl refuses a wrong passphrase`);
  }
  const interCertKey = openssl(['x509', '-in', join(dir, 'ca', 'intermediate.crt'), '-noout', '-pubkey']).toString();
  t.equal(createPublicKey(interCertKey).export({ format: 'der', type: 'spki' }).toString('hex'), publicOf(readFileSync(join(dir, 'ca', 'intermediate.key'), 'utf8'), PASS));
  const started = performance.now();
  createPrivateKey({ key: readFileSync(join(dir, 'ca', 'intermediate.key'), 'utf8'), passphrase: PASS });
  t.comment(`decrypting one CA key takes ${Math.round(performance.now() - started)} ms (scrypt N=2^14 r=8 p=5, 16 MiB)`);
});

t.test('keys encrypted the old way (PBKDF2, 2,048 iterations) are re-encrypted with scrypt at load', async (t) => {
  const dir = tempDir(t);
  await (await CertificateAuthority.open({ dataDir: dir, passphrase: PASS })).close();
  const before: Record<string, string> = {};
  for (const name of ['root', 'intermediate']) {
    const path = join(dir, 'ca', `${name}.key`);
    const key = createPrivateKey({ key: readFileSync(path, 'utf8'), passphrase: PASS });
    // What wott wrote before: Node's own PKCS#8 export.
    writeFileSync(path, key.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: PASS }), { mode: 0o600 });
    t.match(asn1(path), /OBJECT\s+:PBKDF2\n(.*\n){2}.*INTEGER\s+:0800\n/, `${name}: an old key, PBKDF2 with 2,048 (0x800) iterations`);
    before[name] = publicOf(readFileSync(path, 'utf8'), PASS);
  }
  const rootPath = join(dir, 'ca', 'root.key');
  const warnings: string[] = [];
  const ca = await CertificateAuthority.open({ dataDir: dir, passphrase: PASS, onWarning: (m) => warnings.push(m) });
  await ca.close();
  t.equal(warnings.filter((w) => /re-encrypted with scrypt/.test(w)).length, 2, 'both keys reported as re-encrypted');
  for (const name of ['root', 'intermediate']) {
    const path = join(dir, 'ca', `${name}.key`);
    t.match(asn1(path), /OBJECT\s+:scrypt/, `${name}: now scrypt`);
    t.equal(publicOf(readFileSync(path, 'utf8'), PASS), before[name], `${name}: the same key`);
    t.equal(openssl(['pkey', '-in', path, '-passin', `pass:${PASS}`, '-pubout', '-outform', 'DER']).toString('hex'), before[name]);
  }
  // Mixed state (as a crash between the two atomic rewrites leaves it): the old one is migrated, the new one kept.
  const interPath = join(dir, 'ca', 'intermediate.key');
  const rootNow = readFileSync(rootPath, 'utf8');
  const inter = createPrivateKey({ key: readFileSync(interPath, 'utf8'), passphrase: PASS });
  writeFileSync(interPath, inter.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: PASS }));
  warnings.length = 0;
  await (await CertificateAuthority.open({ dataDir: dir, passphrase: PASS, onWarning: (m) => warnings.push(m) })).close();
  t.equal(readFileSync(rootPath, 'utf8'), rootNow, 'a strong key is not rewritten');
  t.same(keyProtection(readFileSync(interPath, 'utf8')), { kind: 'encrypted', kdf: 'scrypt N=16384 r=8 p=5', strong: true });
  t.equal(warnings.length, 1);
  await t.rejects(CertificateAuthority.open({ dataDir: dir, passphrase: 'wrong' }), /cannot decrypt .*wrong WOTT_CA_PASSPHRASE/);
});

t.test('a passphrase given to an unencrypted CA is reported; `wott ca encrypt` encrypts the keys', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  t.equal((await wott(['ca', 'init', '--data', data])).code, 0);
  const rootBefore = publicOf(readFileSync(join(data, 'ca', 'root.key'), 'utf8'));

  const ignored = await wott(['ca', 'list', '--data', data], { WOTT_CA_PASSPHRASE: PASS });
  t.equal(ignored.code, 0);
  t.match(ignored.stderr, /warning: WOTT_CA_PASSPHRASE is set but .*root\.key and .*intermediate\.key are not encrypted: the passphrase is ignored.*wott ca encrypt/);

  const noPass = await wott(['ca', 'encrypt', '--data', data], { WOTT_CA_PASSPHRASE: '' });
  t.not(noPass.code, 0);
  t.match(noPass.stderr, /set WOTT_CA_PASSPHRASE/);

  const enc = await wott(['ca', 'encrypt', '--data', data], { WOTT_CA_PASSPHRASE: PASS });
  t.equal(enc.code, 0, enc.stderr);
  t.match(enc.stdout, /root\.key: encrypted \(was not encrypted\)/);
  t.match(enc.stdout, /intermediate\.key: encrypted/);
  for (const name of ['root', 'intermediate']) {
    const path = join(data, 'ca', `${name}.key`);
    t.match(asn1(path), /OBJECT\s+:scrypt/);
    t.equal(statSync(path).mode & 0o777, 0o600);
  }
  t.equal(publicOf(readFileSync(join(data, 'ca', 'root.key'), 'utf8'), PASS), rootBefore, 'the same root key, now encrypted');

  const without = await wott(['ca', 'list', '--data', data], { WOTT_CA_PASSPHRASE: '' });
  t.equal(without.code, 1);
  t.match(without.stderr, /intermediate\.key is encrypted: set WOTT_CA_PASSPHRASE/);
  const withIt = await wott(['ca', 'list', '--data', data], { WOTT_CA_PASSPHRASE: PASS });
  t.equal(withIt.code, 0);
  t.notMatch(withIt.stderr, /warning/, 'no warning once encrypted');
  const again = await wott(['ca', 'encrypt', '--data', data], { WOTT_CA_PASSPHRASE: PASS });
  t.match(again.stdout, /already encrypted \(scrypt N=16384 r=8 p=5\)/, 'idempotent (re-runnable after a crash)');
  const other = await wott(['ca', 'encrypt', '--data', data], { WOTT_CA_PASSPHRASE: 'another' });
  t.not(other.code, 0);
  t.match(other.stderr, /wrong WOTT_CA_PASSPHRASE/, 'a different passphrase does not re-encrypt');
});

t.test('a leaf lifetime beyond the issuing CA is refused at issuance and warned about at open', async (t) => {
  const dir = tempDir(t);
  const DAY = 86_400_000;
  const created = new Date(Date.now() - (5 * 365 - 3) * DAY); // the issuing CA (5 years) has 3 days left
  await (await CertificateAuthority.open({ dataDir: dir, now: () => created })).close();
  const warnings: string[] = [];
  const ca = await CertificateAuthority.open({ dataDir: dir, certLifetimeMs: 7 * DAY, onWarning: (m) => warnings.push(m) });
  t.teardown(() => ca.close());
  t.match(warnings.join('\n'), /device certificate lifetime \(7 d\) exceeds what the issuing CA has left \(2 d/);
  t.match(warnings.join('\n'), /server certificate lifetime \(90 d\) exceeds/);
  const { der } = makeCsr(dir, '/CN=late');
  const { token } = await ca.createToken('late');
  await t.rejects(ca.enrollWithToken('late', token, der), /cannot issue a device certificate until .*: the issuing CA expires .*shorten the lifetime/);
  t.equal((await ca.inventory.certificates()).length, 0, 'nothing recorded');
  t.notOk((await ca.inventory.token(hashToken(token)))?.usedAt, 'the token is not used up');
  const short = await CertificateAuthority.open({ dataDir: dir, certLifetimeMs: DAY, onWarning: () => {} });
  t.teardown(() => short.close());
  const issued = await short.enrollWithToken('late', token, der);
  t.ok(issued.notAfter < new Date(short.material.intermediate.validTo), 'a lifetime that fits is issued');
});

