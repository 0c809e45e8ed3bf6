/** The score store on PostgreSQL: the ScoreStore contract on a real server, then a newer schema refused untouched. */
import t from 'tap';
import { openPostgresScoreStore } from '../../store/index.js';
import { startPostgres } from '../postgres-helpers.js';
import { scoreStoreContract } from './scores-contract.js';

const server = await startPostgres(t);

if (server) {
  t.test('contract', async (t) => {
    const url = await server.newDatabase();
    scoreStoreContract(t, () => openPostgresScoreStore(url));
  });

  t.test('a database from a newer wott is refused, unchanged', async (t) => {
    const url = await server.newDatabase();
    const db = new URL(url).pathname.slice(1);
    await (await openPostgresScoreStore(url)).close();
    await server.sql(db, "UPDATE wott_schema SET version = 7 WHERE component = 'scores'");
    await t.rejects(openPostgresScoreStore(url), { name: 'SchemaError', message: /^the scoring store postgres:\/\/wott@.* was written by a newer wott \(schema 7, this wott knows 2\); upgrade wott$/ });
    t.same(await server.sql(db, "SELECT version FROM wott_schema WHERE component = 'scores'"), [{ version: 7 }]);
  });

  t.test('a server that is not there: the error says so, without the password', async (t) => {
    const url = server.url('nosuchdb');
    const err = await openPostgresScoreStore(url).then(
      () => undefined,
      (e: Error) => e,
    );
    t.ok(err, 'refused');
    t.match(err!.message, /nosuchdb/);
    t.notMatch(err!.message, decodeURIComponent(new URL(url).password));
  });
}
