/**
 * Live firewall state for collectFirewall. NOT pure: runs `nft list ruleset` and `iptables-save` when present;
 * any failure (missing tool, no privileges, timeout) just leaves that output out. Synchronous because a
 * collection is a short, periodic snapshot and the callers are synchronous.
 */
import { execFileSync } from 'node:child_process';
import { MAX_FILE_BYTES } from './fs.js';
import type { CommandOutputs } from './index.js';

function run(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, {
      // sbin is often missing from a service's PATH; a fixed PATH also keeps the caller's from choosing binaries.
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      timeout: 10_000,
      maxBuffer: MAX_FILE_BYTES,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return undefined;
  }
}

export function readCommandOutputs(): CommandOutputs {
  const out: CommandOutputs = {};
  const nftRuleset = run('nft', ['list', 'ruleset']);
  if (nftRuleset !== undefined) out.nftRuleset = nftRuleset;
  const iptablesSave = run('iptables-save', []);
  if (iptablesSave !== undefined) out.iptablesSave = iptablesSave;
  return out;
}
