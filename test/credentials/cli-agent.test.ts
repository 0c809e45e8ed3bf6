/**
 * Operators and the agent, end to end (issue 17): `wott credential set/list/show/rotate/rm` in another process
 * against the data folder of a running gateway, and a real agent (`runAgent`, enrolled over EST) receiving the
 * credential into its --credentials-dir, re-encrypted to its new key after a renewal, deleted when removed;
 * `wott agent credentials` lists names and versions. Values never come out of the CLI; hostile input is refused.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enrollAgent, runAgent } from '../../agent/index.js';
import { CLI, memoryLogger, tempDir } from '../helpers.js';
import { connect, serviceCredentials, setScore, testGateway, waitFor } from '../mqtt-helpers.js';

function wott(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin ?? '');
  });
}

t.test('wott credential … and the agent', async (t) => {
  const gw = await testGateway(t, { credentials: { pollMs: 100 } });
  const dir = tempDir(t);
  const agentDir = join(dir, 'agent');
  const credDir = join(dir, 'run', 'credentials');
  const token = (await gw.ca.createToken('dev-cli')).token;
  const log = memoryLogger();
  await enrollAgent({ server: `https://localhost:${gw.httpsPort}`, device: 'dev-cli', token, dir: agentDir, caFingerprint: gw.ca.material.root.fingerprint256, keyStore: 'file', log });
  await gw.fleet.setTags('dev-cli', ['db', 'site:a']);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'cli')), id: 'scoring:cli' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'dev-cli', 0.9);
  const agent = (await runAgent({ dir: agentDir, mqtt: `mqtts://localhost:${gw.mqttPort}`, intervalMs: 3_600_000, root: dir, credentialsDir: credDir, log }))!;
  t.teardown(() => agent.stop());
  await waitFor(() => gw.plugin.sessionsOf('dev-cli').some((s) => s.clientId === 'dev-cli:credentials'), 'agent listening');

  const data = ['--data', gw.dir];
  const secret = `pw-${randomBytes(12).toString('hex')}`;
  const set = await wott(['credential', 'set', 'db-password', '--value-stdin', '--tags', 'db', '--min-score', '0.8', '--ttl', '30d', ...data], secret);
  t.equal(set.code, 0, set.stderr);
  t.match(set.stdout, /db-password is now version 1/);
  const file = join(credDir, 'db-password');
  await waitFor(() => existsSync(file), 'the agent wrote the credential');
  t.equal(readFileSync(file, 'utf8'), secret);
  t.equal(statSync(file).mode & 0o777, 0o400);

  const listed = await wott(['agent', 'credentials', '--credentials-dir', credDir]);
  t.match(listed.stdout, /db-password\t1\t-/);
  t.notOk(listed.stdout.includes(secret));
  for (const args of [['credential', 'list'], ['credential', 'show', 'db-password'], ['credential', 'list', '--json'], ['credential', 'show', 'db-password', '--json']]) {
    const out = await wott([...args, ...data]);
    t.equal(out.code, 0, out.stderr);
    t.match(out.stdout, /db-password/);
    t.notOk(out.stdout.includes(secret), `${args.join(' ')} never shows the value`);
  }

  // Renewal: the credential is re-encrypted to the new key (the new session gets it again).
  const before = (await gw.credentialDelivery.store.deliveries('dev-cli'))[0]!.serial;
  t.ok(await agent.renewal.renewNow(), 'renewed');
  await waitFor(() => gw.view.device('dev-cli')?.certificate?.serial !== before, 'new certificate in the view');
  let after = before;
  await waitFor(() => {
    void gw.credentialDelivery.store.deliveries('dev-cli').then((d) => (after = d[0]?.serial ?? after));
    return after !== before;
  }, 'delivered again to the new certificate');
  t.equal(after, gw.view.device('dev-cli')?.certificate?.serial);
  t.equal(readFileSync(file, 'utf8'), secret, 'still held after the renewal');

  // Rotation from a file.
  const secret2 = `pw-${randomBytes(12).toString('hex')}`;
  writeFileSync(join(dir, 'new.txt'), secret2);
  const rotated = await wott(['credential', 'rotate', 'db-password', '--from-file', join(dir, 'new.txt'), ...data]);
  t.equal(rotated.code, 0, rotated.stderr);
  await waitFor(() => existsSync(file) && readFileSync(file, 'utf8') === secret2, 'version 2 on the device');
  t.match((await wott(['agent', 'credentials', '--credentials-dir', credDir, '--json'])).stdout, /"version":2/);

  // Hostile input through the CLI: refused, exit 2, nothing stored.
  writeFileSync(join(dir, 'huge'), randomBytes(64 * 1024 + 1));
  const huge = await wott(['credential', 'set', 'huge', '--from-file', join(dir, 'huge'), '--tags', 'db', '--min-score', '0.5', ...data]);
  t.equal(huge.code, 2);
  t.match(huge.stderr, /over 65536 bytes/);
  const hugeStdin = await wott(['credential', 'set', 'huge', '--value-stdin', '--tags', 'db', '--min-score', '0.5', ...data], 'x'.repeat(64 * 1024 + 1));
  t.equal(hugeStdin.code, 2);
  const path = await wott(['credential', 'set', '../../etc/cron.d/x', '--value-stdin', '--tags', 'db', '--min-score', '0.5', ...data], 'v');
  t.equal(path.code, 2);
  t.match(path.stderr, /invalid credential name/);
  const both = await wott(['credential', 'set', 'x', '--tags', 'db', '--min-score', '0.5', ...data]);
  t.equal(both.code, 2);
  t.match(both.stderr, /exactly one of --from-file FILE or --value-stdin/);

  // A Linux user the device does not have: the agent refuses to write it.
  const nouser = await wott(['credential', 'set', 'for-nobody', '--value-stdin', '--tags', 'site:a', '--min-score', '0.5', '--linux-user', 'no-such-user-x', ...data], 'v');
  t.equal(nouser.code, 0, nouser.stderr);
  await waitFor(() => log.lines.some((l: { obj: unknown }) => JSON.stringify(l.obj).includes('unknown Linux user')), 'the agent refused it');
  t.notOk(existsSync(join(credDir, 'for-nobody')), 'not written');

  // Removal: the device deletes its copy.
  const rm = await wott(['credential', 'rm', 'db-password', ...data]);
  t.equal(rm.code, 0, rm.stderr);
  await waitFor(() => !existsSync(file), 'deleted on the device');
  t.equal((await wott(['credential', 'rm', 'db-password', ...data])).code, 2, 'removing twice: refused');

  const audit = await gw.fleet.auditLog();
  t.same(
    [...new Set(audit.filter((e) => e.action.startsWith('credential.') && e.actor.startsWith('local:')).map((e) => `${e.action}:${e.outcome}`))].sort(),
    ['credential.remove:ok', 'credential.remove:refused', 'credential.rotate:ok', 'credential.set:ok', 'credential.set:refused'],
  );
  t.notOk(JSON.stringify(audit).includes(secret) || JSON.stringify(audit).includes(secret2), 'no value in the audit log');
  t.notOk(JSON.stringify(log.lines).includes(secret), 'no value in the agent log');
});
