/**
 * A cluster node killed with SIGKILL sends no disconnect events: the scoring leader closes its devices' address
 * holdings once the node's heartbeat record (wott:node:ID in a real redis-server) is gone, so the address is not
 * attributed to the dead node's device forever and a device that later holds it is not "sharing" it with a ghost.
 */
import t from 'tap';
import { loadModel } from '../../scoring/index.js';
import { requireCommand, startGatewayProcess, tempDir, writeTemp } from '../helpers.js';
import { connect, enroll, waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';
import { node } from '../cluster/helpers.js';

const scoring = { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 };

t.test("a SIGKILLed node's sessions leave the address book; the live node's stay", async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  const a = await node(t, dir, redis.url, 'node-a', { scoring });
  await waitFor(() => a.scoring !== undefined, 'node-a leads and scores');
  // node-b: a `wott gateway` process on the same data folder and Redis (it can not take the lease node-a holds).
  const config = writeTemp(dir, 'wott.yaml', [`cluster:`, `  redis: ${redis.url}`, `  node: node-b`, `  lease: 3s`, ''].join('\n'));
  const b = await startGatewayProcess(dir, ['--config', config]);
  t.teardown(() => void b.child.kill('SIGKILL'));
  const mqttPort = Number(/"mqtt":(\d+)/.exec(b.log.find((l) => /"mqtt":\d+/.test(l))!)![1]);

  const certs = tempDir(t);
  const onB = await connect({ mqttPort }, await enroll(a, certs, 'dev-x'), { host: '127.0.0.1', servername: 'localhost', localAddress: '127.0.0.2' } as object);
  onB.on('error', () => undefined); // its node dies under it
  t.teardown(() => void onB.end(true));
  const onA = await connect(a, await enroll(a, certs, 'dev-y'), { host: '127.0.0.1', servername: 'localhost', localAddress: '127.0.0.3' } as object);
  t.teardown(() => void onA.end(true));
  const book = () => a.scoring!.addresses;
  await waitFor(() => book().connected('dev-x') && book().connected('dev-y'), "the leader knows both devices' addresses");
  t.same(book().holders('127.0.0.2', Date.now(), Date.now()), ['dev-x'], 'dev-x holds 127.0.0.2 through node-b');

  const killed = Date.now();
  b.child.kill('SIGKILL');
  await waitFor(() => !book().connected('dev-x'), "dev-x's session on the dead node is closed", 30_000);
  const after = Date.now();
  t.same(book().holders('127.0.0.2', after, after), [], 'nobody holds 127.0.0.2 any more');
  t.same(book().holders('127.0.0.2', killed, killed), ['dev-x'], 'until the node died dev-x did (its heartbeat was seen while alive; reports about that time still count)');
  t.ok(book().connected('dev-y'), "the live node's session is kept");

  // A device that now connects from that address is its only holder (not an address "shared" with a ghost).
  const w = await connect(a, await enroll(a, certs, 'dev-w'), { host: '127.0.0.1', servername: 'localhost', localAddress: '127.0.0.2' } as object);
  t.teardown(() => void w.end(true));
  await waitFor(() => book().connected('dev-w'), 'dev-w connected');
  const now = Date.now();
  t.same(book().holders('127.0.0.2', now, now), ['dev-w'], 'dev-w alone holds 127.0.0.2');
});
