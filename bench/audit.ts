/**
 * `npm run bench -- audit`: the fleet audit and the compliance report over a synthetic 10,000-device snapshot (each
 * device reported, with a current certificate): the checks, the report's mapping, and its HTML. The baseline in the
 * same run is one JSON serialisation of the same snapshot (a single pass over every fact). The goal is the
 * product's: a 10,000-device fleet's audit and report (checks + mapping + HTML) in under 10 s, so that the daily run
 * and `wott report compliance` stay a matter of seconds. Each figure is the median of three rounds.
 */
import { runChecks, type AuditFacts } from '../audit/index.js';
import { buildComplianceReport, renderComplianceHtml } from '../report/index.js';
import type { Suite, SuiteResult } from './harness.js';

const DAY = 86_400_000;
const FACTORS = ['firewall', 'ports', 'insecureServices', 'ssh', 'defaultCredentials', 'autoUpdates', 'rebootRequired', 'cves', 'keyStore'];

function snapshot(n: number, now: number): AuditFacts {
  const ca = (subject: string, days: number) => ({ subject, notBefore: now - DAY, notAfter: now + days * DAY, keyType: 'ec', curve: 'prime256v1', fingerprint: 'AA' });
  const time = new Date(now).toISOString();
  return {
    now,
    source: 'gateway',
    ca: { root: ca('CN=root', 7000), intermediate: ca('CN=issuing', 1800), rootKeyOnline: true, keys: [{ name: 'root', encrypted: true }, { name: 'intermediate', encrypted: true }] },
    devices: Array.from({ length: n }, (_, i) => ({
      id: `dev-${i}`,
      state: 'active' as const,
      tpm: false,
      createdAt: time,
      certificates: [{ serial: i.toString(16), status: 'active' as const, notBefore: now - DAY, notAfter: now + 6 * DAY }],
      // One device in ten with a default password, so the report has devices that miss provisions.
      score: { score: 0.8, time, factors: FACTORS.map((id) => (id === 'defaultCredentials' && i % 10 === 0 ? { id, contribution: -0.2, reason: 'default or empty password for pi', fix: 'passwd pi' } : { id, contribution: 0, reason: `${id} fine` })) },
    })),
    tokens: [],
    auditLog: Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, time, action: 'token.create' })),
    config: { policies: [{ topic: 'weather/#', publish: 0.4, subscribe: 0.4 }], initialScore: 0.5, claim: false, metrics: { port: 9464, bind: '127.0.0.1' }, influx: false, apiRoutes: [] },
    vuln: { feeds: [{ name: 'debian-tracker', loadedAt: time, entries: 1 }] },
    live: { since: now - DAY, sessions: new Map(), events: new Map() },
  };
}

/** Median of three timed rounds, in ms. */
function median(fn: () => unknown): number {
  const rounds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    fn();
    rounds.push(performance.now() - start);
  }
  return rounds.sort((a, b) => a - b)[1]!;
}

export const auditSuite: Suite = {
  name: 'audit',
  description: 'fleet audit + compliance report (checks, mapping, HTML) over 10,000 devices vs one JSON pass over the same facts',
  async run({ quick }) {
    const n = quick ? 2000 : 10_000;
    const result: SuiteResult = { suite: 'audit', measurements: [], ratios: [], goals: [] };
    const facts = snapshot(n, Date.now());
    const run = runChecks(facts);
    const report = buildComplianceReport(facts, run, null);
    const baseline = median(() => JSON.stringify({ ...facts, live: undefined }));
    const checks = median(() => runChecks(facts));
    const mapping = median(() => buildComplianceReport(facts, run, null));
    const html = median(() => renderComplianceHtml(report));
    result.measurements.push(
      { name: `JSON of the facts, ${n} devices (baseline)`, unit: 'ms', baseline: true, value: baseline },
      { name: 'audit checks', unit: 'ms', value: checks },
      { name: 'compliance mapping', unit: 'ms', value: mapping },
      { name: 'compliance HTML', unit: 'ms', value: html },
    );
    const total = checks + mapping + html;
    result.measurements.push({ name: 'audit + report', unit: 'ms', value: total });
    result.ratios.push({ name: 'audit + report / JSON pass', of: 'audit + report', to: result.measurements[0]!.name, value: total / baseline });
    result.goals.push({ name: `a ${n}-device fleet's audit and report under ${n === 10_000 ? 10 : 2} s`, met: total < (n === 10_000 ? 10_000 : 2000), detail: `${(total / 1000).toFixed(2)} s, HTML ${(renderComplianceHtml(report).length / 1e6).toFixed(1)} MB` });
    return result;
  },
};
