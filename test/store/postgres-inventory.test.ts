/**
 * The inventory store on PostgreSQL: the shared contract (each subtest on a new database of one real server, every
 * `open` a new pool, as another node would have), then what only PostgreSQL has: migrations run once when several
 * nodes start together, a newer schema is refused untouched, the URL's password stays out of messages, and the
 * audit log resists the database's own SQL.
 */
import t from 'tap';
import { openPostgresInventory, type InventoryStore } from '../../store/index.js';
import { startPostgres } from '../postgres-helpers.js';
import { inventoryContract } from './inventory-contract.js';

const server = await startPostgres(t);

if (server) {
  t.test('contract', async (t) => {
    inventoryContract(t, () => {
      // One database per subtest, made on first use (newBackend is called synchronously).
      let url: Promise<string> | undefined;
      return async () => openPostgresInventory(await (url ??= server.newDatabase()));
    });
  });

  const dbName = (url: string) => new URL(url).pathname.slice(1);

  t.test('five nodes starting together migrate once', async (t) => {
    const url = await server.newDatabase();
    const stores = await Promise.all(Array.from({ length: 5 }, () => openPostgresInventory(url)));
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    t.same(await server.sql(dbName(url), "SELECT version FROM wott_schema WHERE component = 'inventory'"), [{ version: 1 }]);
    await stores[0]!.transaction((tx) => tx.upsertDevice('d', 'active', new Date().toISOString()));
    t.equal((await stores[4]!.device('d'))?.state, 'active');
  });

  t.test('a database written by a newer wott is refused, untouched', async (t) => {
    const url = await server.newDatabase();
    await (await openPostgresInventory(url)).close();
    await server.sql(dbName(url), "UPDATE wott_schema SET version = 99 WHERE component = 'inventory'");
    await t.rejects(openPostgresInventory(url), { name: 'SchemaError', message: /newer wott \(schema 99, this wott knows 1\); upgrade wott/ });
    t.same(await server.sql(dbName(url), "SELECT version FROM wott_schema WHERE component = 'inventory'"), [{ version: 99 }]);
  });

  t.test('the location names the database, never the password', async (t) => {
    const url = await server.newDatabase();
    const store = await openPostgresInventory(url);
    t.teardown(() => store.close());
    const password = decodeURIComponent(new URL(url).password);
    t.ok(password.length > 8);
    t.notMatch(store.location, password);
    t.match(store.location, `127.0.0.1:${server.port}/${dbName(url)}`);
    await store.close();
    await t.rejects(store.device('x'), { message: new RegExp(`the CA inventory .*${dbName(url)} is closed`) });
  });

  t.test('the audit log is append-only even for someone holding the database', async (t) => {
    const url = await server.newDatabase();
    const store: InventoryStore = await openPostgresInventory(url);
    t.teardown(() => store.close());
    await store.transaction((tx) =>
      tx.appendAudit({ time: new Date().toISOString(), actor: 'local:op', action: 'device.quarantine', device: 'd', target: null, outcome: 'refused', detail: null }),
    );
    await t.rejects(server.sql(dbName(url), "UPDATE audit SET outcome = 'ok'"), /append-only/);
    await t.rejects(server.sql(dbName(url), 'DELETE FROM audit'), /append-only/);
    await t.rejects(server.sql(dbName(url), 'TRUNCATE audit'), /append-only/);
    t.equal((await store.auditEntries()).length, 1);
  });
}
