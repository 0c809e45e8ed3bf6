/**
 * Lateral-movement evidence (issue 18): which source addresses tried to get into this device during a window, from
 * the auth log (failed SSH, telnet/login and other PAM logins) and the kernel log (inbound packets a firewall LOG
 * rule marked as dropped). Addresses and counts only: usernames and passwords are never kept, and every address
 * is taken from the fixed position the daemon writes it at (the end of an sshd line, before the attacker-chosen
 * username in a login line), so a username cannot smuggle in a "from ADDR" that blames someone else.
 * Pure apart from the bounded reads in collectIntrusions.
 */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { MAX_INTRUSION_SOURCES, type IntrusionSource, type Intrusions } from '../../protocol/index.js';
import { parseLogLine } from './auth-log.js';
import { readBounded, under } from './fs.js';

type Service = IntrusionSource['services'][number];

/** Addresses tracked while parsing: a flood of spoofed sources cannot grow memory past this. */
export const MAX_TRACKED_SOURCES = 4096;
/** Per-source counts stop here (the schema's bound). */
export const MAX_COUNT = 1_000_000_000;
/** One "message repeated N times" line counts at most this many attempts. */
const MAX_REPEAT = 1_000_000;
/** Bytes read from the end of each log (recent lines are at the end). */
export const MAX_LOG_BYTES = 8 * 1024 * 1024;
/** The schema's longest window. */
export const MAX_WINDOW_SECONDS = 86_400;

/** Accumulates counts per source address, bounded. */
export class IntrusionTally {
  private readonly sources = new Map<string, { failedLogins: number; dropped: number; services: Set<Service> }>();

  /** Adds attempts from `raw` (ignored unless it is a literal IPv4/IPv6 address). */
  /** Raw text → canonical address (or none): the same attacker address fills a log, parse it once. */
  private readonly canonical = new Map<string, string | undefined>();

  add(raw: string, kind: 'failedLogins' | 'dropped', service: Service, times = 1): void {
    if (!(times > 0)) return;
    let address = this.canonical.get(raw);
    if (address === undefined && !this.canonical.has(raw)) {
      address = normalizeAddress(raw);
      if (this.canonical.size < 2 * MAX_TRACKED_SOURCES) this.canonical.set(raw, address);
    }
    if (address === undefined) return;
    let entry = this.sources.get(address);
    if (!entry) {
      if (this.sources.size >= MAX_TRACKED_SOURCES) return;
      entry = { failedLogins: 0, dropped: 0, services: new Set() };
      this.sources.set(address, entry);
    }
    entry[kind] = Math.min(MAX_COUNT, entry[kind] + Math.min(times, MAX_COUNT));
    entry.services.add(service);
  }

  get size(): number {
    return this.sources.size;
  }

  /** The busiest sources first (ties by address, so the output is stable), at most MAX_INTRUSION_SOURCES. */
  top(max = MAX_INTRUSION_SOURCES): IntrusionSource[] {
    const order: Service[] = ['ssh', 'telnet', 'login', 'tls', 'other'];
    return [...this.sources.entries()]
      .map(([address, e]) => ({ address, failedLogins: e.failedLogins, dropped: e.dropped, services: order.filter((s) => e.services.has(s)) }))
      .sort((a, b) => b.failedLogins + b.dropped - (a.failedLogins + a.dropped) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
      .slice(0, max);
  }
}

/**
 * A literal IP address in canonical form, or undefined: host names (sshd with UseDNS, PAM rhost) prove nothing
 * about which device holds them, and junk never gets through. IPv4-mapped IPv6 becomes IPv4 (the gateway sees
 * the device by its IPv4 address); a zone index is dropped; the unspecified address is no source.
 */
export function normalizeAddress(raw: string): string | undefined {
  let s = raw.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (s.length === 0 || s.length > 45) return undefined;
  const version = isIP(s);
  if (version === 0) return undefined;
  if (version === 6) {
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(s);
    if (mapped && isIP(mapped[1]!) === 4) s = mapped[1]!;
    else s = canonicalIpv6(s);
  } else if (s.split('.').some((o) => o.length > 1 && o.startsWith('0'))) {
    return undefined; // "010.0.0.1": octal to some parsers, decimal to others
  }
  if (s === '0.0.0.0' || s === '::') return undefined;
  return s; // isIP accepted it; the report is checked against the protocol schema as a whole before it leaves
}

/** RFC 5952 form (lowercase, longest zero run compressed) via the URL parser, which implements it. */
function canonicalIpv6(s: string): string {
  try {
    return new URL(`http://[${s}]/`).hostname.slice(1, -1);
  } catch {
    return s.toLowerCase();
  }
}

interface Window {
  /** Exclusive start and inclusive end, in ms. */
  start: number;
  end: number;
}

/** Splits rsyslog's "message repeated N times: [ msg]" into N and msg. */
function unfold(message: string): { message: string; times: number } {
  const rep = /^message repeated (\d{1,12}) times: \[\s?(.*)\]\s*$/.exec(message);
  return rep ? { message: rep[2]!, times: Math.min(Number(rep[1]), MAX_REPEAT) } : { message, times: 1 };
}

function isSshd(program: string): boolean {
  return program === 'sshd' || program.startsWith('sshd-'); // OpenSSH 9.8+ logs as sshd-session
}

/** Every line tallyAuthLog counts contains one of these. */
const AUTH_HINT = /Failed |Invalid user |authentication failure;|FAILED LOGIN|invalid password for|Bad password attempt|Login attempt for/;
/** sshd writes the address last: "… from ADDR port N[ ssh2][ [preauth]]"; anchored there, a username cannot fake it. */
const SSHD_FROM = / from (\S+) port \d{1,5}(?: ssh2)?(?: \[preauth\])?\s*$/;
/** Dropbear: "Bad password attempt for 'u' from ADDR:PORT", "Login attempt for nonexistent user ['u' ]from ADDR:PORT". */
const DROPBEAR_FROM = / from (\[[0-9A-Fa-f:.%\w]+\]|\S+?):\d{1,5}\s*$/;
/** Shadow login(1): "FAILED LOGIN (n) on 'tty' FROM 'host' FOR 'user', reason": the host precedes the username. */
const SHADOW_FAILED = /^FAILED LOGIN \(\d+\) on '[^']*' FROM '([^']*)' FOR '/;
/** BusyBox login: "invalid password for 'user' on 'tty' from 'host'": the host is last. */
const BUSYBOX_FAILED = /^invalid password for '.*' on '[^']*' from '([^']*)'\s*$/;
/** pam_unix "authentication failure; logname= uid= euid= tty= ruser= rhost=HOST  user=…": the host precedes the user. */
const PAM_FAILURE = /^pam_unix\(([\w.-]+):auth\): authentication failure; logname=\S* uid=\d+ euid=\d+ tty=\S* ruser=\S* rhost=(\S*)(?:\s|$)/;

/**
 * login(1) only knows a remote host when a network daemon started it with -h, which on devices is telnetd (the
 * door Mirai-style worms use), so its remote failures count as telnet.
 */
function pamService(service: string): Service {
  if (service === 'sshd') return 'ssh';
  if (service === 'login' || service === 'remote' || service.includes('telnet')) return 'telnet';
  return 'other';
}

/**
 * Failed logins per source address in (window.start, window.end] of auth-log text. Each attempt counts once, as
 * in auth-log.ts: sshd's "Failed password" line (its PAM line is skipped), its "Invalid user" line only when the
 * same connection logged no failure; login's PAM failure, its own "FAILED LOGIN" only without one.
 */
export function tallyAuthLog(text: string, now: Date, window: Window, tally = new IntrusionTally()): IntrusionTally {
  const sshdFailedPids = new Set<string>();
  const pendingInvalid: Array<{ pid: string; address: string }> = [];
  const loginPamPids = new Set<string>();
  const pendingLogin: Array<{ pid: string; address: string; times: number }> = [];
  for (const raw of text.split('\n')) {
    // No daemon writes lines that long; and most lines are about something else (checked before any parsing).
    if (raw.length > 8192 || !AUTH_HINT.test(raw)) continue;
    const line = parseLogLine(raw, now);
    if (!line || line.time <= window.start || line.time > window.end) continue;
    const { message, times } = unfold(line.message);
    if (isSshd(line.program)) {
      if (/^Failed (password|keyboard-interactive\/pam) for /.test(message)) {
        const from = SSHD_FROM.exec(message);
        if (from) tally.add(from[1]!, 'failedLogins', 'ssh', times);
        sshdFailedPids.add(line.pid);
      } else if (/^Invalid user /.test(message)) {
        const from = SSHD_FROM.exec(message);
        if (from) pendingInvalid.push({ pid: line.pid, address: from[1]! });
      }
      continue; // sshd's PAM lines repeat what its own lines say
    }
    if (line.program === 'dropbear') {
      if (/^(Bad password attempt for |Login attempt for nonexistent user)/.test(message)) {
        const from = DROPBEAR_FROM.exec(message);
        if (from) tally.add(from[1]!, 'failedLogins', 'ssh', times);
      }
      continue;
    }
    const pam = PAM_FAILURE.exec(message);
    if (pam) {
      if (line.program === 'login') loginPamPids.add(line.pid);
      if (pam[2]) tally.add(pam[2], 'failedLogins', pamService(pam[1]!), times);
      continue;
    }
    if (line.program === 'login') {
      const shadow = SHADOW_FAILED.exec(message);
      if (shadow) {
        pendingLogin.push({ pid: line.pid, address: shadow[1]!, times });
        continue;
      }
      const busybox = BUSYBOX_FAILED.exec(message);
      if (busybox) tally.add(busybox[1]!, 'failedLogins', 'telnet', times); // BusyBox login logs no PAM line
    }
  }
  for (const p of pendingInvalid) if (!sshdFailedPids.has(p.pid)) tally.add(p.address, 'failedLogins', 'ssh');
  for (const p of pendingLogin) if (!loginPamPids.has(p.pid)) tally.add(p.address, 'failedLogins', 'telnet', p.times);
  return tally;
}

/** A LOG prefix that says the packet is being refused ("[UFW BLOCK] ", "nft drop: ", "FINAL_REJECT: ", "INPUT-DENIED "). */
const REFUSED_PREFIX = /drop|block|reject|den(?:y|ied)/i;
const ALLOWED_PREFIX = /allow|accept|audit/i;
/** The LOG target's fields (the first of each: what follows the prefix is the kernel's, not the packet's). */
const LOG_FIELDS = {
  IN: /(?:^|[\s\]:])IN=(\S*)/,
  OUT: /\sOUT=(\S*)/,
  SRC: /\sSRC=(\S*)/,
  PROTO: /\sPROTO=(\S*)/,
  DPT: /\sDPT=(\S*)/,
} as const;

function portService(proto: string | undefined, port: string | undefined): Service {
  if (proto !== 'TCP') return 'other';
  if (port === '22') return 'ssh';
  if (port === '23' || port === '2323') return 'telnet'; // 2323: Mirai's alternative telnet port
  return 'other';
}

/**
 * Inbound packets dropped per source address in (window.start, window.end] of kernel-log text: iptables/nftables
 * LOG lines ("PREFIX IN=eth0 OUT= … SRC=ADDR DST=… PROTO=TCP SPT=… DPT=…"), inbound only (IN set, OUT empty),
 * and only when the rule's prefix says it refuses the packet: a LOG rule may also record accepted traffic, and
 * counting that would accuse a neighbour of an attack it did not make.
 */
export function tallyKernelLog(text: string, now: Date, window: Window, tally = new IntrusionTally()): IntrusionTally {
  for (const raw of text.split('\n')) {
    if (raw.length > 8192 || !raw.includes(' SRC=')) continue;
    const line = parseLogLine(raw, now);
    if (!line || line.program !== 'kernel' || line.time <= window.start || line.time > window.end) continue;
    const { message, times } = unfold(line.message);
    const body = message.replace(/^\[\s*\d+\.\d+\]\s?/, ''); // the kernel's own uptime stamp
    const at = body.search(/(?:^|\s|\]|:)IN=/);
    if (at < 0) continue;
    const prefix = body.slice(0, at + 1);
    if (!REFUSED_PREFIX.test(prefix) || ALLOWED_PREFIX.test(prefix)) continue;
    const fields = body.slice(at);
    const field = (name: keyof typeof LOG_FIELDS) => LOG_FIELDS[name].exec(fields)?.[1];
    if (!field('IN') || field('OUT')) continue; // not inbound (forwarded or outgoing)
    const src = field('SRC');
    if (src) tally.add(src, 'dropped', portService(field('PROTO'), field('DPT')), times);
  }
  return tally;
}

export interface IntrusionOptions {
  /** End of the previous report's window (ms); the first report looks back `firstWindowMs`. */
  since?: number;
  firstWindowMs: number;
  now: Date;
  /**
   * The systemd journal's auth and kernel entries as syslog text (journal.ts journalToSyslog): read when the device
   * has no auth log, or no kernel log, file.
   */
  journal?: string;
  /** Sources that must be added whatever the logs say (device-to-device TLS peers whose certificate did not verify). */
  extra?: Array<{ address: string; service: Service; count: number }>;
}

/** The window (since, now], at least a second and at most a day (the schema's bounds). */
export function intrusionWindow(now: number, since: number | undefined, firstWindowMs: number): Window & { seconds: number } {
  let start = since !== undefined && since < now ? since : now - firstWindowMs;
  start = Math.max(start, now - MAX_WINDOW_SECONDS * 1000);
  const seconds = Math.min(MAX_WINDOW_SECONDS, Math.max(1, Math.ceil((now - start) / 1000)));
  return { start, end: now, seconds };
}

/** First file of `names` under `root` that can be read (Debian writes kernel lines to kern.log and again to syslog). */
function firstLog(root: string, names: string[]): { name: string; text: string } | undefined {
  for (const name of names) {
    const log = readBounded(under(root, 'var/log', name), { tail: true, max: MAX_LOG_BYTES });
    if (log !== undefined) return { name, text: log.text };
  }
  return undefined;
}

const AUTH_LOGS = ['auth.log', 'secure', 'messages'];
const KERNEL_LOGS = ['kern.log', 'syslog', 'messages'];

/** True when `root` lacks an auth log or a kernel log file: the collectors then read the systemd journal. */
export function needsJournal(root: string): boolean {
  const has = (names: string[]) => names.some((name) => existsSync(under(root, 'var/log', name)));
  return !has(AUTH_LOGS) || !has(KERNEL_LOGS);
}

/**
 * Intrusion sources in the window from the logs under `root`: the auth log (auth.log, else RHEL's secure, else
 * BusyBox's single messages file, else the systemd journal) and the kernel log (kern.log, else syslog, else
 * messages, else the journal). Undefined when the
 * device has none of them and nothing else to report: "no data" must not read as "nobody tried".
 */
export function collectIntrusions(root: string, options: IntrusionOptions): Intrusions | undefined {
  const now = options.now.getTime();
  const window = intrusionWindow(now, options.since, options.firstWindowMs);
  const tally = new IntrusionTally();
  const journal = options.journal !== undefined ? { name: 'journal', text: options.journal } : undefined;
  const auth = firstLog(root, AUTH_LOGS) ?? journal;
  if (auth) tallyAuthLog(auth.text, options.now, window, tally);
  const kernel = firstLog(root, KERNEL_LOGS) ?? journal;
  if (kernel) tallyKernelLog(kernel.text, options.now, window, tally);
  for (const e of options.extra ?? []) tally.add(e.address, e.service === 'tls' ? 'failedLogins' : 'dropped', e.service, e.count);
  if (!auth && !kernel && tally.size === 0) return undefined;
  return { windowSeconds: window.seconds, sources: tally.top() };
}
