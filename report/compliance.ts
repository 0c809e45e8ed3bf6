/**
 * The compliance mapping: the audit's facts and findings → ETSI EN 303 645 provisions 5.1–5.13 and the NIST IR
 * 8259A core baseline, per provision and per device met / not met / not assessable, each with its evidence (which
 * fact, when observed) and the fix. Pure: the same facts give the same report.
 *
 * Device evidence comes from the device's latest score factors (what its agent reported, as scoring judged it),
 * its certificates and its state. A provision about the vendor's processes or about the device's firmware (its
 * disclosure policy, secure boot, personal data, resilience, input validation) is "not assessable by wott": the
 * report says so rather than guess.
 */
import type { AuditFinding, AuditRun, ComplianceReport, ComplianceSummary, DeviceProvision, Evidence, Provision, ProvisionResult } from '../protocol/index.js';
import type { AuditDevice, AuditFacts } from '../audit/facts.js';
import { STALE_VULN_MS } from '../audit/checks.js';

type Standard = Provision['standard'];
type Judgement = { result: ProvisionResult; evidence: Evidence[]; fix: string | null };

interface ProvisionSpec {
  standard: Standard;
  id: string;
  title: string;
  scope: Provision['scope'];
  why: string;
  /** Audit checks whose high or critical findings make the fleet miss this provision. */
  checks?: string[];
  judge?: (d: AuditDevice, f: AuditFacts) => Judgement;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Judges a device by score factors: not met when any of them asks for a fix, met when all are there without one. */
function byFactors(ids: string[], what: string) {
  return (d: AuditDevice): Judgement => {
    if (!d.score) return { result: 'not_assessable', evidence: [{ fact: 'no state report from the agent yet', observedAt: d.createdAt }], fix: `run the agent on ${d.id} so that it reports ${what}` };
    const found = ids.map((id) => d.score!.factors.find((x) => x.id === id)).filter((x) => x !== undefined);
    const evidence = found.map((x) => ({ fact: `${x.id}: ${x.reason}`, observedAt: d.score!.time }));
    const failing = found.filter((x) => x.fix && x.contribution < 0);
    if (failing.length) return { result: 'not_met', evidence, fix: failing.map((x) => x.fix!).join('; ') };
    if (found.length === 0) return { result: 'not_assessable', evidence: [{ fact: `the agent's report has no ${what}`, observedAt: d.score.time }], fix: null };
    return { result: 'met', evidence, fix: null };
  };
}

function currentCertificate(d: AuditDevice, f: AuditFacts): Judgement {
  const c = d.certificates.find((x) => x.status === 'active');
  if (!c) return { result: 'not_met', evidence: [{ fact: 'no active certificate', observedAt: iso(f.now) }], fix: `enroll ${d.id} again (wott token create --device ${d.id})` };
  const fact = { fact: `certificate ${c.serial} (ECDSA P-256, mutual TLS) valid ${iso(c.notBefore)} – ${iso(c.notAfter)}`, observedAt: iso(f.now) };
  if (c.notAfter <= f.now) return { result: 'not_met', evidence: [fact], fix: `the certificate expired: enroll ${d.id} again` };
  const life = c.notAfter - c.notBefore;
  if (c.notAfter - f.now <= life / 4) return { result: 'not_met', evidence: [fact], fix: `${d.id} stopped renewing: check its agent (journalctl -u wott-agent)` };
  return { result: 'met', evidence: [fact], fix: null };
}

function all(...judges: Array<(d: AuditDevice, f: AuditFacts) => Judgement>) {
  return (d: AuditDevice, f: AuditFacts): Judgement => {
    const parts = judges.map((j) => j(d, f));
    const evidence = parts.flatMap((p) => p.evidence);
    const failed = parts.filter((p) => p.result === 'not_met');
    if (failed.length) return { result: 'not_met', evidence, fix: failed.map((p) => p.fix).filter(Boolean).join('; ') || null };
    if (parts.some((p) => p.result === 'not_assessable')) return { result: 'not_assessable', evidence, fix: parts.map((p) => p.fix).filter(Boolean).join('; ') || null };
    return { result: 'met', evidence, fix: null };
  };
}

const telemetry = (d: AuditDevice): Judgement =>
  d.score && d.score.factors.some((x) => x.id === 'firewall')
    ? { result: 'met', evidence: [{ fact: `the agent reports the device's security state (last score ${d.score.score.toFixed(2)})`, observedAt: d.score.time }], fix: null }
    : { result: 'not_met', evidence: [{ fact: 'no state report from the agent', observedAt: d.createdAt }], fix: `install and run the agent on ${d.id} (wott agent run)` };

/** Up to date: no CVE with a fix, automatic updates on, no pending reboot; needs fresh vulnerability data to say "met". */
function updated(d: AuditDevice, f: AuditFacts): Judgement {
  const j = byFactors(['autoUpdates', 'rebootRequired', 'cves'], 'its update state and packages')(d);
  if (j.result !== 'met') return j;
  const fresh = f.vuln?.feeds.some((feed) => f.now - Date.parse(feed.loadedAt) <= STALE_VULN_MS);
  if (!fresh) return { result: 'not_assessable', evidence: [...j.evidence, { fact: f.vuln?.feeds.length ? 'the vulnerability data is older than 7 days' : 'no vulnerability data loaded', observedAt: iso(f.now) }], fix: 'wott cve update --from … (daily)' };
  return j;
}

const outside = (standard: Standard, id: string, title: string, why: string): ProvisionSpec => ({ standard, id, title, scope: 'outside', why });
const ETSI: Standard = 'ETSI EN 303 645';
const NIST: Standard = 'NIST IR 8259A';

export const PROVISIONS: ProvisionSpec[] = [
  { standard: ETSI, id: '5.1', title: 'No universal default passwords', scope: 'device', why: "the agent checks local accounts for default or empty passwords; devices authenticate to wott with a certificate of their own, never a shared password", judge: byFactors(['defaultCredentials'], 'its accounts') },
  outside(ETSI, '5.2', 'Implement a means to manage reports of vulnerabilities', 'a published vulnerability disclosure policy and its handling are the manufacturer\'s process: wott holds no evidence of it'),
  { standard: ETSI, id: '5.3', title: 'Keep software updated', scope: 'device', why: 'CVE findings with a fixed version (from the loaded vulnerability data), automatic security updates, pending reboots', checks: ['operations.vuln_data'], judge: updated },
  { standard: ETSI, id: '5.4', title: 'Securely store sensitive security parameters', scope: 'device', why: "whether the device's private key is held in a TPM (the agent's key store); the CA's keys at rest for the fleet", checks: ['ca.key_encryption', 'ca.root_key_online'], judge: byFactors(['keyStore'], 'its key store') },
  { standard: ETSI, id: '5.5', title: 'Communicate securely', scope: 'device', why: 'a current certificate for mutual TLS to the broker, renewed on schedule, and no clear-text services (telnet, rsh …) installed', checks: ['certificates.revoked_connected', 'certificates.two_places', 'ca.expiry', 'ca.key_type'], judge: all(currentCertificate, byFactors(['insecureServices'], 'its installed services')) },
  { standard: ETSI, id: '5.6', title: 'Minimise exposed attack surfaces', scope: 'device', why: 'listening ports, the firewall\'s default policy, insecure services and the SSH settings the agent reports', checks: ['policy.open_to_everyone', 'operations.unauthenticated_access'], judge: byFactors(['firewall', 'ports', 'insecureServices', 'ssh'], 'its ports and firewall') },
  outside(ETSI, '5.7', 'Ensure software integrity', 'secure boot and signed firmware are not reported by the agent'),
  outside(ETSI, '5.8', 'Ensure that personal data is secure', 'what personal data a device processes is not known to wott (its own traffic to the broker is encrypted: see 5.5)'),
  outside(ETSI, '5.9', 'Make systems resilient to outages', "the device's behaviour during network and power outages is not observed by wott"),
  { standard: ETSI, id: '5.10', title: 'Examine system telemetry data', scope: 'device', why: 'the agent reports the device\'s security state and the broker its behaviour; scoring examines both', checks: ['operations.influx_writes', 'operations.audit_log_gaps'], judge: telemetry },
  outside(ETSI, '5.11', 'Make it easy for users to delete user data', 'user data on the device is not known to wott'),
  { standard: ETSI, id: '5.12', title: 'Make installation and maintenance of devices easy', scope: 'device', why: 'automatic enrollment and certificate renewal on schedule, without anyone touching the device', checks: ['certificates.expiring', 'certificates.renewal_overdue', 'operations.long_tokens'], judge: currentCertificate },
  outside(ETSI, '5.13', 'Validate input data', "the device's own input validation is not observable; the broker validates what devices send to wott's topics"),
  { standard: NIST, id: 'Device Identification', title: 'The device can be uniquely identified logically and physically', scope: 'device', why: 'a certificate of its own (CN and SAN urn:wott:device:ID) from the fleet CA', checks: ['identity.client_id_conflict', 'certificates.two_places'], judge: currentCertificate },
  { standard: NIST, id: 'Device Configuration', title: 'The configuration can be changed by authorized entities only', scope: 'device', why: 'no default passwords and hardened SSH settings, as the agent reports them', judge: byFactors(['defaultCredentials', 'ssh'], 'its accounts and SSH settings') },
  { standard: NIST, id: 'Data Protection', title: 'The device can protect the data it stores and transmits', scope: 'device', why: 'mutual TLS with a current certificate, no clear-text services, the key in a TPM', checks: ['ca.key_encryption'], judge: all(currentCertificate, byFactors(['insecureServices', 'keyStore'], 'its services and key store')) },
  { standard: NIST, id: 'Logical Access to Interfaces', title: 'The device can restrict logical access to its local and network interfaces', scope: 'device', why: 'firewall default policy, listening ports, default passwords; topic access by Trust Score at the broker', checks: ['policy.open_to_everyone', 'policy.publish_below_subscribe', 'policy.initial_score_reach'], judge: byFactors(['firewall', 'ports', 'defaultCredentials'], 'its firewall and ports') },
  { standard: NIST, id: 'Software Update', title: "The device's software can be updated by authorized entities using a secure mechanism", scope: 'device', why: 'automatic security updates, no CVE with a fix left unapplied (needs fresh vulnerability data)', checks: ['operations.vuln_data'], judge: updated },
  { standard: NIST, id: 'Cybersecurity State Awareness', title: 'The device can report on its cybersecurity state', scope: 'device', why: 'the agent reports its state; the broker reports its behaviour', checks: ['operations.influx_writes'], judge: telemetry },
];

export const provisionKey = (p: { standard: string; id: string }) => `${p.standard} ${p.id}`;

/**
 * The report. `previous` is the summary of the report before it (kept by the caller), for the trend; revoked
 * devices are left out of the per-device judgements (they are out of the fleet) and counted in the fleet evidence.
 */
export function buildComplianceReport(facts: AuditFacts, audit: AuditRun, previous: ComplianceSummary | null): ComplianceReport {
  const devices = facts.devices.filter((d) => d.state !== 'revoked');
  const revoked = facts.devices.length - devices.length;
  const generatedAt = iso(facts.now);
  const provisions: Provision[] = PROVISIONS.map((spec) => {
    const linked: AuditFinding[] = audit.findings.filter((x) => spec.checks?.includes(x.check));
    const fleetEvidence: Evidence[] = linked.map((x) => ({ fact: `audit ${x.check} (${x.severity}): ${x.title}`, observedAt: audit.finishedAt }));
    if (revoked && spec.scope === 'device') fleetEvidence.push({ fact: `${revoked} revoked device(s) left out`, observedAt: generatedAt });
    const perDevice: DeviceProvision[] =
      spec.scope === 'device' && spec.judge ? devices.map((d) => ({ device: d.id, ...spec.judge!(d, facts) })) : [];
    const summary = {
      met: perDevice.filter((x) => x.result === 'met').length,
      notMet: perDevice.filter((x) => x.result === 'not_met').length,
      notAssessable: spec.scope === 'device' ? perDevice.filter((x) => x.result === 'not_assessable').length : devices.length,
    };
    const fleetFails = linked.some((x) => x.severity === 'critical' || x.severity === 'high');
    let result: ProvisionResult;
    if (spec.scope === 'outside') result = 'not_assessable';
    else if (summary.notMet > 0 || fleetFails) result = 'not_met';
    else if (summary.notAssessable > 0 || perDevice.length === 0) result = 'not_assessable';
    else result = 'met';
    return { standard: spec.standard, id: spec.id, title: spec.title, scope: spec.scope, summary, result, why: spec.why, fleetEvidence, devices: perDevice };
  });
  const summary: ComplianceSummary = { generatedAt, devices: devices.length, met: Object.fromEntries(provisions.filter((p) => p.scope !== 'outside').map((p) => [provisionKey(p), p.summary.met])) };
  return {
    schema: 'wott.compliance/1',
    generatedAt,
    gateway: { rootFingerprint: facts.ca.root.fingerprint, devices: devices.length },
    provisions,
    summary,
    previous,
    audit,
  };
}
