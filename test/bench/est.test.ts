/**
 * The EST-over-HTTPS benchmark in miniature (`npm run bench -- est --quick --devices 24`): a real gateway and a bare
 * node:https server, new TLS connections from client worker threads. Asserts outcomes only (every enrollment and
 * every baseline request answered 200, both rates measured, a goal line printed), never timing.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
// Its child processes run without tap's coverage hook (see helpers.ts).
import '../helpers.js';

interface Report {
  bench: string;
  measurements: Array<{ name: string; value: number; unit: string }>;
  goals: Array<{ name: string; met: boolean; detail: string }>;
}

t.test('est suite: every enrollment over a new TLS connection succeeds and both sides are measured', async (t) => {
  const { stdout } = await new Promise<{ stdout: string }>((ok, fail) =>
    execFile(process.execPath, [resolve('dist/bench/run.js'), 'est', '--quick', '--devices', '24'], { maxBuffer: 1 << 22 }, (err, stdout, stderr) =>
      err ? fail(new Error(`${err.message}\n${stderr}`)) : ok({ stdout }),
    ),
  );
  const line = stdout.split('\n').find((l) => l.startsWith('{"bench":"est"'));
  t.ok(line, 'a JSON line for the est suite');
  const report = JSON.parse(line!) as Report;
  const value = (prefix: string) => report.measurements.find((m) => m.name.startsWith(prefix))?.value;
  t.equal(value('failed requests'), 0, 'no request failed on either server');
  t.ok((value('wott EST simpleenroll') ?? 0) > 0, 'wott enrollments measured');
  t.ok((value('node:https + one P-256') ?? 0) > 0, 'baseline measured');
  t.equal(report.goals.length, 1);
  t.match(report.goals[0]!, { name: /EST enrollment over HTTPS >= 0.5x/, met: Boolean });
  t.match(stdout, /goal EST enrollment over HTTPS >= 0\.5x bare signing server \(issue 20\): (MET|NOT MET)/);
});
