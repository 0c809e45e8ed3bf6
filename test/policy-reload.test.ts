/**
 * Policy reload: `wott policy reload` (or SIGHUP) makes a running gateway process take the policies from its
 * wott.yaml without a restart: live sessions follow the new rules, the reload is in the audit log with who asked,
 * and an invalid file is refused (by the command, or by the gateway when signalled directly) with the running rules
 * kept.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { CLI, makeCsr, requireCommand, startGatewayProcess, tempDir } from './helpers.js';
import { connect, run } from './mqtt-helpers.js';

const config = (topic: string) => `policies:\n  - topic: ${topic}\n    publish: 0.0\n    subscribe: 0.0\nscoring:\n  enabled: false\n`;

t.test('a running gateway reloads its policies; an invalid file changes nothing', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const file = join(dir, 'wott.yaml');
  writeFileSync(file, config('weather/#'));
  const wott = (...args: string[]) => run(process.execPath, [CLI, ...args, '--data', data, '--config', file], 30_000);

  t.match((await wott('policy', 'reload')).stderr, `no CA in ${data}`, 'refused clearly without a gateway (nor a CA)');

  const { child, log } = await startGatewayProcess(data, ['--config', file]);
  t.teardown(() => void child.kill('SIGKILL'));
  const mqttPort = Number(/"mqtt":(\d+)/.exec(log.join('\n'))![1]);
  const ca = await CertificateAuthority.open({ dataDir: data });
  const { der, keyPath } = makeCsr(dir, '/CN=sensor-1');
  const issued = await ca.enrollWithToken('sensor-1', (await ca.createToken('sensor-1')).token, der);
  const caPem = ca.caCertificates().map((c) => c.toString()).join('');
  await ca.close();
  const creds = { id: 'sensor-1', key: readFileSync(keyPath, 'utf8'), cert: issued.pem, ca: caPem };
  const gw = { mqttPort };

  const first = await connect(gw, creds);
  await first.publishAsync('weather/now', '1', { qos: 1 });
  t.pass('weather/# is allowed by the first rules');
  await first.endAsync();

  // The operator changes the file and reloads.
  writeFileSync(file, config('factory/#'));
  const reloaded = await wott('policy', 'reload');
  t.equal(reloaded.code, 0, reloaded.stderr);
  t.match(reloaded.stdout, /reloaded 1 rule\(s\)/);
  const second = await connect(gw, creds);
  await second.publishAsync('factory/line-1', '1', { qos: 1 });
  t.pass('factory/# is allowed now');
  const closed = new Promise((r) => second.once('close', r));
  second.publish('weather/now', '1', { qos: 1 });
  await closed;
  t.pass('and weather/# is denied (the connection is closed, as for any denied publish)');

  // An invalid file: the command refuses it before the gateway sees it.
  writeFileSync(file, 'policies:\n  - topic: a/#/b\n    publish: 0.0\n');
  const refused = await wott('policy', 'reload');
  t.equal(refused.code, 2);
  t.match(refused.stderr, /#/, 'with the reason');
  // Signalled directly (kill -HUP), the gateway refuses it itself and keeps the running rules.
  child.kill('SIGHUP');
  const audit = async () =>
    (await run(process.execPath, [CLI, 'audit', 'log', '--json', '--data', data])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; outcome: string; actor: string; detail: string });
  let entries: Awaited<ReturnType<typeof audit>> = [];
  for (let i = 0; i < 50 && !entries.some((e) => e.action === 'policy.reload' && e.actor === 'signal:SIGHUP'); i++) {
    entries = await audit();
    await new Promise((r) => setTimeout(r, 100));
  }
  const reloads = entries.filter((e) => e.action === 'policy.reload');
  t.ok(reloads.some((e) => e.outcome === 'ok' && /^local:/.test(e.actor) && /1 rule\(s\): factory\/#/.test(e.detail)), 'the reload asked for, by whom');
  t.ok(reloads.some((e) => e.outcome === 'refused' && e.actor === 'signal:SIGHUP'), 'the refused one, signalled directly');
  const third = await connect(gw, creds);
  await third.publishAsync('factory/line-1', '2', { qos: 1 });
  t.pass('the running rules were kept');
  await third.endAsync();

  // Saving the file is enough: the gateway watches it (no command, no signal).
  writeFileSync(file, config('garden/#'));
  for (let i = 0; i < 100 && !(await audit()).some((e) => e.action === 'policy.reload' && e.actor === 'file:wott.yaml' && /garden/.test(e.detail)); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok((await audit()).some((e) => e.action === 'policy.reload' && e.actor === 'file:wott.yaml' && e.outcome === 'ok' && /garden/.test(e.detail)), 'a saved file is reloaded, recorded as file:wott.yaml');
  const fourth = await connect(gw, creds);
  await fourth.publishAsync('garden/soil', '1', { qos: 1 });
  t.pass('and its rules apply');
  await fourth.endAsync();
  const viaGateway = await wott('gateway', 'reload');
  t.equal(viaGateway.code, 0, `wott gateway reload works too: ${viaGateway.stderr}`);
});
