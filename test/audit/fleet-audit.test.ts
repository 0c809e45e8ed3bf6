/**
 * The fleet audit and the compliance report on a fixture fleet, on a real gateway (CA, EST, broker, scoring) with
 * real MQTT clients: a hardened device and a factory-default Pi (default credentials, telnet, no firewall) report
 * their state through the agent's collectors; a device is revoked and its certificate still tries to connect; a
 * policy rule is open to everyone and leaks; the CVE feed was loaded ten days ago; a token is left with a long life.
 * The audit finds exactly what that fleet holds, and the report judges each provision per device.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { complianceReportJsonSchema, complianceReportSchema, type AuditRun, type ComplianceReport } from '../../protocol/index.js';
import { renderComplianceHtml } from '../../report/index.js';
import { loadModel } from '../../scoring/index.js';
import { updateCveStore } from '../../vuln/index.js';
import { CLI, requireCommand, tempDir, writeTemp } from '../helpers.js';
import { connect, enroll, POLICIES, run, testGateway, tryConnect, waitFor } from '../mqtt-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';
import { topics } from '../../protocol/index.js';

const DAY = 86_400_000;
const LEAKY = { topic: 'sensors/#', publish: 0, subscribe: 0.6 };

t.test('a fixture fleet yields exactly the expected findings and provision results', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const policies = [...POLICIES, LEAKY];
  const gw = await testGateway(t, { policies, audit: { schedule: false }, scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: DAY, tickMs: 200 } });
  const config = writeTemp(dir, 'wott.yaml', 'gateway:\n  metricsPort: false\npolicies:\n' + policies.map((p) => `  - topic: "${p.topic}"\n    publish: ${p.publish}\n    subscribe: ${p.subscribe}\n`).join(''));
  // The CVE data was loaded ten days ago and not since.
  await updateCveStore({ dataDir: gw.dir, from: ['examples/cve/tracker-sample.json'], now: new Date(Date.now() - 10 * DAY) });

  const hardened = await enroll(gw, dir, 'hardened');
  const pi = await enroll(gw, dir, 'factory-pi');
  const stolen = await enroll(gw, dir, 'stolen');
  // What scoring last said about each device's CVEs: the feed above was loaded by another connection to the store,
  // which the gateway notices by polling, so a report may first be scored without it and re-matched after.
  const cveReason = new Map<string, string>();
  gw.scoring!.onScore((m) => {
    const f = m.factors.find((x) => x.id === 'cves');
    if (f) cveReason.set(m.device, f.reason);
  });
  const clients = [await connect(gw, hardened), await connect(gw, pi)];
  t.teardown(() => clients.forEach((c) => c.end(true)));
  await clients[0]!.publishAsync(topics.telemetry('hardened'), JSON.stringify(fixtureTelemetry('debian12-hardened', 'hardened', 1, Date.now())), { qos: 1 });
  await clients[1]!.publishAsync(topics.telemetry('factory-pi'), JSON.stringify(fixtureTelemetry('rpi-factory', 'factory-pi', 1, Date.now())), { qos: 1 });
  await gw.fleet.createToken('spare-unit', 30 * DAY);
  await gw.fleet.revoke({ deviceId: 'stolen' }, 'keyCompromise');
  await waitFor(() => gw.plugin.deviceState('stolen') === 'revoked', 'the broker to see the revocation');
  t.equal(await tryConnect(gw, stolen), undefined, 'the revoked certificate is refused');

  // Scoring has judged both reports, and the broker's refusal reached the audit's live facts.
  await waitFor(() => gw.plugin.effectiveScore('hardened') >= 0.8 && gw.plugin.effectiveScore('factory-pi') < 0.5, 'both reports scored');
  await waitFor(
    () => ['hardened', 'factory-pi'].every((d) => cveReason.has(d) && !/no vulnerability data loaded/.test(cveReason.get(d)!)),
    'both devices matched against the loaded CVE data',
  );
  let audit: AuditRun = await gw.audit.run();
  for (let i = 0; i < 100 && !audit.findings.some((f) => f.check === 'certificates.revoked_connected'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    audit = await gw.audit.run();
  }
  t.same(
    audit.findings.map((f) => `${f.severity} ${f.check} ${f.objects.join(',')}`),
    [
      'high ca.key_encryption ca:root,ca:intermediate',
      'high certificates.revoked_connected device:stolen',
      'medium ca.root_key_online ca:root',
      'medium operations.long_tokens device:spare-unit',
      'medium operations.vuln_data vuln:debian-tracker',
      'medium policy.open_to_everyone rule:sensors/#',
      'medium policy.publish_below_subscribe rule:sensors/#',
    ],
    'exactly the findings the fixture fleet holds, most severe first',
  );
  t.equal(audit.source, 'gateway');
  t.same(audit.checks.filter((c) => c.status === 'not_assessable').map((c) => c.id), [], 'the gateway has the live facts for every check');
  const revoked = audit.findings.find((f) => f.check === 'certificates.revoked_connected')!;
  t.match(revoked.evidence[0]!.fact, /handshake refused: (certificate|device) revoked from (127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)/, 'evidence: the refused handshake and where it came from');
  t.ok(Date.parse(revoked.evidence[0]!.observedAt) > 0, 'with when it was observed');
  t.match(audit.findings.find((f) => f.check === 'ca.key_encryption')!.fix, /wott ca encrypt/);
  t.match(audit.counts, { critical: 0, high: 2, medium: 5, low: 0, info: 0 });

  // The CLI on the same data folder: no live broker facts, and it says so instead of guessing. It reads the scores
  // the store holds, which scoring writes behind the broker: written now, so the CLI sees both devices' scores.
  await gw.scoring!.persist();
  const cli = await run(process.execPath, [CLI, 'audit', 'run', '--json', '--data', gw.dir, '--config', config], 60_000);
  t.equal(cli.code, 0, cli.stderr);
  const offline = JSON.parse(cli.stdout) as AuditRun;
  t.equal(offline.source, 'cli');
  t.same(
    offline.checks.filter((c) => c.status === 'not_assessable').map((c) => c.id),
    ['certificates.two_places', 'certificates.revoked_connected', 'certificates.superseded_presented', 'identity.client_id_conflict', 'identity.failed_handshakes'],
    'the checks that need the live broker are not assessable from the data folder',
  );
  t.same(
    offline.findings.map((f) => `${f.severity} ${f.check}`),
    ['high ca.key_encryption', 'medium ca.root_key_online', 'medium operations.long_tokens', 'medium operations.vuln_data', 'medium policy.open_to_everyone', 'medium policy.publish_below_subscribe'],
    'the rest agrees with the gateway',
  );

  // The compliance report, as JSON: valid against its schema, judged per provision and per device.
  const out = join(dir, 'report.json');
  const made = await run(process.execPath, [CLI, 'report', 'compliance', '--format', 'json', '--out', out, '--data', gw.dir, '--config', config], 60_000);
  t.equal(made.code, 0, made.stderr);
  const report: ComplianceReport = complianceReportSchema.parse(JSON.parse(readFileSync(out, 'utf8')));
  t.equal(report.previous, null, 'the first report has no trend');
  t.equal(report.gateway.devices, 2, 'the revoked device is left out of the judgements');
  const result = (id: string, device: string) => report.provisions.find((p) => p.id === id)!.devices.find((d) => d.device === device)?.result;
  const matrix = Object.fromEntries(report.provisions.filter((p) => p.scope === 'device').map((p) => [`${p.standard} ${p.id}`, { hardened: result(p.id, 'hardened'), pi: result(p.id, 'factory-pi') }]));
  t.same(
    matrix,
    {
      'ETSI EN 303 645 5.1': { hardened: 'met', pi: 'not_met' },
      // The sample feed's made-up CVEs on openssh and openssl match the hardened device's packages, with fixes.
      'ETSI EN 303 645 5.3': { hardened: 'not_met', pi: 'not_met' },
      'ETSI EN 303 645 5.4': { hardened: 'not_met', pi: 'not_met' },
      'ETSI EN 303 645 5.5': { hardened: 'met', pi: 'not_met' },
      'ETSI EN 303 645 5.6': { hardened: 'met', pi: 'not_met' },
      'ETSI EN 303 645 5.10': { hardened: 'met', pi: 'met' },
      'ETSI EN 303 645 5.12': { hardened: 'met', pi: 'met' },
      'NIST IR 8259A Device Identification': { hardened: 'met', pi: 'met' },
      'NIST IR 8259A Device Configuration': { hardened: 'met', pi: 'not_met' },
      'NIST IR 8259A Data Protection': { hardened: 'not_met', pi: 'not_met' },
      'NIST IR 8259A Logical Access to Interfaces': { hardened: 'met', pi: 'not_met' },
      'NIST IR 8259A Software Update': { hardened: 'not_met', pi: 'not_met' },
      'NIST IR 8259A Cybersecurity State Awareness': { hardened: 'met', pi: 'met' },
    },
    'per provision and device: what each device reported, judged',
  );
  t.same(
    report.provisions.filter((p) => p.scope === 'outside').map((p) => p.id),
    ['5.2', '5.7', '5.8', '5.9', '5.11', '5.13'],
    'the provisions wott cannot assess are said to be so',
  );
  t.ok(report.provisions.filter((p) => p.scope === 'outside').every((p) => p.result === 'not_assessable' && p.devices.length === 0 && p.why.length > 20));
  const p51 = report.provisions.find((p) => p.id === '5.1')!;
  const piDefault = p51.devices.find((d) => d.device === 'factory-pi')!;
  t.match(piDefault.evidence[0]!.fact, /defaultCredentials: default or empty password for /, 'evidence names the fact');
  t.match(piDefault.fix, /passwd/, 'and the fix');
  const p56 = report.provisions.find((p) => p.id === '5.6')!.devices.find((d) => d.device === 'factory-pi')!;
  t.match(p56.evidence.map((e) => e.fact).join('\n'), /telnet/, '5.6: telnet is in the evidence');
  t.match(p56.evidence.map((e) => e.fact).join('\n'), /firewall: no firewall rules/, '5.6: the missing firewall too');
  t.same(p51.summary, { met: 1, notMet: 1, notAssessable: 0 });
  t.match(report.provisions.find((p) => p.id === '5.3')!.devices.find((d) => d.device === 'hardened')!.evidence.map((e) => e.fact).join('\n'), /cves: 2 fixed vulnerabilities .*CVE-2099-0001 in openssh/, '5.3: the CVE with a fix is the evidence');
  t.equal(report.provisions.find((p) => p.id === '5.4')!.result, 'not_met', '5.4: the CA keys are not encrypted (a high audit finding) either');
  t.same(report.summary.met['ETSI EN 303 645 5.1'], 1);

  // A second report has the trend against the first.
  await gw.fleet.quarantine('factory-pi');
  const again = await run(process.execPath, [CLI, 'report', 'compliance', '--format', 'json', '--out', out, '--data', gw.dir, '--config', config], 60_000);
  t.equal(again.code, 0, again.stderr);
  const second = complianceReportSchema.parse(JSON.parse(readFileSync(out, 'utf8')));
  t.same(second.previous, report.summary, 'the previous summary is kept for the trend');

  // HTML: self-contained, every text escaped.
  const hostile = structuredClone(report);
  hostile.provisions[0]!.devices[1]!.evidence[0]!.fact = '<img src=https://evil.example/x onerror=alert(1)>';
  const html = renderComplianceHtml(hostile);
  t.notMatch(html, /<img|<script|<link|@import|url\(/i, 'nothing that loads or runs');
  t.match(html, /&lt;img src=https:\/\/evil\.example\/x onerror=alert\(1\)&gt;/, 'the hostile text is shown as text');
  t.notMatch(html.replace(/&lt;img src=https:\/\/evil\.example[^&]*&gt;/, ''), /https?:\/\//, 'no outside address at all');
  for (const p of report.provisions) t.ok(html.includes(p.title.replace(/'/g, '&#39;')), `the page has ${p.standard} ${p.id}`);
});

t.test('the published JSON Schema of the report has not drifted (npm run schema rewrites it)', async (t) => {
  const committed = JSON.parse(readFileSync('protocol/compliance-report.schema.json', 'utf8')) as unknown;
  t.same(committed, complianceReportJsonSchema());
});
