/**
 * The fleet read routes of issue 13 on a real gateway with real scoring: two enrolled devices report real telemetry
 * over MQTT (a hardened host with this machine's packages, matched against the CVE fixture feed; a factory Pi), and
 * the API shows what the broker enforces and what scoring found — device list fields and filters, one device in
 * full, the summary, actions with snooze / ignore / un-ignore (audited, refused for viewers), vulnerabilities (JSON
 * and CSV), policies and explain. Hostile filters are a 400 that changes nothing.
 */
import t from 'tap';
import { collectOs, collectPackages } from '../../agent/collectors/index.js';
import { topics } from '../../protocol/index.js';
import { loadModel } from '../../scoring/index.js';
import { CLI, requireCommand, tempDir } from '../helpers.js';
import { connect, connectError, enroll, run, testGateway, waitFor } from '../mqtt-helpers.js';
import { fixtureTelemetry } from '../scoring-fixtures.js';
import { api, operatorCredentials, sessionFor } from './helpers.js';

t.test('fleet routes: list, detail, summary, actions, vulnerabilities, policies, explain', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { scoring: { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 } });
  const dir = tempDir(t);
  const hard = await enroll(gw, dir, 'fr-hard');
  const weak = await enroll(gw, dir, 'fr-weak');
  await enroll(gw, dir, 'fr-idle'); // enrolled, never connected, never reported
  const ch = await connect(gw, hard);
  const cw = await connect(gw, weak);
  t.teardown(() => [ch, cw].forEach((c) => c.end(true)));
  const update = await run('node', [CLI, 'cve', 'update', '--from', 'test/fixtures/cve/tracker.json', '--data', gw.dir], 60_000);
  t.equal(update.code, 0, `cve update: ${update.stderr.slice(0, 200)}`);
  const report = fixtureTelemetry('debian12-hardened', 'fr-hard', 1, Date.now());
  const packages = collectPackages('/');
  report.packages = { count: packages.list.length, hash: packages.hash, list: packages.list };
  report.os = collectOs('/');
  const before = Date.now();
  await ch.publishAsync(topics.telemetry('fr-hard'), JSON.stringify(report), { qos: 1 });
  await cw.publishAsync(topics.telemetry('fr-weak'), JSON.stringify(fixtureTelemetry('rpi-factory', 'fr-weak', 1, Date.now())), { qos: 1 });

  const viewer = await operatorCredentials(gw, 'viewer', 'vera');
  const operator = await operatorCredentials(gw, 'operator', 'olga');
  const get = async (path: string) => {
    const r = await api(gw, 'GET', path, viewer);
    t.equal(r.status, 200, `GET ${path}: 200 (${r.body.slice(0, 160)})`);
    return r;
  };
  const detail = async (id: string) => (await api(gw, 'GET', `/devices/${id}`, viewer)).json;
  // Scored (the weak one low), findings matched for the hardened one, and history persisted.
  await waitFor(() => gw.plugin.effectiveScore('fr-weak') < 0.4, 'the factory Pi scored low', 20_000);
  let hardDetail: any;
  for (let i = 0; i < 150; i++) {
    hardDetail = await detail('fr-hard');
    if (hardDetail.findings.length > 0 && hardDetail.history.length > 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.ok(hardDetail.findings.length > 0, 'findings of the hardened host with this machine\'s packages');

  // The list: what the broker enforces, the costliest factor, last report, connection, vulnerability counts.
  const list = (await get('/devices?sort=score&order=asc')).json;
  t.same(list.items.map((d: any) => d.id), ['fr-weak', ...['fr-idle', 'fr-hard'].sort((a, b) => (gw.plugin.effectiveScore(a) - gw.plugin.effectiveScore(b)) || a.localeCompare(b))], 'sorted by effective score');
  const w = list.items.find((d: any) => d.id === 'fr-weak');
  t.equal(w.score, gw.plugin.effectiveScore('fr-weak'), 'the effective score the broker enforces');
  t.ok(w.worstFactor && w.worstFactor.contribution < 0 && w.worstFactor.reason, 'the costliest factor, with its reason');
  t.ok(Date.parse(w.lastReport) >= before - 1000, 'last report: the telemetry just sent');
  t.match(w.connected, { since: String, sessions: 1 }, 'connected now');
  t.match(w.connected.remoteAddress, /127\.0\.0\.1/, 'from this address');
  const idle = list.items.find((d: any) => d.id === 'fr-idle');
  t.same([idle.connected, idle.lastReport], [null, null], 'an idle device: not connected, no report');
  t.match(idle.worstFactor, { id: 'telemetry', reason: /no state report/ }, 'an idle device: what costs it most is the missing report');
  const h = list.items.find((d: any) => d.id === 'fr-hard');
  t.equal(Object.values(h.vulnerabilities as Record<string, number>).reduce((a, b) => a + b, 0), hardDetail.findings.length, 'vulnerability counts by severity add up to the findings');

  // Cursor pages by score (a numeric key) cover the list once, in order.
  const paged: string[] = [];
  for (let cursor = '', i = 0; i < 5; i++) {
    const page = (await get(`/devices?sort=score&order=asc&limit=1${cursor}`)).json;
    paged.push(...page.items.map((x: any) => x.id));
    if (!page.nextCursor) break;
    cursor = `&cursor=${page.nextCursor}`;
  }
  t.same(paged, list.items.map((x: any) => x.id), 'score-sorted cursor pages');

  // Filters: score range, below a rule's threshold, free text; CSV carries the new columns.
  t.same((await get('/devices?maxScore=0.3')).json.items.map((d: any) => d.id), ['fr-weak'], 'maxScore');
  t.notOk((await get('/devices?minScore=0.45')).json.items.some((d: any) => d.id === 'fr-weak'), 'minScore');
  const belowPayments = (await get(`/devices?below=${encodeURIComponent('publish:payments/#')}`)).json.items.map((d: any) => d.id);
  t.ok(belowPayments.includes('fr-weak') && belowPayments.includes('fr-idle'), 'below payments/# (0.9) for publish');
  t.same((await get(`/devices?below=${encodeURIComponent('subscribe:weather/#')}`)).json.items.map((d: any) => d.id), ['fr-weak'], 'below weather/# (0.4) for subscribe');
  t.same((await get('/devices?q=WEAK')).json.items.map((d: any) => d.id), ['fr-weak'], 'free text, any case');
  const csv = await get('/devices?format=csv&q=weak');
  t.match(csv.body.split('\r\n')[0], /"score","worstFactor","lastReport","connectedSince","remoteAddress","critical","high","medium","low"/);
  t.match(csv.body.split('\r\n')[1], /^"fr-weak","active"/);

  // One device in full.
  const d = await detail('fr-weak');
  const allFindings = [...hardDetail.findings, ...d.findings];
  t.ok(d.factors.length > 3 && d.factors.every((f: any) => typeof f.reason === 'string'), 'every factor with its reason');
  t.ok(d.factors.some((f: any) => f.contribution < 0 && f.fix), 'costly factors say how to fix them');
  t.same(d.factors.map((f: any) => f.contribution), [...d.factors.map((f: any) => f.contribution)].sort((a: number, b: number) => a - b), 'costliest first');
  t.ok(d.history.length >= 1 && d.history.every((p: any) => typeof p.score === 'number'), 'score history from the scores store');
  t.equal(d.certificates.length, 1);
  t.match(d.sessions, [{ clientId: 'fr-weak', since: String }], 'its live session');
  t.ok(d.events.some((e: any) => e.type === 'connect' && e.remoteAddress), 'recent behaviour events: its connect, with the address');
  t.ok(d.actions.length > 0 && d.actions.every((a: any) => a.status === 'open' && a.fix && a.cost >= 0), 'recommended actions, open');
  t.ok(hardDetail.findings.every((f: any) => f.cve && f.installed && f.fixed && f.fixCommand), 'each finding with installed, fixed and the command that fixes it');
  t.ok(hardDetail.actions.some((a: any) => a.id.startsWith('cve:')), 'one action per CVE');
  t.equal((await api(gw, 'GET', '/devices/nobody', viewer)).status, 404, 'an unknown device: 404');

  // The summary.
  const s = (await get('/fleet/summary')).json;
  t.equal(s.scoreHistogram.reduce((n: number, b: any) => n + b.devices, 0), 3, 'every device in the histogram');
  t.match(s.belowThreshold.find((b: any) => b.topic === 'payments/#' && b.action === 'publish'), { threshold: 0.9, devices: belowPayments.length });
  t.equal(Object.values(s.vulnerabilities as Record<string, number>).reduce((a, b) => a + b, 0), allFindings.length, 'vulnerabilities by severity');
  t.ok(s.topActions.length > 0 && s.topActions[0].devices >= 1, 'top recommended actions with device counts');

  // Actions across the fleet; snooze, ignore, un-ignore: audited as the caller, refused for viewers.
  const actions = (await get('/actions')).json;
  const act = d.actions[0].id as string;
  t.ok(actions.items.find((g: any) => g.id === act)?.devices.some((x: any) => x.id === 'fr-weak'), `action ${act} lists fr-weak`);
  const path = `/devices/fr-weak/actions/${encodeURIComponent(act)}`;
  const audit = async () => (await gw.ca.inventory.auditEntries()).at(-1)!;
  const refused = await api(gw, 'POST', `${path}/snooze`, { ...viewer, body: { duration: '24h' } });
  t.equal(refused.status, 403, 'a viewer may not snooze');
  const snoozed = await api(gw, 'POST', `${path}/snooze`, { ...operator, body: { duration: '7d' } });
  t.equal(snoozed.status, 200, `snooze: ${snoozed.body.slice(0, 200)}`);
  t.equal(snoozed.json.status, 'snoozed');
  t.ok(Math.abs(Date.parse(snoozed.json.snoozedUntil) - Date.now() - 7 * 86_400_000) < 60_000, 'for 7 days');
  t.match(await audit(), { actor: 'cert:operator:olga', action: 'action.snooze', device: 'fr-weak', target: act, outcome: 'ok' }, 'audited with the caller');
  t.notOk((await get('/actions')).json.items.find((g: any) => g.id === act)?.devices.some((x: any) => x.id === 'fr-weak'), 'no longer open');
  t.ok((await get('/actions?status=snoozed')).json.items.find((g: any) => g.id === act)?.devices.some((x: any) => x.id === 'fr-weak'), 'listed as snoozed');
  t.equal((await detail('fr-weak')).score, w.score, 'a snoozed action still counts in the score');
  const session = await sessionFor(gw, 'operator', 'sam');
  const ignored = await api(gw, 'POST', `${path}/ignore`, { cookie: session.cookie, csrf: session.csrf, body: {} });
  t.equal(ignored.json.status, 'ignored', 'ignore');
  t.match(await audit(), { actor: 'session:operator:sam', action: 'action.ignore', target: act });
  t.match((await detail('fr-weak')).actions.find((a: any) => a.id === act), { status: 'ignored' });
  const unignored = await api(gw, 'DELETE', path, operator);
  t.same(unignored.json, { device: 'fr-weak', action: act, status: 'open', snoozedUntil: null }, 'un-ignore');
  t.match(await audit(), { action: 'action.unignore', outcome: 'ok' });
  const again = await api(gw, 'DELETE', path, operator);
  t.equal(again.status, 404, 'un-ignoring what is not ignored: 404');
  t.match(await audit(), { action: 'action.unignore', outcome: 'refused' }, 'the refusal is audited');
  t.equal((await api(gw, 'POST', `/devices/nobody/actions/firewall/ignore`, { ...operator, body: {} })).status, 404, 'an unknown device: 404');
  const capped = (await get('/actions?devices=1&status=all')).json.items;
  t.ok(capped.length > 0 && capped.every((g: any) => g.devices.length === 1 && g.affected >= 1), 'devices per action capped; affected counts them all');
  t.ok(capped.some((g: any) => g.affected === 2), 'an action two devices need says so');
  const csvActions = await get('/actions?format=csv');
  t.match(csvActions.body.split('\r\n')[0], /^"action","title","fix","device","cost","status","snoozedUntil"$/);

  // Vulnerabilities across the fleet.
  const vulns = (await get('/vulnerabilities')).json;
  t.equal(vulns.total, new Set(allFindings.map((f: any) => f.cve)).size, 'every CVE once');
  t.ok(vulns.items.every((v: any) => v.devices.every((x: any) => ['fr-hard', 'fr-weak'].includes(x.id) && x.installed && x.fixed && x.fixCommand)), 'affected devices with versions and fix');
  t.ok(vulns.items.find((v: any) => v.cve === hardDetail.findings[0].cve)?.devices.some((x: any) => x.id === 'fr-hard'), 'a CVE of the hardened host lists it');
  const first = vulns.items[0].cve as string;
  t.same((await get(`/vulnerabilities?q=${first}`)).json.items.map((v: any) => v.cve), [first], 'search by CVE id');
  const vcsv = await get('/vulnerabilities?format=csv');
  t.match(vcsv.body.split('\r\n')[0], /^"cve","severity","device","package","installed","fixed","fixCommand"$/);

  // Policies and explain.
  const policies = (await get('/policies')).json;
  t.equal(policies.devices, 3);
  const weather = policies.items.find((p: any) => p.topic === 'weather/#');
  t.equal(weather.passing.publish, ['fr-hard', 'fr-weak', 'fr-idle'].filter((id) => gw.plugin.effectiveScore(id) >= 0.4).length, 'devices passing weather/# publish');
  const explained = await api(gw, 'POST', '/policies/explain', { ...viewer, body: { device: 'fr-weak', topic: 'weather/x', action: 'publish' } });
  t.match(explained.json, { allowed: false, rule: 'weather/#', threshold: 0.4, state: 'active' }, 'explain: the broker\'s decision');
  t.same(explained.json, { ...gw.plugin.explain('fr-weak', 'weather/x', 'publish'), rule: 'weather/#', state: 'active' }, 'the same as the plugin');
});

t.test('fleet routes: hostile filters and bodies are a 400 that changes nothing', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const hDev = await enroll(gw, dir, 'h-dev');
  const operator = await operatorCredentials(gw, 'operator', 'olga');
  const auditBefore = (await gw.ca.inventory.auditEntries()).length;
  const bad: Array<[string, string, unknown?]> = [
    ['GET', '/devices?minScore=2'],
    ['GET', '/devices?maxScore=-1'],
    ['GET', '/devices?minScore=abc'],
    ['GET', `/devices?below=${encodeURIComponent('publish:nope/#')}`],
    ['GET', `/devices?below=${encodeURIComponent("delete:weather/#")}`],
    ['GET', `/devices?below=${encodeURIComponent("publish:weather/#' OR 1=1 --")}`],
    ['GET', `/devices?below=${encodeURIComponent('publish:')}`],
    ['GET', '/devices?sort=score;drop'],
    ['GET', '/devices?cursor=bm90LWpzb24'],
    ['GET', '/devices?cursor=../../x'],
    ['GET', `/devices?q=${encodeURIComponent('\u0000x')}`],
    ['GET', '/actions?status=everything'],
    ['GET', '/actions?limit=100000'],
    ['GET', '/actions?devices=0'],
    ['GET', `/vulnerabilities?q=${encodeURIComponent("CVE' OR 1=1")}`],
    ['GET', '/vulnerabilities?severity=apocalyptic'],
    ['POST', '/devices/h-dev/actions/firewall/snooze', { duration: '1y' }],
    ['POST', '/devices/h-dev/actions/firewall/snooze', { duration: '24h', until: '2099-01-01' }],
    ['POST', '/devices/h-dev/actions/firewall/snooze', '{"duration":'],
    ['POST', '/policies/explain', { device: 'h-dev', topic: 'a\u0000b', action: 'publish' }],
    ['POST', '/policies/explain', { device: "h' OR 1=1", topic: 'weather/x', action: 'publish' }],
    ['POST', '/policies/explain', { device: 'h-dev', topic: 'weather/x', action: 'delete' }],
    ['POST', '/policies/explain', { device: 'h-dev', topic: 'x'.repeat(2000), action: 'publish' }],
  ];
  for (const [method, path, body] of bad) {
    const r = await api(gw, method, path, { ...operator, ...(body !== undefined ? { body } : {}) });
    t.equal(r.status, 400, `${method} ${path.slice(0, 80)} → 400 (${r.json?.message?.slice(0, 100)})`);
  }
  t.equal((await gw.ca.inventory.auditEntries()).length, auditBefore, 'nothing reached the fleet');
  t.same((await gw.fleet.actionDecisions()), [], 'no decision stored');

  // A refused connection of a device of ours (its certificate revoked) is among its recent events, with the reason.
  await gw.fleet.revoke({ deviceId: 'h-dev' }, 'keyCompromise');
  await waitFor(() => gw.plugin.deviceState('h-dev') === 'revoked', 'the broker to see the revocation');
  await connectError(gw, hDev);
  const events = async () => (await api(gw, 'GET', '/devices/h-dev', operator)).json.events as Array<{ type: string; reason: string | null }>;
  for (let i = 0; i < 100 && !(await events()).some((e) => e.type === 'auth_failure'); i++) await new Promise((r) => setTimeout(r, 50));
  t.match((await events()).find((e) => e.type === 'auth_failure'), { reason: /revoked/ }, 'the refused connection, with its reason');
});

t.test('last report survives a gateway restart (from scoring\'s stored records)', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const scoring = { model: loadModel(), republishMs: 60_000, historyRetentionMs: 86_400_000, tickMs: 200 };
  const dataDir = tempDir(t);
  const first = await testGateway(t, { dataDir, scoring });
  const dir = tempDir(t);
  const dev = await enroll(first, dir, 'lr-dev');
  const c = await connect(first, dev);
  await c.publishAsync(topics.telemetry('lr-dev'), JSON.stringify(fixtureTelemetry('debian12-hardened', 'lr-dev', 1, Date.now())), { qos: 1 });
  const viewer = await operatorCredentials(first, 'viewer', 'vera');
  const lastReport = async (gw: typeof first) => (await api(gw, 'GET', '/devices/lr-dev', viewer)).json.lastReport as string | null;
  for (let i = 0; i < 100 && !(await lastReport(first)); i++) await new Promise((r) => setTimeout(r, 50));
  const before = await lastReport(first);
  t.ok(before, 'a last report');
  await waitFor(() => first.plugin.effectiveScore('lr-dev') > 0.5, 'scored from the report');
  c.end(true);
  await first.close();
  const second = await testGateway(t, { dataDir, scoring });
  t.ok(await lastReport(second), 'shown after the restart');
  t.ok(Math.abs(Date.parse((await lastReport(second))!) - Date.parse(before!)) < 1000, 'the same time (within the second the broker and scoring saw it)');
});
