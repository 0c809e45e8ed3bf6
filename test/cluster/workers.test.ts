/**
 * `wott gateway --workers 2`: two gateway processes share the ports and Redis. Connections spread over both,
 * messages cross between them, one of them scores, a worker that dies is replaced, and SIGTERM stops them all.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CertificateAuthority } from '../../ca/index.js';
import type { Gateway } from '../../gateway/index.js';
import { CLI, requireCommand, startGatewayProcess, tempDir, writeTemp } from '../helpers.js';
import { connect, enroll, inbox, run, waitFor } from '../mqtt-helpers.js';
import { startRedis } from '../redis-helpers.js';

t.test('two workers on one machine act as one gateway', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const config = writeTemp(dir, 'wott.yaml', [`cluster:`, `  redis: ${redis.url}`, `  node: box`, `policies:`, `  - { topic: "weather/#", publish: 0.4, subscribe: 0.4 }`, ''].join('\n'));
  const { child, port, log } = await startGatewayProcess(data, ['--config', config, '--workers', '2']);
  t.teardown(() => void child.kill('SIGKILL'));
  await waitFor(() => log.filter((l) => l.includes('"msg":"gateway listening"')).length === 2, 'both workers listening', 60_000);
  const listening = log.filter((l) => l.includes('"msg":"gateway listening"')).map((l) => JSON.parse(l) as { pid: number; https: number; mqtt: number });
  t.same(new Set(listening.map((l) => `${l.https}/${l.mqtt}`)).size, 1, 'the workers share one HTTPS and one MQTT port');
  t.equal(listening[0]!.https, port);
  const mqttPort = listening[0]!.mqtt;

  type Status = { nodes: Array<{ node: string; pid: number; scoring: boolean; connections: number }> };
  const status = async (): Promise<Status> => JSON.parse((await run('node', [CLI, 'cluster', 'status', '--config', config, '--json'], 30_000)).stdout) as Status;
  let seen = await status();
  for (let i = 0; i < 50 && !(seen.nodes.length === 2 && seen.nodes.some((n) => n.scoring)); i++) seen = await status();
  t.same(seen.nodes.map((n) => n.node).sort(), ['box-w1', 'box-w2'], 'each worker is a node');
  t.equal(seen.nodes.filter((n) => n.scoring).length, 1, 'one of them scores');

  const ca = await CertificateAuthority.open({ dataDir: data });
  t.teardown(() => ca.close());
  const caPem = readFileSync(join(data, 'ca', 'intermediate.crt'), 'utf8') + readFileSync(join(data, 'ca', 'root.crt'), 'utf8');
  const gw = { ca, httpsPort: port, mqttPort, dir: data, caPem } as unknown as Gateway & { dir: string; caPem: string };
  const creds = tempDir(t);
  const clients: Awaited<ReturnType<typeof connect>>[] = [];
  for (let i = 0; i < 6; i++) clients.push(await connect(gw, await enroll(gw, creds, `dev-${i}`)));
  t.teardown(() => clients.forEach((c) => c.end(true)));
  await waitFor(() => true, 'noop');
  for (let i = 0; i < 50 && !((seen = await status()).nodes.every((n) => n.connections > 0)); i++);
  t.ok(seen.nodes.every((n) => n.connections > 0), `connections spread over both workers (${seen.nodes.map((n) => n.connections).join(' + ')})`);
  const inboxes = clients.map(inbox);
  for (const c of clients) await c.subscribeAsync('weather/#', { qos: 1 });
  await clients[0]!.publishAsync('weather/now', 'to every worker', { qos: 1 });
  await waitFor(() => inboxes.every((b) => b.some((m) => m.payload === 'to every worker')), 'delivered to subscribers on both workers');

  // A worker that dies is replaced.
  const victim = seen.nodes[0]!.pid;
  process.kill(victim, 'SIGKILL');
  for (let i = 0; i < 100 && !((seen = await status()).nodes.length === 2 && !seen.nodes.some((n) => n.pid === victim)); i++);
  t.equal(seen.nodes.length, 2, 'two workers again');
  t.notOk(seen.nodes.some((n) => n.pid === victim), 'the dead one replaced');

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops the workers and the primary');
  t.notOk(existsSync(join(data, 'gateway.pid')), 'the pid file is gone');
});
