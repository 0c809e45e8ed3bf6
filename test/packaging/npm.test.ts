/**
 * The npm tarball: `npm pack` lists what runs and nothing of development (tests, benchmarks, fixtures, the
 * packaging builder, source maps), and `npm install -g ./wott-<version>.tgz` into a scratch prefix gives a working
 * `wott`: its version, a CA in a data folder (the native SQLite addon loads) and a systemd unit naming what exists.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { agentUnit } from '../../agent/index.js';
import { tempDir } from '../helpers.js';
import { run } from '../mqtt-helpers.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string; dependencies: Record<string, string> };

interface PackEntry {
  filename: string;
  files: Array<{ path: string }>;
}

t.test('npm pack: what runs, nothing of development', async (t) => {
  // --ignore-scripts: `prepare` would rebuild; the suite's pretest already built dist.
  const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], 120_000);
  t.equal(r.code, 0, r.stderr);
  const [entry] = JSON.parse(r.stdout) as PackEntry[];
  const files = entry!.files.map((f) => f.path);
  t.equal(entry!.filename, `wott-${pkg.version}.tgz`);
  for (const needed of ['package.json', 'README.md', 'dist/cli/wott.js', 'dist/cli/main.js', 'dist/cli/agent-main.js', 'dist/scoring/model.yaml', 'dist/dashboard/public/index.html', 'dist/broker/index.d.ts']) {
    t.ok(files.includes(needed), `ships ${needed}`);
  }
  const development = files.filter((f) => /(^|\/)(test|tests|bench|fuzz|fixtures|packaging)\/|\.test\.|\.map$/.test(f) || !/^(dist\/|examples\/cve\/|package\.json$|README\.md$|LICENSE)/.test(f));
  t.same(development, [], 'no tests, benchmarks, fixtures, builder, source maps or sources (examples/cve: the sample CVE feed for newcomers)');
});

t.test('npm install -g ./wott-<version>.tgz into a scratch prefix', async (t) => {
  const work = tempDir(t, 'wott-npm-');
  const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], 120_000);
  t.equal(packed.code, 0, packed.stderr);
  const tarball = join(work, `wott-${pkg.version}.tgz`);
  t.ok(existsSync(tarball), tarball);

  // better-sqlite3 installs with `prebuild-install || node-gyp rebuild`: on a networked machine the first
  // downloads the addon for this Node.js ABI, here (no network) the second would compile SQLite for minutes.
  // prebuild-install's local-prebuilds folder stands in for that download, with the addon this checkout built.
  const prebuilds = join(work, 'prebuilds');
  mkdirSync(prebuilds);
  const sqliteVersion = (JSON.parse(readFileSync('node_modules/better-sqlite3/package.json', 'utf8')) as { version: string }).version;
  const arch = process.arch;
  execFileSync('tar', ['-czf', join(prebuilds, `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-linux-${arch}.tar.gz`), '-C', resolve('node_modules/better-sqlite3'), 'build/Release/better_sqlite3.node']);

  const prefix = join(work, 'prefix');
  const installed = await run('sh', ['-c', `npm_config_better_sqlite3_local_prebuilds='${prebuilds}' exec npm install -g --prefix '${prefix}' --prefer-offline --no-audit --no-fund '${tarball}'`], 600_000);
  t.equal(installed.code, 0, installed.stdout + installed.stderr);

  const wott = join(prefix, 'bin/wott');
  const version = await run(wott, ['--version']);
  t.equal(version.stdout.trim(), pkg.version, 'prefix/bin/wott runs');

  const data = join(work, 'data');
  const init = await run(wott, ['ca', 'init', '--data', data], 60_000);
  t.equal(init.code, 0, `ca init (the SQLite addon loads): ${init.stderr}`);
  const fingerprint = await run(wott, ['ca', 'fingerprint', '--data', data]);
  t.match(fingerprint.stdout, /^([0-9A-F]{2}:){31}[0-9A-F]{2}\n$/, 'the root fingerprint, read back');

  // The unit an npm install prints names this Node.js and the installed script, whatever the prefix and PATH.
  const unit = await run(wott, ['agent', 'service']);
  t.equal(unit.code, 0, unit.stderr);
  const execStart = /^ExecStart=(\S+) (\S+) agent run --dir \/var\/lib\/wott$/m.exec(unit.stdout);
  t.ok(execStart, unit.stdout);
  t.equal(execStart?.[1], process.execPath, 'the Node.js that ran the command');
  t.equal(execStart?.[2], realpathSync(join(prefix, 'lib/node_modules/wott/dist/cli/wott.js')), 'the installed script');
  t.ok(existsSync(execStart?.[2] ?? ''), 'which exists');
});

t.test('the unit quotes a path with spaces the way systemd splits ExecStart', async (t) => {
  const unit = agentUnit(['/opt/my node/bin/node', '/srv/wott "x"/dist/cli/main.js']);
  t.match(unit, /^ExecStart="\/opt\/my node\/bin\/node" "\/srv\/wott \\"x\\"\/dist\/cli\/main\.js" agent run --dir \/var\/lib\/wott$/m);
  t.match(agentUnit(['/usr/bin/wott']), /^ExecStart=\/usr\/bin\/wott agent run --dir \/var\/lib\/wott$/m);
});
