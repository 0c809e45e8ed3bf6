/**
 * What an operator sees in the gateway's output and the CLI's: a denied publish or subscribe says why (rule and
 * score), a refused client id explains the rule, and a command piped into `head` stops quietly.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { CertificateAuthority } from '../ca/index.js';
import { FleetService } from '../fleet/index.js';
import { CLI, memoryLogger, requireCommand, startGatewayProcess, tempDir } from './helpers.js';
import { connect, connectError, enroll, run, setScore, serviceCredentials, subscribeGrant, testGateway, waitFor } from './mqtt-helpers.js';

t.test('denials and refused client ids are logged with their reason', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const log = memoryLogger();
  const gw = await testGateway(t, { log });
  const dir = tempDir(t);
  const creds = await enroll(gw, dir, 'logged-1');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'logged-1', 0.5);
  const client = await connect(gw, creds);
  t.teardown(() => client.end(true));
  t.equal(await subscribeGrant(client, 'payments/#', 0), 128, 'the subscription is refused');
  const lines = log.lines as Array<{ level: string; obj: Record<string, unknown>; msg?: string }>;
  await waitFor(() => lines.some((l) => l.msg === 'subscribe denied'), 'the denial to be logged');
  const denied = lines.find((l) => l.msg === 'subscribe denied')!;
  t.equal(denied.level, 'info');
  t.match(denied.obj, { id: 'logged-1', topic: 'payments/#', score: 0.5, reason: /payments\/#/ }, 'with the topic, the rule and the score');

  const refused = await connectError(gw, { ...creds, id: 'mqttjs_1234abcd' });
  t.ok(refused, 'a random client id is refused');
  await waitFor(() => lines.some((l) => l.msg?.startsWith('MQTT connection refused: the client id must be')), 'the refusal to be logged');
  const why = lines.find((l) => l.msg?.startsWith('MQTT connection refused: the client id must be'))!;
  t.match(why.msg, /must be "logged-1", start with "logged-1:", or be empty/);
  t.match(why.obj, { id: 'logged-1', clientId: 'mqttjs_1234abcd' });
});

t.test('a command piped into head stops quietly', async (t) => {
  const dir = tempDir(t);
  // More output than a pipe holds (64 KiB), so the writer is still writing when head has gone.
  const ca = await CertificateAuthority.open({ dataDir: dir });
  const fleet = new FleetService(ca, 'local:test');
  for (let i = 0; i < 1500; i++) await fleet.createToken(`pipe-${i}`);
  await ca.close();
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" audit log --data "${dir}" | head -n 1`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
  t.match(result.stdout, /token\.create pipe-0/, 'head got its line');
  t.equal(result.stderr, '', 'and wott stopped without a word (no EPIPE stack trace)');
});

t.test('the root fingerprint devices pin: wott ca fingerprint, and the gateway at every start', async (t) => {
  const dir = tempDir(t);
  const none = await run(process.execPath, [CLI, 'ca', 'fingerprint', '--data', dir]);
  t.equal(none.code, 2, 'no CA here: refused, and no CA is made');
  t.match(none.stderr, /no CA in/);
  const ca = await CertificateAuthority.open({ dataDir: dir });
  const expected = ca.material.root.fingerprint256;
  await ca.close();
  const printed = await run(process.execPath, [CLI, 'ca', 'fingerprint', '--data', dir]);
  t.equal(printed.stdout.trim(), expected);
  t.match(expected, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, 'in the one format openssl prints');
  const { child, log } = await startGatewayProcess(dir);
  t.teardown(() => new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : (child.once('exit', resolve), child.kill('SIGTERM')))));
  await waitFor(() => log.join('\n').includes('CA root SHA-256 fingerprint'), 'the start line');
  t.match(log.join('\n'), `CA root SHA-256 fingerprint ${expected}`);
});
