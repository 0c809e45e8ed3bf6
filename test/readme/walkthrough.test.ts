/**
 * The README's walk-through, run as written, so the README cannot drift from the product again (issue 15).
 *
 * Every ```sh block of README.md preceded by `<!-- walkthrough -->` runs, in order, in one bash (the reader's
 * second terminal: variables such as TOKEN carry over), with `set -e -o pipefail`; the block marked
 * `<!-- walkthrough: background -->` is the gateway, started first and left running (the first terminal). They run
 * in a fresh folder laid out like the clone: package.json, wott.example.yaml, examples/ and .gitignore copied,
 * dist/ and node_modules/ linked to this build. The only substitutions, each checked to apply:
 *  - `npm ci && ` is dropped (the dependencies are those of this checkout), and `npm start` gets
 *    `-- --https-port P --mqtt-port Q --metrics-port 0`: ports chosen free, so the test never collides;
 *  - 8443 and 8883 in the blocks and in the copied wott.example.yaml become P and Q;
 *  - `npx wott` runs the package's own bin (package.json `bin.wott`, dist/cli/wott.js) through a shell function:
 *    that is the program npx resolves to inside the clone, without npx's own start-up (seconds per call on this
 *    machine, and a first-run link into npm's cache).
 * Real curl, openssl, mosquitto_pub/sub and a real gateway process; each step's output is checked, the gateway's
 * log too, and afterwards `git status` in the folder shows that .gitignore covers every file the walk-through left.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from '../../bench/servers.js';
import { requireCommand, tempDir } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';

const ROOT = resolve('.');

interface Block {
  background: boolean;
  script: string;
}

/** The marked blocks, in README order. */
export function walkthroughBlocks(readme: string): Block[] {
  const blocks: Block[] = [];
  const marker = /<!-- walkthrough(: background)? -->\s*\n```sh\n([\s\S]*?)```/g;
  for (const m of readme.matchAll(marker)) blocks.push({ background: m[1] !== undefined, script: m[2]! });
  return blocks;
}

function substitute(text: string, from: string, to: string, what: string): string {
  if (!text.includes(from)) throw new Error(`README walk-through: expected ${JSON.stringify(from)} in ${what}`);
  return text.replaceAll(from, to);
}

t.test('the README walk-through works when followed literally', async (t) => {
  for (const [command, pkg] of [['openssl', 'openssl'], ['curl', 'curl'], ['mosquitto_pub', 'mosquitto-clients'], ['git', 'git']] as const) {
    if (!requireCommand(t, command, pkg)) return;
  }
  const blocks = walkthroughBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  const background = blocks.filter((b) => b.background);
  const steps = blocks.filter((b) => !b.background);
  t.equal(background.length, 1, 'one background block: the gateway');
  t.ok(steps.length >= 5, `${steps.length} walk-through blocks`);

  // The clone's layout, in a fresh folder.
  const clone = tempDir(t, 'wott-readme-');
  const https = await freePort();
  const mqtt = await freePort();
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: { wott: string } };
  copyFileSync(join(ROOT, 'package.json'), join(clone, 'package.json'));
  copyFileSync(join(ROOT, '.gitignore'), join(clone, '.gitignore'));
  cpSync(join(ROOT, 'examples'), join(clone, 'examples'), { recursive: true });
  const example = readFileSync(join(ROOT, 'wott.example.yaml'), 'utf8');
  writeFileSync(join(clone, 'wott.example.yaml'), substitute(substitute(example, '8443', String(https), 'wott.example.yaml'), '8883', String(mqtt), 'wott.example.yaml'));
  symlinkSync(join(ROOT, 'dist'), join(clone, 'dist'));
  symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
  const placed = ['.gitignore', 'package.json', 'wott.example.yaml', 'dist', 'node_modules'];

  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' };
  // The reader's shell has neither: the walk-through relies on ./wott-data being found.
  delete env.WOTT_DATA;
  delete env.WOTT_CA_PASSPHRASE;

  // Terminal 1: the gateway.
  let gatewayScript = substitute(background[0]!.script, 'npm ci && npm start', 'npm start', 'the background block');
  gatewayScript = gatewayScript.replace(/npm start/, `npm start -- --https-port ${https} --mqtt-port ${mqtt} --metrics-port 0`);
  // Its own process group, so the teardown stops npm, its shell and the gateway together.
  const gateway: ChildProcess = spawn('bash', ['-e', '-c', gatewayScript], { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let gatewayLog = '';
  gateway.stdout!.on('data', (c: Buffer) => (gatewayLog += c.toString()));
  gateway.stderr!.on('data', (c: Buffer) => (gatewayLog += c.toString()));
  let exited = false;
  const gone = new Promise<void>((r) => gateway.once('exit', () => ((exited = true), r())));
  t.teardown(async () => {
    if (!exited) {
      process.kill(-gateway.pid!, 'SIGTERM');
      await gone;
    }
  });
  await waitFor(() => /gateway listening/.test(gatewayLog) || exited, 'the gateway to listen', 60_000);
  t.notOk(exited, `the gateway runs (${gatewayLog.slice(-600)})`);
  t.match(gatewayLog, new RegExp(`"https":${https},"mqtt":${mqtt}`), 'on the chosen ports');

  // Terminal 2: every other block, in order, in one shell.
  const npx = `npx() { if [ "$1" = wott ]; then shift; node ${JSON.stringify(join(clone, pkg.bin.wott))} "$@"; else command npx "$@"; fi; }`;
  const script = [
    'set -e -o pipefail',
    npx,
    ...steps.map((b, i) => {
      let s = b.script;
      if (s.includes('8443')) s = s.replaceAll('8443', String(https));
      if (s.includes('8883')) s = s.replaceAll('8883', String(mqtt));
      return `echo "== walk-through block ${i + 1} ==" >&2\n${s}`;
    }),
    'echo "== walk-through done ==" >&2',
  ].join('\n');
  t.ok(steps.some((b) => b.script.includes('8443')) && steps.some((b) => b.script.includes('8883')), 'the blocks name the default ports, which the test replaces');
  const ran = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn('bash', ['-c', script], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
  t.equal(ran.code, 0, `every step ran; last output:\n${ran.stderr.slice(-1500)}\n${ran.stdout.slice(-800)}`);
  t.match(ran.stderr, /== walk-through done ==/, 'to the end');

  const out = ran.stdout;
  // First device: the root pinned, the chain and the certificate verified.
  t.match(out, /root pinned/);
  t.notMatch(out, /MISMATCH/);
  t.match(out, /issuing\.pem: OK/);
  t.match(out, /kitchen-sensor\.crt: OK/);
  // Broker: the policies reloaded live, a retained reading read back, payments refused and explained.
  t.match(out, /reloaded 3 rule\(s\)/);
  t.match(out, /^weather\/kitchen 21\.5$/m);
  t.match(out, /refused, as the policy says/);
  t.match(out, /decision: DENY publish payments\/kitchen/);
  t.match(gatewayLog, /"id":"kitchen-sensor","topic":"payments\/kitchen".*"msg":"publish denied"/, "the gateway's log says why");
  // Agent: enrolled against the pinned root, reported, scored.
  t.match(out, /enrolled kitchen-pi/);
  t.match(out, /^kitchen-pi {2}score \d\.\d{3}/m);
  t.ok(existsSync(join(clone, 'kitchen-pi', 'state.json')), "the agent's state is in ./kitchen-pi");
  // Sample CVE data: both feeds, and the merged finding.
  t.match(out, /loaded feed debian-tracker \(6 entries\)/);
  t.match(out, /loaded feed osv \(2 entries\); the other feeds are kept/);
  t.match(out, /CVE-2099-0002 +openssl .*\[DSA-9901-1\]/);
  // Dashboard: a one-time link on the gateway's port.
  t.match(out, new RegExp(`https://[^/\\s]+:${https}/api/v1/login/[A-Za-z0-9_-]+`));
  // Renew and revoke.
  t.match(ran.stderr, /kitchen-sensor\.next\.crt: verification failed/, "openssl refuses the revoked certificate");
  t.match(ran.stderr, /certificate revoked/);
  t.match(out, /revoked, as it should be/);
  t.notOk(exited, 'the gateway is still running');

  // What the walk-through left behind is ignored by git.
  t.ok(existsSync(join(clone, 'wott-data')) && existsSync(join(clone, 'kitchen-sensor.key')) && existsSync(join(clone, 'wott.yaml')), 'the walk-through made files');
  spawnSync('git', ['init', '-q'], { cwd: clone });
  const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: clone, encoding: 'utf8' });
  t.equal(status.status, 0, status.stderr);
  const untracked = status.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3))
    .filter((p) => !placed.includes(p) && !p.startsWith('examples/'));
  t.same(untracked, [], '.gitignore covers every file the walk-through made');
});
