/**
 * Group commit in the SQLite inventory: transactions queued together share one COMMIT, each in its own savepoint.
 * A failing one is rolled back alone; every other one resolves only once its writes are committed, checked from a
 * second connection to the same file at the moment each promise resolves.
 */
import t from 'tap';
import { join } from 'node:path';
import { openSqliteInventory } from '../../store/index.js';
import { tempDir } from '../helpers.js';

t.test('concurrent transactions: one failure rolls back alone, the rest are durable when they resolve', async (t) => {
  const path = join(tempDir(t), 'inventory.db');
  const store = openSqliteInventory(path);
  const other = openSqliteInventory(path);
  t.teardown(async () => {
    await store.close();
    await other.close();
  });
  const now = new Date().toISOString();
  const seenByOther: Array<Promise<boolean>> = [];
  const results = await Promise.allSettled(
    Array.from({ length: 40 }, (_, i) =>
      store
        .transaction(async (tx) => {
          await tx.upsertDevice(`dev-${i}`, 'active', now);
          if (i === 17) throw new Error('fails after its write');
          return i;
        })
        .then((value) => {
          // Right when the caller hears "done", another connection must already see the row.
          seenByOther.push(other.device(`dev-${value}`).then((row) => row?.id === `dev-${value}`));
          return value;
        }),
    ),
  );
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 39, '39 transactions succeed');
  const failed = results[17]!;
  t.equal(failed.status, 'rejected', 'the failing one rejects');
  t.match((failed as PromiseRejectedResult).reason, { message: 'fails after its write' });
  t.same([...new Set(await Promise.all(seenByOther))], [true], 'every resolved transaction was visible to another connection when it resolved');
  t.equal(await other.device('dev-17'), undefined, "the failing transaction's write was rolled back");
  t.equal(await store.countDevices('active'), 39);
});

t.test('a transaction queued before close completes; one after close is refused', async (t) => {
  const path = join(tempDir(t), 'inventory.db');
  const store = openSqliteInventory(path);
  const first = store.transaction(async (tx) => {
    await tx.upsertDevice('dev-a', 'active', new Date().toISOString());
    return 'ok';
  });
  const closing = store.close();
  t.equal(await first, 'ok', 'queued before close: committed');
  await closing;
  await t.rejects(store.transaction(async () => 'late'), /closed/, 'after close: refused');
  const again = openSqliteInventory(path);
  t.teardown(() => again.close());
  t.ok(await again.device('dev-a'), 'the committed row is in the file');
});
