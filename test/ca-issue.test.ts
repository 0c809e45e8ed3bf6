/** The CA in-process: profile of issued certificates (checked by openssl), inventory, tokens, claims, CRLs, keys. */
import t from 'tap';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { hashToken } from '../ca/authority.js';
import { FleetService } from '../fleet/index.js';
import { readPrivateKey } from '../ca/keys.js';
import * as der from '../ca/der.js';
import { certificateParts } from '../ca/profile.js';
import { openSqliteInventory } from '../store/index.js';
import { csrWithKey, inventorySnapshot, makeCsr, makeKey, openssl, requireCommand, tempDir, writeTemp } from './helpers.js';

const DAY = 86_400_000;

t.test('first open creates root + intermediate, keys 0600, and reopening reuses them', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  for (const key of ['root.key', 'intermediate.key']) {
    t.equal(statSync(join(dir, 'ca', key)).mode & 0o777, 0o600, `${key} is 0600`);
  }
  const root = new X509Certificate(readFileSync(join(dir, 'ca', 'root.crt')));
  t.ok(root.ca, 'root is a CA');
  t.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.ok(Date.parse(root.validTo) - Date.now() > 19 * 365 * DAY, 'root is long-lived');
  const inter = ca.material.intermediate;
  t.ok(inter.checkIssued(root) && inter.verify(root.publicKey), 'intermediate is signed by the root');
  t.equal(inter.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const again = await CertificateAuthority.open({ dataDir: dir });
  t.equal(again.material.root.fingerprint256, root.fingerprint256, 'second open keeps the same root');
  await again.close();
  // The SQLite header's file format versions (bytes 18 and 19) are 2 in WAL mode.
  t.same([...readFileSync(join(dir, 'inventory.db')).subarray(18, 20)], [2, 2], 'inventory is in WAL mode');
});

t.test('WOTT_CA_PASSPHRASE encrypts the CA keys', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir, passphrase: 'correct horse' });
  await ca.close();
  const pem = readFileSync(join(dir, 'ca', 'intermediate.key'), 'utf8');
  t.match(pem, /ENCRYPTED PRIVATE KEY/);
  t.throws(() => readPrivateKey(join(dir, 'ca', 'intermediate.key')), /encrypted: set WOTT_CA_PASSPHRASE/);
  t.throws(() => readPrivateKey(join(dir, 'ca', 'intermediate.key'), 'wrong'), /wrong WOTT_CA_PASSPHRASE/);
  await t.rejects(CertificateAuthority.open({ dataDir: dir }), /encrypted/);
  const reopened = await CertificateAuthority.open({ dataDir: dir, passphrase: 'correct horse' });
  await reopened.close();
  t.throws(() => readPrivateKey(writeTemp(dir, 'junk.key', 'not a key')), /not a readable private key/);
});

t.test('device certificates follow the profile, whatever the CSR asks for', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir, crlUrl: 'https://gw.example:8443/crl', certLifetimeMs: 3 * DAY });
  t.teardown(() => ca.close());
  // The CSR asks for extras (O=, serverAuth, a SAN for another device, CA:TRUE); none of it may be copied.
  const keyPath = makeKey(dir);
  const cnf = writeTemp(
    dir,
    'req.cnf',
    '[req]\ndistinguished_name=dn\nreq_extensions=ext\n[dn]\n[ext]\nbasicConstraints=CA:TRUE\nextendedKeyUsage=serverAuth\nsubjectAltName=URI:urn:wott:device:victim,DNS:evil.example\n',
  );
  const csr = openssl(['req', '-new', '-key', keyPath, '-subj', '/CN=dev1/O=Evil Corp', '-config', cnf, '-outform', 'DER']);
  const { token } = await ca.createToken('dev1');
  const before = Date.now();
  const issued = await ca.enrollWithToken('dev1', token, csr);
  const certPath = writeTemp(dir, 'dev1.crt', issued.pem);
  const text = openssl(['x509', '-in', certPath, '-noout', '-text']).toString();
  t.match(text, /Subject: CN = dev1\n/, 'subject is exactly CN = device id');
  t.match(text, /URI:urn:wott:device:dev1\n/);
  t.notMatch(text, /victim|evil|Evil/, 'nothing copied from the CSR');
  t.match(text, /Key Usage: critical\n\s+Digital Signature\n/);
  t.match(text, /Extended Key Usage: \n\s+TLS Web Client Authentication\n/);
  t.match(text, /CA:FALSE/);
  t.match(text, /Authority Key Identifier/);
  t.match(text, /Subject Key Identifier/);
  t.match(text, /URI:https:\/\/gw.example:8443\/crl/);
  const cert = new X509Certificate(issued.der);
  const notBefore = Date.parse(cert.validFrom);
  t.ok(notBefore <= before - 59_000 && notBefore >= before - 62_000, 'backdated one minute');
  t.ok(Math.abs(Date.parse(cert.validTo) - (before + 3 * DAY)) < 2000, 'configured lifetime');
  t.same(cert.publicKey.export({ format: 'der', type: 'spki' }), createPublicKey(readFileSync(keyPath)).export({ format: 'der', type: 'spki' }), 'key is the CSR key');
  const chain = writeTemp(dir, 'chain.pem', ca.caCertificates().map((c) => c.toString()).join(''));
  t.match(openssl(['verify', '-purpose', 'sslclient', '-CAfile', chain, certPath]).toString(), /OK/);
  t.throws(() => openssl(['verify', '-purpose', 'sslserver', '-CAfile', chain, certPath]), 'a device cert is not a server cert');
  // serial: positive, 128-bit, stored in the inventory with the fingerprint
  const serialHex = openssl(['x509', '-in', certPath, '-noout', '-serial']).toString().trim().split('=')[1]!.toLowerCase();
  t.equal(serialHex, issued.serial);
  t.equal(issued.serial.length, 32);
  const row = (await ca.inventory.certificate(issued.serial))!;
  t.equal(row.fingerprint, cert.fingerprint256.replace(/:/g, '').toLowerCase());
  t.equal(row.status, 'active');
  t.equal((await ca.inventory.device('dev1'))?.state, 'active');
});

t.test('server and service certificates', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  const chain = writeTemp(dir, 'chain.pem', ca.caCertificates().map((c) => c.toString()).join(''));
  const server = await ca.issueServer(['gw.example', '10.0.0.7', 'fd00::1']);
  const serverPath = writeTemp(dir, 'server.crt', server.pem);
  t.match(openssl(['verify', '-purpose', 'sslserver', '-CAfile', chain, serverPath]).toString(), /OK/);
  const san = openssl(['x509', '-in', serverPath, '-noout', '-ext', 'subjectAltName']).toString();
  t.match(san, /DNS:localhost, DNS:gw.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.7, IP Address:FD00:0:0:0:0:0:0:1/);
  const svc = await ca.issueService('scoring', 'main');
  const svcPath = writeTemp(dir, 'svc.crt', svc.pem);
  t.match(openssl(['verify', '-purpose', 'sslclient', '-CAfile', chain, svcPath]).toString(), /OK/);
  const text = openssl(['x509', '-in', svcPath, '-noout', '-text']).toString();
  t.match(text, /Subject: CN = scoring:main/);
  t.match(text, /URI:urn:wott:service:scoring:main/);
  t.equal((await ca.inventory.certificate(svc.serial))?.kind, 'service');
  await t.rejects(ca.issueService('scoring', 'Bad Name'), /invalid device id/);
});

t.test('tokens: single use, bound to one device, expire, stored hashed', async (t) => {
  const dir = tempDir(t);
  let now = Date.now();
  const ca = await CertificateAuthority.open({ dataDir: dir, now: () => new Date(now) });
  t.teardown(() => ca.close());
  const { token } = await ca.createToken('dev1', 60_000);
  t.match(token, /^[A-Za-z0-9_-]{32}$/);
  const stored = await ca.inventory.tokens();
  t.equal(stored.length, 1);
  t.equal(stored[0]!.hash, hashToken(token), 'only a hash is stored');
  t.notOk(JSON.stringify(stored).includes(token));
  t.notOk(await ca.inventory.token(token), 'the token itself is no key');
  const files = ['inventory.db', 'inventory.db-wal'].map((f) => { try { return readFileSync(join(dir, f)); } catch { return Buffer.alloc(0); } });
  t.notOk(files.some((b) => b.includes(token)), 'the token is nowhere in the database files');

  const csr1 = makeCsr(dir, '/CN=dev1').der;
  const before = await inventorySnapshot(dir);
  await t.rejects(ca.enrollWithToken('dev2', token, makeCsr(dir, '/CN=dev2').der), { status: 403, message: /another device/ });
  await t.rejects(ca.enrollWithToken('dev1', 'nope', csr1), { status: 401, message: /unknown enrollment token/ });
  await t.rejects(ca.enrollWithToken('dev1', token, makeCsr(dir, '/CN=dev2').der), { status: 403, message: /does not match/ });
  await t.rejects(ca.enrollWithToken('DEV', token, csr1), { status: 401 });
  t.same(await inventorySnapshot(dir), before, 'refusals change nothing');

  now += 61_000;
  await t.rejects(ca.enrollWithToken('dev1', token, csr1), { status: 403, message: /expired/ });
  t.same(await inventorySnapshot(dir), before);

  const fresh = (await ca.createToken('dev1', 60_000)).token;
  await ca.enrollWithToken('dev1', fresh, csr1);
  await t.rejects(ca.enrollWithToken('dev1', fresh, csr1), /already been used/);
  await t.rejects(ca.createToken('dev1', 0), /positive/);
  await t.rejects(ca.createToken('Not Valid'), /invalid device id/);
});

t.test('concurrent token enrollments (certificates signed ahead of their transaction): each is recorded before it resolves', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  const other = openSqliteInventory(join(dir, 'inventory.db'));
  t.teardown(async () => {
    await ca.close();
    await other.close();
  });
  const N = 24;
  const devices = await Promise.all(
    Array.from({ length: N }, async (_, i) => ({ id: `par-${i}`, token: (await ca.createToken(`par-${i}`)).token, csr: makeCsr(dir, `/CN=par-${i}`).der })),
  );
  // Every fourth request is refused inside the transaction (a used token, or another device's token): its draft
  // certificate must never reach the inventory.
  await ca.enrollWithToken(devices[0]!.id, devices[0]!.token, devices[0]!.csr);
  const visible: Array<Promise<boolean>> = [];
  const results = await Promise.allSettled(
    devices.map((d, i) => {
      const token = i % 4 === 0 ? (i === 0 ? d.token : devices[i - 1]!.token) : d.token;
      return ca.enrollWithToken(d.id, token, d.csr).then((issued) => {
        // When the caller hears "issued", another connection already sees the committed row.
        visible.push(other.certificate(issued.serial).then((row) => row?.fingerprint === issued.fingerprint));
        return issued;
      });
    }),
  );
  const refused = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
  t.same(refused, Array.from({ length: N / 4 }, (_, k) => 4 * k), 'exactly the requests with a used or foreign token are refused');
  for (const i of refused) t.match((results[i] as PromiseRejectedResult).reason, { status: 403, message: /already been used|another device/ });
  t.same([...new Set(await Promise.all(visible))], [true], 'every certificate was committed when its enrollment resolved');
  const issued = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  t.equal(new Set(issued.map((c) => c.serial)).size, issued.length, 'serials are unique');
  for (const c of issued) t.ok(new X509Certificate(c.der).verify(ca.material.intermediate.publicKey), `${c.deviceId}: signed by the intermediate`);
  const rows = await other.certificates({ kind: 'device' });
  t.equal(rows.length, issued.length + 1, 'the inventory holds the first enrollment and the granted ones, nothing of the refused ones');
  t.same(rows.map((r) => r.deviceId).sort(), ['par-0', ...issued.map((c) => c.deviceId!)].sort());

  // A draft whose serial is already in the inventory is not used: the certificate is signed again with a new one.
  const taken = Buffer.from(rows[0]!.serial, 'hex');
  const internals = ca as unknown as { serial: () => Buffer };
  const serial = internals.serial.bind(ca);
  let calls = 0;
  internals.serial = () => (calls++ === 0 ? taken : serial());
  const clash = await ca.enrollWithToken('par-x', (await ca.createToken('par-x')).token, makeCsr(dir, '/CN=par-x').der);
  t.ok(calls >= 2, 'a second serial was drawn');
  t.not(clash.serial, rows[0]!.serial, 'the taken serial is not reused');
  t.equal((await other.certificate(rows[0]!.serial))?.deviceId, rows[0]!.deviceId, 'the existing certificate is untouched');
  t.equal((await other.certificate(clash.serial))?.fingerprint, clash.fingerprint, 'the new one is recorded');
  t.equal(BigInt('0x' + new X509Certificate(clash.der).serialNumber), BigInt('0x' + clash.serial), 'and carries its recorded serial');
});

t.test('renewal: same identity, new key, supersedes, refuses revoked / expired / superseded / foreign', async (t) => {
  const dir = tempDir(t);
  let now = Date.now();
  const ca = await CertificateAuthority.open({ dataDir: dir, now: () => new Date(now), certLifetimeMs: DAY });
  t.teardown(() => ca.close());
  const key1 = makeKey(dir);
  const first = await ca.enrollWithToken('dev1', (await ca.createToken('dev1')).token, csrWithKey(key1, '/CN=dev1'));
  await t.rejects(ca.reenroll(first.der, csrWithKey(key1, '/CN=dev1')), { status: 400, message: /new key/ });
  await t.rejects(ca.reenroll(first.der, makeCsr(dir, '/CN=dev2').der), { status: 403, message: /does not match/ });
  const second = await ca.reenroll(first.der, makeCsr(dir, '/CN=dev1').der);
  t.equal((await ca.inventory.certificate(first.serial))?.status, 'superseded');
  t.equal((await ca.inventory.certificate(first.serial))?.replacedBy, second.serial);
  await t.rejects(ca.reenroll(first.der, makeCsr(dir, '/CN=dev1').der), { status: 403, message: /already been renewed/ });

  // Another CA's certificate with a matching serial-like shape is not ours.
  const other = await CertificateAuthority.open({ dataDir: tempDir(t) });
  const foreign = await other.enrollWithToken('dev1', (await other.createToken('dev1')).token, makeCsr(dir, '/CN=dev1').der);
  await other.close();
  await t.rejects(ca.reenroll(foreign.der, makeCsr(dir, '/CN=dev1').der), { status: 403, message: /not issued by this CA/ });
  await t.rejects(ca.reenroll(Buffer.from('junk'), makeCsr(dir, '/CN=dev1').der), { status: 401 });

  const service = await ca.issueService('admin', 'ops');
  await t.rejects(ca.reenroll(service.der, makeCsr(dir, '/CN=dev1').der), /not a device certificate/);

  now += DAY + 1000;
  await t.rejects(ca.reenroll(second.der, makeCsr(dir, '/CN=dev1').der), { status: 403, message: /expired/ });
  now -= DAY + 1000;

  await ca.revoke({ serial: second.serial }, 'keyCompromise');
  await t.rejects(ca.reenroll(second.der, makeCsr(dir, '/CN=dev1').der), { status: 403, message: /revoked/ });
});

t.test('claim mode: unauthenticated enrollment leaves the device unclaimed until claimed', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  const fleet = new FleetService(ca, 'test');
  const issued = await ca.enrollUnclaimed(makeCsr(dir, '/CN=sensor-7').der);
  t.equal(issued.deviceId, 'sensor-7');
  t.equal((await ca.inventory.device('sensor-7'))?.state, 'unclaimed');
  await t.rejects(ca.enrollUnclaimed(makeCsr(dir, '/CN=sensor-7').der), { status: 401, message: /already enrolled/ });
  await t.rejects(ca.enrollUnclaimed(makeCsr(dir, '/CN=Bad Id').der), { status: 400, message: /not a valid device id/ });
  t.equal((await fleet.claim('sensor-7')).state, 'active');
  await t.rejects(fleet.claim('sensor-7'), { status: 409 });
  await t.rejects(fleet.claim('ghost'), { status: 404 });
  t.equal((await fleet.quarantine('sensor-7')).state, 'quarantined');
  // An operator token re-enrolls a quarantined device without lifting the quarantine.
  await ca.enrollWithToken('sensor-7', (await ca.createToken('sensor-7')).token, makeCsr(dir, '/CN=sensor-7').der);
  t.equal((await ca.inventory.device('sensor-7'))?.state, 'quarantined');
  t.equal((await fleet.release('sensor-7')).state, 'active');
  await t.rejects(fleet.quarantine('ghost'), /no device/);
});

t.test('revocation feeds a CRL that openssl honours; CRL numbers increase', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  const a = await ca.enrollWithToken('dev-a', (await ca.createToken('dev-a')).token, makeCsr(dir, '/CN=dev-a').der);
  const b = await ca.enrollWithToken('dev-b', (await ca.createToken('dev-b')).token, makeCsr(dir, '/CN=dev-b').der);
  const b2 = await ca.reenroll(b.der, makeCsr(dir, '/CN=dev-b').der);
  const chain = writeTemp(dir, 'chain.pem', ca.caCertificates().map((c) => c.toString()).join(''));
  const crlNumber = () => Number(openssl(['crl', '-in', join(dir, 'crl.pem'), '-noout', '-crlnumber']).toString().trim().split('=')[1]);

  await ca.refreshCrl();
  const n0 = crlNumber();
  const aPath = writeTemp(dir, 'a.crt', a.pem);
  t.match(openssl(['verify', '-crl_check', '-CAfile', chain, '-CRLfile', join(dir, 'crl.pem'), aPath]).toString(), /OK/);

  const issuedAt = new Map((await ca.inventory.certificates({ deviceId: 'dev-b' })).map((c) => [c.serial, c.issuedAt]));
  t.same(await ca.revoke({ deviceId: 'dev-b' }, 'keyCompromise'), [b.serial, b2.serial].sort((x, y) => (issuedAt.get(x)! < issuedAt.get(y)! ? -1 : 1)), 'revokes superseded and active certs of the device');
  t.equal((await ca.inventory.device('dev-b'))?.state, 'revoked');
  t.ok(crlNumber() > n0);
  const b2Path = writeTemp(dir, 'b2.crt', b2.pem);
  const out = (() => {
    try {
      openssl(['verify', '-crl_check', '-CAfile', chain, '-CRLfile', join(dir, 'crl.pem'), b2Path]);
      return 'verified';
    } catch (e) {
      return String((e as { stdout?: Buffer }).stdout) + String((e as { stderr?: Buffer }).stderr);
    }
  })();
  t.match(out, /certificate revoked/);
  t.match(openssl(['crl', '-in', join(dir, 'crl.pem'), '-noout', '-text']).toString(), /Key Compromise/);
  await t.rejects(ca.revoke({ serial: b2.serial }), /already revoked/);
  await t.rejects(ca.revoke({ serial: 'abcdef' }), /no certificate/);
  await t.rejects(ca.revoke({ deviceId: 'ghost' }), /no device/);
  await t.rejects(ca.revoke({ deviceId: 'dev-a' }, 'bogus' as never), /unknown revocation reason/);

  // A stale CRL (past half its validity) is regenerated on demand; a fresh one is reused.
  const current = await ca.currentCrl();
  t.same(await ca.currentCrl(), current, 'fresh CRL reused');
});

t.test('DER helpers', async (t) => {
  t.same(der.smallInteger(0), Buffer.from([2, 1, 0]));
  t.same(der.smallInteger(128), Buffer.from([2, 2, 0, 128]));
  t.same(der.unsignedInteger(Buffer.from([0, 0, 5])), Buffer.from([2, 1, 5]));
  t.same(der.oid('2.5.29.19'), Buffer.from([6, 3, 0x55, 0x1d, 0x13]));
  t.same(der.oid('1.2.840.10045.4.3.2'), Buffer.from('06082a8648ce3d040302', 'hex'));
  const long = der.octetString(Buffer.alloc(300));
  t.same(long.subarray(0, 4), Buffer.from([4, 0x82, 1, 44]));
  t.same(der.time(new Date('2051-01-02T03:04:05Z')), Buffer.concat([Buffer.from([0x18, 15]), Buffer.from('20510102030405Z')]), 'GeneralizedTime after 2049');
  t.same(der.time(new Date('2030-01-02T03:04:05Z')), Buffer.concat([Buffer.from([0x17, 13]), Buffer.from('300102030405Z')]));
  t.throws(() => der.readTlv(Buffer.from([0x30])), /truncated/);
  t.throws(() => der.readTlv(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1])), /unsupported DER length/);
  t.throws(() => der.readTlv(Buffer.from([0x30, 0x82, 1])), /truncated/);
  t.throws(() => der.readTlv(Buffer.from([0x30, 0x05, 1])), /truncated/);
  t.throws(() => certificateParts(der.sequence()), /malformed certificate/);
});

t.test('PKCS#7 certs-only: the same bytes as @peculiar/x509 writes, and openssl reads the certificates back in order', async (t) => {
  const dir = tempDir(t);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  t.teardown(() => ca.close());
  const chain = ca.caCertificates().map((c) => Buffer.from(c.raw));
  const { X509Certificate: PeculiarCertificate, X509Certificates } = await import('@peculiar/x509');
  for (const certs of [chain.slice(0, 1), chain, [...chain].reverse()]) {
    const reference = Buffer.from(new X509Certificates(certs.map((c) => new PeculiarCertificate(new Uint8Array(c)))).export('raw'));
    t.same(CertificateAuthority.pkcs7(certs), reference, `${certs.length} certificate(s)`);
  }
  requireCommand(t, 'openssl', 'openssl');
  const printed = openssl(['pkcs7', '-inform', 'DER', '-print_certs'], CertificateAuthority.pkcs7(chain)).toString();
  const read = [...printed.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s/g, ''), 'base64'));
  t.same(read, chain, 'both certificates, in order');
});
