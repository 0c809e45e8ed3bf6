/**
 * `wott mosquitto config` refuses an --out folder the `mosquitto` user cannot reach, naming the folder and the fix,
 * instead of leaving it to Mosquitto's later "Unable to write pid file"; with the way open, Mosquitto really starts
 * from what it wrote. Real folders, the real `mosquitto` user of Debian's package and the real broker.
 */
import t from 'tap';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../bench/servers.js';
import { modeAllows } from '../../mosquitto-compat/index.js';
import { CLI, inCi, requireCommand, tempDir } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';

const execFileP = promisify(execFile);

async function wott(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** What the kernel says when `mosquitto` tries (su, as an administrator would check it by hand). */
const mosquittoMay = (flag: '-x' | '-w', path: string) => spawnSync('su', ['-s', '/bin/sh', 'mosquitto', '-c', `test ${flag} "$0"`, path]).status === 0;

t.test('mode bits: owner, group, supplementary groups, others', async (t) => {
  const ids = { uid: 104, gid: 111, groups: [111, 20] };
  t.ok(modeAllows({ mode: 0o40700, uid: 104, gid: 0 }, ids, 'rwx'), 'owner');
  t.notOk(modeAllows({ mode: 0o40700, uid: 0, gid: 0 }, ids, 'x'), "root's 0700");
  t.ok(modeAllows({ mode: 0o40710, uid: 0, gid: 20 }, ids, 'x'), 'a supplementary group may pass');
  t.notOk(modeAllows({ mode: 0o40750, uid: 0, gid: 20 }, ids, 'rwx'), 'but not write without g+w');
  t.ok(modeAllows({ mode: 0o40701, uid: 0, gid: 0 }, ids, 'x'), 'o+x');
  t.notOk(modeAllows({ mode: 0o40076, uid: 104, gid: 111 }, ids, 'x'), 'the owner bits count for the owner, even when others may');
  t.ok(modeAllows({ mode: 0o40000, uid: 5, gid: 5 }, { uid: 0, gid: 0, groups: [] }, 'rwx'), 'root may');
});

t.test('a folder the mosquitto user cannot enter is refused before anything is written', async (t) => {
  if (!requireCommand(t, 'mosquitto', 'mosquitto')) return;
  if (process.getuid?.() !== 0 || spawnSync('id', ['mosquitto']).status !== 0) {
    if (inCi) t.fail('needs root and the mosquitto user (Debian package mosquitto)');
    else t.skip('needs root and the mosquitto user', () => {});
    return;
  }
  const dir = tempDir(t);
  chmodSync(dir, 0o755); // (mkdtemp made it 0700: the folder under test is the one below)
  const data = join(dir, 'data');
  t.equal((await wott(['ca', 'init', '--data', data])).code, 0);
  // A private folder of root's, as /root is.
  const locked = join(dir, 'locked');
  mkdirSync(locked, { mode: 0o700 });
  chmodSync(locked, 0o700);
  t.equal(statSync(locked).uid, 0);
  t.notOk(mosquittoMay('-x', locked), 'the kernel agrees: mosquitto cannot enter it');
  const out = join(locked, 'mosquitto');
  const port = await freePort();
  const args = ['mosquitto', 'config', '--out', out, '--port', String(port), '--bind', '127.0.0.1', '--data', data];
  const refused = await wott(args);
  t.not(refused.code, 0);
  t.match(refused.stderr, `wott: mosquitto cannot enter ${locked} (mode 0700, owner uid 0 gid 0)`, 'names the folder');
  t.match(refused.stderr, `chmod o+x ${locked}`, 'and the fix');
  t.match(refused.stderr, /--out folder it can reach/);
  t.same(readdirSync(locked), [], 'nothing written');

  // The fix it gives, and a deeper --out whose missing folders this creates: Mosquitto starts from it.
  chmodSync(locked, 0o701);
  t.ok(mosquittoMay('-x', locked));
  const deep = join(locked, 'a', 'b', 'mosquitto');
  const ok = await wott(['mosquitto', 'config', '--out', deep, '--port', String(port), '--bind', '127.0.0.1', '--data', data]);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(statSync(join(locked, 'a')).mode & 0o777, 0o755, 'folders made on the way can be passed');
  t.ok(mosquittoMay('-w', deep), 'the folder itself was handed to mosquitto');
  const mosq = spawn('mosquitto', ['-c', join(deep, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => mosq.once('exit', () => r()));
  t.teardown(async () => {
    mosq.kill('SIGTERM');
    await exited;
  });
  let log = '';
  mosq.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  mosq.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await waitFor(() => / running$/m.test(log) || mosq.exitCode !== null, 'Mosquitto to start', 30_000);
  t.match(log, / running$/m, 'Mosquitto runs');
  t.notMatch(log, /Unable to write pid file/);
  await waitFor(() => existsSync(join(deep, 'mosquitto.pid')), 'its pid file', 30_000);
});
