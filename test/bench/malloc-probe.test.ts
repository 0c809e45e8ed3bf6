/**
 * The soak's malloc probe (bench/malloc-probe.ts): built with the machine's C compiler, preloaded into a real Node
 * process, it reports glibc's bytes in use, and they follow what the process allocates and frees. Its parser skips
 * lines cut short or malformed, and the process's own children are not probed.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { buildMallocProbe, mallocProbeEnv, parseMallocProbe, readMallocProbe } from '../../bench/malloc-probe.js';
import { requireCommand, tempDir } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';

const MiB = 1024 * 1024;

t.test('the parser keeps whole lines of five numbers and skips everything else', async (t) => {
  const text = [
    '1700000000000 1048576 524288 262144 131072',
    '1700000001000 1048576 524288', // cut short while being written
    '1700000002000 x 1 2 3',
    '1700000003000 1 2 3 4 5',
    '-1 1 2 3 4',
    '',
    '   ',
    '1700000004000 2097152 1048576 0 65536',
    '1700000005000 209715', // the last line, still being written
  ].join('\n');
  t.same(parseMallocProbe(text), [
    { t: 1700000000000, arena: 1048576, inUse: 524288 + 131072, free: 262144, mapped: 131072 },
    { t: 1700000004000, arena: 2097152, inUse: 1048576 + 65536, free: 0, mapped: 65536 },
  ]);
  t.same(parseMallocProbe(''), []);
  t.same(parseMallocProbe('\0\0\0\n\u00ff 1 2 3 4'), []);
  t.equal(readMallocProbe(join(tempDir(t), 'absent')), undefined, 'no file yet: no reading');
});

t.test("a preloaded probe reports a real process's malloc memory as it allocates and frees it", async (t) => {
  if (!requireCommand(t, 'cc', 'gcc')) return;
  const dir = tempDir(t);
  const probe = buildMallocProbe(dir);
  if ('missing' in probe) return t.fail(`no probe: ${probe.missing}`);
  const file = join(dir, 'probe.log');
  // A Node process that holds 256 MiB of Buffers (malloc'd by Node's array buffer allocator) between two lines on
  // stdin, and reports whether a child of its own would be probed.
  const script = `
    const { execFileSync } = require('node:child_process');
    const rl = require('node:readline').createInterface({ input: process.stdin });
    const lines = rl[Symbol.asyncIterator]();
    (async () => {
      console.log('child env ' + execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.env.LD_PRELOAD ?? "none") + " " + String(process.env.WOTT_MALLOC_PROBE_FILE ?? "none"))']));
      await lines.next();
      let held = Array.from({ length: 64 }, () => Buffer.alloc(4 * 1024 * 1024, 1));
      console.log('holding ' + held.length);
      await lines.next();
      held = null;
      globalThis.gc();
      console.log('freed');
      await lines.next();
      process.exit(0);
    })();`;
  const child = spawn(process.execPath, ['--expose-gc', '-e', script], { env: { ...process.env, ...mallocProbeEnv(probe.path, file, 50) }, stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const out: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => out.push(l));
  const readings = () => (existsSync(file) ? parseMallocProbe(readFileSync(file, 'utf8')) : []);
  await waitFor(() => out.some((l) => l.startsWith('child env')), 'the child to start', 30_000);
  t.equal(out[0], 'child env none none', "the process's own children are not probed");
  // A reading taken after the moment `from`: the probe writes every 50 ms.
  const after = async (from: number) => {
    await waitFor(() => readings().some((r) => r.t > from + 100), 'a probe reading', 30_000);
    return readings().at(-1)!;
  };
  const before = await after(Date.now());
  child.stdin!.write('allocate\n');
  await waitFor(() => out.includes('holding 64'), 'the allocation', 30_000);
  const holding = await after(Date.now());
  t.ok(holding.inUse - before.inUse >= 200 * MiB, `in use rose by ${((holding.inUse - before.inUse) / MiB).toFixed(0)} MiB holding 256 MiB`);
  t.ok(holding.arena + holding.mapped >= holding.inUse, 'what glibc reserved covers what is in use');
  child.stdin!.write('free\n');
  await waitFor(() => out.includes('freed'), 'the release', 30_000);
  // V8 frees array buffers' memory after the collection, on a thread of its own: waited for, not assumed.
  await waitFor(() => (readings().at(-1)?.inUse ?? Infinity) <= holding.inUse - 200 * MiB, 'in use to fall by 200 MiB after freeing', 30_000);
  t.pass('in use fell back after the buffers were freed');
  child.stdin!.write('exit\n');
  await new Promise((r) => child.once('exit', r));
});

t.test('no probe without a C compiler, and the reason says what to install', async (t) => {
  const dir = tempDir(t);
  const path = process.env.PATH;
  process.env.PATH = dir; // nothing on it
  t.teardown(() => void (process.env.PATH = path));
  const probe = buildMallocProbe(dir);
  t.same(probe, { missing: 'no C compiler (apt-get install gcc)' });
  t.equal(spawnSync('cc', [], { env: { PATH: dir } }).error !== undefined, true);
});
