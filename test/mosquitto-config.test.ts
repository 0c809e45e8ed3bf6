/**
 * `wott mosquitto config --out DIR` refuses a folder Mosquitto's user cannot reach (issue 15): Mosquitto started as
 * root drops to `mosquitto` before it reads any file, so a DIR under a 0700 folder (a home or temporary folder)
 * used to surface only as Mosquitto's "Unable to write pid file". The rule as a pure function, then the real CLI.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { unreachableAncestor, type FolderFacts } from '../mosquitto-compat/index.js';
import { CLI, requireCommand, tempDir } from './helpers.js';

const folders = (map: Record<string, FolderFacts>) => (path: string) => {
  const facts = map[path];
  if (!facts) throw new Error(`no such folder ${path}`);
  return facts;
};

t.test('unreachableAncestor: owner, group and other search bits, from / down, the folder itself excluded', async (t) => {
  const tree = folders({
    '/': { mode: 0o40755, uid: 0, gid: 0 },
    '/etc': { mode: 0o40755, uid: 0, gid: 0 },
    '/root': { mode: 0o40700, uid: 0, gid: 0 },
    '/srv': { mode: 0o40750, uid: 0, gid: 120 },
    '/srv/own': { mode: 0o40700, uid: 110, gid: 0 },
    '/tmp': { mode: 0o41777, uid: 0, gid: 0 },
    '/tmp/x': { mode: 0o40700, uid: 0, gid: 0 },
  });
  const mosquitto = { uid: 110, gids: [120] };
  t.equal(unreachableAncestor('/etc/wott-mosquitto', mosquitto, tree), undefined, '/etc: others may search');
  t.match(unreachableAncestor('/root/wott-mosquitto', mosquitto, tree), { path: '/root', facts: { mode: 0o40700 } }, 'a 0700 home folder');
  t.match(unreachableAncestor('/tmp/x/mosq', mosquitto, tree), { path: '/tmp/x' }, 'a 0700 temporary folder');
  t.equal(unreachableAncestor('/srv/own/mosq', mosquitto, tree), undefined, 'through /srv by its group, /srv/own as its owner');
  t.match(unreachableAncestor('/srv/own/mosq', { uid: 111, gids: [121] }, tree), { path: '/srv' }, 'another user: neither owner nor group');
  t.equal(unreachableAncestor('/tmp/x', mosquitto, tree), undefined, 'the folder itself is handed to the user, not checked');
  t.equal(unreachableAncestor('/root/x', { uid: 0, gids: [0] }, tree), undefined, 'root passes everywhere');
});

t.test('the CLI refuses an --out Mosquitto cannot reach, before writing anything, and says what to do', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: only then are the files handed to the mosquitto user');
  if (!requireCommand(t, 'mosquitto', 'mosquitto')) return;
  if (spawnSync('id', ['-u', 'mosquitto']).status !== 0) return t.fail('the mosquitto package should have created the mosquitto user');
  const data = join(tempDir(t), 'wott-data');
  const init = spawnSync(process.execPath, [CLI, 'ca', 'init', '--data', data], { encoding: 'utf8' });
  t.equal(init.status, 0, init.stderr);

  const closed = tempDir(t); // mkdtemp: 0700, owned by root
  chmodSync(closed, 0o700);
  const out = join(closed, 'mosquitto');
  const refused = spawnSync(process.execPath, [CLI, 'mosquitto', 'config', '--out', out, '--data', data], { encoding: 'utf8' });
  t.not(refused.status, 0, 'refused');
  t.match(refused.stderr, `mosquitto cannot enter ${closed} (mode 0700, owner uid 0)`);
  t.match(refused.stderr, `chmod o+x ${closed}`);
  t.notOk(existsSync(out), 'nothing written');

  chmodSync(closed, 0o755);
  const ok = spawnSync(process.execPath, [CLI, 'mosquitto', 'config', '--out', out, '--data', data], { encoding: 'utf8' });
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /files handed to mosquitto/);
  // Mosquitto's user can now read its configuration and write beside it, as Mosquitto will.
  const asMosquitto = spawnSync('runuser', ['-u', 'mosquitto', '--', 'sh', '-c', 'test -r "$1/mosquitto.conf" && test -r "$1/server.key" && test -w "$1"', 'sh', out]);
  t.equal(asMosquitto.status, 0, 'the mosquitto user reaches every file');
});
