/**
 * The cryptography and the refusals of credentials (issue 17): a JWE for device A does not open with B's key, a
 * tampered JWE is refused by the agent (which keeps its copy), the at-rest key and its passphrase, and hostile
 * input — path-like names, huge values, unknown Linux users — refused with nothing written.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CredentialFiles, CredentialReceiver, lookupLinuxUser } from '../../agent/credentials.js';
import { CredentialService, CredentialVault, decryptWithKey, encryptForCertificate, openSecret } from '../../credentials/index.js';
import { SqliteCredentialStore } from '../../store/index.js';
import { makeCsr, memoryLogger, openssl, tempDir } from '../helpers.js';

/** A self-signed P-256 certificate and its key (the JWE only needs the public key of a certificate). */
function device(dir: string, id: string): { keyPem: string; certPem: string } {
  const { keyPath } = makeCsr(dir, `/CN=${id}`);
  const certPem = openssl(['req', '-new', '-x509', '-key', keyPath, '-subj', `/CN=${id}`, '-days', '1']).toString();
  return { keyPem: readFileSync(keyPath, 'utf8'), certPem };
}

t.test('a JWE opens only with the key it was made for, and only as what it says it is', async (t) => {
  const dir = tempDir(t);
  const a = device(dir, 'dev-a');
  const b = device(dir, 'dev-b');
  const payload = { device: 'dev-a', name: 'api-key', version: 3, linuxUser: 'pi', value: Buffer.from('hunter2') };
  const jwe = await encryptForCertificate(a.certPem, payload);
  t.notOk(jwe.includes('hunter2') || Buffer.from(jwe).includes(Buffer.from('hunter2').toString('base64')), 'no plaintext in the JWE');
  t.equal((await decryptWithKey(jwe, a.keyPem, payload)).toString(), 'hunter2');
  t.equal((await openSecret(jwe, a.keyPem, payload)).linuxUser, 'pi', 'the Linux user travels inside');
  // The header's ephemeral key is random base64url, which can spell 'pi' by chance: look at everything else.
  const { epk, ...header } = JSON.parse(Buffer.from(jwe.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
  t.ok(epk, 'an ECDH-ES header carries its ephemeral key');
  t.notOk(JSON.stringify(header).includes('pi'), 'not in the protected header');
  await t.rejects(decryptWithKey(jwe, b.keyPem, { ...payload, device: 'dev-a' }), 'B cannot decrypt what was encrypted to A');
  await t.rejects(decryptWithKey(jwe, a.keyPem, { ...payload, name: 'other' }), /not dev-a\/other/, 'not under another name');
  await t.rejects(decryptWithKey(jwe, a.keyPem, { ...payload, version: 2 }), 'not as another version');
});

t.test('the agent refuses a tampered JWE and keeps its copy', async (t) => {
  const dir = tempDir(t);
  const a = device(dir, 'dev-a');
  const files = new CredentialFiles(join(dir, 'creds'));
  const log = memoryLogger();
  // Not connected to anything: handle() is what the MQTT message handler calls.
  const receiver = new CredentialReceiver({ urls: ['mqtts://127.0.0.1:1'], caPem: a.certPem, device: 'dev-a', identity: a, files, log });
  t.teardown(() => receiver.close());
  const deliver = async (value: string, version: number, mangle = (s: string) => s) =>
    JSON.stringify({ type: 'deliver', name: 'api-key', version, serial: '01', jwe: mangle(await encryptForCertificate(a.certPem, { device: 'dev-a', name: 'api-key', version, linuxUser: null, value: Buffer.from(value) })) });
  await receiver.handle(await deliver('first', 1), a.keyPem);
  t.equal(readFileSync(join(files.dir, 'api-key'), 'utf8'), 'first');
  // Flip one character of the ciphertext part (compact JWE: header.key.iv.ciphertext.tag).
  const flip = (jwe: string) => {
    const parts = jwe.split('.');
    const ct = parts[3]!;
    parts[3] = (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1);
    return parts.join('.');
  };
  await receiver.handle(await deliver('second', 2, flip), a.keyPem);
  t.equal(readFileSync(join(files.dir, 'api-key'), 'utf8'), 'first', 'tampered: the old copy is kept');
  t.same(files.list(), [{ name: 'api-key', version: 1, linuxUser: null }]);
  t.ok(log.lines.some((l: { msg?: string }) => /refused a JWE/.test(l.msg ?? '')), 'the refusal is logged');
  t.notOk(JSON.stringify(log.lines).includes('first'), 'values never logged');
  // A JWE for another device's key is refused the same way.
  const b = device(dir, 'dev-b');
  const forB = JSON.stringify({ type: 'deliver', name: 'api-key', version: 5, serial: '02', jwe: await encryptForCertificate(b.certPem, { device: 'dev-a', name: 'api-key', version: 5, linuxUser: null, value: Buffer.from('x') }) });
  await receiver.handle(forB, a.keyPem);
  t.equal(readFileSync(join(files.dir, 'api-key'), 'utf8'), 'first');
  // Withdrawal and manifest.
  await receiver.handle(JSON.stringify({ type: 'manifest', held: [{ name: 'api-key', version: 1 }] }), a.keyPem);
  t.ok(existsSync(join(files.dir, 'api-key')), 'listed in the manifest: kept');
  await receiver.handle(JSON.stringify({ type: 'withdraw', name: 'api-key' }), a.keyPem);
  t.notOk(existsSync(join(files.dir, 'api-key')), 'withdrawn: deleted');
  t.same(files.list(), []);
});

t.test('the owner is the one inside the JWE: a Linux user added or changed around it is ignored', async (t) => {
  const dir = tempDir(t);
  const a = device(dir, 'dev-a');
  const files = new CredentialFiles(join(dir, 'creds'));
  const receiver = new CredentialReceiver({ urls: ['mqtts://127.0.0.1:1'], caPem: a.certPem, device: 'dev-a', identity: a, files, log: memoryLogger() });
  t.teardown(() => receiver.close());
  const jwe = async (linuxUser: string | null, version: number) => encryptForCertificate(a.certPem, { device: 'dev-a', name: 'owned', version, linuxUser, value: Buffer.from('v') });
  // A message that claims another owner outside the encryption (as an old gateway, or someone on the way, might).
  await receiver.handle(JSON.stringify({ type: 'deliver', name: 'owned', version: 1, linuxUser: 'nobody', serial: '01', jwe: await jwe('root', 1) }), a.keyPem);
  t.same(files.list(), [{ name: 'owned', version: 1, linuxUser: 'root' }], 'root, from the JWE');
  await receiver.handle(JSON.stringify({ type: 'deliver', name: 'owned', version: 2, linuxUser: 'root', serial: '01', jwe: await jwe(null, 2) }), a.keyPem);
  t.same(files.list(), [{ name: 'owned', version: 2, linuxUser: null }], 'no owner in the JWE: none, whatever the message says');
});

t.test('hostile names, huge values and unknown users are refused; nothing is written', async (t) => {
  const dir = tempDir(t);
  const files = new CredentialFiles(join(dir, 'creds'));
  for (const name of ['../etc/passwd', '/etc/shadow', 'a/b', '..', '.hidden', 'UPPER', 'x'.repeat(65), '', 'a\0b', 'sp ace']) {
    t.throws(() => files.write(name, 1, Buffer.from('v'), null), /not a plain file name/, `agent refuses ${JSON.stringify(name)}`);
  }
  t.throws(() => files.write('ok-name', 1, Buffer.from('v'), 'no-such-user-wott'), /unknown Linux user "no-such-user-wott"/);
  t.notOk(existsSync(join(files.dir, 'ok-name')), 'unknown user: not written');
  t.ok(lookupLinuxUser('root'), 'root exists');
  files.write('for-root', 1, Buffer.from('v'), 'root');
  t.equal(statSync(join(files.dir, 'for-root')).mode & 0o777, 0o400);
  if (process.getuid?.() === 0) t.equal(statSync(join(files.dir, 'for-root')).uid, 0, 'owned by the user');
  t.same(readdirSync(files.dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');

  const store = SqliteCredentialStore.open(dir);
  t.teardown(() => store.close());
  const audit: Array<{ action: string; outcome: string; detail?: string }> = [];
  const recorder = { actor: 'test', record: async (e: { action: string; outcome: 'ok' | 'refused'; detail?: string }) => void audit.push(e), as: () => recorder };
  const service = new CredentialService(store, CredentialVault.open(dir), recorder, { maxValueBytes: 1024 });
  for (const name of ['../x', 'a/b', '.x', 'X']) await t.rejects(service.set(name, Buffer.from('v'), { tags: ['t'], minScore: 0.5 }), { status: 400 }, `gateway refuses ${name}`);
  await t.rejects(service.set('big', randomBytes(1025), { tags: ['t'], minScore: 0.5 }), { status: 413 }, 'value over the bound');
  await t.rejects(service.set('notags', Buffer.from('v'), { tags: [], minScore: 0.5 }), /at least one tag/);
  await t.rejects(service.set('score', Buffer.from('v'), { tags: ['t'], minScore: 1.5 }), /min-score/);
  await t.rejects(service.set('user', Buffer.from('v'), { tags: ['t'], minScore: 0.5, linuxUser: '../root' }), /Linux user/);
  await t.rejects(service.rotate('missing', Buffer.from('v')), { status: 404 });
  t.same(await service.list(), [], 'nothing stored');
  t.ok(audit.length > 0 && audit.every((e) => e.outcome === 'refused'), 'every refusal audited');
  await service.set('fine', Buffer.from('v'.repeat(1024)), { tags: ['t'], minScore: 0.5, ttlMs: 60_000 });
  t.equal((await service.show('fine'))?.size, 1024, 'exactly the bound is accepted');
});

t.test('the at-rest key: 0600, wrapped by a passphrase, ciphertexts bound to name and version', async (t) => {
  const dir = tempDir(t);
  const vault = CredentialVault.open(dir, 'pass phrase');
  const sealed = vault.seal('n', 1, Buffer.from('secret'));
  t.equal(statSync(join(dir, 'credentials.key')).mode & 0o777, 0o600);
  t.notOk(readFileSync(join(dir, 'credentials.key'), 'utf8').includes('"key"'), 'the key file holds only the wrapped key');
  t.equal(CredentialVault.open(dir, 'pass phrase').open('n', 1, sealed).toString(), 'secret', 'reopened with the passphrase');
  t.throws(() => CredentialVault.open(dir), /encrypted: set WOTT_CA_PASSPHRASE/);
  t.throws(() => CredentialVault.open(dir, 'wrong'), /wrong passphrase/);
  t.throws(() => vault.open('other', 1, sealed), /cannot be decrypted/, 'not under another name');
  t.throws(() => vault.open('n', 2, sealed), /cannot be decrypted/, 'not as another version');
  const tampered = Buffer.from(sealed);
  tampered[tampered.length - 1]! ^= 1;
  t.throws(() => vault.open('n', 1, tampered), /cannot be decrypted/, 'tampering detected');
});
