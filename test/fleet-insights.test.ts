/**
 * FleetInsights, the API's in-memory view of scores, findings, events and action decisions: which factors become
 * recommended actions (not the state ceilings; one per CVE in place of the `cves` summary), what snooze and ignore
 * do to their status (never to their cost), that the event ring is bounded and skips counters, and pruning.
 */
import t from 'tap';
import { EVENT_RING, FleetInsights } from '../fleet/index.js';
import type { StoredFinding } from '../store/index.js';

const message = (device: string, factors: Array<{ id: string; contribution: number; reason: string; fix?: string }>) => ({ device, score: 0.4, factors, modelVersion: 'm', time: new Date().toISOString() });
const finding = (cve: string, severity: StoredFinding['severity']): StoredFinding => ({ cve, source: 'openssl', installed: '1.0', fixed: '1.1', severity, remote: true, exposed: false, action: 'apt-get install --only-upgrade openssl' });

t.test('actions from factors and findings, with snooze and ignore', async (t) => {
  let now = Date.parse('2026-11-30T08:00:00Z');
  const insights = new FleetInsights({ now: () => now });
  insights.onScore(message('d1', [
    { id: 'firewall', contribution: -0.1, reason: 'no firewall', fix: 'enable nftables' },
    { id: 'cves', contribution: -0.2, reason: 'fixed vulnerabilities', fix: 'apt-get upgrade' },
    { id: 'ceiling:quarantined', contribution: -0.3, reason: 'capped: quarantined', fix: 'wott device release d1' },
    { id: 'apparmor', contribution: 0.05, reason: 'enforcing' },
    { id: 'staleness', contribution: -0.01, reason: 'no fix given' },
  ]));
  insights.onFindings('d1', [finding('CVE-2024-1', 'critical'), finding('CVE-2024-2', 'low'), finding('CVE-2024-1', 'critical')]);
  const actions = insights.actions('d1');
  t.same(actions.map((a) => a.id), ['cve:CVE-2024-1', 'firewall', 'cve:CVE-2024-2'], 'costliest first; one per CVE instead of the summary; no ceilings, gains or fixless factors');
  t.equal(actions[0]!.fix, 'apt-get install --only-upgrade openssl', 'the command that fixes it');
  t.same(insights.vulnCounts('d1'), { critical: 2, high: 0, medium: 0, low: 1, unknown: 0 });
  t.match(insights.worstFactor('d1'), { id: 'ceiling:quarantined' }, 'the factor that costs most, whatever it is');

  insights.setDecision({ device: 'd1', action: 'firewall', kind: 'snooze', until: new Date(now + 86_400_000).toISOString(), actor: 'a', time: '' });
  insights.setDecision({ device: 'd1', action: 'cve:CVE-2024-2', kind: 'ignore', until: null, actor: 'a', time: '' });
  t.match(insights.actions('d1'), [{ id: 'cve:CVE-2024-1', status: 'open' }, { id: 'firewall', status: 'snoozed', cost: 0.1 }, { id: 'cve:CVE-2024-2', status: 'ignored' }], 'statuses; costs unchanged');
  const open: string[] = [];
  insights.eachOpenAction('d1', (id) => open.push(id));
  t.same(open, ['cve:CVE-2024-1'], 'only open ones are counted');
  now += 2 * 86_400_000;
  t.match(insights.actions('d1').find((a) => a.id === 'firewall'), { status: 'open', snoozedUntil: null }, 'a snooze runs out');
  insights.clearDecision('d1', 'cve:CVE-2024-2');
  t.equal(insights.actions('d1').find((a) => a.id === 'cve:CVE-2024-2')!.status, 'open', 'un-ignored');
  t.same(insights.actions('nobody'), [], 'a device with no score has no actions');
});

t.test('the event ring is bounded and skips counters; prune forgets devices that left', async (t) => {
  const insights = new FleetInsights();
  for (let i = 0; i < EVENT_RING + 15; i++) insights.onEvent({ device: 'd1', type: 'publish_denied', time: new Date(1000 * i).toISOString(), verified: true, topic: `t/${i}` });
  insights.onEvent({ device: 'd1', type: 'counters', time: new Date().toISOString(), verified: true });
  const events = insights.recentEvents('d1');
  t.equal(events.length, EVENT_RING);
  t.equal(events[0]!.topic, `t/${EVENT_RING + 14}`, 'newest first');
  t.notOk(events.some((e) => e.type === 'counters'));
  insights.onScore(message('d2', []));
  insights.onReport('d2', 5);
  t.equal(insights.prune((d) => d === 'd1'), 2, 'score and report of d2 dropped');
  t.equal(insights.lastReport('d2'), undefined);
  t.equal(insights.recentEvents('d1').length, EVENT_RING, 'd1 kept');
  t.equal(insights.effectiveScore('d2', 'quarantined'), 0, 'no broker: the state ceiling over the initial score');
});
