/**
 * Live firewall state for collectFirewall, and the systemd journal for the log collectors. NOT pure: runs `nft list
 * ruleset`, `iptables-save` and `journalctl` when present;
 * any failure (missing tool, no privileges, timeout) just leaves that output out. Synchronous because a
 * collection is a short, periodic snapshot and the callers are synchronous.
 */
import { execFileSync } from 'node:child_process';
import { MAX_FILE_BYTES } from './fs.js';
import type { CommandOutputs } from './index.js';
import { journalctlArgs } from './journal.js';

function run(cmd: string, args: string[], maxBuffer = MAX_FILE_BYTES): string | undefined {
  try {
    return execFileSync(cmd, args, {
      // sbin is often missing from a service's PATH; a fixed PATH also keeps the caller's from choosing binaries.
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      timeout: 10_000,
      maxBuffer,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return undefined;
  }
}

/**
 * `journal`: the auth and kernel entries of the systemd journal in [since, until] (ms), for the intrusion and
 * failed-login collectors on devices without log files; left out when journalctl is missing or fails.
 */
export function readCommandOutputs(journal?: { since: number; until: number }): CommandOutputs {
  const out: CommandOutputs = {};
  if (journal) {
    // Each entry's JSON is a few hundred bytes: room for journalctlArgs' bounded number of them.
    const text = run('journalctl', journalctlArgs(journal.since, journal.until), 64 * 1024 * 1024);
    if (text !== undefined) out.journal = text;
  }
  const nftRuleset = run('nft', ['list', 'ruleset']);
  if (nftRuleset !== undefined) out.nftRuleset = nftRuleset;
  const iptablesSave = run('iptables-save', []);
  if (iptablesSave !== undefined) out.iptablesSave = iptablesSave;
  return out;
}
