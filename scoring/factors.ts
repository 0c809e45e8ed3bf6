/**
 * State factors: pure functions from one telemetry report (plus CA facts and CVE findings) to WoTT-style factor
 * values in [0, 1], each with a one-line reason and the fix. No I/O, no clock: `now` comes in.
 */
import type { ListeningSocket, Telemetry } from '../protocol/index.js';
import type { ScoreModel, StateFactorId } from './model.js';

export interface StateFactor {
  id: StateFactorId;
  /** 1 = nothing wrong, 0 = as bad as it gets. */
  value: number;
  reason: string;
  fix?: string;
  /** Not enough data to judge: left out of the weighted mean instead of guessed. */
  excluded?: boolean;
}

/** The parts of a CVE finding the score needs (vuln/ produces the full finding). */
export interface CveFindingInput {
  cve: string;
  source: string;
  installed: string;
  fixed: string;
  severity: 'low' | 'medium' | 'high' | 'critical' | 'unknown';
  remote: boolean | null;
  exposed: boolean;
  action: string;
}

/** What the CA knows, which the device can not fake. */
export interface CaFacts {
  state?: 'unclaimed' | 'active' | 'quarantined' | 'revoked';
  /** The device's key is held in a TPM (the CA checked a TPM signature at enrollment/renewal). */
  tpm?: boolean;
  certificate?: { notBefore: number; notAfter: number };
}

export interface StateInputs {
  telemetry: Telemetry;
  /** undefined: no vulnerability data is loaded; 'unknown': the package list has not arrived yet. */
  cves?: CveFindingInput[] | 'unknown';
  ca?: CaFacts;
  now: number;
}

const round = (n: number) => Math.round(n * 1000) / 1000;
const clamp01 = (n: number) => Math.min(1, Math.max(0, n));

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** Services reachable from the network (TCP listeners and UDP sockets on a non-loopback address). */
export function exposedPorts(listening: ListeningSocket[]): number[] {
  return [...new Set(listening.filter((s) => !isLoopback(s.address)).map((s) => s.port))].sort((a, b) => a - b);
}

export function stateFactors(model: ScoreModel, input: StateInputs): StateFactor[] {
  const t = input.telemetry;
  const m = model.state;
  const out: StateFactor[] = [];

  // Firewall: WoTT gave full marks only to block-by-default.
  if (t.firewall.defaultInputPolicy === 'drop') {
    out.push({ id: 'firewall', value: 1, reason: `${t.firewall.tool} drops inbound traffic by default` });
  } else if (t.firewall.rules > 0) {
    out.push({ id: 'firewall', value: 0.3, reason: `${t.firewall.tool} has ${t.firewall.rules} rules but accepts inbound traffic by default`, fix: 'set the input chain policy to drop and allow only the services you need' });
  } else {
    out.push({ id: 'firewall', value: 0, reason: 'no firewall rules', fix: 'enable nftables with an input policy of drop (e.g. apt install nftables; systemctl enable --now nftables)' });
  }

  // Mandatory access control: either AppArmor or SELinux enforcing is full marks.
  const { apparmor, selinux } = t.mac;
  if (apparmor === 'enabled' || selinux === 'enforcing') {
    out.push({ id: 'mac', value: 1, reason: apparmor === 'enabled' ? 'AppArmor is enabled' : 'SELinux is enforcing' });
  } else if (selinux === 'permissive') {
    out.push({ id: 'mac', value: 0.5, reason: 'SELinux is only permissive', fix: 'set SELINUX=enforcing in /etc/selinux/config' });
  } else {
    out.push({ id: 'mac', value: 0, reason: 'neither AppArmor nor SELinux is active', fix: 'enable AppArmor (apt install apparmor apparmor-profiles; add apparmor=1 security=apparmor to the kernel command line)' });
  }

  if (t.defaultCredentials.length > 0) {
    const users = t.defaultCredentials.map((c) => c.user).join(', ');
    out.push({ id: 'defaultCredentials', value: 0, reason: `default or empty password for ${users}`, fix: `change the password of ${users} (passwd), or lock the account (passwd -l)` });
  } else {
    out.push({ id: 'defaultCredentials', value: 1, reason: 'no default passwords found' });
  }

  if (t.failedLoginsLastHour === undefined) {
    out.push({ id: 'failedLogins', value: 1, reason: 'failed logins not visible to the agent', excluded: true });
  } else {
    const n = t.failedLoginsLastHour;
    const value = clamp01((m.failedLogins.bad - n) / (m.failedLogins.bad - m.failedLogins.good));
    out.push(
      value >= 1
        ? { id: 'failedLogins', value, reason: `${n} failed logins in the last hour` }
        : { id: 'failedLogins', value, reason: `${n} failed logins in the last hour`, fix: 'find the source in /var/log/auth.log; block it, or disable password logins' },
    );
  }

  const ports = exposedPorts(t.listening);
  const risky = ports.filter((p) => m.ports.risky.includes(p));
  const minor = ports.filter((p) => m.ports.minor.includes(p));
  const portValue = clamp01(1 - risky.length * m.ports.riskyPenalty - minor.length * m.ports.minorPenalty);
  if (risky.length > 0) {
    out.push({ id: 'ports', value: portValue, reason: `risky ports open to the network: ${risky.join(', ')}`, fix: `stop or firewall the services on ${risky.join(', ')}, or bind them to 127.0.0.1` });
  } else {
    out.push({ id: 'ports', value: portValue, reason: ports.length ? `listening on ${ports.join(', ')}` : 'no services listen on the network' });
  }

  out.push(cveFactor(model, input.cves));

  if (!t.ssh.installed) {
    out.push({ id: 'ssh', value: 1, reason: 'no SSH server installed' });
  } else {
    let value = 1;
    const bad: string[] = [];
    const fixes: string[] = [];
    for (const [setting, rule] of Object.entries(m.ssh)) {
      if ((t.ssh.settings[setting] ?? '').toLowerCase() === rule.bad.toLowerCase()) {
        value -= rule.penalty;
        bad.push(`${setting} ${rule.bad}`);
        fixes.push(rule.fix);
      }
    }
    out.push(bad.length ? { id: 'ssh', value: clamp01(value), reason: `sshd: ${bad.join(', ')}`, fix: `${fixes.join('; ')} in /etc/ssh/sshd_config` } : { id: 'ssh', value: 1, reason: 'sshd settings are hardened' });
  }

  out.push(
    t.insecureServices.length
      ? { id: 'insecureServices', value: 0, reason: `insecure services installed: ${t.insecureServices.join(', ')}`, fix: `apt purge ${t.insecureServices.join(' ')}` }
      : { id: 'insecureServices', value: 1, reason: 'no insecure services installed' },
  );
  out.push(
    t.autoUpdates
      ? { id: 'autoUpdates', value: 1, reason: 'automatic security updates are on' }
      : { id: 'autoUpdates', value: 0, reason: 'automatic security updates are off', fix: 'apt install unattended-upgrades; dpkg-reconfigure -plow unattended-upgrades' },
  );
  out.push(
    t.rebootRequired
      ? { id: 'rebootRequired', value: 0, reason: 'updates wait for a reboot', fix: 'reboot the device' }
      : { id: 'rebootRequired', value: 1, reason: 'no reboot pending' },
  );
  const vulnerable = t.cpuVulnerabilities.filter((v) => v.vulnerable).map((v) => v.name);
  out.push(
    vulnerable.length
      ? { id: 'cpuVulnerabilities', value: 0, reason: `CPU vulnerable to ${vulnerable.join(', ')}`, fix: 'update the kernel and CPU microcode (apt install intel-microcode / amd64-microcode) and reboot' }
      : { id: 'cpuVulnerabilities', value: 1, reason: t.cpuVulnerabilities.length ? 'CPU vulnerabilities mitigated' : 'no CPU vulnerabilities reported' },
  );

  // The CA's record wins over the report: a device can claim a TPM, only a TPM signature proves one.
  const tpm = input.ca?.tpm ?? false;
  out.push(
    tpm
      ? { id: 'keyStore', value: 1, reason: 'the device key is held in a TPM' }
      : { id: 'keyStore', value: 0.5, reason: 'the device key is a file on disk', fix: 'enroll with --key-store tpm on hardware with a TPM 2.0' },
  );

  const cert = input.ca?.certificate;
  if (!cert) {
    out.push({ id: 'certificate', value: 1, reason: 'certificate age unknown to scoring', excluded: true });
  } else {
    const lifetime = cert.notAfter - cert.notBefore;
    const used = lifetime > 0 ? (input.now - cert.notBefore) / lifetime : 1;
    const late = m.certificate.late;
    if (used <= late) {
      out.push({ id: 'certificate', value: 1, reason: 'the certificate is renewed on schedule' });
    } else {
      const value = clamp01((1 - used) / (1 - late));
      out.push({ id: 'certificate', value, reason: `the certificate is ${Math.round(used * 100)} % through its lifetime: renewal is failing`, fix: 'check the agent (journalctl -u wott-agent) and that it reaches the EST server' });
    }
  }
  for (const f of out) f.value = round(f.value);
  return out;
}

function cveFactor(model: ScoreModel, cves: StateInputs['cves']): StateFactor {
  const c = model.state.cves;
  if (cves === undefined) return { id: 'cves', value: 1, reason: 'no vulnerability data loaded (wott cve update)', excluded: true };
  if (cves === 'unknown') {
    return { id: 'cves', value: c.unknownInventory, reason: 'package list not received yet', fix: 'restart the agent so that it sends its full package list' };
  }
  if (cves.length === 0) return { id: 'cves', value: 1, reason: 'no known fixed vulnerabilities in installed packages' };
  let points = 0;
  for (const f of cves) {
    points += c.points[f.severity] * (f.remote ? c.remoteMultiplier : 1) * (f.exposed ? c.exposedMultiplier : 1);
  }
  const worst = cves[0]!;
  const sources = [...new Set(cves.map((f) => f.source))];
  return {
    id: 'cves',
    value: clamp01(1 - points / c.budget),
    reason: `${cves.length} fixed vulnerabilities in ${sources.length} packages (worst: ${worst.cve} in ${worst.source}, ${worst.severity}${worst.exposed ? ', exposed' : ''})`,
    fix: sources.length === 1 ? worst.action : `upgrade ${sources.slice(0, 8).join(', ')}${sources.length > 8 ? ', …' : ''} (apt-get upgrade)`,
  };
}

/** Weighted mean of the included factors and each factor's signed contribution to it (they sum to score − 1). */
export function combineState(model: ScoreModel, factors: StateFactor[]): { score: number; contributions: Map<StateFactorId, number> } {
  const weights = model.state.weights;
  let total = 0;
  for (const f of factors) if (!f.excluded) total += weights[f.id];
  const contributions = new Map<StateFactorId, number>();
  let score = 1;
  for (const f of factors) {
    const c = f.excluded || total === 0 ? 0 : (-weights[f.id] * (1 - f.value)) / total;
    contributions.set(f.id, c);
    score += c;
  }
  return { score: clamp01(score), contributions };
}
