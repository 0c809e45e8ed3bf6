/**
 * The compliance report through the API (GET /api/v1/reports/compliance) on a real gateway: a viewer downloads it as
 * JSON (our HTTPS client), HTML and PDF (curl with an operator certificate); the three are one report (one build),
 * built from the gateway's live view (the connected device's session is evidence); the PDF is printed by Debian's
 * chromium once however many ask at the same time, and pdftotext finds every provision in it. The limit answers 503
 * with Retry-After and a reason; the use case's own limits (one build at a time, the cache, waiting requests) are
 * exercised with a fixture fleet.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { AuditFacts } from '../../audit/index.js';
import { API_PREFIX, complianceReportSchema } from '../../protocol/index.js';
import { ComplianceReports, PROVISIONS, ReportBusyError } from '../../report/index.js';
import { openReportHistory } from '../../store/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, run, testGateway, waitFor } from '../mqtt-helpers.js';
import { api, operatorCredentials } from '../api/helpers.js';

/** curl GET of `path` below /api/v1 with a client certificate: status, headers (lower-case names) and the file. */
async function curl(gw: { httpsPort: number; caPem: string }, dir: string, who: { cert: string; key: string }, path: string, out: string) {
  // Files of this request's own: requests run at the same time.
  const ca = `${out}.ca.pem`;
  writeFileSync(ca, gw.caPem);
  const cert = `${out}.crt`;
  const key = `${out}.key`;
  writeFileSync(cert, who.cert);
  writeFileSync(key, who.key, { mode: 0o600 });
  const headers = `${out}.headers`;
  const r = await run('curl', ['-sS', '--cacert', ca, '--cert', cert, '--key', key, '-D', headers, '-o', out, '-w', '%{http_code}', `https://localhost:${gw.httpsPort}${API_PREFIX}${path}`], 120_000);
  const lines = readFileSync(headers, 'utf8').split(/\r?\n/);
  const map = Object.fromEntries(lines.filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(r.stdout), stderr: r.stderr, headers: map as Record<string, string> };
}

t.test('a viewer downloads the compliance report as JSON, HTML and PDF: one report from the live view', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl') || !requireCommand(t, 'curl', 'curl')) return;
  if (!requireCommand(t, 'chromium', 'chromium') || !requireCommand(t, 'pdftotext', 'poppler-utils')) return;
  // A long cache time: the test's requests are one report whatever the machine's speed.
  const gw = await testGateway(t, { audit: { schedule: false }, reports: { cacheMs: 3_600_000 } });
  const dir = tempDir(t);
  const client = await connect(gw, await enroll(gw, dir, 'door-1'));
  t.teardown(() => client.end(true));
  const viewer = await operatorCredentials(gw, 'viewer', 'auditor');

  const json = await api(gw, 'GET', '/reports/compliance?format=json', viewer);
  t.equal(json.status, 200, json.body.slice(0, 300));
  t.match(json.headers['content-type'], /^application\/json/);
  t.match(json.headers['content-disposition'], /^attachment; filename="wott-compliance-\d{8}T\d{6}Z\.json"$/, 'a download with a name of its time');
  const report = complianceReportSchema.parse(json.json);
  t.equal(report.audit.source, 'gateway', 'built with the live broker facts');
  t.equal(report.gateway.devices, 1);
  t.notOk(report.audit.checks.some((c) => /only the running gateway's broker observes/.test(c.note ?? '')), 'no check is short of the live view');
  t.ok(report.audit.checks.some((c) => c.note === '1 connected identity checked'), 'the connected device is evidence');
  t.equal(json.headers['last-modified'], new Date(report.generatedAt).toUTCString(), 'Last-Modified is the report time');

  const html = await curl(gw, dir, viewer, '/reports/compliance?format=html', join(dir, 'report.html'));
  t.equal(html.status, 200, html.stderr);
  t.match(html.headers['content-type'], /^text\/html/);
  t.match(html.headers['content-disposition'], /^attachment; filename="wott-compliance-\d{8}T\d{6}Z\.html"$/);
  t.equal(html.headers['last-modified'], json.headers['last-modified'], 'the same report as the JSON');
  const page = readFileSync(join(dir, 'report.html'), 'utf8');
  for (const p of PROVISIONS) t.ok(page.includes(`${p.standard} ${p.id}`), `the page has ${p.standard} ${p.id}`);
  t.match(page, /door-1/);

  // Three at once: Chromium prints once, all get the same bytes.
  const pdfs = await Promise.all([1, 2, 3].map((i) => curl(gw, dir, viewer, '/reports/compliance?format=pdf', join(dir, `report-${i}.pdf`))));
  for (const r of pdfs) {
    t.equal(r.status, 200, r.stderr);
    t.equal(r.headers['content-type'], 'application/pdf');
    t.match(r.headers['content-disposition'], /^attachment; filename="wott-compliance-\d{8}T\d{6}Z\.pdf"$/);
  }
  const bytes = [1, 2, 3].map((i) => readFileSync(join(dir, `report-${i}.pdf`)));
  t.equal(bytes[0]!.subarray(0, 5).toString('latin1'), '%PDF-');
  t.ok(bytes[0]!.equals(bytes[1]!) && bytes[0]!.equals(bytes[2]!), 'one PDF for the three requests');
  t.same(gw.reports.stats, { builds: 1, pdfs: 1 }, 'one report built, one PDF printed for five downloads');
  const text = execFileSync('pdftotext', [join(dir, 'report-1.pdf'), '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
  for (const p of PROVISIONS) t.ok(text.includes(`${p.standard} ${p.id} — `), `pdftotext finds ${p.standard} ${p.id}`);

  t.equal((await api(gw, 'GET', '/reports/compliance?format=pdf')).status, 401, 'not without credentials');
  const bad = await api(gw, 'GET', '/reports/compliance?format=docx', viewer);
  t.equal(bad.status, 400, 'an unknown format is refused');
  t.match(bad.json.message, /format/);
});

t.test('beyond the limit the gateway answers 503 with a reason and Retry-After', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { audit: { schedule: false }, reports: { maxWaiting: 0 } });
  const viewer = await operatorCredentials(gw, 'viewer', 'auditor');
  const r = await api(gw, 'GET', '/reports/compliance?format=html', viewer);
  t.equal(r.status, 503);
  t.match(r.json.message, /compliance report requests are being worked on already.*retry/);
  t.ok(Number(r.headers['retry-after']) >= 1, 'Retry-After');
  t.same(gw.reports.stats, { builds: 0, pdfs: 0 }, 'nothing was built');
});

const NOW = Date.parse('2026-11-30T12:00:00Z');
const DAY = 86_400_000;
const ec = (subject: string, days: number) => ({ subject, notBefore: NOW - DAY, notAfter: NOW + days * DAY, keyType: 'ec', curve: 'prime256v1', fingerprint: 'AA' });
function fixture(devices: string[]): AuditFacts {
  return {
    now: NOW,
    source: 'gateway',
    ca: { root: ec('CN=root', 7000), intermediate: ec('CN=issuing', 1800), rootKeyOnline: false, keys: [{ name: 'intermediate', encrypted: true }] },
    devices: devices.map((id, i) => ({ id, state: 'active', tpm: false, createdAt: new Date(NOW - 30 * DAY).toISOString(), certificates: [{ serial: `0${i + 1}`, status: 'active', notBefore: NOW - DAY, notAfter: NOW + 6 * DAY }] })),
    tokens: [],
    auditLog: [],
    config: { policies: [{ topic: 'weather/#', publish: 0.5, subscribe: 0.4 }], initialScore: 0.5, claim: false, metrics: { port: false, bind: '127.0.0.1' }, influx: false, apiRoutes: [] },
    vuln: null,
    live: { since: NOW - DAY, sessions: new Map(), events: new Map() },
  };
}

t.test('the use case builds one report at a time, serves it for cacheMs, and refuses requests beyond maxWaiting', async (t) => {
  const dir = tempDir(t);
  let clock = NOW;
  let fleet = ['a', 'b'];
  let release: () => void = () => undefined;
  let collects = 0;
  const reports = new ComplianceReports({
    history: openReportHistory(dir),
    cacheMs: 60_000,
    maxWaiting: 2,
    now: () => clock,
    // The facts arrive when the test says (a gate, not a delay): requests pile up meanwhile.
    collect: async () => {
      collects++;
      await new Promise<void>((r) => (release = r));
      return fixture(fleet);
    },
  });
  const first = reports.render('json');
  const second = reports.render('html');
  await waitFor(() => collects === 1, 'the build under way');
  await t.rejects(reports.render('json'), ReportBusyError, 'a third waiting request is refused');
  release();
  const [a, b] = await Promise.all([first, second]);
  t.equal(collects, 1, 'the two waiting requests shared one build');
  t.equal(a.report, b.report, 'JSON and HTML are the same report');
  t.equal(JSON.parse(a.body.toString()).generatedAt, a.report.generatedAt);
  t.match(b.body.toString(), /<html/);
  t.same(a.report.previous, null, 'the first report has no trend');

  fleet = ['a', 'b', 'c'];
  clock += 59_000;
  const cached = await reports.render('html');
  t.equal(cached.report, a.report, 'within cacheMs: the same report, no new build');
  t.equal(collects, 1);
  t.equal(cached.body, b.body, 'and the same rendering');

  clock += 2_000;
  const next = reports.render('json');
  await waitFor(() => collects === 2, 'the second build under way');
  release();
  const fresh = await next;
  t.equal(collects, 2, 'after cacheMs a request builds a new report');
  t.equal(fresh.report.summary.devices, 3);
  t.equal(fresh.report.previous?.devices, 2, 'with the previous report as its trend');
  t.same(reports.stats, { builds: 2, pdfs: 0 });

  // A build that fails is not kept: the next request builds again.
  clock += 61_000;
  const failing = new ComplianceReports({ history: openReportHistory(dir), collect: async () => Promise.reject(new Error('store unreachable')), now: () => clock });
  await t.rejects(failing.render('json'), /store unreachable/);
  await t.rejects(failing.render('json'), /store unreachable/, 'tried again, not a cached failure');
});
