/**
 * `wott store migrate --from sqlite:DIR --to postgres://…`: an embedded installation with enrolled, revoked and
 * quarantined devices, tokens, CRLs, an audit log and scores is copied into PostgreSQL with every row as it was; a
 * gateway started on the copy refuses the revoked certificate, accepts the good one and keeps issuing; a second
 * migration into the now non-empty database is refused.
 */
import t from 'tap';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { topics } from '../../protocol/index.js';
import { loadModel } from '../../scoring/index.js';
import { openPostgresInventory, openPostgresScoreStore, openSqliteScoreStore } from '../../store/index.js';
import { CLI, tempDir } from '../helpers.js';
import { connect, connectError, enroll, run, testGateway, waitFor } from '../mqtt-helpers.js';
import { startPostgres } from '../postgres-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';

const server = await startPostgres(t);

if (server) {
  t.test('an embedded installation moves to PostgreSQL with every device, certificate, revocation and score', async (t) => {
    // The embedded installation, in use.
    const old = await testGateway(t, { scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });
    const dir = tempDir(t);
    const good = await enroll(old, dir, 'keeper');
    const bad = await enroll(old, dir, 'stolen');
    await enroll(old, dir, 'suspect');
    await old.ca.createToken('later');
    await old.ca.revoke({ serial: bad.serial }, 'keyCompromise');
    await old.fleet.quarantine('suspect');
    await old.credentials.as('local:tester').set('db-password', Buffer.from('hunter2-secret'), { tags: ['db'], minScore: 0.8 });
    await old.credentials.as('local:tester').rotate('db-password', Buffer.from('hunter3-secret'));
    const c = await connect(old, { ...good, id: 'keeper:main' });
    await c.publishAsync(topics.telemetry('keeper'), JSON.stringify(fixtureTelemetry('debian12-hardened', 'keeper', 1, Date.now())), { qos: 1 });
    await waitFor(() => old.plugin.effectiveScore('keeper') >= 0.9, 'scored');
    c.end(true);
    const scoresPath = join(old.dir, 'scoring', 'scores.db');
    const sqliteScores = await openSqliteScoreStore(scoresPath);
    t.teardown(() => sqliteScores.close());
    // The store is written after the broker hears the score: wait for the scored state report, not the first (0.5) score.
    const stored = async () => ((await sqliteScores.latest('keeper'))?.message.score ?? 0) >= 0.9;
    for (const until = Date.now() + 30_000; !(await stored()); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > until) throw new Error("timed out waiting for the state report's score in the store");
    }
    // Scoring keeps writing (the disconnect above changes behaviour counters a tick later): stop it, so the copy and
    // the comparison below see the same records (CI run 24 compared a record written after the copy).
    await old.scoring!.close();

    const url = await server.newDatabase();
    const migrated = await run(process.execPath, [CLI, 'store', 'migrate', '--from', `sqlite:${old.dir}`, '--to', url], 60_000);
    t.equal(migrated.code, 0, 'migrate succeeds');
    t.comment(migrated.stdout.trim());
    t.match(migrated.stdout, /: 3 devices, 4 certificates, 4 tokens, 1 revocations, .*, 3 audit entries, /, "what was copied (the credential set and rotated are audited; the three devices' certificates and the gateway's server certificate)");
    t.notMatch(migrated.stdout + migrated.stderr, decodeURIComponent(new URL(url).password), 'the password is not printed');

    const from = old.ca.inventory;
    const to = await openPostgresInventory(url);
    t.teardown(() => to.close());
    t.same(await to.devices(), await from.devices(), 'devices: states, tags, times');
    t.same(await to.certificates(), await from.certificates(), 'certificates: statuses, successors, DER');
    t.same(await to.tokens(), await from.tokens(), 'tokens, used or not');
    t.same(await to.revocations(), await from.revocations(), 'revocations');
    t.same(await to.latestCrl(), await from.latestCrl(), 'the latest CRL');
    t.same(await to.auditEntries(), await from.auditEntries(), 'the audit log, sequence numbers included');
    const pgScores = await openPostgresScoreStore(url);
    t.teardown(() => pgScores.close());
    t.ok(await sqliteScores.latest('keeper'), 'there was a score to copy');
    t.same(await pgScores.latest('keeper'), await sqliteScores.latest('keeper'), 'the latest score with its findings');
    t.same(await pgScores.history('keeper'), await sqliteScores.history('keeper'), 'the score history');
    t.same((await pgScores.records()).sort(), (await sqliteScores.records()).sort(), 'the scoring records');

    t.match(migrated.stdout, /, 1 credentials\n/, 'the credential was copied');
    t.same(await server.sql(new URL(url).pathname.slice(1), 'SELECT name, version FROM credentials'), [{ name: 'db-password', version: 2 }]);
    const dump = JSON.stringify(await server.sql(new URL(url).pathname.slice(1), "SELECT encode(sealed, 'escape') AS s FROM credentials"));
    t.notOk(dump.includes('hunter3'), 'sealed, not plaintext');

    // A gateway on the copy (the CA keys and the credential key copied beside it, as for any new node).
    const nodeDir = tempDir(t);
    cpSync(join(old.dir, 'ca'), join(nodeDir, 'ca'), { recursive: true });
    cpSync(join(old.dir, 'credentials.key'), join(nodeDir, 'credentials.key'));
    const node = await testGateway(t, { store: { postgres: url }, dataDir: nodeDir });
    const again = await connect(node, { ...good, id: 'keeper:again' });
    again.end(true);
    t.pass('the good certificate connects to the new node');
    t.equal((await node.credentials.show('db-password'))?.version, 2, 'the credential is there');
    t.equal((await node.credentials.as('local:tester').rotate('db-password', Buffer.from('hunter4-secret'))).version, 3, 'its versions go on');
    t.ok(await connectError(node, { ...bad, id: 'stolen:again' }), 'the revoked one is refused');
    t.equal(node.plugin.deviceState('suspect'), 'quarantined', 'the quarantine holds');
    const fresh = await enroll(node, dir, 'newcomer');
    t.ok((await to.certificate(fresh.serial))?.der, 'the new node issues and records certificates');
    const crlBefore = (await from.latestCrl())!.number;
    await node.fleet.revoke({ serial: fresh.serial }, 'unspecified'); // audited, unlike a CA call
    t.ok((await to.latestCrl())!.number > crlBefore, 'CRL numbers go on from the copied ones');
    const audit = await to.auditEntries();
    t.ok(audit.at(-1)!.seq > (await from.auditEntries()).at(-1)!.seq, 'audit sequence numbers go on from the copied ones');

    const twice = await run(process.execPath, [CLI, 'store', 'migrate', '--from', `sqlite:${old.dir}`, '--to', url], 60_000);
    t.not(twice.code, 0, 'a second migration into the same database is refused');
    t.match(twice.stderr, /already holds an inventory: migrate into an empty database/);
  });

  t.test('bad arguments are refused before anything is touched', async (t) => {
    const bad = await run(process.execPath, [CLI, 'store', 'migrate', '--from', tempDir(t), '--to', server.url('x')]);
    t.not(bad.code, 0);
    t.match(bad.stderr, /expected sqlite:DIR/);
    const http = await run(process.execPath, [CLI, 'store', 'migrate', '--from', `sqlite:${tempDir(t)}`, '--to', 'https://db.example/wott']);
    t.match(http.stderr, /expected a postgres:\/\/ URL/);
    const empty = await run(process.execPath, [CLI, 'store', 'migrate', '--from', `sqlite:${tempDir(t)}`, '--to', server.url('x')]);
    t.match(empty.stderr, /no inventory in .*: nothing to migrate/);
  });
}
