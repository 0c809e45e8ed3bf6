/**
 * The credential store on PostgreSQL: the CredentialStore contract on a real server (writers on two pools at once),
 * a newer schema refused untouched, and two gateways' worth of vaults: the one key of the cluster is accepted on
 * every node, another node's own key is refused with what to do.
 */
import t from 'tap';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { CredentialVault, CREDENTIAL_KEY_FILE } from '../../credentials/index.js';
import { PostgresCredentialStore } from '../../store/index.js';
import { tempDir } from '../helpers.js';
import { startPostgres } from '../postgres-helpers.js';
import { credentialStoreContract } from './credentials-contract.js';

const server = await startPostgres(t);

if (server) {
  t.test('contract', async (t) => {
    const url = await server.newDatabase();
    credentialStoreContract(t, () => PostgresCredentialStore.open(url));
  });

  t.test('a database from a newer wott is refused, unchanged', async (t) => {
    const url = await server.newDatabase();
    const db = new URL(url).pathname.slice(1);
    await (await PostgresCredentialStore.open(url)).close();
    await server.sql(db, "UPDATE wott_schema SET version = 7 WHERE component = 'credentials'");
    await t.rejects(PostgresCredentialStore.open(url), { name: 'SchemaError', message: /^the credential database postgres:\/\/wott@.* was written by a newer wott \(schema 7, this wott knows 1\); upgrade wott$/ });
    t.same(await server.sql(db, "SELECT version FROM wott_schema WHERE component = 'credentials'"), [{ version: 7 }]);
  });

  t.test('every node opens values sealed on another with the shared key; a node with its own key is refused', async (t) => {
    const url = await server.newDatabase();
    const [node1, node2, stray] = [tempDir(t), tempDir(t), tempDir(t)];
    const passphrase = 'cluster passphrase';
    const s1 = await PostgresCredentialStore.open(url);
    t.teardown(() => s1.close());
    const v1 = await CredentialVault.openFor(s1, node1, passphrase);
    const row = await s1.writeVersion('api-key', (_c, version) => ({
      name: 'api-key',
      version,
      tags: ['db'],
      minScore: 0.8,
      linuxUser: null,
      ttlMs: null,
      expiresAt: null,
      createdAt: 'x',
      updatedAt: 'x',
      size: 7,
      sealed: v1.seal('api-key', version, Buffer.from('hunter2')),
    }));
    // node2 got credentials.key copied with ca/ (wrapped under the passphrase the CA keys use).
    copyFileSync(join(node1, CREDENTIAL_KEY_FILE), join(node2, CREDENTIAL_KEY_FILE));
    const s2 = await PostgresCredentialStore.open(url);
    t.teardown(() => s2.close());
    const v2 = await CredentialVault.openFor(s2, node2, passphrase);
    t.equal(v2.open('api-key', row.version, (await s2.get('api-key'))!.sealed).toString(), 'hunter2', 'node 2 opens what node 1 sealed');
    await t.rejects(CredentialVault.openFor(s2, stray, passphrase), /is not the key the credentials in postgres:\/\/wott@.* are sealed with .*copy credentials\.key/, 'a node that made its own key is refused');
  });
}
