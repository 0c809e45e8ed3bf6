/**
 * Matching a device's installed packages against the CVE index: by Debian *source* package (the unit the
 * tracker and OSV key on) within the device's release, with dpkg's exact version order. Pure: no I/O.
 */
import type { ListeningSocket, PackageEntry } from '../protocol/index.js';
import { compareParsedVersions, parseDebianVersion, type DebianVersion } from './dpkg-version.js';
import { codenameForVersion, isKnownCodename, severityRank, type CveEntry, type Severity } from './feed.js';

export interface CveFinding {
  /** CVE id (or advisory id when there is no CVE alias). */
  cve: string;
  /** Debian source package. */
  source: string;
  /** Installed binary packages built from that source. */
  packages: string[];
  /** Installed version of the source (see installedSourceVersion for how it is derived). */
  installed: string;
  /** First version that fixes it in this release. */
  fixed: string;
  severity: Severity;
  /** null when the feed does not say. */
  remote: boolean | null;
  /** A non-loopback listening socket's process belongs to this source package. */
  exposed: boolean;
  /** The command to run, e.g. "apt-get install --only-upgrade libssl3 openssl". */
  action: string;
  description?: string;
  /** The advisory (DSA-…, DLA-…) the fix came with, when the feed names one. */
  advisory?: string;
}

export interface IndexedEntry {
  id: string;
  fixed: string;
  /** The feed's introduced version as text (compared when a new index is diffed against the old one). */
  introduced?: string;
  fixedVersion: DebianVersion;
  introducedVersion: DebianVersion | null;
  severity: Severity;
  remote: boolean | null;
  advisory?: string;
}

export interface CveIndex {
  /** Changes whenever the store is replaced, so callers can cache per generation. */
  generation: number;
  /** release codename → source package → entries that have a fix (open issues cannot produce a finding). */
  releases: Map<string, Map<string, IndexedEntry[]>>;
  /** CVE id → description, shared by every (release, source) row of that id. */
  descriptions: Map<string, string>;
  /** Entries in the index (with a fix). */
  size: number;
  /**
   * Sources whose entries differ from the previous generations' (newest first, a few kept), so results matched
   * against an older generation re-match only those sources (see changedSince).
   */
  changes?: Array<{ from: number; sources: Set<string> }>;
}

/** Builds the in-memory index; versions are parsed once here so matching only compares. */
export function buildIndex(entries: Iterable<CveEntry>, generation = 0): CveIndex {
  const releases = new Map<string, Map<string, IndexedEntry[]>>();
  const descriptions = new Map<string, string>();
  let size = 0;
  for (const e of entries) {
    if (e.description && !descriptions.has(e.id)) descriptions.set(e.id, e.description);
    if (e.fixed === null) continue;
    let bySource = releases.get(e.release);
    if (!bySource) releases.set(e.release, (bySource = new Map()));
    let list = bySource.get(e.source);
    if (!list) bySource.set(e.source, (list = []));
    const item: IndexedEntry = {
      id: e.id,
      fixed: e.fixed,
      fixedVersion: parseDebianVersion(e.fixed),
      introducedVersion: e.introduced ? parseDebianVersion(e.introduced) : null,
      severity: e.severity,
      remote: e.remote,
    };
    if (e.introduced) item.introduced = e.introduced;
    if (e.advisory) item.advisory = e.advisory;
    list.push(item);
    size++;
  }
  // Ascending by fixed version, so matching skips every entry already fixed in the installed version with a
  // binary search (most of a source's CVEs were fixed long ago) and compares only the rest.
  for (const bySource of releases.values()) for (const list of bySource.values()) list.sort((a, b) => compareParsedVersions(a.fixedVersion, b.fixedVersion));
  return { generation, releases, descriptions, size };
}

/** The first entry whose fixed version is newer than `installed` (entries sorted ascending by fixed version). */
function firstUnfixed(entries: readonly IndexedEntry[], installed: DebianVersion): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareParsedVersions(installed, entries[mid]!.fixedVersion) >= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface OsRelease {
  id: string;
  versionId?: string;
  versionCodename?: string;
}

const DEBIAN_LIKE = new Set(['debian', 'raspbian']);

/**
 * The Debian release codename whose data applies to this device, or null when it is not Debian (Ubuntu and
 * others have their own trackers and version streams; Debian data would be wrong for them).
 */
export function debianRelease(os: OsRelease): string | null {
  const id = os.id.trim().toLowerCase();
  const codename = os.versionCodename?.trim().toLowerCase();
  if (!DEBIAN_LIKE.has(id) && !(codename && isKnownCodename(codename))) return null;
  if (codename) return codename;
  return os.versionId ? codenameForVersion(os.versionId) : null;
}

/**
 * Binary packages whose Source differs by name from the source the tracker files issues under: the signed
 * kernel images are built by linux-signed-<arch> but carry linux's version, and CVEs are filed against linux.
 */
export function trackerSource(source: string): string {
  // startsWith first: this runs for every installed package, the regex only for the few signed-kernel ones.
  return source.startsWith('linux-signed') && /^linux-signed(?:-[a-z0-9]+)?$/.test(source) ? 'linux' : source;
}

/** A binNMU (binary-only rebuild) appends +bN to the binary's version; the source version is the rest. */
function stripBinNmu(version: string): string {
  return version.replace(/\+b\d+$/, '');
}

export type InventoryEntry = PackageEntry & {
  /** The source version from dpkg's `Source: name (version)` when known (see withSourceVersions). */
  sourceVersion?: string;
};

interface SourceGroup {
  source: string;
  binaries: Set<string>;
  version: string;
  parsed: DebianVersion;
}

/**
 * The installed version of each source package. dpkg records the source version only when it differs from the
 * binary's ("Source: util-linux (2.38.1-5+deb12u3)" for bsdutils 1:2.38.1-5+deb12u3), and telemetry carries the
 * binary version only. So, in order of preference:
 *  1. explicit sourceVersions (the CLI reads them from the status file for every binary);
 *  2. the version of the binary named like its source (it carries the source version in practice);
 *  3. the binary version with a binNMU suffix (+bN) removed.
 * With several binaries the lowest version is used, so a half-upgraded source still shows up.
 * Entries whose version is not valid dpkg syntax are skipped (telemetry is untrusted; one bad line must not hide
 * every other finding).
 */
export function groupBySource(packages: readonly InventoryEntry[]): Map<string, SourceGroup> {
  const groups = new Map<string, { binaries: Set<string>; explicit: DebianVersion[]; sameName: DebianVersion[]; other: DebianVersion[]; text: Map<DebianVersion, string> }>();
  for (const p of packages) {
    const source = trackerSource(p.source || p.name);
    let g = groups.get(source);
    if (!g) groups.set(source, (g = { binaries: new Set(), explicit: [], sameName: [], other: [], text: new Map() }));
    g.binaries.add(p.name);
    const add = (list: DebianVersion[], v: string) => {
      try {
        const parsed = parseDebianVersion(v);
        list.push(parsed);
        g.text.set(parsed, v);
      } catch {
        // skip unparsable versions (see above)
      }
    };
    if (p.sourceVersion) add(g.explicit, p.sourceVersion);
    else if (p.name === source) add(g.sameName, stripBinNmu(p.version));
    else add(g.other, stripBinNmu(p.version));
  }
  const out = new Map<string, SourceGroup>();
  for (const [source, g] of groups) {
    const pool = g.explicit.length ? g.explicit : g.sameName.length ? g.sameName : g.other;
    if (pool.length === 0) continue;
    let min = pool[0]!;
    for (const v of pool) if (compareParsedVersions(v, min) < 0) min = v;
    out.set(source, { source, binaries: g.binaries, version: g.text.get(min)!, parsed: min });
  }
  return out;
}

/**
 * Daemons whose process name differs from the source package that builds them. Process names are what the agent
 * reads from /proc/<pid>/comm (at most 15 characters). The fallback rule is "process name = binary package name".
 */
export const DAEMON_SOURCES: ReadonlyMap<string, readonly string[]> = new Map<string, readonly string[]>([
  ['sshd', ['openssh']],
  ['nginx', ['nginx']],
  ['apache2', ['apache2']],
  ['httpd', ['apache2']],
  ['lighttpd', ['lighttpd']],
  ['mosquitto', ['mosquitto']],
  ['mysqld', ['mariadb', 'mariadb-10.5', 'mariadb-10.3', 'mysql-8.0']],
  ['mariadbd', ['mariadb', 'mariadb-10.5']],
  ['redis-server', ['redis']],
  ['redis-sentinel', ['redis']],
  ['named', ['bind9']],
  ['dnsmasq', ['dnsmasq']],
  ['smbd', ['samba']],
  ['nmbd', ['samba']],
  ['samba', ['samba']],
  ['winbindd', ['samba']],
  ['ntpd', ['ntpsec', 'ntp']],
  ['chronyd', ['chrony']],
  ['exim4', ['exim4']],
  ['master', ['postfix']],
  ['smtpd', ['postfix']],
  ['dovecot', ['dovecot']],
  ['avahi-daemon', ['avahi']],
  ['cupsd', ['cups']],
  ['cups-browsed', ['cups-filters']],
  ['vsftpd', ['vsftpd']],
  ['proftpd', ['proftpd-dfsg']],
  ['in.tftpd', ['tftp-hpa']],
  ['snmpd', ['net-snmp']],
  ['xinetd', ['xinetd']],
  ['inetd', ['openbsd-inetd', 'inetutils']],
  ['rpcbind', ['rpcbind']],
  ['rpc.statd', ['nfs-utils']],
  ['rpc.mountd', ['nfs-utils']],
  ['dhcpd', ['isc-dhcp']],
  ['dhclient', ['isc-dhcp']],
  ['kea-dhcp4', ['isc-kea']],
  ['unbound', ['unbound']],
  ['pdns_server', ['pdns']],
  ['pdns_recursor', ['pdns-recursor']],
  ['knotd', ['knot']],
  ['hostapd', ['wpa']],
  ['wpa_supplicant', ['wpa']],
  ['openvpn', ['openvpn']],
  ['haproxy', ['haproxy']],
  ['squid', ['squid']],
  ['memcached', ['memcached']],
  ['influxd', ['influxdb']],
  ['epmd', ['erlang']],
  ['dropbear', ['dropbear']],
  ['systemd-resolve', ['systemd']], // systemd-resolved, cut to 15 characters by the kernel
  ['systemd-network', ['systemd']],
  ['systemd-timesyn', ['systemd']],
  ['dockerd', ['docker.io']],
  ['docker-proxy', ['docker.io']],
  ['containerd', ['containerd']],
  ['minissdpd', ['minissdpd']],
  ['rsync', ['rsync']],
  ['slapd', ['openldap']],
  ['krb5kdc', ['krb5']],
  ['nfsd', []], // in-kernel
]);

/** Process names that follow a versioned pattern. */
const DAEMON_PATTERNS: ReadonlyArray<[RegExp, (m: RegExpExecArray) => string]> = [
  [/^postgres$/, () => 'postgresql-*'],
  [/^php-fpm(\d+\.\d+)$/, (m) => `php${m[1]}`],
];

/** Listeners bound to loopback only are not reachable from the network, so they do not expose a package. */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.') || a === 'localhost';
}

/** Source packages that own a non-loopback listening socket on the device. */
export function exposedSources(listening: readonly ListeningSocket[], packages: readonly InventoryEntry[]): { names: Set<string>; patterns: string[] } {
  const byBinary = new Map<string, string>();
  for (const p of packages) byBinary.set(p.name, trackerSource(p.source || p.name));
  const names = new Set<string>();
  const patterns: string[] = [];
  for (const s of listening) {
    if (!s.process || isLoopback(s.address)) continue;
    const proc = s.process.trim();
    const mapped = DAEMON_SOURCES.get(proc);
    if (mapped) for (const n of mapped) names.add(n);
    for (const [re, to] of DAEMON_PATTERNS) {
      const m = re.exec(proc);
      if (m) patterns.push(to(m));
    }
    const direct = byBinary.get(proc);
    if (direct) names.add(direct);
    // /proc/<pid>/comm holds at most 15 characters: a 15-character name may be a prefix of the binary's name.
    if (proc.length === 15) for (const [bin, src] of byBinary) if (bin.startsWith(proc)) names.add(src);
  }
  return { names, patterns };
}

function isExposed(source: string, exposed: { names: Set<string>; patterns: string[] }): boolean {
  if (exposed.names.has(source)) return true;
  return exposed.patterns.some((p) => (p.endsWith('*') ? source.startsWith(p.slice(0, -1)) : source === p));
}

const collator = new Intl.Collator('en', { numeric: true });

/** Most severe first: severity, then remotely exploitable on a listening service, then remote, then by name. */
export function compareFindings(a: CveFinding, b: CveFinding): number {
  const weight = (f: CveFinding) => (f.exposed && f.remote !== false ? 2 : 0) + (f.remote === true ? 1 : 0);
  return (
    severityRank(b.severity) - severityRank(a.severity) ||
    weight(b) - weight(a) ||
    collator.compare(a.source, b.source) ||
    collator.compare(a.cve, b.cve)
  );
}

/**
 * Findings for one device: vulnerabilities with a fix in the device's release whose fixed version is newer than
 * the installed source version (dpkg order). One finding per (CVE, source); when several records give different
 * fixed versions the highest one is reported (upgrading to it satisfies all of them).
 */
export function matchPackages(index: CveIndex, packages: readonly InventoryEntry[], os: OsRelease, listening: readonly ListeningSocket[] = []): CveFinding[] {
  const release = debianRelease(os);
  if (release === null) return [];
  const bySource = index.releases.get(release);
  if (!bySource) return [];
  const exposed = exposedSources(listening, packages);
  return findingsOf(index, bySource, groupBySource(packages), exposed).sort(compareFindings);
}

/** Unsorted findings of grouped packages against one release's entries. */
function findingsOf(index: CveIndex, bySource: Map<string, IndexedEntry[]>, groups: Map<string, SourceGroup>, exposed?: { names: Set<string>; patterns: string[] }): CveFinding[] {
  const findings: CveFinding[] = [];
  for (const group of groups.values()) {
    const entries = bySource.get(group.source);
    if (!entries) continue;
    const hits = new Map<string, IndexedEntry>();
    for (let i = firstUnfixed(entries, group.parsed); i < entries.length; i++) {
      const e = entries[i]!;
      if (e.introducedVersion && compareParsedVersions(group.parsed, e.introducedVersion) < 0) continue;
      const prev = hits.get(e.id);
      if (!prev || compareParsedVersions(e.fixedVersion, prev.fixedVersion) > 0) hits.set(e.id, e);
    }
    if (hits.size === 0) continue;
    const binaries = [...group.binaries].sort();
    const action = `apt-get install --only-upgrade ${binaries.join(' ')}`;
    const isExp = exposed ? isExposed(group.source, exposed) : false;
    for (const e of hits.values()) {
      const f: CveFinding = {
        cve: e.id,
        source: group.source,
        packages: binaries,
        installed: group.version,
        fixed: e.fixed,
        severity: e.severity,
        remote: e.remote,
        exposed: isExp,
        action,
      };
      const description = index.descriptions.get(e.id);
      if (description) f.description = description;
      if (e.advisory) f.advisory = e.advisory;
      findings.push(f);
    }
  }
  return findings;
}

/**
 * What devices with the same package list (and release) share: their findings against one index generation,
 * every one with exposed=false (exposure depends on the device's sockets: see exposeFindings). Frozen, because
 * one result is handed to every device that has this package list.
 */
export interface SetMatch {
  generation: number;
  release: string;
  findings: readonly CveFinding[];
  /**
   * Per exposure signature (the non-loopback listeners' process names): the exposed sources (which depend on the
   * packages and sockets only, so they carry over to a re-match) and the findings with exposure applied.
   */
  exposure: Map<string, { exposed: { names: Set<string>; patterns: string[] }; findings?: readonly CveFinding[] }>;
}

function freezeFindings(findings: CveFinding[]): readonly CveFinding[] {
  for (const f of findings) {
    Object.freeze(f.packages);
    Object.freeze(f);
  }
  return Object.freeze(findings);
}

/** Full match of one package list in one release (null release: not Debian, no findings). */
export function matchSet(index: CveIndex, release: string, packages: readonly InventoryEntry[]): SetMatch {
  const bySource = index.releases.get(release);
  const findings = bySource ? findingsOf(index, bySource, groupBySource(packages)).sort(compareFindings) : [];
  return { generation: index.generation, release, findings: freezeFindings(findings), exposure: new Map() };
}

/**
 * The same package list matched again after the index changed: findings of unchanged sources are kept, and only
 * the packages built from a changed source are grouped and compared (a feed update usually touches a few dozen
 * sources, a device has a thousand or more).
 */
export function rematchSet(index: CveIndex, previous: SetMatch, packages: readonly InventoryEntry[], changed: ReadonlySet<string>): SetMatch {
  const bySource = index.releases.get(previous.release);
  const kept = previous.findings.filter((f) => !changed.has(f.source));
  let fresh: CveFinding[] = [];
  if (bySource) {
    const subset = packages.filter((p) => changed.has(trackerSource(p.source || p.name)));
    if (subset.length > 0) fresh = findingsOf(index, bySource, groupBySource(subset));
  }
  // kept is still sorted (a subsequence of a sorted list): only the fresh ones are sorted, then merged in.
  const findings = fresh.length === 0 && kept.length === previous.findings.length ? previous.findings : freezeFindings(mergeSorted(kept, fresh.sort(compareFindings)));
  const exposure = new Map([...previous.exposure].map(([sig, e]) => [sig, { exposed: e.exposed }]));
  return { generation: index.generation, release: previous.release, findings, exposure };
}

/** Merges two lists each sorted by compareFindings: linear, where re-sorting ~200 findings with the collator is not. */
function mergeSorted(a: readonly CveFinding[], b: readonly CveFinding[]): CveFinding[] {
  const out: CveFinding[] = new Array<CveFinding>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = compareFindings(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

const MAX_EXPOSURE_VARIANTS = 16;

/** A set's findings for one device: exposure applied from its listening sockets (cached per process-name set). */
export function exposeFindings(set: SetMatch, packages: readonly InventoryEntry[], listening: readonly ListeningSocket[]): readonly CveFinding[] {
  if (set.findings.length === 0) return set.findings;
  const relevant = listening.filter((s) => s.process && !isLoopback(s.address));
  if (relevant.length === 0) return set.findings;
  const signature = [...new Set(relevant.map((s) => s.process!.trim()))].sort().join('\n');
  const cached = set.exposure.get(signature);
  if (cached?.findings) return cached.findings;
  const exposed = cached?.exposed ?? exposedSources(relevant, packages);
  let out = set.findings;
  if (set.findings.some((f) => isExposed(f.source, exposed))) {
    // The unexposed ones keep their order; the (usually few) exposed ones are sorted and merged in.
    const plain: CveFinding[] = [];
    const raised: CveFinding[] = [];
    for (const f of set.findings) {
      if (isExposed(f.source, exposed)) raised.push({ ...f, packages: [...f.packages], exposed: true });
      else plain.push(f);
    }
    out = freezeFindings(mergeSorted(plain, raised.sort(compareFindings)));
  }
  if (!cached && set.exposure.size >= MAX_EXPOSURE_VARIANTS) set.exposure.delete(set.exposure.keys().next().value!);
  set.exposure.set(signature, { exposed, findings: out });
  return out;
}

function sameEntries(a: readonly IndexedEntry[], b: readonly IndexedEntry[], da: Map<string, string>, db: Map<string, string>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.id !== y.id || x.fixed !== y.fixed || x.introduced !== y.introduced || x.severity !== y.severity || x.remote !== y.remote || x.advisory !== y.advisory) return false;
    if (da.get(x.id) !== db.get(y.id)) return false;
  }
  return true;
}

/** Sources (any release) whose entries or their CVEs' descriptions differ between two indexes. */
export function diffIndexes(previous: CveIndex, next: CveIndex): Set<string> {
  const changed = new Set<string>();
  const releases = new Set([...previous.releases.keys(), ...next.releases.keys()]);
  for (const release of releases) {
    const a = previous.releases.get(release) ?? new Map<string, IndexedEntry[]>();
    const b = next.releases.get(release) ?? new Map<string, IndexedEntry[]>();
    for (const [source, list] of b) {
      const old = a.get(source);
      if (!old || !sameEntries(old, list, previous.descriptions, next.descriptions)) changed.add(source);
    }
    for (const source of a.keys()) if (!b.has(source)) changed.add(source);
  }
  return changed;
}

const MAX_CHANGES_KEPT = 8;

/** Records in `next` which sources changed since `previous` (and since the generations before it). */
export function chainChanges(previous: CveIndex, next: CveIndex): void {
  next.changes = [{ from: previous.generation, sources: diffIndexes(previous, next) }, ...(previous.changes ?? [])].slice(0, MAX_CHANGES_KEPT);
}

/** Sources changed between generation `from` and the index, or null when that is not known (match in full). */
export function changedSince(index: CveIndex, from: number): Set<string> | null {
  const out = new Set<string>();
  for (const c of index.changes ?? []) {
    for (const s of c.sources) out.add(s);
    if (c.from === from) return out;
  }
  return null;
}
