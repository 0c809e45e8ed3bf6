/**
 * GET /crl is served from memory (issue 11, item 12), against a real gateway over real TLS: a flood of requests
 * writes nothing and makes no new CRL; a revocation by another process (the CLI, on the same inventory) is served
 * at the next request and written to the files once; the CRL is renewed before its nextUpdate. Devices verify
 * against it as before.
 */
import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, openssl, requireCommand, tempDir, writeTemp } from './helpers.js';
import { connect, enroll, run, testGateway } from './mqtt-helpers.js';
import { crlNumber, crlSerials, getBytes } from './est-helpers.js';
import { CRL_PATH } from '../protocol/index.js';

const DAY = 86_400_000;

t.test('a flood of GET /crl writes nothing; CLI revocations and staleness are noticed', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const base = Date.now();
  let offset = 0;
  const gw = await testGateway(t, { crlValidityMs: DAY, now: () => new Date(base + offset) });
  const work = tempDir(t);
  const crlFile = join(gw.dir, 'crl.der');
  const victim = await enroll(gw, work, 'victim-1');
  const good = await enroll(gw, work, 'good-1');
  // The newest CRL recorded and the feed position: any write (a new CRL above all) moves them.
  const crlRows = async () => ({ max: (await gw.ca.inventory.latestCrl())?.number, feed: await gw.ca.inventory.feed.head() });

  const first = await getBytes(gw, CRL_PATH);
  t.equal(first.status, 200);
  const before = { ino: statSync(crlFile).ino, mtime: statSync(crlFile).mtimeMs, rows: await crlRows() };
  t.same(readFileSync(crlFile), first.body, 'the file holds the CRL served');

  // The attack: 300 requests, 30 at a time.
  for (let round = 0; round < 10; round++) {
    const replies = await Promise.all(Array.from({ length: 30 }, () => getBytes(gw, CRL_PATH)));
    for (const r of replies) if (!r.body.equals(first.body)) t.fail('a different CRL was served');
  }
  t.equal(statSync(crlFile).ino, before.ino, 'crl.der was not replaced (no rename)');
  t.equal(statSync(crlFile).mtimeMs, before.mtime, 'crl.der was not rewritten');
  t.same(await crlRows(), before.rows, 'no new CRL was made');

  // Another process revokes (the CLI opens the same inventory); the very next GET serves it.
  const revoke = await run(process.execPath, [CLI, 'ca', 'revoke', '--data', gw.dir, '--device', 'victim-1']);
  t.equal(revoke.code, 0, revoke.stderr);
  const afterRevoke = await getBytes(gw, CRL_PATH);
  t.ok(crlSerials(afterRevoke.body).includes(victim.serial), 'the CLI revocation is served at once');
  t.ok(crlNumber(afterRevoke.body) > crlNumber(first.body), 'with a new CRL number');
  t.same(readFileSync(crlFile), afterRevoke.body, 'and the file holds it');
  const settled = { ino: statSync(crlFile).ino, mtime: statSync(crlFile).mtimeMs, rows: await crlRows() };
  for (let i = 0; i < 50; i++) await getBytes(gw, CRL_PATH);
  t.same({ ino: statSync(crlFile).ino, mtime: statSync(crlFile).mtimeMs, rows: await crlRows() }, settled, 'then nothing is written again');

  // Devices check against it as before: the revoked one fails, the good one passes; the good one still connects.
  const p = (name: string) => join(work, name);
  writeTemp(work, 'chain.pem', gw.caPem);
  writeTemp(work, 'crl.pem', openssl(['crl', '-inform', 'DER'], afterRevoke.body));
  const verify = (certPath: string) => {
    try {
      return openssl(['verify', '-crl_check', '-CAfile', p('chain.pem'), '-CRLfile', p('crl.pem'), certPath]).toString();
    } catch (err) {
      return String((err as { stderr?: Buffer }).stderr ?? err);
    }
  };
  t.match(verify(victim.certPath), /revoked/);
  t.match(verify(good.certPath), /OK/);
  const client = await connect(gw, good);
  await client.endAsync(true);

  // Past half of its validity (on the gateway's clock), the next GET brings a fresh CRL with a later nextUpdate.
  const nextUpdate = (der: Buffer) => Date.parse(openssl(['crl', '-inform', 'DER', '-noout', '-nextupdate'], der).toString().split('=')[1]!);
  offset = DAY / 2 + 60_000;
  const renewed = await getBytes(gw, CRL_PATH);
  t.ok(crlNumber(renewed.body) > crlNumber(afterRevoke.body), 'a new CRL number');
  t.ok(nextUpdate(renewed.body) >= nextUpdate(afterRevoke.body) + DAY / 2, 'nextUpdate moved on');
  t.ok(crlSerials(renewed.body).includes(victim.serial), 'still listing the revocation');
  t.same(readFileSync(crlFile), renewed.body, 'the file follows');
  const renewedRows = await crlRows();
  for (let i = 0; i < 20; i++) await getBytes(gw, CRL_PATH);
  t.same(await crlRows(), renewedRows, 'and is not made again on every request');
});
