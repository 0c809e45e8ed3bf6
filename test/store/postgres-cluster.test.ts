/**
 * Several gateways on one PostgreSQL inventory: three CertificateAuthority objects (one CA, as every node of a
 * cluster holds the same keys), each on its own PostgresInventoryStore (its own pool), issuing at the same moment.
 * The database keeps it right: unique serials, every certificate a client received is stored, a token is used
 * once, a certificate is renewed once, CRL numbers only grow, and a change through one node wakes the others'
 * followers.
 */
import t, { type Test } from 'tap';
import { CertificateAuthority } from '../../ca/index.js';
import { openPostgresInventory, subscribe, type Change, type PostgresInventoryStore } from '../../store/index.js';
import { makeCsr, tempDir } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';
import { startPostgres } from '../postgres-helpers.js';

const server = await startPostgres(t);

async function cluster(t: Test, nodes = 3): Promise<{ cas: CertificateAuthority[]; stores: PostgresInventoryStore[]; url: string }> {
  const url = await server!.newDatabase();
  const dataDir = tempDir(t);
  const stores: PostgresInventoryStore[] = [];
  const cas: CertificateAuthority[] = [];
  for (let i = 0; i < nodes; i++) {
    const store = await openPostgresInventory(url);
    stores.push(store);
    cas.push(await CertificateAuthority.open({ dataDir, inventory: store, onWarning: () => undefined }));
  }
  t.teardown(() => Promise.all(cas.map((ca) => ca.close())));
  return { cas, stores, url };
}

const settle = <T>(ps: Array<Promise<T>>) => Promise.allSettled(ps);

if (server) {
  t.test('3 nodes × 30 concurrent token enrollments: unique serials, every issued certificate stored, each token used once', async (t) => {
    const { cas, stores } = await cluster(t);
    const dir = tempDir(t);
    const n = 90;
    const devices = Array.from({ length: n }, (_, i) => `dev-${i}`);
    const tokens = await Promise.all(devices.map((d, i) => cas[i % 3]!.createToken(d)));
    const csrs = devices.map((d) => makeCsr(dir, `/CN=${d}`).der);
    // Each device enrolls through a node other than the one that made its token.
    const results = await settle(devices.map((d, i) => cas[(i + 1) % 3]!.enrollWithToken(d, tokens[i]!.token, csrs[i]!)));
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    t.same(failures, [], 'every enrollment succeeded');
    const issued = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    t.equal(new Set(issued.map((c) => c.serial)).size, n, 'unique serials');
    for (const c of issued) {
      const row = await stores[2]!.certificate(c.serial);
      if (!row || !row.der.equals(c.der)) t.fail(`certificate ${c.serial} handed out but not stored`);
    }
    t.equal((await stores[0]!.certificates({ kind: 'device' })).length, n, 'exactly the certificates handed out');
    const used = await stores[1]!.tokens();
    t.equal(used.length, n);
    t.ok(used.every((tk) => tk.usedAt !== null), 'every token used');
    t.same(await stores[0]!.integrityCheck(), []);
  });

  t.test('one token raced by three nodes: one enrollment wins', async (t) => {
    const { cas, stores } = await cluster(t);
    const dir = tempDir(t);
    const { token } = await cas[0]!.createToken('racer');
    const results = await settle(cas.map((ca) => ca.enrollWithToken('racer', token, makeCsr(dir, '/CN=racer').der)));
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one certificate');
    t.match(
      results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason),
      [{ message: /already been used/ }, { message: /already been used/ }],
    );
    t.equal((await stores[1]!.certificates({ deviceId: 'racer' })).length, 1, 'one stored');
  });

  t.test('one certificate renewed through three nodes at once: renewed once', async (t) => {
    const { cas, stores } = await cluster(t);
    const dir = tempDir(t);
    const { token } = await cas[0]!.createToken('renewer');
    const first = await cas[0]!.enrollWithToken('renewer', token, makeCsr(dir, '/CN=renewer').der);
    const results = await settle(cas.map((ca) => ca.reenroll(first.der, makeCsr(dir, '/CN=renewer').der)));
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    t.equal(won.length, 1, 'one renewal');
    t.equal(results.filter((r) => r.status === 'rejected').length, 2, 'the others refused');
    const old = (await stores[2]!.certificate(first.serial))!;
    t.equal(old.status, 'superseded');
    t.equal(old.replacedBy, won[0]!.serial);
    t.same((await stores[1]!.certificates({ deviceId: 'renewer', status: 'active' })).map((c) => c.serial), [won[0]!.serial]);
  });

  t.test('CRL numbers only grow while three nodes revoke and publish at once', async (t) => {
    const { cas, stores } = await cluster(t);
    const dir = tempDir(t);
    const issued: Array<{ serial: string }> = [];
    for (let i = 0; i < 9; i++) {
      const { token } = await cas[0]!.createToken(`crl-${i}`);
      issued.push(await cas[0]!.enrollWithToken(`crl-${i}`, token, makeCsr(dir, `/CN=crl-${i}`).der));
    }
    const numbers: number[] = [];
    const sub = subscribe(stores[0]!.feed, 0, (changes: Change[]) => void numbers.push(...changes.filter((c) => c.kind === 'crl').map((c) => Number(c.key))));
    t.teardown(() => sub.stop());
    // Three rounds: every node revokes one certificate (each revoke publishes a CRL) and forces a refresh, together.
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        cas.map(async (ca, i) => {
          await ca.revoke({ serial: issued[round * 3 + i]!.serial }, 'keyCompromise');
          await ca.refreshCrl(true);
        }),
      );
    }
    const latest = (await stores[1]!.latestCrl())!;
    await waitFor(() => numbers.at(-1) === latest.number, 'the feed reaches the latest CRL');
    t.same(numbers, numbers.map((_, i) => i + 1), `CRL numbers 1..${numbers.length}, each once, in order`);
    t.ok(latest.number >= 4, 'several CRLs were published');
    // The latest CRL lists every revocation, whichever node made it.
    const { X509Crl } = await import('@peculiar/x509');
    const listed = new X509Crl(new Uint8Array(latest.der)).entries.map((e) => e.serialNumber.toLowerCase());
    t.same(listed.sort(), issued.map((c) => c.serial.toLowerCase()).sort(), 'all nine revocations in the latest CRL');
    await t.rejects(
      stores[2]!.transaction((tx) => tx.insertCrl({ number: latest.number - 1, thisUpdate: latest.thisUpdate, nextUpdate: latest.nextUpdate, der: latest.der })),
      /only grows|duplicate/,
      'a lower CRL number is refused by the database',
    );
    t.equal((await stores[0]!.latestCrl())!.number, latest.number);
  });

  t.test('a quarantine through one node wakes a follower on another at once (LISTEN/NOTIFY, no polling)', async (t) => {
    const { cas, stores } = await cluster(t, 2);
    const seen: Change[] = [];
    const head = await stores[1]!.feed.head();
    const sub = subscribe(stores[1]!.feed, head, (changes) => void seen.push(...changes));
    t.teardown(() => sub.stop());
    await stores[0]!.transaction((tx) => tx.upsertDevice('quiet', 'quarantined', new Date().toISOString()));
    await waitFor(() => seen.some((c) => c.kind === 'device' && c.key === 'quiet'), 'the other node sees the quarantine');
    t.equal((await stores[1]!.device('quiet'))?.state, 'quarantined');
    t.ok(cas.length === 2);
  });

  t.test('the feed listener connects again after its connection is killed, and catches up', async (t) => {
    const { stores, url } = await cluster(t, 2);
    const seen: string[] = [];
    const sub = subscribe(stores[1]!.feed, await stores[1]!.feed.head(), (changes) => void seen.push(...changes.map((c) => c.key)));
    t.teardown(() => sub.stop());
    await stores[0]!.transaction((tx) => tx.upsertDevice('before', 'active', new Date().toISOString()));
    await waitFor(() => seen.includes('before'), 'first change');
    // Kill every LISTENing backend of this database, as a server restart or a network cut would.
    const db = new URL(url).pathname.slice(1);
    // The first change can arrive through the catch-up read before the listener's own connection has sent LISTEN
    // (a loaded machine, CI once): wait until it has, then kill it.
    let killed: Array<{ ok: boolean }> = [];
    for (let i = 0; i < 100 && killed.length === 0; i++) {
      killed = await server.sql<{ ok: boolean }>(
        'postgres',
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
        [db],
      );
      if (killed.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    t.ok(killed.length >= 1, 'a listening connection was killed');
    await stores[0]!.transaction((tx) => tx.upsertDevice('after', 'active', new Date().toISOString()));
    await waitFor(() => seen.includes('after'), 'the change after the cut arrives');
    t.same(seen, ['before', 'after']);
  });
}
