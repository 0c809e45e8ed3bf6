/**
 * Issue 18's end-to-end scenario with three real agents (`wott agent run --once` processes on fixture roots):
 * dev-x holds a live MQTT session from a loopback address of its own (127.0.0.2) with a payments/# subscription;
 * dev-y's and dev-z's auth logs show failed SSH logins from 127.0.0.2. After the two reporters' agents report,
 * dev-x is below payments/#, the finding names both reporters, and dev-x's live subscription stops delivering.
 */
import { appendFileSync, cpSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { AgentStore } from '../../agent/index.js';
import { topics, type ScoreMessage } from '../../protocol/index.js';
import { loadModel } from '../../scoring/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { barrier, connect, enroll, inbox, subscribeGrant, testGateway, waitFor } from '../mqtt-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';
import { enrollAgentCli, wottAgent } from './agent-helpers.js';

const HARDENED = resolve('test/fixtures/roots/debian12-hardened');

/** A hardened device's root whose auth.log now ends with `n` failed SSH logins from `address`, stamped now. */
function rootWithAttempts(t: Tap.Test, address: string, n: number): string {
  const root = join(tempDir(t), 'root');
  cpSync(HARDENED, root, { recursive: true });
  const now = Date.now();
  const lines = Array.from({ length: n }, (_, i) => `${new Date(now - (n - i) * 10).toISOString()} neighbour sshd[${4000 + i}]: Failed password for root from ${address} port ${40000 + i} ssh2\n`);
  appendFileSync(join(root, 'var/log/auth.log'), lines.join(''));
  return root;
}

t.test('three real agents: two report logins from dev-x, which drops below payments/# and stops receiving', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });
  const latest = new Map<string, ScoreMessage>();
  gw.plugin.onScore((m) => latest.set(m.device, m));
  const base = tempDir(t);
  const dirs = { x: join(base, 'x'), y: join(base, 'y'), z: join(base, 'z') };
  await Promise.all([enrollAgentCli(gw, dirs.x, 'dev-x'), enrollAgentCli(gw, dirs.y, 'dev-y'), enrollAgentCli(gw, dirs.z, 'dev-z')]);
  const mqtt = `mqtts://localhost:${gw.mqttPort}`;
  const agentRun = (dir: string, root: string) => wottAgent(['run', '--once', '--dir', dir, '--root', root, '--mqtt', mqtt]);

  // Every agent reports a clean, hardened state first: three trusted devices.
  for (const dir of Object.values(dirs)) {
    const r = await agentRun(dir, HARDENED);
    t.equal(r.code, 0, r.code === 0 ? 'the agent reported' : r.stderr);
  }
  await waitFor(() => ['dev-x', 'dev-y', 'dev-z'].every((d) => gw.plugin.effectiveScore(d) >= 0.9), 'three hardened scores ≥ 0.9');

  // dev-x's application: the agent's certificate, a session of its own from 127.0.0.2 (identity:suffix client id).
  const xIdentity = new AgentStore(dirs.x).identity();
  const app = await connect(gw, { key: xIdentity.keyPem, cert: xIdentity.certPem, ca: new AgentStore(dirs.x).caPem(), id: 'dev-x:app' }, { host: '127.0.0.1', servername: 'localhost', localAddress: '127.0.0.2' } as object);
  t.teardown(() => void app.end(true));
  await waitFor(() => gw.plugin.sessionsOf('dev-x').some((s) => s.remoteAddress?.endsWith('127.0.0.2') === true), 'dev-x connected from 127.0.0.2');
  const payer = await connect(gw, await enroll(gw, tempDir(t), 'payer-1'));
  t.teardown(() => void payer.end(true));
  await payer.publishAsync(topics.telemetry('payer-1'), JSON.stringify(fixtureTelemetry('debian12-hardened', 'payer-1', 1, Date.now())), { qos: 1 });
  await waitFor(() => gw.plugin.effectiveScore('payer-1') >= 0.9, 'the payer is trusted with payments too');
  const got = inbox(app);
  const echo = inbox(payer);
  t.equal(await subscribeGrant(app, 'payments/#'), 1, 'dev-x may read payments/#');
  await subscribeGrant(payer, 'payments/#');
  await payer.publishAsync('payments/tx', 'before', { qos: 1 });
  await waitFor(() => got.some((m) => m.payload === 'before'), 'a payment reaches dev-x');

  // The neighbours' logs: failed logins from 127.0.0.2. Their next reports carry the sources.
  for (const [dir, n] of [[dirs.y, 120], [dirs.z, 80]] as const) {
    const r = await agentRun(dir, rootWithAttempts(t, '127.0.0.2', n));
    t.equal(r.code, 0, r.code === 0 ? 'the agent reported' : r.stderr);
  }
  const lateral = () => latest.get('dev-x')?.factors.find((f) => f.id === 'lateralMovement');
  await waitFor(() => gw.plugin.effectiveScore('dev-x') < 0.9 && /dev-y and dev-z|dev-z and dev-y/.test(lateral()?.reason ?? ''), 'dev-x below payments/# with both reporters named');
  t.match(lateral()!.fix, /^isolate dev-x: it attempted 200 logins on 2 devices/);
  // The reporters pay only for having been attacked (their own failed-logins factor), never for lateral movement.
  for (const d of ['dev-y', 'dev-z']) t.notOk(latest.get(d)?.factors.some((f) => f.id === 'lateralMovement'), `${d}, a reporter, is not blamed`);

  await payer.publishAsync('payments/tx', 'after', { qos: 1 });
  await barrier(payer, echo, 'payments');
  t.notOk(got.some((m) => m.payload === 'after'), "dev-x's live payments/# subscription no longer delivers");
});
