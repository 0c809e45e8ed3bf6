/**
 * Lateral movement, pure: the factor's math (scoring/lateral.ts) and the engine attributing telemetry's intrusion
 * sources through the address map (NAT, spoofed, self, unknown, rate), with an injected clock.
 */
import t from 'tap';
import { addLateral, lateralEventText, lateralPenalty, loadModel, ScoreEngine, type LateralEntry } from '../../scoring/index.js';
import { event, fixtureTelemetry } from '../scoring-fixtures.js';

const model = loadModel();
const M = model.lateralMovement;

t.test('the factor: k reporters for the full effect, weighted by reporter score, decaying, saturating', async (t) => {
  const now = 10_000_000;
  const entries = new Map<string, LateralEntry>();
  addLateral(entries, 'dev-y', 240, 0, ['ssh'], model, now);
  const one = lateralPenalty('dev-x', entries.values(), model, now, () => 0.9)!;
  t.ok(one.penalty <= M.max / M.k + 1e-9, `one reporter: ${one.penalty} at most max/k = ${M.max / M.k}`);
  t.ok(one.penalty > (M.max / M.k) * 0.99, 'and 240 attempts saturate it');
  t.same(one.reporters, ['dev-y']);
  t.match(one.reason, /reported by dev-y: it attempted 240 logins on 1 device in the last hour; one reporter alone counts for at most 1\/2/);

  addLateral(entries, 'dev-z', 0, 30, ['telnet'], model, now);
  const two = lateralPenalty('dev-x', entries.values(), model, now, () => 0.9)!;
  t.ok(two.penalty > one.penalty && two.penalty <= M.max, `two reporters: ${two.penalty}`);
  t.equal(two.fix, 'isolate dev-x: it attempted 240 logins and 30 blocked connections on 2 devices in the last hour');
  t.match(two.reason, /dev-y and dev-z/);

  t.equal(lateralPenalty('dev-x', entries.values(), model, now, () => M.minReporterScore - 0.01), undefined, 'reporters below minReporterScore count for nothing');
  const mixed = lateralPenalty('dev-x', entries.values(), model, now, (r) => (r === 'dev-z' ? 0.1 : 0.9))!;
  t.equal(mixed.penalty, one.penalty, 'a low-score second reporter adds nothing');
  t.same(mixed.reporters, ['dev-y']);

  const later = lateralPenalty('dev-x', entries.values(), model, now + M.halfLife * 4, () => 0.9)!;
  t.ok(later.penalty < two.penalty, `decays: ${later.penalty} four half-lives later`);
  t.equal(later.logins + later.dropped, 0, 'nothing in the last hour any more');
  t.match(later.reason, /earlier than the last hour/);
  t.equal(lateralPenalty('dev-x', entries.values(), model, now + M.maxAge + 1, () => 0.9), undefined, 'forgotten after maxAge');

  const few = new Map<string, LateralEntry>();
  addLateral(few, 'dev-y', 2, 0, ['ssh'], model, now);
  addLateral(few, 'dev-z', 2, 0, ['ssh'], model, now);
  const small = lateralPenalty('dev-x', few.values(), model, now, () => 0.9)!;
  t.ok(small.penalty < 0.1, `two failed logins each cost little: ${small.penalty}`);

  t.equal(lateralEventText('dev-x', ['dev-y', 'dev-z'], 240, 0), 'dev-x tried to log in to dev-y and dev-z 240 times');
  t.equal(lateralEventText('dev-x', ['dev-y'], 0, 5), 'dev-x tried to connect to dev-y 5 times (blocked by their firewalls)');
});

/** An engine whose CA inventory knows `known`; the clock is `clock.now`. */
function engine(known: string[], clock = { now: Date.now() }) {
  const set = new Set(known);
  return { clock, e: new ScoreEngine({ model, now: () => clock.now, caFacts: (d) => (set.has(d) ? { state: 'active' } : undefined) }) };
}

let reportId = 0;
function intrusionReport(reporter: string, time: number, sources: Array<{ address: string; failedLogins?: number; dropped?: number }>): string {
  const tm = fixtureTelemetry('debian12-hardened', reporter, ++reportId, time);
  return JSON.stringify({ ...tm, intrusions: { windowSeconds: 60, sources: sources.map((s) => ({ failedLogins: 0, dropped: 0, services: ['ssh'], ...s })) } });
}

t.test('the engine attributes a source to the one device that held it in the window', async (t) => {
  const { e, clock } = engine(['dev-x', 'dev-y', 'dev-z', 'nat-1', 'nat-2']);
  const connect = (device: string, address: string) => e.ingestEvent(device, event(device, 'connect', { remoteAddress: address }));
  connect('dev-x', '::ffff:127.0.0.2');
  connect('dev-y', '127.0.0.3');
  connect('nat-1', '198.51.100.7');
  connect('nat-2', '198.51.100.7');

  const r = e.ingestTelemetry('dev-y', intrusionReport('dev-y', clock.now, [
    { address: '127.0.0.2', failedLogins: 120 },
    { address: '198.51.100.7', failedLogins: 50 },
    { address: '203.0.113.9', failedLogins: 50 },
    { address: '127.0.0.3', failedLogins: 9 },
  ]));
  t.ok(r.accepted);
  if (!r.accepted) return;
  t.same(r.lateral?.map((o) => [o.subject, o.reporter, o.logins]), [['dev-x', 'dev-y', 120]]);
  t.same(r.intrusions?.map((i) => i.outcome), ['attributed', 'shared', 'unheld', 'self']);
  t.equal(r.intrusions?.[1]?.detail, '198.51.100.7 shared by 2 devices: not attributed');
  const x = e.compute('dev-x').message.factors.find((f) => f.id === 'lateralMovement');
  t.ok(x && x.contribution < 0, 'dev-x has the factor');
  for (const d of ['nat-1', 'nat-2', 'dev-y']) t.notOk(e.compute(d).message.factors.some((f) => f.id === 'lateralMovement'), `${d} is not blamed`);
  t.same(e.lateralSummary('dev-x'), { reporters: ['dev-y'], logins: 120, dropped: 0 });

  // dev-x leaves; a report whose window starts after that blames nobody: the address is nobody's now.
  e.ingestEvent('dev-x', event('dev-x', 'disconnect', { remoteAddress: '::ffff:127.0.0.2' }));
  clock.now += 10 * 60_000;
  const late = e.ingestTelemetry('dev-z', intrusionReport('dev-z', clock.now, [{ address: '127.0.0.2', failedLogins: 100 }]));
  t.same(late.accepted && late.intrusions?.map((i) => i.outcome), ['unheld'], 'an address nobody holds in the window: not attributed');
});

t.test('the engine: unknown holders, the reporter rate, the record survives export/import', async (t) => {
  const { e, clock } = engine(['dev-x', 'dev-y']);
  e.ingestEvent('dev-x', event('dev-x', 'connect', { remoteAddress: '10.9.9.9' }));
  e.ingestEvent('ghost', event('ghost', 'connect', { remoteAddress: '10.9.9.8' }));
  const r = e.ingestTelemetry('dev-y', intrusionReport('dev-y', clock.now, [{ address: '10.9.9.8', failedLogins: 5 }]));
  t.same(r.accepted && r.intrusions?.map((i) => i.outcome), ['unheld'], 'an unknown device never gets a holding');

  const max = model.peers.rate.max;
  let refused = 0;
  for (let i = 0; i < max + 5; i++) {
    clock.now += 1;
    const res = e.ingestTelemetry('dev-y', intrusionReport('dev-y', clock.now, [{ address: '10.9.9.9', failedLogins: 1 }]));
    if (res.accepted && res.intrusions?.[0]?.outcome === 'rate') refused++;
  }
  t.equal(refused, 6, `beyond ${max} reports per window the excess is refused (the first report above used one)`);
  clock.now += model.peers.rate.per;
  const again = e.ingestTelemetry('dev-y', intrusionReport('dev-y', clock.now, [{ address: '10.9.9.9', failedLogins: 1 }]));
  t.same(again.accepted && again.intrusions?.map((i) => i.outcome), ['attributed'], 'a new window: accepted again');

  const before = e.compute('dev-x').message.factors.find((f) => f.id === 'lateralMovement');
  const { e: e2 } = engine(['dev-x', 'dev-y'], clock);
  e2.importRecord('dev-x', e.exportRecord('dev-x')!);
  t.same(e2.compute('dev-x').message.factors.find((f) => f.id === 'lateralMovement'), before, 'kept across a restart');
  e2.importRecord('old', JSON.stringify({ lastReportId: 1, lastReportTime: 1, behaviour: JSON.parse(e.exportRecord('dev-x')!).behaviour, peers: [] }));
  t.ok(e2.compute('old'), 'a record stored before lateral movement existed still loads');
});

t.test('peer reports: hostile ones are refused with a reason code', async (t) => {
  const { e, clock } = engine(['dev-x', 'dev-y']);
  const report = (over: Record<string, unknown> = {}) => JSON.stringify({ reporter: 'dev-y', subject: 'dev-x', reportId: 1, time: new Date(clock.now).toISOString(), rating: 0, reason: 'scanned me', ...over });
  const code = (r: ReturnType<ScoreEngine['ingestReport']>) => (r.accepted ? 'accepted' : r.code);
  t.equal(code(e.ingestReport('dev-y', 'dev-x', '{"reporter":')), 'schema');
  t.equal(code(e.ingestReport('dev-y', 'dev-x', report({ reason: 'x'.repeat(5000) }))), 'huge');
  t.equal(code(e.ingestReport('dev-y', 'dev-x', report({ time: new Date(clock.now + 3_600_000).toISOString() }))), 'future');
  t.equal(code(e.ingestReport('dev-y', 'dev-x', report({ time: new Date(clock.now - 2 * model.peers.maxAge).toISOString() }))), 'too_old');
  t.equal(code(e.ingestReport('dev-y', 'dev-y', report({ subject: 'dev-y' }))), 'self');
  t.equal(code(e.ingestReport('dev-y', 'nobody', report({ subject: 'nobody' }))), 'unknown_device');
  t.equal(code(e.ingestReport('dev-y', 'dev-x', report({ subject: 'dev-z' }))), 'topic');
  t.equal(code(e.ingestReport('dev-y', 'dev-x', report())), 'accepted');
  t.equal(code(e.ingestReport('dev-y', 'dev-x', report())), 'replay');
});
