/**
 * The Debian packages, as a user gets them: `packaging/build.ts` builds both once, lintian reports no error, and
 * each is installed with dpkg into its own scratch root. From the installed files only: the full package runs a
 * gateway (its native SQLite addon included), the agent package enrolls a device against it with the pinned root
 * fingerprint and prints a report of a fixture root; the modes, the unit and its ExecStart are checked on disk.
 */
import t from 'tap';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync, accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { telemetrySchema } from '../../protocol/index.js';
import { requireCommand, startGatewayProcess, tempDir } from '../helpers.js';
import { run } from '../mqtt-helpers.js';

const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const FIXTURE = resolve('test/fixtures/roots/debian12-hardened');
/** Installed packages of the fixture (its dpkg status also has one removed with config files left). */
const FIXTURE_PACKAGES = readFileSync(join(FIXTURE, 'var/lib/dpkg/status'), 'utf8').match(/^Status: install ok installed$/gm)?.length;
const BUILDER = resolve('dist/packaging/build.js');

function sh(cmd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Installs one .deb into a fresh root with the host's dpkg (no maintainer script runs on a plain install). */
function installInto(t: Tap.Test, deb: string): string {
  const root = tempDir(t, 'wott-root-');
  const r = sh('dpkg', ['--root', root, '--force-not-root', '--force-depends', '--log=/dev/null', '-i', deb]);
  t.equal(r.code, 0, `dpkg -i ${deb}: ${r.stderr}`);
  return root;
}

/** Mode and type of the agent folder and the unit, and the unit's program resolving inside the same root. */
function checkAgentFiles(t: Tap.Test, root: string): void {
  const dir = statSync(join(root, 'var/lib/wott'));
  t.ok(dir.isDirectory(), '/var/lib/wott is a folder');
  t.equal((dir.mode & 0o777).toString(8), '700', '/var/lib/wott is 0700');
  t.equal(dir.uid, 0, 'owned by root');
  const unitPath = join(root, 'lib/systemd/system/wott-agent.service');
  t.ok(existsSync(unitPath), 'unit in /lib/systemd/system');
  const unit = readFileSync(unitPath, 'utf8');
  const execStart = /^ExecStart=(\S+)(.*)$/m.exec(unit);
  t.equal(execStart?.[1], '/usr/bin/wott', 'ExecStart names the packaged binary, not env on a PATH');
  t.match(execStart?.[2], /agent run --dir \/var\/lib\/wott/);
  t.match(unit, /^ReadWritePaths=\/var\/lib\/wott$/m);
  const bin = join(root, 'usr/bin/wott');
  t.ok(lstatSync(bin).isSymbolicLink(), '/usr/bin/wott is a link into the package');
  const target = realpathSync(bin);
  t.ok(target.startsWith(realpathSync(root)), `the link stays inside the root (${target})`);
  t.doesNotThrow(() => accessSync(target, constants.X_OK), 'ExecStart program is executable');
  t.match(readFileSync(target, 'utf8').slice(0, 30), /^#!\/usr\/bin\/env node\n/);
}

/**
 * Debian's own nodejs of this release (18 on bookworm: the oldest the agent package accepts), unpacked with its
 * libnode and the libraries and node-* modules it needs that this machine lacks. It runs in a private mount
 * namespace where /usr/share also shows its /usr/share/nodejs (Debian's node loads built-in parts from there).
 */
function debianNode(dir: string): (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }> {
  const codename = /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
  const download = (spec: string) => {
    let r = spawnSync('apt-get', ['download', '-q', spec], { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
      r = spawnSync('apt-get', ['download', '-q', spec], { cwd: dir, encoding: 'utf8' });
    }
    if (r.status !== 0) throw new Error(`apt-get download ${spec}: ${r.stderr}`);
  };
  const installed = (name: string) => spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' }).stdout.includes('ok installed');
  const unpack = () => {
    for (const deb of readdirSync(dir).filter((f) => f.endsWith('.deb'))) execFileSync('dpkg-deb', ['-x', join(dir, deb), join(dir, 'root')]);
  };
  download(`nodejs/${codename}`);
  const nodeDeb = readdirSync(dir).find((f) => f.startsWith('nodejs_'))!;
  const deps = (deb: string) => sh('dpkg-deb', ['-f', join(dir, deb), 'Depends']).stdout.split(',').map((d) => d.trim().split(' ')[0]!);
  const libnode = deps(nodeDeb).find((d) => d.startsWith('libnode'));
  if (libnode) {
    download(`${libnode}/${codename}`);
    const libDeb = readdirSync(dir).find((f) => f.startsWith(`${libnode}_`))!;
    for (const dep of deps(libDeb)) if (!installed(dep)) download(dep);
  }
  unpack();
  const root = join(dir, 'root');
  // NODE_OPTIONS unset in the shell: the test runner puts its --import hooks into every child's environment, and
  // they are for its own Node.js, not Debian's.
  const script = 'mount -t overlay overlay -o "lowerdir=$1:/usr/share" /usr/share && shift && LD_LIBRARY_PATH="$1" && export LD_LIBRARY_PATH && shift && unset NODE_OPTIONS && exec "$@"';
  const libs = join(root, `usr/lib/${sh('dpkg-architecture', ['-qDEB_HOST_MULTIARCH']).stdout.trim()}`);
  return (args) => new Promise((done) => {
    execFile('unshare', ['-m', 'sh', '-c', script, 'sh', join(root, 'usr/share'), libs, join(root, 'usr/bin/node'), ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

t.test('the Debian packages', async (t) => {
  if (!requireCommand(t, 'dpkg-deb', 'dpkg')) return;
  if (!requireCommand(t, 'lintian', 'lintian')) return;
  if (!requireCommand(t, 'dpkg-shlibdeps', 'dpkg-dev')) return;
  if (!requireCommand(t, 'strip', 'binutils')) return;
  const arch = sh('dpkg', ['--print-architecture']).stdout.trim();

  const out = tempDir(t, 'wott-debs-');
  // xz level 1: the same files, built in a fraction of the time (level 6, the default, is for releases).
  const built = await run(process.execPath, [BUILDER, '--out', out, '--compression-level', '1'], 600_000);
  t.equal(built.code, 0, `npm run package: ${built.stderr}`);
  const wottDeb = join(out, `wott_${VERSION}_${arch}.deb`);
  const agentDeb = join(out, `wott-agent_${VERSION}_all.deb`);
  t.ok(existsSync(wottDeb) && existsSync(agentDeb), `both packages built: ${built.stdout}`);

  t.test('control fields', async (t) => {
    const field = (deb: string, name: string) => sh('dpkg-deb', ['-f', deb, name]).stdout.trim();
    t.equal(field(agentDeb, 'Architecture'), 'all', 'the agent is pure JavaScript');
    t.equal(field(agentDeb, 'Depends'), 'nodejs (>= 18)');
    t.equal(field(wottDeb, 'Architecture'), arch, 'the full package carries a native addon: built for this architecture');
    const major = process.versions.node.split('.')[0];
    const depends = field(wottDeb, 'Depends');
    t.match(depends, `nodejs (>= ${major}), nodejs (<< ${Number(major) + 1})`, 'bound to the Node.js ABI the addon was compiled for');
    t.match(depends, /libc6 \(>= [\d.]+\)/, 'shared library dependencies of the addon');
    t.equal(field(wottDeb, 'Provides'), 'wott-agent', 'the full package includes the agent');
    t.equal(field(wottDeb, 'Conflicts'), 'wott-agent', 'both ship /usr/bin/wott');
    for (const deb of [wottDeb, agentDeb]) t.equal(field(deb, 'Version'), VERSION);
  });

  // lintian takes a minute: it runs while the packages are installed and run below, and is judged at the end.
  const linted = run('lintian', ['--no-cfg', '--fail-on', 'error', wottDeb, agentDeb], 600_000);

  t.test('contents: what runs, nothing of development', async (t) => {
    const list = (deb: string) => sh('dpkg-deb', ['-c', deb]).stdout;
    const full = list(wottDeb);
    for (const needed of ['./usr/lib/wott/dist/cli/wott.js', './usr/lib/wott/dist/scoring/model.yaml', './usr/lib/wott/dist/dashboard/public/index.html', './usr/lib/wott/node_modules/better-sqlite3/build/Release/better_sqlite3.node', './usr/lib/wott/package.json']) {
      t.match(full, needed, `ships ${needed}`);
    }
    t.notMatch(full, /\/dist\/(test|bench|fuzz|packaging)\//, 'no tests, benchmarks or the builder');
    t.notMatch(full, /node_modules\/(tap|typescript|esbuild|puppeteer-core)\//, 'no development dependencies');
    t.notMatch(full, /better-sqlite3\/(deps|src)\//, 'no C sources of the addon');
    t.notMatch(list(agentDeb), /node_modules/, 'the agent is one bundled file');
  });

  const agentRoot = installInto(t, agentDeb);
  const wottRoot = installInto(t, wottDeb);

  t.test('wott-agent installed: files, modes, the unit', async (t) => {
    checkAgentFiles(t, agentRoot);
    const wott = join(agentRoot, 'usr/bin/wott');
    const version = await run(wott, ['--version']);
    t.equal(version.stdout.trim(), VERSION, '`wott --version` is the package version');
    const other = await run(wott, ['gateway']);
    t.equal(other.code, 2, 'other commands refuse');
    t.match(other.stderr, /needs the full wott package/);
  });

  t.test('wott installed: gateway, then the agent package enrolls and reports', async (t) => {
    checkAgentFiles(t, wottRoot);
    const wott = join(wottRoot, 'usr/bin/wott');
    const version = await run(wott, ['--version']);
    t.equal(version.stdout.trim(), VERSION);

    const data = tempDir(t, 'wott-pkg-data-');
    const gw = await startGatewayProcess(data, [], [wott]); // the installed gateway, with its packaged SQLite addon
    t.teardown(() => void gw.child.kill('SIGTERM'));
    const token = await run(wott, ['token', 'create', '--device', 'pkg-pi', '--data', data]);
    t.equal(token.code, 0, token.stderr);
    const fingerprint = await run(wott, ['ca', 'fingerprint', '--data', data]);
    t.equal(fingerprint.code, 0, fingerprint.stderr);

    const agent = join(agentRoot, 'usr/bin/wott');
    const dir = join(tempDir(t, 'wott-pkg-agent-'), 'state');
    const enrolled = await run(agent, ['agent', 'enroll', '--server', `https://localhost:${gw.port}`, '--device', 'pkg-pi', '--token', token.stdout.trim(), '--ca-fingerprint', fingerprint.stdout.trim(), '--dir', dir], 60_000);
    t.equal(enrolled.code, 0, enrolled.stderr);
    t.match(enrolled.stdout, /enrolled pkg-pi/);

    for (const [name, bin] of [['wott-agent', agent], ['wott', wott]] as const) {
      const printed = await run(bin, ['agent', 'run', '--print', '--root', FIXTURE, '--dir', dir]);
      t.equal(printed.code, 0, `${name}: ${printed.stderr}`);
      const report = telemetrySchema.parse(JSON.parse(printed.stdout));
      t.equal(report.device, 'pkg-pi', `${name}: the enrolled identity`);
      t.match(report.os, { id: 'debian', versionId: '12' });
      t.equal(report.packages.list?.length, FIXTURE_PACKAGES, `${name}: the fixture's packages, not this machine's`);
    }

    const root = process.getuid?.() === 0;
    const skip = root ? false : "needs root: apt-get download, and a mount namespace to show Debian's /usr/share/nodejs";
    t.test("wott-agent on Debian's own Node.js (Depends: nodejs (>= 18))", { skip }, async (t) => {
      const node = debianNode(tempDir(t, 'wott-debian-node-'));
      const nodeVersion = await node(['--version']);
      t.equal(nodeVersion.code, 0, nodeVersion.stderr);
      t.comment(`Debian's nodejs ${nodeVersion.stdout.trim()}`);
      const script = realpathSync(agent);
      const token18 = await run(wott, ['token', 'create', '--device', 'pkg-pi-debian-node', '--data', data]);
      const dir18 = join(tempDir(t, 'wott-pkg-agent-'), 'state');
      const enrolled18 = await node([script, 'agent', 'enroll', '--server', `https://localhost:${gw.port}`, '--device', 'pkg-pi-debian-node', '--token', token18.stdout.trim(), '--ca-fingerprint', fingerprint.stdout.trim(), '--dir', dir18]);
      t.equal(enrolled18.code, 0, enrolled18.stderr);
      const printed = await node([script, 'agent', 'run', '--print', '--root', FIXTURE, '--dir', dir18]);
      t.equal(printed.code, 0, printed.stderr);
      t.equal(telemetrySchema.parse(JSON.parse(printed.stdout)).device, 'pkg-pi-debian-node');
    });
  });

  t.test('lintian reports no error', async (t) => {
    const r = await linted;
    const errors = r.stdout.split('\n').filter((l) => l.startsWith('E: '));
    t.same(errors, [], 'no E: tags');
    t.equal(r.code, 0, r.stdout + r.stderr);
  });
});
