/**
 * Lateral movement → a penalty. Pure, like peers.ts: per reporter, the attempts it saw from this device's address
 * (failed logins and dropped connections) accumulate and halve every `halfLife`; each reporter's severity
 * 1 − e^(−attempts/scale) is weighted by the reporter's own current score (below minReporterScore: nothing), and the
 * full effect needs k distinct reporters, so one compromised reporter alone costs at most max/k.
 */
import type { ScoreModel } from './model.js';

/** The raw counts of one report, for "in the last hour" (the decayed value is what costs points). */
export type LateralSample = [at: number, logins: number, dropped: number];

export interface LateralEntry {
  reporter: string;
  /** Decayed attempts as of `at`. */
  value: number;
  at: number;
  /** Recent reports' counts, oldest first, at most MAX_SAMPLES (older ones merge into the oldest kept). */
  recent: LateralSample[];
  services: string[];
}

export interface LateralPenalty {
  penalty: number;
  /** Reporters that counted (score at or above minReporterScore), worst first. */
  reporters: string[];
  /** Failed logins and dropped connections the counted reporters saw in the last hour. */
  logins: number;
  dropped: number;
  reason: string;
  fix: string;
}

const MAX_SAMPLES = 64;
const HOUR = 3_600_000;

export function decayedAttempts(e: LateralEntry, now: number, halfLife: number): number {
  return e.value * Math.pow(2, -Math.max(0, now - e.at) / halfLife);
}

/** Folds one report's counts for `subject` into its reporter's entry (creating it); returns the entry. */
export function addLateral(entries: Map<string, LateralEntry>, reporter: string, logins: number, dropped: number, services: readonly string[], model: ScoreModel, now: number): LateralEntry {
  const h = model.lateralMovement.halfLife;
  let e = entries.get(reporter);
  if (!e) entries.set(reporter, (e = { reporter, value: 0, at: now, recent: [], services: [] }));
  e.value = decayedAttempts(e, now, h) + logins + dropped;
  e.at = now;
  e.recent.push([now, logins, dropped]);
  if (e.recent.length > MAX_SAMPLES) {
    const [a, b] = e.recent.splice(0, 2) as [LateralSample, LateralSample];
    e.recent.unshift([b[0], a[1] + b[1], a[2] + b[2]]);
  }
  for (const s of services) if (!e.services.includes(s)) e.services.push(s);
  return e;
}

/** Counts of the last hour of one entry. */
export function lastHour(e: LateralEntry, now: number): { logins: number; dropped: number } {
  let logins = 0;
  let dropped = 0;
  for (const [at, l, d] of e.recent) if (now - at <= HOUR) {
    logins += l;
    dropped += d;
  }
  return { logins, dropped };
}

/** "240 logins", "240 logins and 12 blocked connections", "12 blocked connections". */
export function attemptsText(logins: number, dropped: number): string {
  const parts: string[] = [];
  if (logins > 0) parts.push(`${logins} login${logins === 1 ? '' : 's'}`);
  if (dropped > 0) parts.push(`${dropped} blocked connection${dropped === 1 ? '' : 's'}`);
  return parts.join(' and ') || 'nothing';
}

/** "dev-y", "dev-y and dev-z", "dev-a, dev-b and 3 more". */
export function listText(names: readonly string[], max = 3): string {
  if (names.length <= 1) return names[0] ?? '';
  if (names.length > max) return `${names.slice(0, max - 1).join(', ')} and ${names.length - max + 1} more`;
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

export function lateralPenalty(subject: string, entries: Iterable<LateralEntry>, model: ScoreModel, now: number, scoreOf: (reporter: string) => number): LateralPenalty | undefined {
  const m = model.lateralMovement;
  let weight = 0;
  let bad = 0;
  let logins = 0;
  let dropped = 0;
  const counted: Array<{ reporter: string; severity: number }> = [];
  for (const e of entries) {
    if (now - e.at > m.maxAge) continue;
    const reporterScore = scoreOf(e.reporter);
    if (reporterScore < m.minReporterScore) continue;
    const severity = 1 - Math.exp(-decayedAttempts(e, now, m.halfLife) / m.scale);
    counted.push({ reporter: e.reporter, severity });
    weight += reporterScore;
    bad += reporterScore * severity;
    const recent = lastHour(e, now);
    logins += recent.logins;
    dropped += recent.dropped;
  }
  if (counted.length === 0 || weight === 0) return undefined;
  const penalty = Math.round(m.max * (bad / weight) * Math.min(1, counted.length / m.k) * 1000) / 1000;
  if (penalty <= 0) return undefined;
  const reporters = counted.sort((a, b) => b.severity - a.severity || a.reporter.localeCompare(b.reporter)).map((c) => c.reporter);
  const n = reporters.length;
  const recent = logins + dropped > 0 ? `it attempted ${attemptsText(logins, dropped)} on ${n} device${n === 1 ? '' : 's'} in the last hour` : `it attempted logins on ${n} device${n === 1 ? '' : 's'} (earlier than the last hour)`;
  const alone = n < m.k ? `; one reporter alone counts for at most 1/${m.k}` : '';
  return {
    penalty,
    reporters,
    logins,
    dropped,
    reason: `lateral movement reported by ${listText(reporters)}: ${recent}${alone}`.slice(0, 300),
    fix: `isolate ${subject}: ${recent}`.slice(0, 300),
  };
}

/** Drops entries past maxAge (mutates the map). */
export function pruneLateral(entries: Map<string, LateralEntry>, model: ScoreModel, now: number): void {
  for (const [reporter, e] of entries) if (now - e.at > model.lateralMovement.maxAge) entries.delete(reporter);
}

/** The fleet event's line: "dev-x tried to log in to dev-y and dev-z 240 times". */
export function lateralEventText(subject: string, reporters: readonly string[], logins: number, dropped: number): string {
  const targets = listText(reporters, 4);
  if (logins > 0) return `${subject} tried to log in to ${targets} ${logins} time${logins === 1 ? '' : 's'}${dropped > 0 ? ` (and ${dropped} connections were blocked)` : ''}`;
  return `${subject} tried to connect to ${targets} ${dropped} time${dropped === 1 ? '' : 's'} (blocked by their firewalls)`;
}
