/**
 * Device state collectors: pure functions over a filesystem root (`/` on a device, a fixture folder in tests)
 * plus command output handed in by the caller, so they never spawn processes and can be tested on fixtures.
 * The impure helpers live in crypt.ts (realCrypt) and commands.ts (readCommandOutputs).
 */
import type { Telemetry } from '../../protocol/index.js';
import { telemetrySchema } from '../../protocol/index.js';
import { collectFailedLogins } from './auth-log.js';
import { collectDefaultCredentials, type CryptFn } from './credentials.js';
import { collectFirewall } from './firewall.js';
import { collectIntrusions, type IntrusionOptions } from './intrusions.js';
export { needsJournal } from './intrusions.js';
import { journalToSyslog } from './journal.js';
import { collectListening } from './net.js';
import { collectKernel, collectOs, collectUptime } from './os.js';
import { collectAutoUpdates, collectInsecureServices, collectPackages } from './packages.js';
import { collectSsh } from './ssh.js';
import { collectCpuVulnerabilities, collectMac, collectRebootRequired } from './system.js';

export * from './auth-log.js';
export * from './credentials.js';
export * from './firewall.js';
export * from './fs.js';
export * from './intrusions.js';
export * from './net.js';
export * from './os.js';
export * from './packages.js';
export * from './ssh.js';
export * from './system.js';
export { realCrypt } from './crypt.js';
export { readCommandOutputs } from './commands.js';
export { journalToSyslog, journalctlArgs } from './journal.js';

/** The telemetry fields the collectors fill (the publisher adds identity, sequence, time and key store). */
export type StateReport = Omit<Telemetry, 'schema' | 'device' | 'reportId' | 'time' | 'agentVersion' | 'keyStore'>;

export const stateReportSchema = telemetrySchema.omit({ schema: true, device: true, reportId: true, time: true, agentVersion: true, keyStore: true });

export interface CommandOutputs {
  /** `nft list ruleset` output. */
  nftRuleset?: string;
  /** `iptables-save` output. */
  iptablesSave?: string;
  /** `journalctl --output=json` of the auth and kernel entries (journal.ts journalctlArgs), read where no log file is. */
  journal?: string;
}

export interface CollectorInputs {
  /** crypt(3); without it default passwords are not checked (empty ones still are). */
  crypt?: CryptFn;
  /** The collection time (the failed-login window ends here). */
  now?: Date;
  commandOutputs?: CommandOutputs;
  /** Who tried to get in since the previous report (left out when not given). */
  intrusions?: Omit<IntrusionOptions, 'now'>;
}

export function collectState(root: string, inputs: CollectorInputs = {}): StateReport {
  const now = inputs.now ?? new Date();
  const packages = collectPackages(root);
  const report: StateReport = {
    os: collectOs(root),
    listening: collectListening(root),
    firewall: collectFirewall(root, inputs.commandOutputs ?? {}),
    ssh: collectSsh(root),
    defaultCredentials: collectDefaultCredentials(root, inputs.crypt),
    packages,
    autoUpdates: collectAutoUpdates(root, packages.list),
    mac: collectMac(root),
    cpuVulnerabilities: collectCpuVulnerabilities(root),
    rebootRequired: collectRebootRequired(root),
    insecureServices: collectInsecureServices(packages.list),
  };
  const kernel = collectKernel(root);
  if (kernel !== undefined) report.kernel = kernel;
  const uptime = collectUptime(root);
  if (uptime !== undefined) report.uptimeSeconds = uptime;
  // The journal, for devices without log files (Debian 12 without rsyslog); only converted when given.
  const journal = inputs.commandOutputs?.journal !== undefined ? journalToSyslog(inputs.commandOutputs.journal) : undefined;
  const failed = collectFailedLogins(root, now, journal);
  if (failed !== undefined) report.failedLoginsLastHour = failed;
  if (inputs.intrusions) {
    const intrusions = collectIntrusions(root, { ...inputs.intrusions, now, ...(journal !== undefined ? { journal } : {}) });
    if (intrusions !== undefined) report.intrusions = intrusions;
  }
  return report;
}
