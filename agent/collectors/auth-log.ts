/**
 * Failed login attempts in the hour before `now`, from var/log/auth.log (classic syslog or ISO 8601 stamps).
 * Counted once per attempt: sshd logs "Invalid user" and a PAM "authentication failure" alongside its own
 * "Failed password" line, so those only count when sshd did not log the failure itself.
 */
import { readBounded, under } from './fs.js';

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};

const HOUR_MS = 60 * 60 * 1000;

interface LogLine {
  time: number;
  program: string;
  pid: string;
  message: string;
}

/** Parses the timestamp, program and message of one syslog line; undefined when it is not one. */
export function parseLogLine(line: string, now: Date): LogLine | undefined {
  let time: number;
  let rest: string;
  const iso = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))\s+(.*)$/.exec(line);
  if (iso) {
    // Date.parse only takes milliseconds: cut longer fractions (rsyslog writes microseconds).
    time = Date.parse(iso[1]!.replace(/(\.\d{3})\d+/, '$1'));
    rest = iso[2]!;
  } else {
    const sys = /^([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(.*)$/.exec(line);
    if (!sys) return undefined;
    const month = MONTHS[sys[1]!];
    if (month === undefined) return undefined;
    // No year in the line: local time in now's year, or last year when that would lie in the future.
    const at = (year: number) => new Date(year, month, Number(sys[2]), Number(sys[3]), Number(sys[4]), Number(sys[5])).getTime();
    time = at(now.getFullYear());
    if (time > now.getTime() + 24 * HOUR_MS) time = at(now.getFullYear() - 1);
    rest = sys[6]!;
  }
  if (!Number.isFinite(time)) return undefined;
  // "host program[pid]: message"
  const m = /^\S+\s+([^\s:[]+)(?:\[(\d+)\])?:\s?(.*)$/.exec(rest);
  if (!m) return undefined;
  return { time, program: m[1]!, pid: m[2] ?? '', message: m[3]! };
}

function isSshd(program: string): boolean {
  return program === 'sshd' || program.startsWith('sshd-'); // OpenSSH 9.8+ logs as sshd-session
}

/** Counts failed login attempts in (now - 1 h, now] in auth.log text. */
export function countFailedLogins(text: string, now: Date): number {
  const end = now.getTime();
  const start = end - HOUR_MS;
  let count = 0;
  const sshdFailedPids = new Set<string>();
  const pendingInvalid: string[] = [];
  for (const raw of text.split('\n')) {
    const line = parseLogLine(raw, now);
    if (!line || line.time <= start || line.time > end) continue;
    let message = line.message;
    let times = 1;
    // rsyslog folds repeats: "message repeated 3 times: [ Failed password for ...]"
    const rep = /^message repeated (\d+) times: \[\s?(.*)\]\s*$/.exec(message);
    if (rep) {
      times = Math.min(Number(rep[1]), 1_000_000);
      message = rep[2]!;
    }
    const sshd = isSshd(line.program);
    if (/\bFailed (password|keyboard-interactive\/pam) for\b/.test(message)) {
      count += times;
      if (sshd) sshdFailedPids.add(line.pid);
    } else if (/\bInvalid user\b/.test(message)) {
      if (sshd) pendingInvalid.push(line.pid);
      else count += times;
    } else if (/\bauthentication failure\b/.test(message)) {
      // sshd's PAM failures are followed by its own "Failed password" line.
      if (!sshd && !/\((sshd|sshd-session):auth\)/.test(message)) count += times;
    }
  }
  for (const pid of pendingInvalid) if (!sshdFailedPids.has(pid)) count++;
  return count;
}

/** From auth.log, else from the systemd journal's auth entries as syslog text (journal.ts), when given. */
export function collectFailedLogins(root: string, now: Date = new Date(), journal?: string): number | undefined {
  // Recent lines are at the end: read the tail.
  const log = readBounded(under(root, 'var/log/auth.log'), { tail: true });
  if (log !== undefined) return countFailedLogins(log.text, now);
  return journal === undefined ? undefined : countFailedLogins(journal, now);
}
