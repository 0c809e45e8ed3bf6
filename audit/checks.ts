/**
 * The audit's checks: pure functions of one facts snapshot. Each says what it asks, and either passes (with what
 * it looked at), finds (each finding with severity, the affected objects, the evidence and the fix), or says why
 * wott holds no evidence for it here ("not assessable") rather than guessing.
 */
import { effectiveScore } from '../policy/index.js';
import type { AuditCategory, AuditCheck, AuditFinding, AuditRun, AuditSeverity, Evidence } from '../protocol/index.js';
import { AUDIT_SEVERITIES } from '../protocol/index.js';
import type { AuditDevice, AuditFacts, CaCertFacts } from './facts.js';

const DAY = 86_400_000;
/** Unused tokens that stay valid longer than this are "long-lived". */
export const LONG_TOKEN_MS = 3 * DAY;
/** Vulnerability data older than this is stale. */
export const STALE_VULN_MS = 7 * DAY;
/** This many authentication failures under one device's name (within the broker's recent events) is a finding. */
export const FAILED_HANDSHAKES = 5;

type Outcome = { status: 'pass'; note: string } | { status: 'not_assessable'; note: string } | { status: 'findings'; findings: Omit<AuditFinding, 'check'>[]; note?: string };

export interface CheckSpec {
  id: string;
  category: AuditCategory;
  title: string;
  run(facts: AuditFacts): Outcome;
}

const iso = (ms: number) => new Date(ms).toISOString();
const days = (ms: number) => `${Math.round((ms / DAY) * 10) / 10} days`;
const ev = (fact: string, at: number | string): Evidence => ({ fact, observedAt: typeof at === 'string' ? at : iso(at) });
const findingsOrPass = (findings: Omit<AuditFinding, 'check'>[], pass: string): Outcome => (findings.length ? { status: 'findings', findings } : { status: 'pass', note: pass });
/** Devices whose certificates matter: not revoked. */
const living = (f: AuditFacts) => f.devices.filter((d) => d.state !== 'revoked');
const current = (d: AuditDevice) => d.certificates.find((c) => c.status === 'active');
const notLive = (what: string): Outcome => ({ status: 'not_assessable', note: `needs ${what}, which only the running gateway's broker observes; this run read the data folder alone (no gateway runs on it, or --local): run 'wott audit run' while the gateway runs, or read its latest run (GET /api/v1/audit/latest)` });

function caExpiry(name: 'root' | 'intermediate', cert: CaCertFacts, now: number): Omit<AuditFinding, 'check'>[] {
  const left = cert.notAfter - now;
  if (left > 90 * DAY) return [];
  const severity: AuditSeverity = left <= 30 * DAY ? 'critical' : 'high';
  return [
    {
      severity,
      title: left <= 0 ? `the ${name} CA certificate has expired` : `the ${name} CA certificate expires in ${days(left)}`,
      objects: [`ca:${name}`],
      evidence: [ev(`${cert.subject} valid until ${iso(cert.notAfter)}`, now)],
      fix: name === 'root'
        ? 'create a new root and intermediate (wott ca init in a new data folder) and re-enroll devices against it before the old one expires; devices pin the new root fingerprint'
        : 'issue a new intermediate from the root before this one expires, and restart the gateway with it',
    },
  ];
}

function keyProblem(cert: CaCertFacts): string | undefined {
  if (cert.keyType === 'ec') return cert.curve === 'prime256v1' || cert.curve === 'secp384r1' || cert.curve === 'secp521r1' ? undefined : `EC key on curve ${cert.curve ?? 'unknown'}`;
  if (cert.keyType === 'rsa') return (cert.bits ?? 0) >= 3072 ? undefined : `RSA key of ${cert.bits ?? '?'} bits`;
  if (cert.keyType === 'ed25519' || cert.keyType === 'ed448') return undefined;
  return `key type ${cert.keyType}`;
}

export const CHECKS: CheckSpec[] = [
  // ------------------------------------------------------------------ CA
  {
    id: 'ca.expiry',
    category: 'ca',
    title: 'root and intermediate CA certificates are not expiring (90 / 30 days)',
    run: (f) => findingsOrPass([...caExpiry('root', f.ca.root, f.now), ...caExpiry('intermediate', f.ca.intermediate, f.now)], `root valid until ${iso(f.ca.root.notAfter)}, intermediate until ${iso(f.ca.intermediate.notAfter)}`),
  },
  {
    id: 'ca.key_type',
    category: 'ca',
    title: 'CA keys are of a strong type and size (EC P-256 or larger, RSA 3072 bits or more)',
    run: (f) =>
      findingsOrPass(
        (['root', 'intermediate'] as const).flatMap((name) => {
          const problem = keyProblem(f.ca[name]);
          return problem
            ? [{ severity: 'high' as const, title: `the ${name} CA has a weak key: ${problem}`, objects: [`ca:${name}`], evidence: [ev(`${f.ca[name].subject}: ${problem}`, f.now)], fix: 'replace the CA with one on an ECDSA P-256 key (wott ca init creates one)' }]
            : [];
        }),
        `root ${f.ca.root.keyType} ${f.ca.root.curve ?? f.ca.root.bits ?? ''}, intermediate ${f.ca.intermediate.keyType} ${f.ca.intermediate.curve ?? f.ca.intermediate.bits ?? ''}`.replace(/ +/g, ' ').trim(),
      ),
  },
  {
    id: 'ca.root_key_online',
    category: 'ca',
    title: 'the root key is kept offline, not beside the issuing key',
    run: (f) =>
      findingsOrPass(
        f.ca.rootKeyOnline
          ? [{ severity: 'medium', title: 'the root CA key is online, in the data folder beside the issuing key', objects: ['ca:root'], evidence: [ev('ca/root.key is present in the data folder', f.now)], fix: 'move ca/root.key to offline storage (an encrypted USB stick in a safe); the gateway needs only the intermediate key, the root key only to issue a new intermediate' }]
          : [],
        'ca/root.key is not in the data folder',
      ),
  },
  {
    id: 'ca.key_encryption',
    category: 'ca',
    title: 'CA private keys are encrypted at rest',
    run: (f) => {
      const plain = f.ca.keys.filter((k) => !k.encrypted);
      return findingsOrPass(
        plain.length
          ? [{ severity: 'high', title: `CA key${plain.length > 1 ? 's' : ''} not encrypted at rest: ${plain.map((k) => k.name).join(', ')}`, objects: plain.map((k) => `ca:${k.name}`), evidence: plain.map((k) => ev(`ca/${k.name}.key is an unencrypted PKCS#8 key`, f.now)), fix: 'WOTT_CA_PASSPHRASE=… wott ca encrypt (with the gateway stopped), then start the gateway with WOTT_CA_PASSPHRASE set' }]
          : [],
        `${f.ca.keys.map((k) => k.name).join(' and ')} key encrypted`,
      );
    },
  },
  // ------------------------------------------------------------------ certificates
  {
    id: 'certificates.expiring',
    category: 'certificates',
    title: 'no device certificate is about to expire (under a tenth of its lifetime left) without a renewal',
    run: (f) => {
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const d of living(f)) {
        const c = current(d);
        if (!c) continue;
        const life = c.notAfter - c.notBefore;
        const left = c.notAfter - f.now;
        if (left > life / 10) continue;
        out.push({
          severity: 'high',
          title: left <= 0 ? `${d.id}: its certificate has expired and no newer one was issued` : `${d.id}: its certificate expires in ${days(left)} and no renewal has been issued`,
          objects: [`device:${d.id}`, `certificate:${c.serial}`],
          evidence: [ev(`certificate ${c.serial} valid ${iso(c.notBefore)} – ${iso(c.notAfter)}, no newer certificate`, f.now)],
          fix: `check the agent on ${d.id} (journalctl -u wott-agent) and that it reaches the EST server; an expired certificate cannot renew: enroll again with wott token create --device ${d.id}`,
        });
      }
      return findingsOrPass(out, `${living(f).length} device(s) checked`);
    },
  },
  {
    id: 'certificates.renewal_overdue',
    category: 'certificates',
    title: 'devices renew on schedule (at two thirds of the lifetime)',
    run: (f) => {
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const d of living(f)) {
        const c = current(d);
        if (!c) continue;
        const life = c.notAfter - c.notBefore;
        const left = c.notAfter - f.now;
        // Agents renew at 2/3 of the lifetime minus up to 1/20 of jitter: a quarter left means several missed tries.
        if (left <= life / 10 || left > life / 4) continue;
        out.push({
          severity: 'medium',
          title: `${d.id} stopped renewing on schedule: ${Math.round((1 - left / life) * 100)} % of its certificate's lifetime used`,
          objects: [`device:${d.id}`, `certificate:${c.serial}`],
          evidence: [ev(`certificate ${c.serial} issued ${iso(c.notBefore)}, expires ${iso(c.notAfter)}; renewal was due at ${iso(c.notBefore + (life * 2) / 3)}`, f.now)],
          fix: `check the agent on ${d.id} (journalctl -u wott-agent): it renews at two thirds of the lifetime`,
        });
      }
      return findingsOrPass(out, `${living(f).length} device(s) checked`);
    },
  },
  {
    id: 'certificates.two_places',
    category: 'certificates',
    title: 'no device identity is used from two places at once',
    run: (f) => {
      if (!f.live) return notLive('the live sessions');
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const [device, sessions] of f.live.sessions) {
        const addresses = [...new Set(sessions.map((s) => s.remoteAddress).filter((a): a is string => !!a))];
        if (addresses.length < 2) continue;
        out.push({
          severity: 'high',
          title: `${device} is connected from ${addresses.length} addresses at once`,
          objects: [`device:${device}`],
          evidence: sessions.map((s) => ev(`session ${s.clientId} from ${s.remoteAddress ?? '?'} since ${iso(s.since)}`, f.now)),
          fix: `if ${device} is one device, its key was copied: wott ca revoke --device ${device} --reason keyCompromise and enroll it again`,
        });
      }
      return findingsOrPass(out, `${f.live.sessions.size} connected identit${f.live.sessions.size === 1 ? 'y' : 'ies'} checked`);
    },
  },
  {
    id: 'certificates.revoked_connected',
    category: 'certificates',
    title: 'no revoked certificate is connected, or still tries to connect',
    run: (f) => {
      if (!f.live) return notLive('the live sessions and refused handshakes');
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const d of f.devices) {
        const sessions = f.live.sessions.get(d.id) ?? [];
        if (d.state === 'revoked' && sessions.length) {
          out.push({ severity: 'critical', title: `${d.id} is revoked and still connected`, objects: [`device:${d.id}`], evidence: sessions.map((s) => ev(`session ${s.clientId} from ${s.remoteAddress ?? '?'} since ${iso(s.since)}`, f.now)), fix: 'restart the gateway and report this as a bug: revocation closes sessions within a second' });
        }
        const tries = (f.live.events.get(d.id) ?? []).filter((e) => e.type === 'auth_failure' && /revoked/.test(e.reason ?? ''));
        if (tries.length) {
          const from = [...new Set(tries.map((e) => e.remoteAddress ?? '?'))];
          out.push({
            severity: 'high',
            title: `${d.id}: a revoked certificate still tries to connect (${tries.length} time${tries.length > 1 ? 's' : ''}, from ${from.join(', ')})`,
            objects: [`device:${d.id}`],
            evidence: tries.slice(0, 5).map((e) => ev(`handshake refused: ${e.reason ?? 'revoked'} from ${e.remoteAddress ?? '?'}`, e.time)),
            fix: `find the host at ${from.join(', ')}: if ${d.id} was revoked on purpose, switch it off or wipe its key; if it was stolen, block the address`,
          });
        }
      }
      return findingsOrPass(out, 'no revoked device connected or trying since the gateway started');
    },
  },
  {
    id: 'certificates.superseded_presented',
    category: 'certificates',
    title: 'no superseded certificate is still presented',
    run: (f) => {
      if (!f.live) return notLive('refused handshakes');
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const [device, events] of f.live.events) {
        const tries = events.filter((e) => e.type === 'auth_failure' && /superseded/.test(e.reason ?? ''));
        if (!tries.length) continue;
        out.push({
          severity: 'medium',
          title: `${device}: a superseded certificate is still presented`,
          objects: [`device:${device}`],
          evidence: tries.slice(0, 5).map((e) => ev(`handshake refused: ${e.reason ?? 'superseded'} from ${e.remoteAddress ?? '?'}`, e.time)),
          fix: `a second copy of ${device}'s previous key is in use (a cloned SD card, a restored backup): find it, or revoke the device if the key was copied`,
        });
      }
      return findingsOrPass(out, 'no superseded certificate presented since the gateway started');
    },
  },
  // ------------------------------------------------------------------ identity
  {
    id: 'identity.client_id_conflict',
    category: 'identity',
    title: "no device tries to use another's MQTT client id (session takeover)",
    run: (f) => {
      if (!f.live) return notLive('refused client ids');
      const known = new Set(f.devices.map((d) => d.id));
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const [device, events] of f.live.events) {
        const tries = events.filter((e) => e.type === 'auth_failure' && /client id/.test(e.reason ?? ''));
        if (!tries.length) continue;
        // The id it asked for: another device's (a takeover attempt) or a made-up one (a misconfigured client).
        const victims = [...new Set(tries.map((e) => /client id "([^":]*)/.exec(e.reason ?? '')?.[1]).filter((v): v is string => !!v && v !== device && known.has(v)))];
        const evidence = tries.slice(0, 5).map((e) => ev(`refused: ${e.reason ?? 'client id'} from ${e.remoteAddress ?? '?'}`, e.time));
        out.push(
          victims.length
            ? { severity: 'critical', title: `${device} tried to take over the session of ${victims.join(', ')} (conflicting client id)`, objects: [`device:${device}`, ...victims.map((v) => `device:${v}`)], evidence, fix: `quarantine ${device} (wott device quarantine ${device}) and find out who holds its key; if it should not exist, revoke it (wott ca revoke --device ${device} --reason keyCompromise)` }
            : { severity: 'medium', title: `${device} connects with a client id that is not its own`, objects: [`device:${device}`], evidence, fix: `set ${device}'s client id to "${device}", "${device}:suffix", or empty` },
        );
      }
      return findingsOrPass(out, 'no client id refused since the gateway started');
    },
  },
  {
    id: 'identity.failed_handshakes',
    category: 'identity',
    title: `fewer than ${FAILED_HANDSHAKES} recent failed handshakes under any one device's name`,
    run: (f) => {
      if (!f.live) return notLive('failed handshakes');
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const [device, events] of f.live.events) {
        const fails = events.filter((e) => e.type === 'auth_failure');
        if (fails.length < FAILED_HANDSHAKES) continue;
        const from = [...new Set(fails.map((e) => e.remoteAddress ?? '?'))];
        out.push({ severity: 'medium', title: `${fails.length} failed handshakes under ${device}'s name`, objects: [`device:${device}`], evidence: [ev(`${fails.length} authentication failures from ${from.join(', ')} between ${fails[0]!.time} and ${fails[fails.length - 1]!.time}`, f.now)], fix: `see why (wott device show ${device}: events); block ${from.join(', ')} if it is not the device` });
      }
      return findingsOrPass(out, 'no device name with repeated failures');
    },
  },
  // ------------------------------------------------------------------ policy
  {
    id: 'policy.open_to_everyone',
    category: 'policy',
    title: 'no rule lets every device (threshold 0, or a # filter) publish or subscribe broadly',
    run: (f) => {
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const r of f.config.policies) {
        if (r.topic.includes('{device}')) continue; // bound to the caller's own id: nobody reaches another's topics
        const broad = r.topic === '#' || r.topic.startsWith('+/') || r.topic.startsWith('#');
        const open = (['publish', 'subscribe'] as const).filter((a) => r[a] !== undefined && (r[a] === 0 || broad));
        if (!open.length) continue;
        out.push({
          severity: broad ? 'high' : 'medium',
          title: `rule ${r.topic} lets ${open.map((a) => `${a} at score ${r[a]}`).join(' and ')}${broad ? ' on every topic' : ': any device, whatever its score'}`,
          objects: [`rule:${r.topic}`],
          evidence: [ev(`policies: topic ${r.topic} publish ${r.publish ?? '-'} subscribe ${r.subscribe ?? '-'}`, f.now)],
          fix: broad ? `replace ${r.topic} with rules for the topics devices need, each with its own threshold` : `give ${r.topic} a minimum score (e.g. 0.4), or bind it to the device ({device}) if each device uses its own topics`,
        });
      }
      return findingsOrPass(out, `${f.config.policies.length} rule(s) checked`);
    },
  },
  {
    id: 'policy.publish_below_subscribe',
    category: 'policy',
    title: 'no topic lets less trusted devices publish what more trusted ones read',
    run: (f) => {
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const r of f.config.policies) {
        if (r.topic.includes('{device}') || r.publish === undefined || r.subscribe === undefined || r.publish >= r.subscribe) continue;
        out.push({
          severity: 'medium',
          title: `${r.topic}: devices from score ${r.publish} publish what only devices from ${r.subscribe} may read`,
          objects: [`rule:${r.topic}`],
          evidence: [ev(`policies: topic ${r.topic} publish ${r.publish} subscribe ${r.subscribe}`, f.now)],
          fix: `raise ${r.topic}'s publish threshold to ${r.subscribe}: trusted readers act on what less trusted devices write`,
        });
      }
      return findingsOrPass(out, `${f.config.policies.length} rule(s) checked`);
    },
  },
  {
    id: 'policy.initial_score_reach',
    category: 'policy',
    title: 'no device reaches a topic only because of the initial score (it never reported its state)',
    run: (f) => {
      const gated = f.config.policies.filter((r) => !r.topic.includes('{device}'));
      const out: Omit<AuditFinding, 'check'>[] = [];
      for (const d of living(f)) {
        // Reported: its score rests on its state. Not yet: the broker's initial score, then scoring's prior.
        if (d.score && !d.score.factors.some((x) => x.id === 'telemetry')) continue;
        const score = effectiveScore(d.score?.score ?? f.config.initialScore, d.state);
        const reach = gated.filter((r) => (['publish', 'subscribe'] as const).some((a) => r[a] !== undefined && r[a]! > 0 && score >= r[a]!));
        if (!reach.length) continue;
        out.push({
          severity: 'medium',
          title: `${d.id} reaches ${reach.map((r) => r.topic).join(', ')} on the initial score ${score} alone: it has never reported its state`,
          objects: [`device:${d.id}`, ...reach.map((r) => `rule:${r.topic}`)],
          evidence: [ev(`no state report from its agent; score ${score} (${d.score ? `scoring's prior, ${d.score.time}` : 'the broker\'s initial score'}); enrolled ${d.createdAt}`, d.score?.time ?? f.now)],
          fix: `run the agent on ${d.id} (wott agent run), or lower scoring.initialScore below ${Math.min(...reach.flatMap((r) => [r.publish, r.subscribe].filter((t): t is number => t !== undefined && t > 0)))}`,
        });
      }
      return findingsOrPass(out, `${living(f).length} device(s) checked`);
    },
  },
  // ------------------------------------------------------------------ operations
  {
    id: 'operations.claim_waiting',
    category: 'operations',
    title: 'claim mode is not left on with unclaimed devices waiting',
    run: (f) => {
      const waiting = f.devices.filter((d) => d.state === 'unclaimed');
      if (!waiting.length) return { status: 'pass', note: f.config.claim ? 'claim mode on, no device waits' : 'claim mode off, no device waits' };
      return {
        status: 'findings',
        findings: [{ severity: f.config.claim ? 'medium' : 'low', title: `${waiting.length} unclaimed device(s) wait${f.config.claim ? ' while claim mode is on' : ''}`, objects: waiting.map((d) => `device:${d.id}`), evidence: waiting.slice(0, 20).map((d) => ev(`${d.id} enrolled without a token at ${d.createdAt}`, f.now)), fix: 'claim the ones you know (wott device claim ID), leave the others to expire, and turn claim mode off (enrollment.claim: false) when no rollout is under way' }],
      };
    },
  },
  {
    id: 'operations.long_tokens',
    category: 'operations',
    title: `no unused enrollment token stays valid for more than ${days(LONG_TOKEN_MS)}`,
    run: (f) => {
      const long = f.tokens.filter((t) => t.expiresAt - f.now > LONG_TOKEN_MS);
      return findingsOrPass(
        long.length ? [{ severity: 'medium', title: `${long.length} enrollment token(s) valid for more than ${days(LONG_TOKEN_MS)}`, objects: [...new Set(long.map((t) => `device:${t.deviceId}`))], evidence: long.slice(0, 20).map((t) => ev(`an unused token for ${t.deviceId} valid until ${iso(t.expiresAt)}`, f.now)), fix: 'create tokens just before enrollment with a short life (wott token create --ttl 1h); a token that leaks enrolls a device until it expires' }] : [],
        `${f.tokens.length} outstanding token(s)`,
      );
    },
  },
  {
    id: 'operations.vuln_data',
    category: 'operations',
    title: `vulnerability data is loaded and less than ${days(STALE_VULN_MS)} old`,
    run: (f) => {
      if (!f.vuln || f.vuln.feeds.length === 0) {
        return { status: 'findings', findings: [{ severity: 'high', title: 'no vulnerability data is loaded: CVEs in devices\' packages go unseen', objects: ['vuln:feeds'], evidence: [ev('no CVE feed in the vulnerability store', f.now)], fix: 'wott cve update --from URL-OR-FILE (the Debian Security Tracker JSON), daily from cron or a systemd timer' }] };
      }
      const stale = f.vuln.feeds.filter((feed) => f.now - Date.parse(feed.loadedAt) > STALE_VULN_MS);
      return findingsOrPass(
        stale.length ? [{ severity: 'medium', title: `vulnerability data is stale: ${stale.map((s) => `${s.name} loaded ${days(f.now - Date.parse(s.loadedAt))} ago`).join(', ')}`, objects: stale.map((s) => `vuln:${s.name}`), evidence: stale.map((s) => ev(`feed ${s.name} (${s.entries} entries) loaded ${s.loadedAt}`, f.now)), fix: 'wott cve update --from … daily (cron or a systemd timer)' }] : [],
        f.vuln.feeds.map((s) => `${s.name} loaded ${s.loadedAt}`).join(', '),
      );
    },
  },
  {
    id: 'operations.influx_writes',
    category: 'operations',
    title: 'InfluxDB writes succeed',
    run: (f) => {
      if (!f.config.influx) return { status: 'pass', note: 'InfluxDB is not configured (scoring.influx)' };
      const live = f.live?.influx;
      if (live) {
        if (live.failures === 0 && live.spooledBatches === 0) return { status: 'pass', note: `${live.written} point(s) written, no failure` };
        return { status: 'findings', findings: [{ severity: 'high', title: `InfluxDB writes fail: ${live.failures} failure(s), ${live.spooledBatches} batch(es) waiting in the spool${live.dropped ? `, ${live.dropped} point(s) dropped` : ''}`, objects: ['influxdb'], evidence: [ev(`writer counters: written ${live.written}, failures ${live.failures}, spooled batches ${live.spooledBatches}, dropped ${live.dropped}`, f.now)], fix: 'check scoring.influx (url, database, token) and that InfluxDB runs; spooled points are sent once it answers' }] };
      }
      const spool = f.influxSpool;
      if (!spool) return { status: 'not_assessable', note: 'scoring does not run here and no spool folder was found' };
      if (spool.batches === 0) return { status: 'pass', note: 'no batch waits in the InfluxDB spool' };
      return { status: 'findings', findings: [{ severity: 'high', title: `InfluxDB writes fail: ${spool.batches} batch(es) wait in the spool`, objects: ['influxdb'], evidence: [ev(`${spool.batches} spooled batch file(s)${spool.oldest ? `, the oldest from ${iso(spool.oldest)}` : ''} in scoring/influx-spool`, f.now)], fix: 'check scoring.influx (url, database, token) and that InfluxDB runs; spooled points are sent once it answers' }] };
    },
  },
  {
    id: 'operations.audit_log_gaps',
    category: 'operations',
    title: 'the audit log has no gaps (sequence numbers consecutive, times in order)',
    run: (f) => {
      const out: Evidence[] = [];
      for (let i = 1; i < f.auditLog.length; i++) {
        const a = f.auditLog[i - 1]!;
        const b = f.auditLog[i]!;
        if (b.seq !== a.seq + 1) out.push(ev(`entries ${a.seq + 1}–${b.seq - 1} are missing (between ${a.time} ${a.action} and ${b.time} ${b.action})`, f.now));
        else if (Date.parse(b.time) < Date.parse(a.time) - 60_000) out.push(ev(`entry ${b.seq} (${b.time}) is older than entry ${a.seq} (${a.time})`, f.now));
      }
      return findingsOrPass(
        out.length ? [{ severity: 'high', title: `the audit log has ${out.length} gap(s)`, objects: ['audit-log'], evidence: out.slice(0, 20), fix: 'compare with a backup (wott ca backup) and find who had write access to the inventory database; entries are never deleted by wott' }] : [],
        `${f.auditLog.length} entries, consecutive`,
      );
    },
  },
  {
    id: 'operations.unauthenticated_access',
    category: 'operations',
    title: '/metrics and the API are not reachable without authentication',
    run: (f) => {
      const out: Omit<AuditFinding, 'check'>[] = [];
      const m = f.config.metrics;
      const loopback = /^(127\.|::1$|localhost$)/.test(m.bind);
      if (m.port !== false && !loopback) {
        out.push({ severity: 'high', title: `/metrics is served without authentication on ${m.bind}:${m.port}`, objects: ['listener:metrics'], evidence: [ev(`gateway.metricsBind ${m.bind}, gateway.metricsPort ${m.port}`, f.now)], fix: 'bind the metrics listener to 127.0.0.1 (gateway.metricsBind) and scrape through a tunnel, or scrape /metrics on the HTTPS port with a service certificate' });
      }
      const open = f.config.apiRoutes.filter((r) => r.role === null);
      if (open.length) out.push({ severity: 'critical', title: `${open.length} API route(s) answer without authentication`, objects: open.map((r) => `route:${r.method} ${r.path}`), evidence: open.map((r) => ev(`${r.method} /api/v1${r.path} asks for no role`, f.now)), fix: 'give each route an access rule (api/routes.ts)' });
      return findingsOrPass(out, `metrics ${m.port === false ? 'off' : `on ${m.bind}:${m.port}`}; ${f.config.apiRoutes.length} API routes each ask for a role`);
    },
  },
];

const RANK: Record<AuditSeverity, number> = Object.fromEntries(AUDIT_SEVERITIES.map((s, i) => [s, i])) as Record<AuditSeverity, number>;

/** Runs every check on `facts`. */
export function runChecks(facts: AuditFacts, startedAt: number = facts.now): AuditRun {
  const checks: AuditCheck[] = [];
  const findings: AuditFinding[] = [];
  for (const spec of CHECKS) {
    const o = spec.run(facts);
    if (o.status === 'findings') {
      for (const x of o.findings) findings.push({ check: spec.id, ...x });
      checks.push({ id: spec.id, category: spec.category, title: spec.title, status: 'findings', note: o.note ?? null, findings: o.findings.length });
    } else checks.push({ id: spec.id, category: spec.category, title: spec.title, status: o.status, note: o.note, findings: 0 });
  }
  findings.sort((a, b) => RANK[a.severity] - RANK[b.severity] || a.check.localeCompare(b.check) || a.title.localeCompare(b.title));
  const counts = Object.fromEntries(AUDIT_SEVERITIES.map((s) => [s, findings.filter((x) => x.severity === s).length])) as Record<AuditSeverity, number>;
  return { id: iso(startedAt), startedAt: iso(startedAt), finishedAt: iso(facts.now), source: facts.source, devices: facts.devices.length, counts, checks, findings };
}

/** A finding's identity across runs (what makes it "new"): its check and its objects. */
export function findingKey(f: AuditFinding): string {
  return `${f.check}|${f.objects.join(',')}`;
}
