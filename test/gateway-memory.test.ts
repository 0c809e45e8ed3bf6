/**
 * The allocator setting the gateway starts with (gateway/memory.ts) is the same in every launcher: `npm start`, the
 * container image and the soak benchmark; and a gateway started by `npm start` really runs with it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { GATEWAY_MALLOC_ENV } from '../gateway/index.js';
// Its child processes run without tap's coverage hook (see helpers.ts).
import './helpers.js';

const root = join(import.meta.dirname, '..');
const setting = `GLIBC_TUNABLES=${GATEWAY_MALLOC_ENV.GLIBC_TUNABLES}`;

t.test('every launcher sets the same allocator setting', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(pkg.scripts.start, new RegExp(`^cross-env ${setting} node dist/cli/wott\\.js gateway$`), 'npm start');
  t.ok(readFileSync(join(root, 'Dockerfile'), 'utf8').split('\n').includes(`ENV ${setting}`), 'the Dockerfile');
  t.match(readFileSync(join(root, 'bench', 'soak.ts'), 'utf8'), /\.\.\.GATEWAY_MALLOC_ENV,/, 'bench soak');
});

t.test('npm start hands the setting to the gateway process', async (t) => {
  // `npm start -- --help` runs the same command line through cross-env; the child prints its own environment's
  // value through a preloaded module, so the check does not depend on what the gateway logs.
  const child = spawn('npm', ['start', '--silent', '--', '--help'], {
    cwd: root,
    env: { ...process.env, GLIBC_TUNABLES: '', NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent('process.stderr.write(`TUNABLES=${process.env.GLIBC_TUNABLES}\\n`)')}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout.resume();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 0, 'wott gateway --help exits 0');
  t.match(err, new RegExp(`TUNABLES=${GATEWAY_MALLOC_ENV.GLIBC_TUNABLES}\\n`), 'the gateway process got the setting');
});
