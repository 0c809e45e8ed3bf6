/**
 * The contract every InventoryStore backend passes (SQLite now, PostgreSQL for the cluster), written once against
 * the interface only, in the style of Aedes' abstract persistence tests. `open` returns a new store on the same
 * underlying data each time it is called (a second connection, as another process or node would have).
 */
import type { Test } from 'tap';
import { subscribe, type InventoryStore, type InventoryTransaction } from '../../store/index.js';

export type OpenInventory = () => Promise<InventoryStore>;

const iso = (ms: number) => new Date(ms).toISOString();
const T0 = Date.parse('2026-11-30T10:00:00Z');

function certificate(serial: string, deviceId: string | null, notAfter = T0 + 7 * 86_400_000, kind: 'device' | 'service' = 'device') {
  return {
    serial,
    deviceId,
    kind,
    commonName: deviceId ?? `admin:${serial}`,
    notBefore: iso(T0),
    notAfter: iso(notAfter),
    fingerprint: `fp-${serial}`,
    issuedAt: iso(T0),
    der: Buffer.from(`der-${serial}`),
  };
}

async function fresh(t: Test, open: OpenInventory): Promise<InventoryStore> {
  const store = await open();
  t.teardown(() => store.close());
  return store;
}

export function inventoryContract(t: { test(name: string, fn: (t: Test) => Promise<void>): unknown }, newBackend: () => OpenInventory): void {
  t.test('devices: create, move, tag, count, list in id order', async (t) => {
    const store = await fresh(t, newBackend());
    await store.transaction(async (tx) => {
      await tx.upsertDevice('b-dev', 'unclaimed', iso(T0));
      await tx.upsertDevice('a-dev', 'active', iso(T0 + 1000));
      await tx.setDeviceTags('a-dev', ['site:x', 'cam'], iso(T0 + 2000));
      await tx.setTpmKey('a-dev', Buffer.from('spki'));
    });
    await store.transaction((tx) => tx.upsertDevice('b-dev', 'active', iso(T0 + 3000)));
    t.same((await store.devices()).map((d) => d.id), ['a-dev', 'b-dev']);
    const a = (await store.device('a-dev'))!;
    t.same(a.tags, ['site:x', 'cam']);
    t.same(a.tpmKey, Buffer.from('spki'));
    const b = (await store.device('b-dev'))!;
    t.equal(b.state, 'active');
    t.equal(b.createdAt, iso(T0), 'a state change keeps the creation time');
    t.equal(b.updatedAt, iso(T0 + 3000));
    t.equal(await store.device('nobody'), undefined);
    t.equal(await store.countDevices('active'), 2);
    await store.transaction(async (tx) => {
      await tx.upsertDevice('old-1', 'unclaimed', iso(T0 - 5000));
      await tx.upsertDevice('old-2', 'unclaimed', iso(T0 - 1000));
    });
    t.same(await store.devicesCreatedBefore('unclaimed', iso(T0 - 1000)), ['old-1', 'old-2'], 'oldest first, boundary included');
    t.equal(await store.oldestCreated('unclaimed'), iso(T0 - 5000));
    t.equal(await store.oldestCreated('quarantined'), undefined);
  });

  t.test('certificates: insert, filter, supersede once, revoke once', async (t) => {
    const store = await fresh(t, newBackend());
    await store.transaction(async (tx) => {
      await tx.upsertDevice('d1', 'active', iso(T0));
      await tx.insertCertificate(certificate('01', 'd1'));
      await tx.insertCertificate(certificate('02', 'd1'));
      await tx.insertCertificate(certificate('03', null, undefined, 'service'));
      await tx.supersede('01', '02');
      await tx.supersede('01', '03'); // a second supersede of a no longer active certificate changes nothing
    });
    const one = (await store.certificate('01'))!;
    t.equal(one.status, 'superseded');
    t.equal(one.replacedBy, '02');
    t.same(one.der, Buffer.from('der-01'), 'the DER round-trips');
    t.same((await store.certificates({ deviceId: 'd1', status: 'active' })).map((c) => c.serial), ['02']);
    t.same((await store.certificates({ kind: 'service' })).map((c) => c.serial), ['03']);
    t.equal(await store.transaction((tx) => tx.revoke('02', 'keyCompromise', iso(T0 + 10))), true);
    t.equal(await store.transaction((tx) => tx.revoke('02', 'unspecified', iso(T0 + 20))), false, 'revoked once');
    t.same(await store.revocation('02'), { serial: '02', revokedAt: iso(T0 + 10), reason: 'keyCompromise' });
    t.equal(await store.revocationCount(), 1);
    t.same(await store.revocations(), [{ serial: '02', revokedAt: iso(T0 + 10), reason: 'keyCompromise' }]);
    t.same((await store.certificateSummaries(['02', 'nope'])).map((c) => [c.serial, c.status]), [['02', 'revoked']]);
    await t.rejects(store.transaction((tx) => tx.insertCertificate(certificate('01', 'd1'))), 'a serial is unique');
  });

  t.test('tokens are used once, also by two connections racing', async (t) => {
    const open = newBackend();
    const a = await fresh(t, open);
    const b = await fresh(t, open);
    await a.transaction((tx) => tx.insertToken('h1', 'd1', iso(T0), iso(T0 + 60_000)));
    const [x, y] = await Promise.all([a.transaction((tx) => tx.useToken('h1', iso(T0 + 1))), b.transaction((tx) => tx.useToken('h1', iso(T0 + 2)))]);
    t.same([x, y].sort(), [false, true], 'exactly one use wins');
    t.ok((await a.token('h1'))!.usedAt);
    t.same((await b.tokens({ deviceId: 'd1' })).map((r) => r.hash), ['h1']);
    t.equal(await a.token('h2'), undefined);
  });

  t.test('a transaction that throws leaves nothing, not even a feed entry', async (t) => {
    const store = await fresh(t, newBackend());
    const head = await store.feed.head();
    await t.rejects(
      store.transaction(async (tx) => {
        await tx.upsertDevice('ghost', 'active', iso(T0));
        await tx.insertToken('h', 'ghost', iso(T0), iso(T0 + 1));
        throw new Error('refused half-way');
      }),
      /refused half-way/,
    );
    t.equal(await store.device('ghost'), undefined);
    t.equal(await store.token('h'), undefined);
    t.equal(await store.feed.head(), head);
    t.ok(await store.isEmpty());
  });

  t.test('reads outside a transaction never see its uncommitted writes; a finished transaction object is dead', async (t) => {
    const store = await fresh(t, newBackend());
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let kept: InventoryTransaction | undefined;
    const writing = store.transaction(async (tx) => {
      kept = tx;
      await tx.upsertDevice('pending', 'active', iso(T0));
      await gate;
    });
    await new Promise((r) => setTimeout(r, 20));
    const reading = store.device('pending');
    release();
    await writing;
    t.ok(await reading, 'the read waited for the commit (or read after it), never mid-transaction');
    await t.rejects(kept!.upsertDevice('late', 'active', iso(T0)), /outside its transaction|transaction/);
    t.equal(await store.device('late'), undefined);
  });

  t.test('commits are visible to another connection at once; the feed wakes it', async (t) => {
    const open = newBackend();
    const writer = await fresh(t, open);
    const reader = await fresh(t, open);
    let ownWakes = 0;
    const stopOwn = writer.feed.onWake(() => ownWakes++);
    const woken = new Promise<void>((resolve) => {
      const stop = reader.feed.onWake(() => {
        stop();
        resolve();
      });
    });
    await writer.transaction((tx) => tx.upsertDevice('seen', 'quarantined', iso(T0)));
    t.equal((await reader.device('seen'))?.state, 'quarantined', 'committed before the promise resolved');
    const keepAlive = setTimeout(() => undefined, 10_000); // the store's own timers do not keep a process alive
    await woken;
    clearTimeout(keepAlive);
    t.pass("the other connection's follower was woken");
    await new Promise((r) => setImmediate(r));
    t.ok(ownWakes >= 1, 'a writer wakes its own followers at once');
    stopOwn();
  });

  t.test('the feed: every write in order, gap-free, continuing across restarts and two writers', async (t) => {
    const open = newBackend();
    let a = await open();
    const b = await fresh(t, open);
    await a.transaction(async (tx) => {
      await tx.upsertDevice('f1', 'active', iso(T0));
      await tx.insertCertificate(certificate('f1c', 'f1'));
    });
    await a.transaction((tx) => tx.revoke('f1c', 'unspecified', iso(T0)));
    await a.transaction((tx) => tx.insertCrl({ number: 1, thisUpdate: iso(T0), nextUpdate: iso(T0 + 1), der: Buffer.from('crl') }));
    await a.close();
    a = await open(); // the writer restarts
    t.teardown(() => a.close());
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < 20; i++) writes.push((i % 2 ? a : b).transaction((tx) => tx.upsertDevice(`w${i}`, 'active', iso(T0))));
    await Promise.all(writes);
    const feed = await b.feed.after(0);
    if (feed === 'reload') throw new Error('unexpected reload');
    t.same(feed.map((c) => c.seq), feed.map((_, i) => i + 1), 'seq 1..n, none lost, none twice');
    t.equal(feed.length, await a.feed.head());
    t.same(feed.slice(0, 2).map((c) => [c.kind, c.key]), [['device', 'f1'], ['certificate', 'f1c']]);
    t.ok(feed.some((c) => c.kind === 'revocation' && c.key === 'f1c'));
    t.ok(feed.some((c) => c.kind === 'crl' && c.key === '1'));
    t.equal(feed.filter((c) => c.kind === 'device' && c.key.startsWith('w')).length, 20, 'both writers');
    const tail = await a.feed.after(feed.length - 3, 2);
    t.same(tail === 'reload' ? tail : tail.map((c) => c.seq), [feed.length - 2, feed.length - 1], 'after(seq, limit)');
    t.same(await a.feed.after(feed.length), []);
  });

  t.test('subscribe(fromSeq): in order, none twice, resumable from the last position, woken by other connections', async (t) => {
    const open = newBackend();
    const writer = await fresh(t, open);
    const reader = await fresh(t, open);
    for (let i = 0; i < 3; i++) await writer.transaction((tx) => tx.upsertDevice(`s${i}`, 'active', iso(T0)));
    const seen: number[] = [];
    let sub = subscribe(reader.feed, 0, (changes) => void seen.push(...changes.map((c) => c.seq)));
    const keepAlive = setInterval(() => undefined, 50);
    t.teardown(() => clearInterval(keepAlive));
    const until = async (n: number) => {
      for (let i = 0; i < 200 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    };
    await until(3);
    await writer.transaction((tx) => tx.upsertDevice('s3', 'active', iso(T0)));
    await until(4);
    t.same(seen, [1, 2, 3, 4], 'the backlog, then a write by another connection');
    const resumeAt = sub.position;
    sub.stop();
    await writer.transaction((tx) => tx.upsertDevice('s4', 'active', iso(T0)));
    sub = subscribe(reader.feed, resumeAt, (changes) => void seen.push(...changes.map((c) => c.seq)));
    await until(5);
    sub.stop();
    t.same(seen, [1, 2, 3, 4, 5], 'a resumed subscription misses nothing and repeats nothing');
  });

  t.test('a snapshot is consistent with its feed position and leaves out expired certificates', async (t) => {
    const store = await fresh(t, newBackend());
    await store.transaction(async (tx) => {
      await tx.upsertDevice('s1', 'active', iso(T0));
      await tx.insertCertificate(certificate('live', 's1', T0 + 86_400_000));
      await tx.insertCertificate(certificate('gone', 's1', T0 - 1000));
    });
    const snap = await store.snapshot(new Date(T0));
    t.equal(snap.seq, await store.feed.head());
    t.same(snap.devices.map((d) => d.id), ['s1']);
    t.same(snap.certificates.map((c) => c.serial), ['live']);
    t.notOk('der' in snap.certificates[0]!, 'summaries carry no DER');
  });

  t.test('the audit log: appended in order, filtered by device', async (t) => {
    const store = await fresh(t, newBackend());
    const entry = (action: string, device: string | null, outcome: 'ok' | 'refused') => ({ time: iso(T0), actor: 'local:op', action, device, target: null, outcome, detail: null });
    await store.transaction(async (tx) => {
      await tx.appendAudit(entry('device.quarantine', 'd1', 'ok'));
      await tx.appendAudit(entry('service.issue', null, 'ok'));
    });
    await store.transaction((tx) => tx.appendAudit(entry('device.claim', 'd1', 'refused')));
    const all = await store.auditEntries();
    t.same(all.map((e) => e.action), ['device.quarantine', 'service.issue', 'device.claim']);
    t.ok(all[0]!.seq < all[1]!.seq && all[1]!.seq < all[2]!.seq);
    t.same((await store.auditEntries({ device: 'd1' })).map((e) => e.outcome), ['ok', 'refused']);
  });

  t.test('CRLs: the latest wins and old ones are dropped', async (t) => {
    const store = await fresh(t, newBackend());
    for (let n = 1; n <= 15; n++) {
      await store.transaction((tx) => tx.insertCrl({ number: n, thisUpdate: iso(T0 + n), nextUpdate: iso(T0 + n + 1), der: Buffer.from(`crl-${n}`) }));
    }
    const latest = (await store.latestCrl())!;
    t.equal(latest.number, 15);
    t.same(latest.der, Buffer.from('crl-15'));
    await t.rejects(store.transaction((tx) => tx.insertCrl({ number: 15, thisUpdate: iso(T0), nextUpdate: iso(T0), der: Buffer.from('x') })), 'a CRL number is used once');
    t.same(await store.integrityCheck(), []);
  });
}
