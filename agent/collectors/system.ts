/** Mandatory access control, CPU vulnerability status and the pending-reboot flag. */
import { clip, exists, listDir, readLine, under } from './fs.js';

export interface MacState {
  apparmor: 'enabled' | 'disabled' | 'absent';
  selinux: 'enforcing' | 'permissive' | 'disabled' | 'absent';
}

export interface CpuVulnerability {
  name: string;
  status: string;
  vulnerable: boolean;
}

export function collectMac(root: string): MacState {
  const aa = readLine(under(root, 'sys/module/apparmor/parameters/enabled'));
  const apparmor: MacState['apparmor'] = aa === undefined ? 'absent' : /^y/i.test(aa) ? 'enabled' : 'disabled';
  let selinux: MacState['selinux'] = 'absent';
  const enforce = readLine(under(root, 'sys/fs/selinux/enforce'));
  if (enforce === '1') selinux = 'enforcing';
  else if (enforce === '0') selinux = 'permissive';
  // Configured but not loaded in the kernel (or SELINUX=disabled): not enforcing anything.
  else if (exists(under(root, 'etc/selinux/config'))) selinux = 'disabled';
  return { apparmor, selinux };
}

export function collectCpuVulnerabilities(root: string): CpuVulnerability[] {
  const dir = under(root, 'sys/devices/system/cpu/vulnerabilities');
  const out: CpuVulnerability[] = [];
  for (const name of listDir(dir, 256)) {
    if (out.length >= 64) break;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) continue;
    const status = readLine(under(dir, name));
    if (status === undefined) continue;
    out.push({ name, status: clip(status, 256), vulnerable: status.startsWith('Vulnerable') });
  }
  return out;
}

export function collectRebootRequired(root: string): boolean {
  return exists(under(root, 'var/run/reboot-required')) || exists(under(root, 'run/reboot-required'));
}
