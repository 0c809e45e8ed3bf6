/**
 * Issue 11 item 14: a lost (or restored-from-backup) inventory.db must not silently bring revoked certificates back.
 * A real gateway revokes a device, the inventory is lost, and the next start is refused; `wott ca recover-inventory`
 * rebuilds the revocations from the CRL the CA signed, and after it the revoked certificate still does not get in.
 */
import t from 'tap';
import { copyFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { CLI, tempDir } from './helpers.js';
import { connect, connectError, enroll, run, testGateway, waitFor } from './mqtt-helpers.js';

const wott = (args: string[]) => run(process.execPath, [CLI, ...args], 60_000);

/** A real gateway on `dir` with alice (in good standing) and bob (revoked through the CLI, as an operator does). */
async function gatewayWithRevokedDevice(t: Tap.Test, dir: string, creds: string) {
  const gw = await testGateway(t, { dataDir: dir });
  const alice = await enroll(gw, creds, 'alice');
  const bob = await enroll(gw, creds, 'bob');
  const out = await wott(['ca', 'revoke', '--device', 'bob', '--data', dir]);
  t.equal(out.code, 0, out.stderr);
  t.match(out.stdout, `revoked ${bob.serial}`);
  // Another process's revocation reaches the gateway through its inventory poll (200 ms), not at once.
  await waitFor(() => gw.plugin.deviceState('bob') === 'revoked', "the gateway to see the CLI's revocation");
  await connectError(gw, bob);
  (await connect(gw, alice)).end(true);
  return { gw, alice, bob };
}

t.test('a lost inventory.db: the gateway and the CLI refuse to start; recover-inventory restores the revocations', async (t) => {
  const dir = tempDir(t);
  const creds = tempDir(t);
  const { gw, alice, bob } = await gatewayWithRevokedDevice(t, dir, creds);
  await gw.close();
  for (const f of ['inventory.db', 'inventory.db-wal', 'inventory.db-shm']) rmSync(join(dir, f), { force: true });

  await t.rejects(testGateway(t, { dataDir: dir }), /inventory .*inventory\.db is missing.*revoked certificates connect again.*recover-inventory/s, 'the gateway refuses to start');
  t.notOk(existsSync(join(dir, 'inventory.db')), 'and creates no empty inventory');
  const list = await wott(['ca', 'list', '--data', dir]);
  t.equal(list.code, 2, 'CLI commands opening the CA are refused too');
  t.match(list.stderr, `${join(dir, 'inventory.db')} is missing`);
  t.match(list.stderr, 'Restore inventory.db (with its inventory.db-wal');

  const recovered = await wott(['ca', 'recover-inventory', '--data', dir]);
  t.equal(recovered.code, 0, recovered.stderr);
  t.match(recovered.stdout, `revoked ${bob.serial}`, "bob's revocation comes back from crl.der");
  t.match(recovered.stdout, /1 revocation\(s\) in the new inventory/);
  t.match(recovered.stderr, /enrolled\s+again with a new token/, 'says what is lost');
  t.same(readdirSync(dir).filter((f) => f.includes('recovering')), [], 'no temporary file left');

  const again = await testGateway(t, { dataDir: dir });
  await connectError(again, bob);
  t.pass("bob's revoked certificate is still refused at the handshake");
  (await connect(again, alice)).end(true);
  t.pass('alice still connects');
  const crl = await again.ca.currentCrl();
  t.ok((await again.ca.inventory.latestCrl())!.number >= 2, 'CRL numbering continues after the recovered CRL');
  t.ok(crl.length > 0);
  await again.close();
});

t.test('an inventory restored from an older backup is refused until the later revocations are re-applied', async (t) => {
  const dir = tempDir(t);
  const creds = tempDir(t);
  const gw = await testGateway(t, { dataDir: dir });
  const alice = await enroll(gw, creds, 'alice');
  const bob = await enroll(gw, creds, 'bob');
  await gw.ca.currentCrl();
  const backup = join(creds, 'backup.db');
  const copied = await wott(['ca', 'backup', '--data', dir, '--out', backup]); // the documented online backup
  t.equal(copied.code, 0, copied.stderr);
  await wott(['ca', 'revoke', '--device', 'bob', '--data', dir]);
  await gw.close();
  for (const f of ['inventory.db', 'inventory.db-wal', 'inventory.db-shm']) rmSync(join(dir, f), { force: true });
  copyFileSync(backup, join(dir, 'inventory.db'));

  await t.rejects(testGateway(t, { dataDir: dir }), /older than the CRL it published.*1 revocation\(s\) in the CRL are not in the inventory/s);
  const recovered = await wott(['ca', 'recover-inventory', '--data', dir]);
  t.equal(recovered.code, 0, recovered.stderr);
  t.match(recovered.stdout, `revoked ${bob.serial}`);
  t.match(recovered.stdout, /added to the inventory/);
  const again = await testGateway(t, { dataDir: dir });
  await connectError(again, bob);
  (await connect(again, alice)).end(true);
  t.equal((await again.ca.inventory.device('alice'))?.state, 'active', "the backup's devices are kept");
  t.equal((await again.ca.inventory.certificate(bob.serial))?.status, 'revoked', "bob's real row is marked revoked");
  await again.close();
  const twice = await wott(['ca', 'recover-inventory', '--data', dir]);
  t.match(twice.stdout, /0 revocation\(s\) added/, 'running it again changes nothing');
});

t.test('recover-inventory takes only a CRL this CA signed; without any CRL only --empty starts over', async (t) => {
  const dir = tempDir(t);
  const other = tempDir(t);
  const creds = tempDir(t);
  const { gw } = await gatewayWithRevokedDevice(t, dir, creds);
  copyFileSync(join(dir, 'inventory.db-wal'), join(creds, 'wal')); // as a kill -9 leaves it
  await gw.close();
  const foreign = await CertificateAuthority.open({ dataDir: other });
  foreign.createToken('x');
  await foreign.refreshCrl(true);
  foreign.close();
  for (const f of ['inventory.db', 'inventory.db-shm']) rmSync(join(dir, f), { force: true });
  copyFileSync(join(creds, 'wal'), join(dir, 'inventory.db-wal'));
  // The -wal of the lost database is still there: the refusal says so, and recovery moves it aside.
  const refused = await wott(['ca', 'list', '--data', dir]);
  t.match(refused.stderr, /inventory\.db-wal is still there: it belongs to the lost database/);

  const forged = await wott(['ca', 'recover-inventory', '--data', dir, '--crl', join(other, 'crl.pem')]);
  t.equal(forged.code, 2);
  t.match(forged.stderr, /is not a CRL signed by this CA's issuing certificate/);
  t.notOk(existsSync(join(dir, 'inventory.db')));

  rmSync(join(dir, 'crl.der'));
  const none = await wott(['ca', 'recover-inventory', '--data', dir]);
  t.equal(none.code, 2);
  t.match(none.stderr, /no CRL at .*crl\.der: give --crl FILE .* or --empty/);
  const fromPem = await wott(['ca', 'recover-inventory', '--data', dir, '--crl', join(dir, 'crl.pem')]);
  t.equal(fromPem.code, 0, 'a PEM copy of the CRL (as Mosquitto has) works too');
  t.match(fromPem.stdout, /1 revocation\(s\) in the new inventory/);
  t.match(fromPem.stdout, /moved the lost database's -wal aside: .*inventory\.db-wal\.orphaned-/);
  t.equal(readdirSync(dir).filter((f) => f.startsWith('inventory.db-wal.orphaned-')).length, 1, "the lost database's -wal is kept aside, not replayed");

  rmSync(join(dir, 'inventory.db'));
  const empty = await wott(['ca', 'recover-inventory', '--data', dir, '--empty']);
  t.equal(empty.code, 0, empty.stderr);
  t.match(empty.stdout, /no CRL: 0 revocation/);
  const list = await wott(['ca', 'list', '--data', dir]);
  t.equal(list.code, 0, 'after a knowing start-over the CA opens');
  t.equal(list.stdout, '');
});

t.test('a crash between making the inventory and the CA on first start does not block the next start', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  await ca.close();
  rmSync(join(dir, 'ca'), { recursive: true }); // as if killed before the CA was renamed into place
  const again = await CertificateAuthority.open({ dataDir: dir });
  t.ok(again.material.root, 'an empty inventory without a CA: the CA is made');
  await again.createToken('dev');
  await again.close();
  rmSync(join(dir, 'ca'), { recursive: true });
  await t.rejects(CertificateAuthority.open({ dataDir: dir }), /is in use \(devices, certificates or tokens\) but the CA it belongs to .* is missing/);
});
