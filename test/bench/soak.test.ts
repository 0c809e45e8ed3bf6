/**
 * The soak benchmark in miniature (`npm run bench -- soak` with 20 devices for 15 s): a real gateway process, EST
 * enrollments and renewals, QoS 1 delivery checks, revocations. Asserts outcomes only (nothing lost, nothing failed,
 * no restart), never timing; and that an interrupted run leaves no process and no folder behind.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { requireCommand } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';

const RUN = resolve('dist/bench/run.js');

interface Goal {
  name: string;
  met: boolean;
  detail: string;
}
interface Report {
  bench: string;
  measurements: Array<{ name: string; value: number }>;
  goals: Goal[];
}

function runSoak(args: string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; stderr: () => string; pid: number; kill: (s: NodeJS.Signals) => void } {
  const child = spawn(process.execPath, [RUN, 'soak', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) => child.once('exit', (code) => r({ code, stdout, stderr })));
  return { done, stderr: () => stderr, pid: child.pid!, kill: (s) => child.kill(s) };
}

/** Running (a zombie waiting for its reaper does not count). */
const alive = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z';
  } catch {
    return false;
  }
};

t.test('a short soak loses nothing, renews every certificate, closes revoked sessions and never restarts', async (t) => {
  // Before the run: the soak builds its malloc probe at start when a C compiler is there.
  const haveCc = requireCommand(t, 'cc', 'gcc');
  // 45 s certificates renew about every 10 s: each device renews at least once in the run.
  const run = runSoak(['--devices', '20', '--minutes', '0.25', '--group', '10', '--app-seconds', '1', '--telemetry-seconds', '5', '--cert-lifetime', '45', '--sample-seconds', '5', '--revocations', '2', '--baseline-minutes', '0']);
  const { code, stdout, stderr } = await run.done;
  t.equal(code, 0, stderr.slice(-3000));
  const line = stdout.split('\n').find((l) => l.startsWith('{"bench":"soak"'));
  t.ok(line, 'a JSON line');
  const report = JSON.parse(line!) as Report;
  const value = (name: string) => report.measurements.find((m) => m.name === name)?.value;
  const goal = (prefix: string) => report.goals.find((g) => g.name.startsWith(prefix));
  t.equal(value('enrollments (EST, token)'), 20);
  t.ok(value('acknowledged and delivered')! > 0, 'messages were delivered');
  t.equal(value('acknowledged and lost'), 0, 'no acknowledged QoS 1 message lost');
  // Acknowledged = delivered + withheld (published while the group's subscriber was quarantined).
  t.equal(value('acknowledged and delivered')! + value('acknowledged and withheld (subscriber quarantined)')!, value('application messages acknowledged'));
  t.ok(value('acknowledged and withheld (subscriber quarantined)')! > 0, 'a quarantined subscriber got nothing while quarantined');
  t.equal(value('quarantines (group subscribers, then released)'), 2);
  t.equal(goal('quarantined subscribers')?.met, true, `quarantine and release: ${goal('quarantined subscribers')?.detail}`);
  t.ok(value('certificate renewals')! >= 20, 'every device renewed at least once');
  t.equal(value('certificate renewals failed'), 0);
  t.equal(value('gateway restarts'), 0);
  // Too short a run for slopes (they may be null): the figures are there, not their values.
  for (const third of ['first', 'second', 'last']) t.ok(report.measurements.some((m) => m.name === `RSS growth after warm-up, ${third} third (slope)`), `the ${third} third's slope is reported`);
  // glibc's count of the gateway's malloc memory (bench/malloc-probe.ts), built with the machine's C compiler.
  if (haveCc) t.match(stderr, /malloc in use \d+ MiB \(free kept \d+, arenas \d+, mmapped \d+\)/, "glibc's count is sampled");
  t.equal(value('revocations'), 2);
  t.equal(value('devices held (connected at the end)'), 18, 'all but the two revoked devices held');
  t.ok(value('score updates published')! > 0, 'scoring scored the state reports');
  for (const g of ['QoS 1', 'every renewal', 'gateway restarts', 'every device held']) t.equal(goal(g)?.met, true, `${g}: ${goal(g)?.detail}`);
  // The 1 s bound is a timing goal (reported, not asserted here); that the revoked sessions were closed is not.
  t.match(goal('every revoked device gone')?.detail, /; 0 still connected after 5 s$/);
  // A run this short cannot tell warm-up from growth, and says so rather than pass.
  t.match(goal('no leak')?.detail, /not judged/);
});

t.test('an interrupted soak stops the gateway and removes its folder', async (t) => {
  const run = runSoak(['--devices', '10', '--minutes', '5', '--group', '5', '--baseline-minutes', '0']);
  await waitFor(() => /connected in/.test(run.stderr()), 'the devices to connect', 45_000);
  const gateway = Number(/gateway pid (\d+)/.exec(run.stderr())![1]);
  const folder = /folder (\S+)/.exec(run.stderr())![1]!;
  t.ok(alive(gateway) && existsSync(folder));
  run.kill('SIGINT');
  const { code } = await run.done;
  t.equal(code, 130);
  t.notOk(alive(gateway), 'the gateway process is gone');
  t.notOk(existsSync(folder), 'the temp folder is gone');
});
