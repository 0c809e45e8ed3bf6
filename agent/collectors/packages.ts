/** Installed dpkg packages, automatic security updates and known-insecure services. */
import { createHash } from 'node:crypto';
import type { PackageEntry } from '../../protocol/index.js';
import { parseDpkgStatus } from '../../vuln/dpkg-status.js';
import { listDir, readBounded, readText, under } from './fs.js';

export interface PackagesState {
  count: number;
  /** SHA-256 over the sorted "name source version" lines. */
  hash: string;
  list: PackageEntry[];
}

const MAX_STATUS_BYTES = 64 * 1024 * 1024; // a large desktop's status file is ~5 MB
const MAX_PACKAGES = 20_000;
function line(p: PackageEntry): string {
  return `${p.name} ${p.source} ${p.version}\n`;
}

/** Stable hash: independent of the status file's order. */
export function hashPackages(list: PackageEntry[]): string {
  const lines = list.map(line).sort();
  const h = createHash('sha256');
  for (const l of lines) h.update(l);
  return h.digest('hex');
}

export function collectPackages(root: string): PackagesState {
  const status = readBounded(under(root, 'var/lib/dpkg/status'), { max: MAX_STATUS_BYTES });
  const all = status === undefined ? [] : parseDpkgStatus(status.text, status.truncated);
  const list = all
    .slice()
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  return { count: list.length, hash: hashPackages(list), list: list.slice(0, MAX_PACKAGES) };
}

/** Services that speak cleartext logins or are classic remote attack surface (WoTT's list and kin). */
export const INSECURE_SERVICES: ReadonlySet<string> = new Set([
  'telnetd',
  'inetutils-telnetd',
  'telnetd-ssl',
  'rsh-server',
  'rsh-redone-server',
  'rlogind',
  'fingerd',
  'cfingerd',
  'efingerd',
  'tftpd',
  'tftpd-hpa',
  'atftpd',
  'snmpd',
  'xinetd',
  'nis',
  'ftpd',
  'inetutils-ftpd',
  'vsftpd',
  'talkd',
  'inetutils-talkd',
  'rwhod',
]);

export function collectInsecureServices(packages: readonly PackageEntry[]): string[] {
  return [...new Set(packages.filter((p) => INSECURE_SERVICES.has(p.name)).map((p) => p.name))].sort().slice(0, 64);
}

/** apt reads only files named like this in apt.conf.d (apt.conf(5)); others are ignored. */
function aptConfName(name: string): boolean {
  return /^[A-Za-z0-9_-]+$/.test(name) || /^[A-Za-z0-9_.-]+\.conf$/.test(name);
}

/** Strips apt.conf comments (`//`, `#` and C-style) outside quoted strings. */
function stripAptComments(text: string): string {
  let out = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      out += c;
      if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      out += c;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
    } else if ((c === '/' && text[i + 1] === '/') || c === '#') {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end - 1;
    } else {
      out += c;
    }
  }
  return out;
}

/** Last value per flat `A::B::C "value";` key, in apt's reading order (later files override earlier). */
function aptSettings(root: string): Map<string, string> {
  const values = new Map<string, string>();
  const files = [under(root, 'etc/apt/apt.conf')];
  for (const name of listDir(under(root, 'etc/apt/apt.conf.d'), 1024)) if (aptConfName(name)) files.push(under(root, 'etc/apt/apt.conf.d', name));
  // apt reads apt.conf.d before apt.conf.
  files.push(files.shift()!);
  for (const file of files) {
    const text = readText(file, 1024 * 1024);
    if (text === undefined) continue;
    // Tokens: names, quoted values and braces; `A::B { C "1"; };` scopes like `A::B::C "1";`.
    const scope: string[] = [];
    let key: string | undefined;
    for (const m of stripAptComments(text).matchAll(/"([^"]*)"|([A-Za-z0-9_:.+-]+)|([{};])/g)) {
      if (m[2] !== undefined) key = m[2];
      else if (m[1] !== undefined) {
        if (key !== undefined) values.set([...scope, key].join('::').toLowerCase(), m[1]);
        key = undefined;
      } else if (m[3] === '{') {
        scope.push(key ?? '');
        key = undefined;
      } else if (m[3] === '}') {
        scope.pop();
        key = undefined;
      } else key = undefined;
    }
  }
  return values;
}

function periodicOn(value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (v === 'always' || v === 'true' || v === 'yes') return true;
  const n = /^(\d+)/.exec(v);
  return n !== null && Number(n[1]) > 0; // the value is an interval in days; 0 disables
}

/** Automatic updates: unattended-upgrades installed and enabled through APT::Periodic. */
export function collectAutoUpdates(root: string, packages: readonly PackageEntry[]): boolean {
  if (!packages.some((p) => p.name === 'unattended-upgrades')) return false;
  const settings = aptSettings(root);
  const enable = settings.get('apt::periodic::enable');
  if (enable !== undefined && !periodicOn(enable)) return false;
  return periodicOn(settings.get('apt::periodic::unattended-upgrade'));
}

