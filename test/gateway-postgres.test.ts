/**
 * Gateways on a shared PostgreSQL store (`store: { postgres: URL }`): two gateway nodes with the same CA keys and
 * one database. A device enrolled through one node is stored in PostgreSQL (no SQLite inventory appears), its
 * score lands in PostgreSQL too, a quarantine made through the other node restricts the device on the first, and a
 * revocation closes its live MQTT session there: the change feed reaches every node's broker through LISTEN/NOTIFY.
 */
import t from 'tap';
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../scoring/index.js';
import { request } from 'node:https';
import { makeCsr, tempDir } from './helpers.js';
import { EST_PATHS, topics } from '../protocol/index.js';
import { connect, connectError, enroll, testGateway, waitFor } from './mqtt-helpers.js';
import { startPostgres } from './postgres-helpers.js';
import { fixtureTelemetry } from './scoring-fixtures.js';

const server = await startPostgres(t);

/** One simpleenroll over HTTPS: status, body and Retry-After, whatever the status. */
function estEnroll(gw: { httpsPort: number; caPem: string }, id: string, token: string, csr: Buffer): Promise<{ status: number; body: string; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`https://localhost:${gw.httpsPort}${EST_PATHS.simpleenroll}`, { method: 'POST', ca: gw.caPem, auth: `${id}:${token}` }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers['retry-after'] ? { retryAfter: String(res.headers['retry-after']) } : {}) }));
    });
    req.on('error', reject);
    req.end(csr.toString('base64'));
  });
}

if (server) {
  t.test('two gateway nodes on one PostgreSQL database', async (t) => {
    const url = await server.newDatabase();
    const db = new URL(url).pathname.slice(1);
    const a = await testGateway(t, { store: { postgres: url }, scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });
    // Node B: its own data folder with the same CA keys, as a cluster's nodes are provisioned.
    const bDir = tempDir(t);
    cpSync(join(a.dir, 'ca'), join(bDir, 'ca'), { recursive: true });
    // Without node A's credentials.key node B would make its own: refused, saying what to copy.
    await t.rejects(testGateway(t, { store: { postgres: url }, dataDir: bDir }), /credentials\.key is not the key the credentials in .* are sealed with .*copy credentials\.key/);
    cpSync(join(a.dir, 'credentials.key'), join(bDir, 'credentials.key'));
    const b = await testGateway(t, { store: { postgres: url }, dataDir: bDir });
    t.equal(b.ca.inventory.location, a.ca.inventory.location);
    // Credentials live in the one database: set on A, rotated on B, one line of versions.
    await a.credentials.as('local:tester').set('cluster-key', Buffer.from('s1'), { tags: ['db'], minScore: 0.8 });
    t.equal((await b.credentials.show('cluster-key'))?.version, 1, 'node B sees what node A set');
    t.equal((await b.credentials.as('local:tester').rotate('cluster-key', Buffer.from('s2'))).version, 2);
    t.notMatch(a.ca.inventory.location, decodeURIComponent(new URL(url).password), 'no password in the location');

    const dir = tempDir(t);
    const one = await enroll(a, dir, 'pg-one');
    const two = await enroll(b, dir, 'pg-two');
    t.notOk(existsSync(join(a.dir, 'inventory.db')), 'no SQLite inventory on node A');
    t.notOk(existsSync(join(bDir, 'inventory.db')), 'nor on node B');
    const stored = await server.sql(db, "SELECT serial, device_id FROM certificates WHERE kind = 'device' ORDER BY device_id");
    t.same(stored, [
      { serial: one.serial, device_id: 'pg-one' },
      { serial: two.serial, device_id: 'pg-two' },
    ], 'both certificates in PostgreSQL, whichever node issued them');
    t.same((await server.sql(db, 'SELECT component FROM wott_schema ORDER BY component')).map((r) => r.component), ['actions', 'credentials', 'inventory', 'scores', 'sessions', 'vuln']);

    // Scoring on node A stores its scores in PostgreSQL.
    const c1 = await connect(a, { ...one, id: 'pg-one:main' });
    t.teardown(() => c1.end(true));
    await c1.publishAsync(topics.telemetry('pg-one'), JSON.stringify(fixtureTelemetry('debian12-hardened', 'pg-one', 1, Date.now())), { qos: 1 });
    await waitFor(() => a.plugin.effectiveScore('pg-one') >= 0.9, 'scored');
    let latest: unknown[] = [];
    for (let i = 0; i < 100 && latest.length === 0; i++) {
      latest = await server.sql(db, "SELECT device FROM score_latest WHERE device = 'pg-one'");
      if (latest.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    t.same(latest, [{ device: 'pg-one' }], 'the score is stored in PostgreSQL');

    // A quarantine through B restricts the device on A at once (quarantine needs no kick); a revocation through B
    // closes its session on A.
    await b.fleet.quarantine('pg-one');
    await waitFor(() => a.plugin.deviceState('pg-one') === 'quarantined', 'node A knows the quarantine made through node B');
    const closed = new Promise<void>((resolve) => c1.once('close', () => resolve()));
    await b.ca.revoke({ serial: one.serial }, 'keyCompromise');
    await closed;
    t.pass('the revocation through node B closed the session on node A');
    t.ok(await connectError(a, { ...one, id: 'pg-one:again' }), 'and node A refuses the revoked certificate');
  });

  t.test('PostgreSQL stops: enrollments get a clear 503 and nothing is issued; it comes back: the nodes carry on by themselves', async (t) => {
    const url = await server.newDatabase();
    const db = new URL(url).pathname.slice(1);
    const a = await testGateway(t, { store: { postgres: url } });
    const bDir = tempDir(t);
    cpSync(join(a.dir, 'ca'), join(bDir, 'ca'), { recursive: true });
    cpSync(join(a.dir, 'credentials.key'), join(bDir, 'credentials.key'));
    const b = await testGateway(t, { store: { postgres: url }, dataDir: bDir });
    const dir = tempDir(t);
    const dev = await enroll(a, dir, 'steady');
    const client = await connect(a, { ...dev, id: 'steady:main' });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const token = (await a.ca.createToken('during')).token;

    await server.stop();
    t.teardown(() => server.start()); // for the other tests, should an assertion below throw
    const { der } = makeCsr(dir, '/CN=during');
    const refused = await estEnroll(a, 'during', token, der);
    t.equal(refused.status, 503, 'Service Unavailable');
    t.match(refused.body, /certificate store is unavailable; retry later/);
    t.equal(refused.retryAfter, '5');
    t.equal(client.connected, true, 'live sessions carry on while the store is away');

    await server.start();
    const again = await estEnroll(a, 'during', token, der);
    t.equal(again.status, 200, 'the same token works once the store is back: nothing was used or issued meanwhile');
    t.same((await server.sql(db, "SELECT count(*)::int AS n FROM certificates WHERE device_id = 'during'"))[0], { n: 1 });
    // Node A's feed listener connected again by itself: a revocation through node B closes the session on A.
    await b.ca.revoke({ serial: dev.serial }, 'keyCompromise');
    await closed;
    t.pass('the revocation made after the outage closed the session on the other node');
  });
}
