/**
 * Three `wott gateway` processes on one Redis and one data folder: scoring runs on exactly one of them (the lease
 * holder), scores it publishes reach a device connected to another node, and when the leader is killed with
 * SIGKILL another node takes the lease and scores within 10 s.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import t from 'tap';
import { Redis } from 'ioredis';
import { CertificateAuthority } from '../../ca/index.js';
import { topics } from '../../protocol/index.js';
import { CLI, requireCommand, startGatewayProcess, tempDir, writeTemp } from '../helpers.js';
import { connect, enroll, inbox, run, waitFor } from '../mqtt-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';
import { startRedis } from '../redis-helpers.js';
import type { Gateway } from '../../gateway/index.js';

interface NodeProcess {
  child: ChildProcess;
  httpsPort: number;
  mqttPort: number;
}

async function startNode(data: string, config: string): Promise<NodeProcess> {
  const { child, port, log } = await startGatewayProcess(data, ['--config', config]);
  const line = log.find((l) => /"mqtt":\d+/.test(l))!;
  return { child, httpsPort: port, mqttPort: Number(/"mqtt":(\d+)/.exec(line)![1]) };
}

t.test('one scorer for the cluster, replaced within seconds when it dies', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const config = writeTemp(
    dir,
    'wott.yaml',
    [`cluster:`, `  redis: ${redis.url}`, `  lease: 1s`, `policies:`, `  - { topic: "weather/#", publish: 0.4, subscribe: 0.4 }`, ''].join('\n'),
  );
  const nodes: NodeProcess[] = [];
  t.teardown(() => nodes.forEach((n) => n.child.kill('SIGKILL')));
  // The first node creates the CA; the others join the same data folder.
  nodes.push(await startNode(data, config));
  nodes.push(await startNode(data, config), await startNode(data, config));

  const watcher = new Redis(redis.port, '127.0.0.1');
  t.teardown(() => watcher.disconnect());
  const holderPid = async () => {
    const value = await watcher.get('wott:lease:scoring');
    return value ? Number(/-(\d+)#\d+$/.exec(value)?.[1]) : undefined;
  };
  let leaderPid: number | undefined;
  await waitFor(() => (void holderPid().then((p) => (leaderPid = p)), leaderPid !== undefined), 'a scoring leader');
  const leader = nodes.find((n) => n.child.pid === leaderPid);
  t.ok(leader, 'the lease is held by one of the three nodes');
  const others = nodes.filter((n) => n !== leader);
  type Status = { nodes: Array<{ pid: number; scoring: boolean; connections: number; feedLag: number }>; scoringLeader: string | null };
  const status = async (): Promise<Status> => {
    const r = await run('node', [CLI, 'cluster', 'status', '--config', config, '--json'], 30_000);
    if (r.code !== 0) throw new Error(`cluster status: ${r.stderr}`);
    return JSON.parse(r.stdout) as Status;
  };
  let seen: Status | undefined;
  for (let i = 0; i < 50 && !(seen && seen.nodes.length === 3 && seen.nodes.some((n) => n.scoring)); i++) seen = await status();
  t.same(seen!.nodes.map((n) => n.pid).sort(), nodes.map((n) => n.child.pid).sort(), '`wott cluster status` lists the three nodes');
  t.same(seen!.nodes.filter((n) => n.scoring).map((n) => n.pid), [leaderPid], 'exactly one node scores: the lease holder');

  // Enroll through one follower and connect to the other: the score must come from the leader over Redis.
  const ca = await CertificateAuthority.open({ dataDir: data });
  t.teardown(() => ca.close());
  const caPem = readFileSync(join(data, 'ca', 'intermediate.crt'), 'utf8') + readFileSync(join(data, 'ca', 'root.crt'), 'utf8');
  const creds = tempDir(t);
  const device = await enroll({ ca, httpsPort: others[0]!.httpsPort, dir: data, caPem } as unknown as Gateway & { dir: string; caPem: string }, creds, 'sensor-1');
  const client = await connect(others[1]!, device);
  t.teardown(() => client.end(true));
  const got = inbox(client);
  await client.subscribeAsync(topics.scores('sensor-1'), { qos: 1 });
  const scores = () => got.filter((m) => m.topic === topics.scores('sensor-1')).map((m) => JSON.parse(m.payload) as { score: number });

  await client.publishAsync(topics.telemetry('sensor-1'), JSON.stringify(fixtureTelemetry('debian12-hardened', 'sensor-1', 1, Date.now())), { qos: 1 });
  await waitFor(() => scores().some((s) => s.score >= 0.9), 'the leader scored the hardened report', 20_000);

  // Kill the leader: another node takes the lease and scores the next report.
  leader!.child.kill('SIGKILL');
  await waitFor(() => (void holderPid().then((p) => (leaderPid = p)), leaderPid !== undefined && leaderPid !== leader!.child.pid), 'a new leader', 10_000);
  t.ok(others.some((n) => n.child.pid === leaderPid), 'a surviving node leads');
  for (let i = 0; i < 50 && (seen = await status()).nodes.length !== 2; i++);
  t.same(seen!.nodes.map((n) => n.pid).sort(), others.map((n) => n.child.pid).sort(), 'the killed node leaves the status within seconds');
  const before = scores().length;
  await client.publishAsync(topics.telemetry('sensor-1'), JSON.stringify(fixtureTelemetry('rpi-factory', 'sensor-1', 2, Date.now())), { qos: 1 });
  await waitFor(() => scores().slice(before).some((s) => s.score < 0.9), 'the new leader scored the factory report', 10_000);

  // `wott ca revoke` on the shared store: the node holding the session closes it (every node follows the feed).
  let closed = false;
  client.options.reconnectPeriod = 0;
  client.on('close', () => (closed = true));
  const revoked = await run('node', [CLI, 'ca', 'revoke', '--device', 'sensor-1', '--data', data], 30_000);
  t.equal(revoked.code, 0, `revoked (${revoked.stderr})`);
  await waitFor(() => closed, 'the session on the other node closed after the revocation', 5_000);
});
