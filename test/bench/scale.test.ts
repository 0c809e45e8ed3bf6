/**
 * The scale benchmark in miniature (`npm run bench -- scale` with 20 devices): a real gateway process and plain
 * Aedes, each device with its own certificate, a restart of each. Asserts outcomes only (every device held, every
 * telemetry message acknowledged, every device back after the restart, the figures and goals reported), never timing.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
// Its child processes run without tap's coverage hook (see helpers.ts).
import '../helpers.js';

const RUN = resolve('dist/bench/run.js');

interface Report {
  bench: string;
  measurements: Array<{ name: string; value: number; unit: string }>;
  ratios: Array<{ name: string; value: number }>;
  goals: Array<{ name: string; met: boolean; detail: string }>;
}

t.test('a small scale run holds every device on both servers and brings every one back after a restart', async (t) => {
  const child = spawn(process.execPath, [RUN, 'scale', '--devices', '20', '--threads', '2', '--hold-seconds', '3', '--publish-seconds', '1', '--rounds', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  t.equal(code, 0, stderr.slice(-3000));
  const line = stdout.split('\n').find((l) => l.startsWith('{"bench":"scale"'));
  t.ok(line, 'a JSON line');
  const report = JSON.parse(line!) as Report;
  const value = (name: string) => report.measurements.find((m) => m.name === name);
  for (const server of ['gateway', 'plain Aedes + TLS']) {
    t.equal(value(`${server}: held`)?.value, 20, `${server}: every device held`);
    t.equal(value(`${server}: back after the restart`)?.value, 20, `${server}: every device back`);
    const acked = value(`${server}: telemetry acknowledged while holding`)!;
    t.ok(acked.value > 0, `${server}: telemetry was published and acknowledged`);
    t.equal(`of ${acked.value}`, acked.unit, `${server}: every telemetry message acknowledged`);
    for (const figure of ['connections/s during the ramp', 'server CPU per connection set-up', 'RSS per held connection', 'event-loop delay p99 while holding', 'restart -> all back']) {
      t.ok(Number.isFinite(value(`${server}: ${figure}`)?.value), `${server}: ${figure} measured`);
    }
    for (const part of ['main thread user', 'main thread system', 'other threads (GC helpers, libuv pool)']) {
      const v = value(`${server}: of it, ${part}`)?.value;
      t.ok(Number.isFinite(v) && v! >= 0, `${server}: CPU per connection of ${part} measured`);
    }
  }
  t.same(report.ratios.map((r) => r.name).sort(), [
    'connection set-up rate, gateway vs plain Aedes',
    'event-loop delay p99 while holding, gateway vs plain Aedes',
    'memory per held connection, gateway vs plain Aedes',
    'restart -> all back, gateway vs plain Aedes',
    'server CPU per connection set-up, gateway vs plain Aedes',
  ]);
  t.equal(value('rounds (figures: medians; held: the lowest)')?.value, 2, 'two rounds');
  // With 20 devices the RSS difference is within noise (it may even be negative): a number, not a sign, is asserted.
  for (const r of report.ratios) t.ok(Number.isFinite(r.value), `${r.name}: a ratio`);
  const goal = (prefix: string) => report.goals.find((g) => g.name.startsWith(prefix));
  t.equal(goal('every device held')?.met, true);
  t.equal(goal('every device back')?.met, true);
  t.match(goal('connection set-up rate')?.detail, /by round: [0-9.]+x \/ [0-9.]+x, [0-9.]+x \/ [0-9.]+x\)/, 'each round\'s ratios in the detail');
  // Timing goals are reported, not asserted.
  t.ok(goal('memory per held connection') && goal('connection set-up rate') && goal('server CPU per connection set-up') && goal('the load generator'));
  t.match(stdout, /goal memory per held connection <= 1\.1x plain Aedes: (MET|NOT MET)/);
});
