/**
 * The audit's checks are pure functions of a facts snapshot: each check that the fixture fleet (fleet-audit.test.ts)
 * does not trigger, triggered here on purpose from a clean snapshot, one fact changed at a time — and the clean
 * snapshot has no finding, so each finding below comes from its one change.
 */
import t from 'tap';
import { runChecks, type AuditFacts } from '../../audit/index.js';
import type { BehaviourEvent } from '../../protocol/index.js';

const NOW = Date.parse('2026-11-30T12:00:00Z');
const DAY = 86_400_000;
const ec = (subject: string, days: number) => ({ subject, notBefore: NOW - DAY, notAfter: NOW + days * DAY, keyType: 'ec', curve: 'prime256v1', fingerprint: 'AA' });
const reported = { score: 0.9, time: new Date(NOW).toISOString(), factors: [{ id: 'firewall', contribution: 0, reason: 'nftables drops inbound traffic by default' }] };

function clean(): AuditFacts {
  return {
    now: NOW,
    source: 'gateway',
    ca: { root: ec('CN=root', 7000), intermediate: ec('CN=issuing', 1800), rootKeyOnline: false, keys: [{ name: 'intermediate', encrypted: true }] },
    devices: [
      { id: 'a', state: 'active', tpm: false, createdAt: new Date(NOW - 30 * DAY).toISOString(), certificates: [{ serial: '01', status: 'active', notBefore: NOW - DAY, notAfter: NOW + 6 * DAY }], score: reported },
      { id: 'b', state: 'active', tpm: false, createdAt: new Date(NOW - 30 * DAY).toISOString(), certificates: [{ serial: '02', status: 'active', notBefore: NOW - DAY, notAfter: NOW + 6 * DAY }], score: reported },
    ],
    tokens: [{ deviceId: 'c', expiresAt: NOW + 3_600_000 }],
    auditLog: [1, 2, 3].map((seq) => ({ seq, time: new Date(NOW - (4 - seq) * 60_000).toISOString(), action: 'token.create' })),
    config: {
      policies: [{ topic: 'weather/#', publish: 0.5, subscribe: 0.4 }, { topic: 'devices/{device}/#', publish: 0, subscribe: 0 }],
      initialScore: 0.5,
      claim: false,
      metrics: { port: 9464, bind: '127.0.0.1' },
      influx: true,
      apiRoutes: [{ method: 'GET', path: '/devices', role: 'viewer' }],
    },
    vuln: { feeds: [{ name: 'debian-tracker', loadedAt: new Date(NOW - DAY).toISOString(), entries: 10 }] },
    live: { since: NOW - DAY, sessions: new Map(), events: new Map(), influx: { failures: 0, spooledBatches: 0, dropped: 0, written: 10 } },
  };
}

const failure = (device: string, reason: string, remoteAddress = '10.0.0.7'): BehaviourEvent => ({ device, type: 'auth_failure', time: new Date(NOW - 60_000).toISOString(), verified: true, reason, remoteAddress });
const found = (facts: AuditFacts) => runChecks(facts).findings.map((f) => `${f.severity} ${f.check} ${f.objects.join(',')}`);

t.test('the clean snapshot has no finding, and every check is assessed', async (t) => {
  const run = runChecks(clean());
  t.same(run.findings, []);
  t.same(run.checks.filter((c) => c.status !== 'pass').map((c) => c.id), []);
});

const CASES: Array<[string, (f: AuditFacts) => void, string[]]> = [
  ['the intermediate expires in 20 days', (f) => (f.ca.intermediate.notAfter = NOW + 20 * DAY), ['critical ca.expiry ca:intermediate']],
  ['the root expires in 60 days', (f) => (f.ca.root.notAfter = NOW + 60 * DAY), ['high ca.expiry ca:root']],
  ['an RSA 2048 root', (f) => Object.assign(f.ca.root, { keyType: 'rsa', curve: undefined, bits: 2048 }), ['high ca.key_type ca:root']],
  ['device a is 0.4 days from expiry, 7 days into its lifetime', (f) => Object.assign(f.devices[0]!.certificates[0]!, { notBefore: NOW - 6.6 * DAY, notAfter: NOW + 0.4 * DAY }), ['high certificates.expiring device:a,certificate:01']],
  ['device a stopped renewing', (f) => Object.assign(f.devices[0]!.certificates[0]!, { notBefore: NOW - 5.5 * DAY, notAfter: NOW + 1.5 * DAY }), ['medium certificates.renewal_overdue device:a,certificate:01']],
  [
    'device a is connected from two addresses',
    (f) => f.live!.sessions.set('a', [{ clientId: 'a', since: NOW - 1000, remoteAddress: '10.0.0.1' }, { clientId: 'a:2', since: NOW - 500, remoteAddress: '10.9.9.9' }]),
    ['high certificates.two_places device:a'],
  ],
  [
    'revoked device b is still connected',
    (f) => {
      f.devices[1]!.state = 'revoked';
      f.live!.sessions.set('b', [{ clientId: 'b', since: NOW - 1000, remoteAddress: '10.0.0.2' }]);
    },
    ['critical certificates.revoked_connected device:b'],
  ],
  ['a superseded certificate of a is presented', (f) => f.live!.events.set('a', [failure('a', 'certificate superseded by a newer one')]), ['medium certificates.superseded_presented device:a']],
  ['a asks for a made-up client id', (f) => f.live!.events.set('a', [failure('a', 'client id "mqttjs_1234" refused: not its own')]), ['medium identity.client_id_conflict device:a']],
  ['five failed handshakes under a', (f) => f.live!.events.set('a', Array.from({ length: 5 }, () => failure('a', 'certificate expired'))), ['medium identity.failed_handshakes device:a']],
  ['a rule on #', (f) => f.config.policies.push({ topic: '#', subscribe: 0.95 }), ['high policy.open_to_everyone rule:#']],
  ['device b never reported', (f) => delete f.devices[1]!.score, ['medium policy.initial_score_reach device:b,rule:weather/#']],
  [
    'claim mode with an unclaimed device waiting',
    (f) => {
      f.config.claim = true;
      f.devices[1]!.state = 'unclaimed';
    },
    ['medium operations.claim_waiting device:b'],
  ],
  ['no vulnerability data', (f) => (f.vuln = null), ['high operations.vuln_data vuln:feeds']],
  ['InfluxDB writes fail', (f) => (f.live!.influx = { failures: 3, spooledBatches: 2, dropped: 0, written: 10 }), ['high operations.influx_writes influxdb']],
  ['audit log entry 2 is missing', (f) => f.auditLog.splice(1, 1), ['high operations.audit_log_gaps audit-log']],
  ['metrics on all addresses', (f) => (f.config.metrics.bind = '0.0.0.0'), ['high operations.unauthenticated_access listener:metrics']],
  ['an API route with no role', (f) => f.config.apiRoutes.push({ method: 'GET', path: '/open', role: null }), ['critical operations.unauthenticated_access route:GET /open']],
  ['the root key online and unencrypted', (f) => Object.assign(f.ca, { rootKeyOnline: true, keys: [{ name: 'root', encrypted: false }, { name: 'intermediate', encrypted: true }] }), ['high ca.key_encryption ca:root', 'medium ca.root_key_online ca:root']],
];

for (const [what, change, expected] of CASES) {
  t.test(what, async (t) => {
    const facts = clean();
    change(facts);
    t.same(found(facts), expected);
  });
}

t.test('without the live broker, its checks are not assessable, with why', async (t) => {
  const facts = clean();
  delete facts.live;
  facts.influxSpool = { batches: 0 };
  const run = runChecks(facts);
  const na = run.checks.filter((c) => c.status === 'not_assessable');
  t.same(na.map((c) => c.id), ['certificates.two_places', 'certificates.revoked_connected', 'certificates.superseded_presented', 'identity.client_id_conflict', 'identity.failed_handshakes']);
  for (const c of na) t.match(c.note, /only the running gateway's broker observes/);
  t.same(run.findings, []);
});
