/**
 * The Trust Score model and engine, pure: reference profiles from the agent's fixture roots, behaviour decay,
 * peers, staleness, replay, ceilings, hostile input, and model overrides.
 */
import fc from 'fast-check';
import t from 'tap';
import { parseConfig } from '../cli/config.js';
import { telemetrySchema, type ScoreMessage } from '../protocol/index.js';
import { ScoreEngine, loadModel, mergeOverride, combineState, stateFactors, type CaFacts, type CveFindingInput, type EngineOptions } from '../scoring/index.js';
import { counters, event, fixtureTelemetry } from './scoring-fixtures.js';

const model = loadModel();
const T0 = Date.parse('2026-11-24T10:00:00Z');
const MIN = 60_000;

function engine(extra: Partial<EngineOptions> = {}) {
  const clock = { now: T0 };
  const e = new ScoreEngine({ model, now: () => clock.now, ...extra });
  return { e, clock };
}

const factor = (m: ScoreMessage, id: string) => m.factors.find((f) => f.id === id);
const sum = (m: ScoreMessage) => 1 + m.factors.reduce((n, f) => n + f.contribution, 0);

t.test('reference profiles', async (t) => {
  const { e } = engine();
  t.ok(telemetrySchema.safeParse(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)).success, 'fixture telemetry is valid');
  t.match(e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0))), { accepted: true });
  t.match(e.ingestTelemetry('pi', JSON.stringify(fixtureTelemetry('rpi-factory', 'pi', 1, T0))), { accepted: true });
  const deb = e.compute('deb').message;
  const pi = e.compute('pi').message;
  t.ok(deb.score >= 0.9, `hardened Debian 12 scores ${deb.score} (>= 0.9)`);
  t.ok(pi.score <= 0.3, `factory Raspberry Pi scores ${pi.score} (<= 0.3)`);
  t.equal(deb.modelVersion, model.version);
  t.ok(Math.abs(sum(deb) - deb.score) < 0.005, 'contributions add up to the score');
  t.ok(Math.abs(sum(pi) - pi.score) < 0.005);
  // Explained: every costly factor has a reason and a fix.
  for (const f of pi.factors.filter((f) => f.contribution < 0)) {
    t.ok(f.reason.length > 0 && f.fix && f.fix.length > 0, `${f.id}: reason and fix`);
  }
  t.match(factor(pi, 'defaultCredentials'), { reason: /root, pi, guest/, fix: /passwd/ });
  t.match(factor(pi, 'ports'), { reason: /23/ });
  t.match(factor(pi, 'ssh'), { reason: /passwordauthentication yes/, fix: /PasswordAuthentication no/ });
  t.match(factor(pi, 'insecureServices'), { fix: 'apt purge telnetd' });
  t.equal(factor(deb, 'firewall')?.contribution, 0);
  t.equal(pi.factors[0]!.id, 'firewall', 'factors sorted by cost, worst first');
});

t.test('an authentication-failure storm drops a hardened device below 0.9 at once; it recovers gradually', async (t) => {
  const { e, clock } = engine();
  e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)));
  const before = e.compute('deb').message.score;
  t.ok(before >= 0.9);
  for (let i = 0; i < 20; i++) {
    clock.now += 100; // 20 failures in 2 s
    e.ingestEvent('deb', event('deb', 'auth_failure', { verified: true, reason: 'certificate revoked' }));
  }
  const storm = e.compute('deb').message;
  t.ok(storm.score < 0.9, `under the storm: ${storm.score}`);
  t.match(factor(storm, 'authFailures'), { contribution: Number, reason: /failed connection attempts/ });
  const timeline: number[] = [];
  for (let i = 0; i < 8; i++) {
    clock.now += 10 * MIN;
    timeline.push(e.compute('deb').message.score);
  }
  t.ok(timeline.every((s, i) => i === 0 || s >= timeline[i - 1]!), `monotonic recovery ${timeline.join(' ')}`);
  t.ok(timeline[0]! < before && timeline[0]! > storm.score, 'partly recovered after one half-life');
  t.ok(timeline[timeline.length - 1]! >= 0.9, 'back above 0.9 after the penalty decayed');
  clock.now += 3 * 60 * MIN;
  t.notOk(factor(e.compute('deb').message, 'authFailures'), 'no factor once the penalty is gone');
});

t.test('unverified failures (anyone can put a CN in a certificate) never move the named device', async (t) => {
  const a = engine();
  const b = engine();
  for (const { e } of [a, b]) e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)));
  const before = b.e.compute('deb').message.score;
  for (let i = 0; i < 500; i++) {
    if (i < 5) a.e.ingestEvent('deb', event('deb', 'auth_failure', { verified: true }));
    b.e.ingestEvent('deb', event('deb', 'auth_failure', { verified: false }));
  }
  t.ok(a.e.compute('deb').message.score < before - 0.05, 'failures with our certificate cost');
  t.equal(b.e.compute('deb').message.score, before, '500 unverified failures cost nothing');
  t.notOk(b.e.compute('deb').message.factors.some((f) => f.id === 'authFailures'));
});

t.test('self-reported good state never lifts a score above what the broker observed', async (t) => {
  const { e } = engine();
  e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)));
  for (let i = 0; i < 30; i++) e.ingestEvent('deb', event('deb', 'publish_denied', { topic: 'payments/x' }));
  e.ingestEvent('deb', counters('deb', 10, 10_000, 40)); // 40 more denials beyond the event cap
  const m = e.compute('deb').message;
  const observed = m.factors.filter((f) => ['denials', 'authFailures', 'churn', 'rateAnomaly', 'peers'].includes(f.id)).reduce((n, f) => n - f.contribution, 0);
  t.ok(observed > 0.25, `denials cost ${observed}`);
  // A perfect self-report afterwards does not help.
  const perfect = fixtureTelemetry('debian12-hardened', 'deb', 2, T0 + 1000);
  perfect.listening = [];
  e.ingestTelemetry('deb', JSON.stringify(perfect));
  t.ok(e.compute('deb').message.score <= 1 - observed + 1e-9);
  // Random behaviour: the score never exceeds 1 - the broker-observed penalties.
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 200; i++) {
    const x = engine();
    x.e.ingestTelemetry('d', JSON.stringify(perfect).replace('"deb"', '"d"'));
    const n = Math.floor(rnd() * 40);
    for (let j = 0; j < n; j++) {
      const type = (['auth_failure', 'publish_denied', 'subscribe_denied', 'connect'] as const)[Math.floor(rnd() * 4)]!;
      x.e.ingestEvent('d', event('d', type, { verified: rnd() < 0.5 }));
    }
    const s = x.e.compute('d').message;
    const pen = s.factors.filter((f) => ['denials', 'authFailures', 'churn'].includes(f.id)).reduce((n, f) => n - f.contribution, 0);
    if (s.score > 1 - pen + 1e-9) t.fail(`score ${s.score} above the observed ceiling ${1 - pen}`);
  }
});

t.test('connection churn and message-rate anomalies against the device own baseline', async (t) => {
  const { e, clock } = engine();
  e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)));
  for (let i = 0; i < 3; i++) e.ingestEvent('deb', event('deb', 'connect'));
  t.notOk(factor(e.compute('deb').message, 'churn'), 'three connects are within the allowance');
  for (let i = 0; i < 12; i++) e.ingestEvent('deb', event('deb', 'connect'));
  t.match(factor(e.compute('deb').message, 'churn'), { reason: /reconnecting often/ });

  // The reconnects a broker restart causes (marked by the broker) are not churn, and change nothing stored.
  const b = engine();
  b.e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)));
  const stored = b.e.exportRecord('deb');
  for (let i = 0; i < 15; i++) {
    t.match(b.e.ingestEvent('deb', event('deb', 'connect', { firstSinceStart: true })), { accepted: true, unchanged: true });
    t.match(b.e.ingestEvent('deb', event('deb', 'disconnect')), { accepted: true, unchanged: true });
  }
  t.notOk(factor(b.e.compute('deb').message, 'churn'), 'fifteen restarts: no churn');
  t.equal(b.e.exportRecord('deb'), stored, 'the record is as it was');
  const counted = b.e.ingestEvent('deb', event('deb', 'connect'));
  t.ok(counted.accepted && !counted.unchanged, 'an unmarked connect is counted');
  t.not(b.e.exportRecord('deb'), stored, 'and stored');
  t.match(b.e.ingestEvent('new-1', event('new-1', 'connect', { firstSinceStart: true })), { accepted: true }, "a device scoring has not seen yet gets its record (and a score) from its first connect");
  t.ok(b.e.exportRecord('new-1'));

  const r = engine();
  r.e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)));
  for (let i = 0; i < 10; i++) {
    r.clock.now += 10_000;
    r.e.ingestEvent('deb', counters('deb', 100 + (i % 3) * 10)); // ~10/s
  }
  t.notOk(factor(r.e.compute('deb').message, 'rateAnomaly'), 'steady rate: no anomaly');
  r.e.ingestEvent('deb', counters('deb', 40)); // slower is fine
  t.notOk(factor(r.e.compute('deb').message, 'rateAnomaly'));
  for (let i = 0; i < 3; i++) r.e.ingestEvent('deb', counters('deb', 5000)); // 500/s
  t.match(factor(r.e.compute('deb').message, 'rateAnomaly'), { reason: /baseline/ });

  const quiet = engine();
  for (let i = 0; i < 10; i++) quiet.e.ingestEvent('q', counters('q', 0));
  quiet.e.ingestEvent('q', counters('q', 30)); // 3/s: above 5x a zero baseline but below minRate
  t.notOk(factor(quiet.e.compute('q').message, 'rateAnomaly'), 'below minRate is never an anomaly');
  clock.now += 1;
});

t.test('staleness drifts toward the prior, never up', async (t) => {
  const { e, clock } = engine();
  e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0)));
  e.ingestTelemetry('pi', JSON.stringify(fixtureTelemetry('rpi-factory', 'pi', 1, T0)));
  const fresh = e.compute('deb').message.score;
  const pi = e.compute('pi').message.score;
  clock.now += 30 * MIN;
  t.equal(e.compute('deb').message.score, fresh, 'within the staleness window');
  clock.now += 7 * 60 * MIN;
  const stale = e.compute('deb').message;
  t.ok(stale.score < fresh && stale.score > model.prior, `stale ${stale.score}`);
  t.match(factor(stale, 'staleness'), { reason: /no state report for/ });
  clock.now += 100 * 60 * MIN;
  t.ok(Math.abs(e.compute('deb').message.score - model.prior) < 0.01, 'converges on the prior');
  t.equal(e.compute('pi').message.score, pi, 'a low score does not rise by going quiet');
  t.ok(e.volatile('deb'));
});

t.test('replayed, out-of-order, future-dated and mislabelled telemetry is ignored', async (t) => {
  const { e, clock } = engine();
  const r1 = JSON.stringify(fixtureTelemetry('rpi-factory', 'dev', 5, T0 - 1000));
  t.match(e.ingestTelemetry('dev', r1), { accepted: true });
  t.match(e.ingestTelemetry('dev', r1), { accepted: false, reason: /replayed report 5/ });
  t.match(e.ingestTelemetry('dev', JSON.stringify(fixtureTelemetry('debian12-hardened', 'dev', 6, T0 - 5000))), { accepted: false, reason: /out of order/ });
  t.match(e.ingestTelemetry('dev', JSON.stringify(fixtureTelemetry('debian12-hardened', 'dev', 7, T0 + 10 * MIN))), { accepted: false, reason: /future/ });
  t.match(e.ingestTelemetry('dev', JSON.stringify(fixtureTelemetry('debian12-hardened', 'other', 8, T0))), { accepted: false, reason: /about "other"/ });
  t.ok(e.compute('dev').message.score <= 0.3, 'still the Pi profile: none of those replaced it');
  clock.now += 1000;
  t.match(e.ingestTelemetry('dev', JSON.stringify(fixtureTelemetry('debian12-hardened', 'dev', 0, T0 + 500))), { accepted: true }, 'a reset agent (lower id, newer time) is accepted');
  t.ok(e.compute('dev').message.score >= 0.9);
});

t.test('hostile and malformed input: a clear reason, no state change', async (t) => {
  const { e } = engine();
  e.ingestTelemetry('dev', JSON.stringify(fixtureTelemetry('debian12-hardened', 'dev', 1, T0)));
  const before = JSON.stringify(e.compute('dev').message);
  const good = fixtureTelemetry('rpi-factory', 'dev', 2, T0 + 1);
  const cases: Array<[string, string | Buffer]> = [
    ['not JSON', '{"schema":1,'],
    ['empty', ''],
    ['array', '[]'],
    ['oversize', Buffer.alloc(3 * 1024 * 1024, 0x20)],
    ['wrong schema version', JSON.stringify({ ...good, schema: 2 })],
    ['negative failed logins', JSON.stringify({ ...good, failedLoginsLastHour: -1 })],
    ['bad device id', JSON.stringify({ ...good, device: '../etc' })],
    ['too many sockets', JSON.stringify({ ...good, listening: Array.from({ length: 2000 }, () => good.listening[0]) })],
    ['NaN-ish port', JSON.stringify(good).replace(/"port":22/, '"port":1e999')],
  ];
  for (const [name, payload] of cases) {
    const r = e.ingestTelemetry('dev', payload);
    t.equal(r.accepted, false, `${name}: rejected`);
    if (!r.accepted) t.ok(r.reason.length > 0 && r.reason.length < 400, `${name}: ${r.reason}`);
  }
  for (const payload of ['{}', '{"device":"dev","type":"explode","time":"x","verified":true}', JSON.stringify({ device: 'other', type: 'connect', time: new Date().toISOString(), verified: true })]) {
    t.equal(e.ingestEvent('dev', payload).accepted, false, `event ${payload.slice(0, 40)} rejected`);
  }
  const after = JSON.parse(JSON.stringify(e.compute('dev').message)) as ScoreMessage;
  t.same({ ...after, time: '' }, { ...(JSON.parse(before) as ScoreMessage), time: '' }, 'score unchanged');
  // Unknown fields are dropped (forward compatibility), and have no say: a report can not carry its own score.
  t.match(e.ingestTelemetry('dev', JSON.stringify({ ...good, score: 1, factors: [] })), { accepted: true });
  t.ok(e.compute('dev').message.score <= 0.3, 'scored as the Pi it describes');
  const hostile = JSON.stringify(fixtureTelemetry('rpi-factory', 'dev', 3, T0 + 2)).replace('"schema":1', '"__proto__":{"polluted":1},"schema":1');
  e.ingestTelemetry('dev', hostile);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
});

t.test('peer reports: weighted by the reporter score, distinct reporters, k >= 2, replay-proof', async (t) => {
  const { e, clock } = engine();
  const report = (reporter: string, subject: string, reportId: number, rating: number, reason = 'port scan from subject') =>
    JSON.stringify({ reporter, subject, reportId, time: new Date(clock.now).toISOString(), rating, reason });
  for (const d of ['victim', 'good1', 'good2', 'bad']) {
    e.ingestTelemetry(d, JSON.stringify(fixtureTelemetry(d === 'bad' ? 'rpi-factory' : 'debian12-hardened', d, 1, T0)));
    e.changed(d); // reporters' scores become known
  }
  const base = e.compute('victim').message.score;
  t.match(e.ingestReport('good1', 'victim', report('good1', 'victim', 1, 0)), { accepted: true });
  const one = e.compute('victim').message;
  t.match(factor(one, 'peers'), { reason: /1 peer reported problems/ });
  const onePenalty = base - one.score;
  t.ok(onePenalty > 0 && onePenalty <= model.peers.max / model.peers.k + 0.001, `one reporter costs at most max/k: ${onePenalty}`);
  t.match(e.ingestReport('good1', 'victim', report('good1', 'victim', 2, 0)), { accepted: true });
  t.equal(e.compute('victim').message.score, one.score, 'the same reporter again counts once');
  t.match(e.ingestReport('good1', 'victim', report('good1', 'victim', 2, 0)), { accepted: false, reason: /replayed/ });
  t.match(e.ingestReport('good1', 'victim', report('good1', 'victim', 1, 0)), { accepted: false, reason: /replayed or out-of-order/ });
  e.ingestReport('good2', 'victim', report('good2', 'victim', 1, 0));
  const two = e.compute('victim').message;
  t.ok(base - two.score > onePenalty * 1.5, 'a second distinct reporter brings the full effect');
  t.ok(base - two.score <= model.peers.max + 0.001);
  // A low-scoring reporter is ignored; a report about oneself or naming other devices is refused.
  const { e: e2 } = engine();
  e2.ingestTelemetry('bad', JSON.stringify(fixtureTelemetry('rpi-factory', 'bad', 1, T0)));
  e2.changed('bad');
  e2.ingestReport('bad', 'victim', JSON.stringify({ reporter: 'bad', subject: 'victim', reportId: 1, time: new Date(T0).toISOString(), rating: 0, reason: 'lies' }));
  t.notOk(factor(e2.compute('victim').message, 'peers'), 'a reporter below minReporterScore is ignored');
  t.match(e.ingestReport('good1', 'good1', report('good1', 'good1', 9, 0)), { accepted: false, reason: /itself/ });
  t.match(e.ingestReport('good1', 'victim', report('good2', 'victim', 10, 0)), { accepted: false, reason: /other devices/ });
  t.match(e.ingestReport('good1', 'victim', '{"rating":2}'), { accepted: false });
  // Reports fade and are forgotten.
  clock.now += 2 * 60 * MIN;
  const faded = e.compute('victim').message.score;
  t.ok(faded > two.score, 'older reports weigh less');
  clock.now += 24 * 60 * MIN;
  t.notOk(factor(e.compute('victim').message, 'peers'), 'forgotten after maxAge');
});

t.test('CA facts: ceilings for unclaimed/quarantined/revoked, TPM keys, late renewal', async (t) => {
  const facts = new Map<string, CaFacts>();
  const { e } = engine({ caFacts: (d) => facts.get(d) });
  facts.set('deb', { state: 'active', tpm: true, certificate: { notBefore: T0 - 86_400_000, notAfter: T0 + 6 * 86_400_000 } });
  t.match(e.ingestTelemetry('deb', JSON.stringify(fixtureTelemetry('debian12-hardened', 'deb', 1, T0))), { accepted: true });
  const tpm = e.compute('deb').message;
  t.equal(factor(tpm, 'keyStore')?.contribution, 0, 'a TPM-held key (by the CA record) costs nothing');
  t.match(factor(tpm, 'certificate'), { contribution: 0, reason: /on schedule/ });
  facts.set('deb', { state: 'active', tpm: false, certificate: { notBefore: T0 - 6.5 * 86_400_000, notAfter: T0 + 0.5 * 86_400_000 } });
  t.match(factor(e.compute('deb').message, 'certificate'), { reason: /renewal is failing/ });
  t.ok(factor(e.compute('deb').message, 'keyStore')!.contribution < 0, 'the report says file; so does the CA');
  for (const state of ['quarantined', 'unclaimed', 'revoked'] as const) {
    facts.set('deb', { state });
    const m = e.compute('deb').message;
    t.equal(m.score, 0, `${state}: ceiling 0`);
    t.match(factor(m, `ceiling:${state}`), { reason: new RegExp(state) });
  }
  // Names the CA never issued get nothing: no record, no score to publish.
  t.match(e.ingestEvent('invented', event('invented', 'auth_failure', { verified: false })), { accepted: false, reason: /no device "invented" in the CA inventory/ });
  t.match(e.ingestReport('deb', 'invented', JSON.stringify({ reporter: 'deb', subject: 'invented', reportId: 1, time: new Date(T0).toISOString(), rating: 0, reason: 'x' })), { accepted: false, reason: /CA inventory/ });
  t.match(e.ingestTelemetry('invented', JSON.stringify(fixtureTelemetry('rpi-factory', 'invented', 1, T0))), { accepted: false, reason: /CA inventory/ });
  t.notOk(e.has('invented'));
  const { e: none } = engine();
  t.match(none.compute('new').message, { score: model.prior, factors: [{ id: 'telemetry' }] }, 'no report yet: the prior');
});

t.test('CVE findings: severity- and exposure-weighted; an unknown inventory is not a clean one', async (t) => {
  let findings: CveFindingInput[] = [];
  const matcher = { generation: 1, match: () => findings };
  const { e } = engine({ vulnerabilities: matcher });
  const tel = fixtureTelemetry('debian12-hardened', 'deb', 1, T0);
  e.ingestTelemetry('deb', JSON.stringify(tel));
  t.match(factor(e.compute('deb').message, 'cves'), { contribution: 0, reason: /no known/ });
  const f = (severity: CveFindingInput['severity'], remote: boolean, exposed: boolean): CveFindingInput => ({ cve: `CVE-2024-${severity}`, source: 'openssh', installed: '1', fixed: '2', severity, remote, exposed, action: 'apt-get install --only-upgrade openssh-server' });
  const cost = (list: CveFindingInput[]) => {
    findings = list;
    (matcher as { generation: number }).generation++;
    return -factor(e.compute('deb').message, 'cves')!.contribution;
  };
  const local = cost([f('high', false, false)]);
  const remote = cost([f('high', true, false)]);
  const exposed = cost([f('high', true, true)]);
  const low = cost([f('low', false, false)]);
  t.ok(low < local && local < remote && remote < exposed, `low ${low} < local ${local} < remote ${remote} < exposed ${exposed}`);
  t.match(factor(e.compute('deb').message, 'cves'), { fix: 'apt-get install --only-upgrade openssh-server' });
  // The next report carries only the hash of a different package set: findings unknown until the list comes.
  const next = fixtureTelemetry('debian12-hardened', 'deb', 2, T0 + 1);
  next.packages = { count: 7, hash: 'f'.repeat(64) };
  e.ingestTelemetry('deb', JSON.stringify(next));
  t.match(factor(e.compute('deb').message, 'cves'), { reason: /not received/ });
  const same = fixtureTelemetry('debian12-hardened', 'deb', 3, T0 + 2);
  delete same.packages.list;
  e.ingestTelemetry('deb', JSON.stringify(same));
  t.notMatch(factor(e.compute('deb').message, 'cves')?.reason, /not received/, 'hash of the stored list: findings known');
  t.ok(combineState(model, stateFactors(model, { telemetry: tel, now: T0 })).score > 0.9);
});

t.test('publishing: meaningful changes, policy thresholds, forced refresh', async (t) => {
  const { e } = engine({ thresholds: [0.4, 0.9] });
  t.notOk(e.changed('d')!.republishOnly, 'first score is always published, and is new');
  t.notOk(e.changed('d'), 'unchanged: not republished');
  t.ok(e.changed('d', true), 'forced (periodic) refresh');
  t.equal(e.changed('d', true)!.republishOnly, true, 'of the same score, factors and findings: nothing new to store');
  e.ingestTelemetry('d', JSON.stringify(fixtureTelemetry('debian12-hardened', 'd', 1, T0)));
  t.notOk(e.changed('d')!.republishOnly);
  t.equal(e.changed('d', true)!.republishOnly, true);
  // The stored digest travels with the record: after a restart, the first republish of the same score is no news.
  const { e: restarted } = engine({ thresholds: [0.4, 0.9] });
  restarted.importRecord('d', e.exportRecord('d')!);
  t.equal(restarted.changed('d', true)!.republishOnly, true, 'after a restart too');
  // A small move across 0.9 is published; the same size elsewhere is not.
  const { e: e2 } = engine({ thresholds: [0.9], minChange: 0.05 });
  e2.ingestTelemetry('d', JSON.stringify(fixtureTelemetry('debian12-hardened', 'd', 1, T0)));
  const first = e2.changed('d')!.message.score;
  e2.ingestEvent('d', event('d', 'auth_failure', { verified: false }));
  const r = e2.changed('d');
  const now = e2.compute('d').message.score;
  t.ok(first - now < 0.05, 'a small drop');
  t.equal(Boolean(r), first >= 0.9 !== now >= 0.9 || Boolean(r?.message.factors.some((f) => f.id === 'authFailures')), 'published only for a threshold crossing or a new costly factor');
});

t.test('records survive export/import (restart): replay protection and penalties', async (t) => {
  const { e } = engine();
  e.ingestTelemetry('d', JSON.stringify(fixtureTelemetry('debian12-hardened', 'd', 4, T0)));
  for (let i = 0; i < 10; i++) e.ingestEvent('d', event('d', 'auth_failure'));
  e.ingestReport('r', 'd', JSON.stringify({ reporter: 'r', subject: 'd', reportId: 3, time: new Date(T0).toISOString(), rating: 0.2, reason: 'x' }));
  e.changed('d');
  const { e: restored } = engine();
  restored.importRecord('d', e.exportRecord('d')!);
  t.same(restored.compute('d').message, e.compute('d').message, 'same score after the restart');
  t.match(restored.ingestTelemetry('d', JSON.stringify(fixtureTelemetry('debian12-hardened', 'd', 4, T0))), { accepted: false, reason: /replayed/ });
  t.match(restored.ingestReport('r', 'd', JSON.stringify({ reporter: 'r', subject: 'd', reportId: 3, time: new Date(T0).toISOString(), rating: 0, reason: 'x' })), { accepted: false });
  t.equal(e.exportRecord('nobody'), undefined);
  t.match(e.ingestReport('r', 'd', JSON.stringify({ reporter: 'r', subject: 'd', reportId: 4, time: new Date(T0 - 25 * 60 * MIN).toISOString(), rating: 0, reason: 'x' })), { accepted: false, reason: /too old/ });
});

t.test('the model: shipped YAML, overrides in wott.yaml, clear errors', async (t) => {
  t.match(model, { version: /^wott-/, behaviour: { halfLife: 600_000 }, staleness: { after: 3_600_000 } });
  const c = parseConfig('scoring:\n  model:\n    version: acme-1\n    state:\n      weights:\n        firewall: 3\n    behaviour:\n      halfLife: 1m\n');
  t.equal(c.scoring.model.version, 'acme-1');
  t.equal(c.scoring.model.state.weights.firewall, 3);
  t.equal(c.scoring.model.state.weights.mac, model.state.weights.mac, 'other weights keep the shipped values');
  t.equal(c.scoring.model.behaviour.halfLife, 60_000);
  t.throws(() => parseConfig('scoring:\n  model:\n    state:\n      weights:\n        firewal: 3\n'), { message: /wott.yaml:\d+: scoring.model.state.weights.firewal: unknown field/ });
  t.throws(() => parseConfig('scoring:\n  model:\n    behaviour:\n      halfLife: soon\n'), { message: /scoring.model.behaviour.halfLife: not a positive duration/ });
  t.throws(() => parseConfig('scoring:\n  model:\n    prior: 2\n'), { message: /scoring.model.prior/ });
  // The state ceilings are the broker's (policy/effective-score.ts): an old wott.yaml saying 0 loads, another value is refused.
  t.equal(parseConfig('scoring:\n  model:\n    ceilings:\n      quarantined: 0\n').scoring.model.ceilings.noTelemetry, model.ceilings.noTelemetry);
  t.throws(() => parseConfig('scoring:\n  model:\n    ceilings:\n      quarantined: 0.3\n'), { message: /scoring.model.ceilings.quarantined: fixed at 0: the broker enforces it/ });
  t.throws(() => parseConfig('scoring:\n  model:\n    state:\n      failedLogins: { good: 5, bad: 2 }\n'), { message: /failedLogins.bad must be above/ });
  t.throws(() => parseConfig('scoring:\n  model:\n    __proto__: { prior: 1 }\n'), { message: /scoring.model/ });
  t.throws(() => mergeOverride({ a: {} }, JSON.parse('{"a":{"__proto__":{"x":1}}}')), { message: /a.__proto__: forbidden key/ });
  t.throws(() => parseConfig('scoring:\n  influx:\n    url: ftp://x\n'), { message: /scoring.influx.url/ });
  t.throws(() => parseConfig('scoring:\n  influx:\n    url: http://x:8086\n    api: v2\n'), { message: /v2 needs org and bucket/ });
  t.match(parseConfig('scoring:\n  influx:\n    url: http://127.0.0.1:8086\n').scoring.influx, { api: 'v1', database: 'wott', batchSize: 5000, flushInterval: 1000 });
});

t.test("the tick's volatile devices are exactly those asking every device would find, whatever happens in between", async (t) => {
  // The service's 5 s tick asks volatileDevices(), which visits only devices something happened to and devices
  // whose state report went stale; checked against volatile() on every device after each step of random histories.
  const devices = ['a', 'b', 'c', 'd'];
  const step = fc.oneof(
    fc.record({ kind: fc.constant('telemetry' as const), device: fc.constantFrom(...devices), hardened: fc.boolean() }),
    fc.record({ kind: fc.constant('event' as const), device: fc.constantFrom(...devices), type: fc.constantFrom('auth_failure' as const, 'connect' as const, 'publish_denied' as const) }),
    fc.record({ kind: fc.constant('report' as const), reporter: fc.constantFrom(...devices), subject: fc.constantFrom(...devices), rating: fc.double({ min: 0, max: 1, noNaN: true }) }),
    fc.record({ kind: fc.constant('publish' as const), device: fc.constantFrom(...devices) }),
    fc.record({ kind: fc.constant('wait' as const), ms: fc.oneof(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: MIN, max: 12 * 60 * MIN })) }),
  );
  let checked = 0;
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
      const { e, clock } = engine();
      const ids = new Map<string, number>();
      for (const s of steps) {
        if (s.kind === 'telemetry') e.ingestTelemetry(s.device, JSON.stringify(fixtureTelemetry(s.hardened ? 'debian12-hardened' : 'rpi-factory', s.device, (ids.get(`t:${s.device}`) ?? 0) + 1, clock.now)));
        if (s.kind === 'telemetry') ids.set(`t:${s.device}`, (ids.get(`t:${s.device}`) ?? 0) + 1);
        if (s.kind === 'event') e.ingestEvent(s.device, event(s.device, s.type));
        if (s.kind === 'report' && s.reporter !== s.subject) {
          const id = (ids.get(`r:${s.reporter}`) ?? 0) + 1;
          ids.set(`r:${s.reporter}`, id);
          e.ingestReport(s.reporter, s.subject, JSON.stringify({ reporter: s.reporter, subject: s.subject, reportId: id, time: new Date(clock.now).toISOString(), rating: s.rating, reason: 'observed' }));
        }
        if (s.kind === 'publish') e.changed(s.device);
        if (s.kind === 'wait') clock.now += s.ms;
        const expected = e.devices().filter((d) => e.volatile(d)).sort();
        if (JSON.stringify(e.volatileDevices().sort()) !== JSON.stringify(expected)) return false;
        checked++;
      }
      return true;
    }),
    { seed: 20261202, numRuns: 200 },
  );
  t.ok(checked > 1000, `${checked} steps compared`);
});
