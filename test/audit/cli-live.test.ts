/**
 * `wott audit run` sees the live broker: with a real `wott gateway` process on the data folder, the CLI asks it to
 * run the audit (POST /api/v1/audit/runs with the CLI's admin service certificate), so the checks that need the
 * broker's observations are assessed; `--local` audits the data folder alone and says which checks it cannot
 * assess; `--server` asks a remote gateway as an operator (a viewer is refused, but downloads the report);
 * `wott report compliance` comes from the gateway the same way; once the gateway stops, the CLI audits the data
 * folder alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { complianceReportSchema, type AuditRun } from '../../protocol/index.js';
import { findChromium } from '../../report/index.js';
import { CLI, requireCommand, startGatewayProcess, tempDir } from '../helpers.js';
import { run, waitFor } from '../mqtt-helpers.js';

const LIVE = ['certificates.two_places', 'certificates.revoked_connected', 'certificates.superseded_presented', 'identity.client_id_conflict', 'identity.failed_handshakes'];
const notAssessable = (r: AuditRun) => r.checks.filter((c) => c.status === 'not_assessable').map((c) => c.id);

t.test('wott audit run and wott report compliance ask the gateway on its data folder, or a remote one, for the live view', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const { child, port } = await startGatewayProcess(data);
  let exited = false;
  child.on('exit', () => (exited = true));
  t.teardown(() => void child.kill('SIGKILL'));
  const wott = (args: string[]) => run(process.execPath, [CLI, ...args], 60_000);

  const live = await wott(['audit', 'run', '--json', '--data', data]);
  t.equal(live.code, 0, live.stderr);
  t.equal(live.stderr, '', 'nothing to warn about');
  const gatewayRun = JSON.parse(live.stdout) as AuditRun;
  t.equal(gatewayRun.source, 'gateway', 'the run is the gateway\'s');
  t.same(notAssessable(gatewayRun).filter((id) => LIVE.includes(id)), [], 'every check that needs the live broker is assessed');
  t.match(gatewayRun.checks.find((c) => c.id === 'certificates.two_places')!.note, /connected identit/);

  const text = await wott(['audit', 'run', '--data', data]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^audit \S+ \(gateway\): 0 device\(s\)/, 'the text form says where it ran');

  const local = await wott(['audit', 'run', '--json', '--local', '--data', data]);
  t.equal(local.code, 0, local.stderr);
  const localRun = JSON.parse(local.stdout) as AuditRun;
  t.equal(localRun.source, 'cli');
  t.same(notAssessable(localRun).filter((id) => LIVE.includes(id)), LIVE, '--local: the live checks are not assessable');
  t.match(localRun.checks.find((c) => c.id === 'certificates.two_places')!.note, /no gateway runs on it, or --local/, 'and it says why');

  // The compliance report the same way: the gateway's (its audit has the live view), or --local.
  const report = join(dir, 'report.json');
  const made = await wott(['report', 'compliance', '--format', 'json', '--out', report, '--data', data]);
  t.equal(made.code, 0, made.stderr);
  t.match(made.stdout, /wrote .*report\.json: 19 provisions/);
  t.equal(complianceReportSchema.parse(JSON.parse(readFileSync(report, 'utf8'))).audit.source, 'gateway', 'the report from the gateway');
  const pdf = join(dir, 'report.pdf');
  if (findChromium()) {
    const printed = await wott(['report', 'compliance', '--format', 'pdf', '--out', pdf, '--data', data]);
    t.equal(printed.code, 0, printed.stderr);
    t.equal(readFileSync(pdf).subarray(0, 5).toString('latin1'), '%PDF-', 'the PDF printed by the gateway');
  }
  const offline = await wott(['report', 'compliance', '--format', 'json', '--local', '--out', report, '--data', data]);
  t.equal(offline.code, 0, offline.stderr);
  t.equal(complianceReportSchema.parse(JSON.parse(readFileSync(report, 'utf8'))).audit.source, 'cli', '--local: from the data folder');

  // A remote gateway, as an operator; a viewer may read the latest run but not start one.
  for (const [name, role] of [['olga', 'operator'], ['vic', 'viewer']] as const) {
    t.equal((await wott(['operator', 'create', name, '--role', role, '--out', join(dir, role), '--data', data])).code, 0, `a ${role} certificate`);
  }
  const server = `https://localhost:${port}`;
  const remote = await wott(['--server', server, '--credentials', join(dir, 'operator'), 'audit', 'run', '--json']);
  t.equal(remote.code, 0, remote.stderr);
  t.equal((JSON.parse(remote.stdout) as AuditRun).source, 'gateway', '--server: the remote gateway\'s run');
  const viewer = await wott(['--server', server, '--credentials', join(dir, 'viewer'), 'audit', 'run']);
  t.equal(viewer.code, 2, 'a viewer may not run one');
  t.match(viewer.stderr, /403/);
  const viewerReport = await wott(['--server', server, '--credentials', join(dir, 'viewer'), 'report', 'compliance', '--format', 'html', '--out', join(dir, 'remote.html')]);
  t.equal(viewerReport.code, 0, `a viewer downloads the report (${viewerReport.stderr})`);
  t.match(readFileSync(join(dir, 'remote.html'), 'utf8'), /ETSI EN 303 645 5\.13/);

  // The gateway stops: its listen file goes, and the CLI audits the data folder alone.
  child.kill('SIGTERM');
  await waitFor(() => exited, 'the gateway to stop');
  t.notOk(existsSync(join(data, 'gateway.listen.json')), 'the gateway removed its listen file');
  const after = await wott(['audit', 'run', '--json', '--data', data]);
  t.equal(after.code, 0, after.stderr);
  t.equal((JSON.parse(after.stdout) as AuditRun).source, 'cli', 'no gateway: the data folder alone');
});
