/**
 * Vulnerability feed parsers: the Debian Security Tracker JSON (https://security-tracker.debian.org/tracker/data/json)
 * and OSV records for the Debian ecosystem (one record, an array of records, or JSON Lines). Both are normalised to
 * CveEntry rows keyed by (release codename, source package, vulnerability id).
 *
 * Feeds come from files copied onto offline gateways, so they are treated as hostile: every field is type-checked,
 * sizes are bounded, names and versions are validated (a version must parse exactly as dpkg parses it), and any
 * problem throws a CveFeedError naming the file and the path inside it. There is never a partial result.
 */
import { parseDebianVersion, compareParsedVersions, InvalidVersionError } from './dpkg-version.js';

export type Severity = 'low' | 'medium' | 'high' | 'critical' | 'unknown';
export const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low', 'unknown'];

export interface CveEntry {
  /** CVE id, or the advisory / tracker id (DSA-…, DEBIAN-…, TEMP-…) when the record names no CVE. */
  id: string;
  /** Debian source package. */
  source: string;
  /** Release codename (bookworm, trixie, sid …). */
  release: string;
  /** First version that fixes it in this release; null when the release has no fix yet. */
  fixed: string | null;
  /** First affected version when the feed says so (OSV `introduced` other than "0"). */
  introduced?: string;
  severity: Severity;
  /** true: remotely exploitable; false: local only; null: the feed does not say. */
  remote: boolean | null;
  description?: string;
  /** The OSV record / advisory the entry came from, when it is not the id itself (e.g. DSA-5532-1). */
  advisory?: string;
}

export type FeedFormat = 'debian-tracker' | 'osv';

export interface FeedStats {
  /** Top-level records read: tracker (package, issue) pairs or OSV records. */
  records: number;
  entries: number;
  fixed: number;
  open: number;
  skipped: {
    notAffected: number;
    unimportant: number;
    withdrawn: number;
    otherEcosystem: number;
    noFixedVersion: number;
  };
}

export interface ParsedFeed {
  format: FeedFormat;
  entries: CveEntry[];
  stats: FeedStats;
}

export class CveFeedError extends Error {
  override name = 'CveFeedError';
}

export interface FeedLimits {
  /** Input text length (characters). */
  maxChars: number;
  /** Normalised entries per feed. */
  maxEntries: number;
  /** Length of any free-text field (description, details, summary) before it is clipped for storage. */
  maxText: number;
  /** Stored description length. */
  descriptionChars: number;
}

export const DEFAULT_FEED_LIMITS: FeedLimits = {
  // The real tracker JSON is tens of MB; V8 cannot hold a string much above 512 MiB anyway.
  maxChars: 384 * 1024 * 1024,
  maxEntries: 5_000_000,
  maxText: 1024 * 1024,
  descriptionChars: 1000,
};

/** Debian source package names (Debian Policy 5.6.1): lowercase, digits, + - . ; at least two characters. */
const SOURCE_NAME = /^[a-z0-9][a-z0-9+.-]{1,127}$/;
/** CVE-…, TEMP-…, DSA-…, DLA-…, DEBIAN-CVE-…, GHSA-… : conservative id syntax. */
const VULN_ID = /^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9._:-]{1,80}$/;
const CVE_ID = /^CVE-\d{4}-\d{4,}$/;
const RELEASE = /^[a-z][a-z0-9-]{0,31}$/;
/** Keys that would reach Object.prototype if the data were ever copied into a plain object. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Debian major version ↔ codename (OSV uses `Debian:12`, the tracker and os-release use codenames). */
export const DEBIAN_RELEASES: ReadonlyMap<string, string> = new Map([
  ['7', 'wheezy'],
  ['8', 'jessie'],
  ['9', 'stretch'],
  ['10', 'buster'],
  ['11', 'bullseye'],
  ['12', 'bookworm'],
  ['13', 'trixie'],
  ['14', 'forky'],
  ['15', 'duke'],
]);
const CODENAME_SET = new Set([...DEBIAN_RELEASES.values(), 'sid']);

/** `Debian:12` → bookworm; unknown future numbers become `debian-16` on both sides so they still pair up. */
export function codenameForVersion(version: string): string | null {
  const v = version.trim().toLowerCase();
  if (v === 'unstable' || v === 'sid') return 'sid';
  const major = /^(\d{1,3})(?:\.\d+)*$/.exec(v)?.[1];
  if (major === undefined) return CODENAME_SET.has(v) ? v : null;
  return DEBIAN_RELEASES.get(String(Number(major))) ?? `debian-${Number(major)}`;
}

export function isKnownCodename(name: string): boolean {
  return CODENAME_SET.has(name);
}

// ---------------------------------------------------------------------------------------------------------------
// Validation helpers. `where` is a human path such as `openssl › CVE-2023-5678 › releases › bookworm`.

class Ctx {
  stats: FeedStats = { records: 0, entries: 0, fixed: 0, open: 0, skipped: { notAffected: 0, unimportant: 0, withdrawn: 0, otherEcosystem: 0, noFixedVersion: 0 } };
  entries: CveEntry[] = [];
  constructor(
    readonly label: string,
    readonly limits: FeedLimits,
  ) {}

  fail(where: string, why: string): never {
    const path = where.replace(/^ › /, '');
    throw new CveFeedError(`${this.label}: ${path ? `${path}: ` : ''}${why}`);
  }

  push(e: CveEntry): void {
    if (this.entries.length >= this.limits.maxEntries) this.fail('', `more than ${this.limits.maxEntries} entries (limit); refusing the feed`);
    this.entries.push(e);
    this.stats.entries++;
    if (e.fixed === null) this.stats.open++;
    else this.stats.fixed++;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function object(ctx: Ctx, v: unknown, where: string): Record<string, unknown> {
  if (!isRecord(v)) ctx.fail(where, `expected an object, got ${describe(v)}`);
  return v;
}

/** Own keys of a JSON object, refusing prototype-pollution keys. */
function keysOf(ctx: Ctx, o: Record<string, unknown>, where: string): string[] {
  const keys = Object.keys(o);
  for (const k of keys) if (FORBIDDEN_KEYS.has(k)) ctx.fail(where, `forbidden key ${JSON.stringify(k)}`);
  return keys;
}

function optString(ctx: Ctx, o: Record<string, unknown>, key: string, where: string, max = 256): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') ctx.fail(`${where} › ${key}`, `expected a string, got ${describe(v)}`);
  if (v.length > max) ctx.fail(`${where} › ${key}`, `string of ${v.length} characters (limit ${max})`);
  return v;
}

function optArray(ctx: Ctx, o: Record<string, unknown>, key: string, where: string, max = 100_000): unknown[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) ctx.fail(`${where} › ${key}`, `expected an array, got ${describe(v)}`);
  if (v.length > max) ctx.fail(`${where} › ${key}`, `${v.length} items (limit ${max})`);
  return v;
}

function sourceName(ctx: Ctx, name: unknown, where: string): string {
  if (typeof name !== 'string') ctx.fail(where, `package name must be a string, got ${describe(name)}`);
  if (!SOURCE_NAME.test(name)) ctx.fail(where, `invalid Debian source package name ${JSON.stringify(name.slice(0, 80))}`);
  return name;
}

function vulnId(ctx: Ctx, id: unknown, where: string): string {
  if (typeof id !== 'string') ctx.fail(where, `id must be a string, got ${describe(id)}`);
  if (!VULN_ID.test(id)) ctx.fail(where, `invalid vulnerability id ${JSON.stringify(id.slice(0, 80))}`);
  return id;
}

function version(ctx: Ctx, v: unknown, where: string): string {
  if (typeof v !== 'string') ctx.fail(where, `version must be a string, got ${describe(v)}`);
  try {
    parseDebianVersion(v);
  } catch (err) {
    if (err instanceof InvalidVersionError) ctx.fail(where, err.message);
    throw err;
  }
  return v;
}

function clipText(ctx: Ctx, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const t = text.replace(/\s+/g, ' ').trim();
  if (!t) return undefined;
  const max = ctx.limits.descriptionChars;
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

// ---------------------------------------------------------------------------------------------------------------
// Severity

const SEVERITY_RANK: Record<Severity, number> = { unknown: 0, low: 1, medium: 2, high: 3, critical: 4 };

export function severityRank(s: Severity): number {
  return SEVERITY_RANK[s];
}

export function maxSeverity(a: Severity, b: Severity): Severity {
  return SEVERITY_RANK[a] >= SEVERITY_RANK[b] ? a : b;
}

/**
 * Debian urgency → severity. The tracker marks urgencies it copied from NVD with `**` (`medium**`).
 * Returns 'unimportant' / 'not-affected' for the values that mean "no finding".
 */
export function urgencySeverity(urgency: string | undefined): Severity | 'unimportant' | 'not-affected' {
  if (urgency === undefined) return 'unknown';
  const u = urgency.trim().toLowerCase().replace(/\*+$/, '');
  if (u === 'low' || u === 'medium' || u === 'high') return u;
  if (u === 'critical') return 'critical';
  if (u === 'unimportant') return 'unimportant';
  if (u === 'not affected' || u === 'not-affected') return 'not-affected';
  return 'unknown'; // "not yet assigned", "end-of-life", anything new
}

const CVSS3: Record<string, Record<string, number>> = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  C: { H: 0.56, L: 0.22, N: 0 },
  I: { H: 0.56, L: 0.22, N: 0 },
  A: { H: 0.56, L: 0.22, N: 0 },
};

/** CVSS v3.x base score from a vector (CVSS:3.0/… or CVSS:3.1/…); undefined when the vector is not valid. */
export function cvss3BaseScore(vector: string): number | undefined {
  const m = /^CVSS:3\.[01]\/(.*)$/.exec(vector.trim());
  if (!m) return undefined;
  const metrics = new Map<string, string>();
  for (const part of m[1]!.split('/')) {
    const [k, v] = part.split(':');
    if (!k || !v || metrics.has(k)) return undefined;
    metrics.set(k, v);
  }
  const get = (k: string) => {
    const v = metrics.get(k);
    return v === undefined ? undefined : CVSS3[k]?.[v];
  };
  const scope = metrics.get('S');
  const pr = metrics.get('PR');
  const [av, ac, ui, c, i, a] = [get('AV'), get('AC'), get('UI'), get('C'), get('I'), get('A')];
  if (av === undefined || ac === undefined || ui === undefined || c === undefined || i === undefined || a === undefined) return undefined;
  if (scope !== 'U' && scope !== 'C') return undefined;
  const changed = scope === 'C';
  const prValue = pr === 'N' ? 0.85 : pr === 'L' ? (changed ? 0.68 : 0.62) : pr === 'H' ? (changed ? 0.5 : 0.27) : undefined;
  if (prValue === undefined) return undefined;
  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss;
  const exploitability = 8.22 * av * ac * prValue * ui;
  if (impact <= 0) return 0;
  const raw = changed ? Math.min(1.08 * (impact + exploitability), 10) : Math.min(impact + exploitability, 10);
  // CVSS 3.1 Roundup: avoids floating-point artefacts such as 4.000000001 → 4.1.
  const intInput = Math.round(raw * 100000);
  return intInput % 10000 === 0 ? intInput / 100000 : (Math.floor(intInput / 10000) + 1) / 10;
}

export function severityFromScore(score: number): Severity {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  return 'low';
}

/** Attack vector from any CVSS vector (v2 `AV:N`, v3/v4 `AV:N`): network/adjacent → remote. */
export function remoteFromVector(vector: string): boolean | null {
  const av = /(?:^|\/)AV:([NALP])(?:\/|$)/.exec(vector)?.[1];
  if (av === undefined) return null;
  return av === 'N' || av === 'A';
}

// ---------------------------------------------------------------------------------------------------------------
// Debian Security Tracker JSON:
// { "<source>": { "<CVE-…|TEMP-…>": { "description"?, "debianbug"?, "scope"?: "local"|"remote",
//     "releases": { "<codename>": { "status": "resolved"|"open"|"undetermined", "repositories": {…},
//       "fixed_version"?, "urgency"?, "nodsa"?, "nodsa_reason"?, "next_point_update"? } } } }
// Fields are omitted rather than null (the tracker strips None values).

export function parseTrackerJson(data: unknown, label: string, limits: FeedLimits = DEFAULT_FEED_LIMITS): ParsedFeed {
  const ctx = new Ctx(label, limits);
  const root = object(ctx, data, '');
  for (const pkg of keysOf(ctx, root, '')) {
    const source = sourceName(ctx, pkg, pkg);
    const issues = object(ctx, root[pkg], source);
    for (const issueKey of keysOf(ctx, issues, source)) {
      const where = `${source} › ${issueKey}`;
      const id = vulnId(ctx, issueKey, where);
      const issue = object(ctx, issues[issueKey], where);
      ctx.stats.records++;
      const description = clipText(ctx, optString(ctx, issue, 'description', where, limits.maxText));
      const scope = optString(ctx, issue, 'scope', where);
      if (scope !== undefined && scope !== 'local' && scope !== 'remote') ctx.fail(`${where} › scope`, `expected "local" or "remote", got ${JSON.stringify(scope.slice(0, 40))}`);
      const bug = issue.debianbug;
      if (bug !== undefined && bug !== null && !(typeof bug === 'number' && Number.isInteger(bug) && bug >= 0)) ctx.fail(`${where} › debianbug`, `expected a bug number, got ${describe(bug)}`);
      const remote = scope === 'remote' ? true : scope === 'local' ? false : null;
      const releases = object(ctx, issue.releases ?? {}, `${where} › releases`);
      for (const rel of keysOf(ctx, releases, `${where} › releases`)) {
        const rwhere = `${where} › releases › ${rel}`;
        if (!RELEASE.test(rel)) ctx.fail(rwhere, 'invalid release name');
        const info = object(ctx, releases[rel], rwhere);
        const status = optString(ctx, info, 'status', rwhere);
        if (status === undefined) ctx.fail(rwhere, 'missing status');
        const urgency = optString(ctx, info, 'urgency', rwhere);
        const fixedRaw = info.fixed_version;
        const repos = info.repositories;
        if (repos !== undefined) {
          const r = object(ctx, repos, `${rwhere} › repositories`);
          for (const k of keysOf(ctx, r, `${rwhere} › repositories`)) {
            if (typeof r[k] !== 'string' || (r[k] as string).length > 256) ctx.fail(`${rwhere} › repositories › ${k}`, `expected a version string, got ${describe(r[k])}`);
          }
        }
        if (fixedRaw === '0') {
          // "0": the release never shipped a vulnerable version.
          ctx.stats.skipped.notAffected++;
          continue;
        }
        const sev = urgencySeverity(urgency);
        if (sev === 'unimportant') {
          ctx.stats.skipped.unimportant++;
          continue;
        }
        if (sev === 'not-affected') {
          ctx.stats.skipped.notAffected++;
          continue;
        }
        let fixed: string | null = null;
        if (status === 'resolved') {
          if (fixedRaw === undefined || fixedRaw === null) {
            ctx.stats.skipped.noFixedVersion++;
            continue;
          }
          fixed = version(ctx, fixedRaw, `${rwhere} › fixed_version`);
        } else if (fixedRaw !== undefined && fixedRaw !== null) {
          version(ctx, fixedRaw, `${rwhere} › fixed_version`); // type/syntax check only; an open issue has no fix yet
        }
        // "open", "undetermined" and any future status: vulnerable with no fix in this release.
        const entry: CveEntry = { id, source, release: rel, fixed, severity: sev, remote };
        if (description) entry.description = description;
        ctx.push(entry);
      }
    }
  }
  return { format: 'debian-tracker', entries: ctx.entries, stats: ctx.stats };
}

// ---------------------------------------------------------------------------------------------------------------
// OSV (https://ossf.github.io/osv-schema/) records for the Debian ecosystem: DSA-…/DLA-… advisories (CVE ids in
// `upstream`, older exports in `aliases`) and DEBIAN-CVE-… records. affected[].package = { ecosystem: "Debian:12",
// name: <source package> }, ranges[] of type ECOSYSTEM with events introduced/fixed (last_affected/limit allowed),
// ecosystem_specific.urgency = Debian urgency, severity[] = CVSS vectors.

type Event = { kind: 'introduced' | 'fixed' | 'last_affected' | 'limit'; version: string };

interface Scored {
  severity: Severity;
  remote: boolean | null;
}

function scoreFromOsv(ctx: Ctx, list: unknown[] | undefined, where: string): Scored {
  let severity: Severity = 'unknown';
  let remote: boolean | null = null;
  for (const [i, item] of (list ?? []).entries()) {
    const s = object(ctx, item, `${where} › severity[${i}]`);
    const type = optString(ctx, s, 'type', `${where} › severity[${i}]`, 64);
    const score = optString(ctx, s, 'score', `${where} › severity[${i}]`, 512);
    if (!type || !score) continue;
    const r = remoteFromVector(score);
    if (r !== null) remote = remote === true ? true : r;
    if (type === 'CVSS_V3') {
      const n = cvss3BaseScore(score);
      if (n !== undefined) severity = maxSeverity(severity, severityFromScore(n));
    }
  }
  return { severity, remote };
}

function databaseSeverity(v: unknown): Severity {
  if (!isRecord(v) || typeof v.severity !== 'string') return 'unknown';
  const s = v.severity.toLowerCase();
  if (s === 'moderate') return 'medium';
  return s === 'low' || s === 'medium' || s === 'high' || s === 'critical' ? s : 'unknown';
}

/** Combines the distribution's urgency with CVSS: Debian's triage wins, but a CVSS-critical issue Debian rates high stays critical. */
function combineSeverity(urgency: Severity, cvss: Severity, database: Severity): Severity {
  if (urgency !== 'unknown') return urgency === 'high' && cvss === 'critical' ? 'critical' : urgency;
  if (cvss !== 'unknown') return cvss;
  return database;
}

function parseEvents(ctx: Ctx, range: Record<string, unknown>, where: string): Event[] {
  const events = optArray(ctx, range, 'events', where, 1000) ?? [];
  const out: Event[] = [];
  for (const [i, ev] of events.entries()) {
    const ewhere = `${where} › events[${i}]`;
    const e = object(ctx, ev, ewhere);
    const keys = keysOf(ctx, e, ewhere).filter((k) => k === 'introduced' || k === 'fixed' || k === 'last_affected' || k === 'limit');
    if (keys.length !== 1) ctx.fail(ewhere, 'an event needs exactly one of introduced, fixed, last_affected, limit');
    const kind = keys[0] as Event['kind'];
    const raw = e[kind];
    if (kind === 'introduced' && raw === '0') out.push({ kind, version: '0' });
    else out.push({ kind, version: version(ctx, raw, `${ewhere} › ${kind}`) });
  }
  return out;
}

/** Turns ordered events into [introduced, fixed) intervals; an interval without an end has no fix. */
function intervals(events: Event[]): Array<{ introduced: string; fixed: string | null }> {
  const sorted = events
    .map((e, i) => ({ e, i, v: e.version === '0' ? null : parseDebianVersion(e.version) }))
    .sort((a, b) => (a.v === null ? (b.v === null ? a.i - b.i : -1) : b.v === null ? 1 : compareParsedVersions(a.v, b.v) || a.i - b.i));
  const out: Array<{ introduced: string; fixed: string | null }> = [];
  let open: string | null = null;
  for (const { e } of sorted) {
    if (e.kind === 'introduced') {
      if (open === null) open = e.version;
    } else if (open !== null) {
      out.push({ introduced: open, fixed: e.kind === 'fixed' ? e.version : null });
      open = null;
    }
  }
  if (open !== null) out.push({ introduced: open, fixed: null });
  return out;
}

function parseOsvRecord(ctx: Ctx, rec: unknown, where: string): void {
  const r = object(ctx, rec, where);
  keysOf(ctx, r, where);
  const recordId = vulnId(ctx, r.id, `${where} › id`);
  const rwhere = where ? `${where} (${recordId})` : recordId;
  ctx.stats.records++;
  if (r.withdrawn !== undefined && r.withdrawn !== null) {
    optString(ctx, r, 'withdrawn', rwhere, 64);
    ctx.stats.skipped.withdrawn++;
    return;
  }
  const cves = new Set<string>();
  if (CVE_ID.test(recordId)) cves.add(recordId);
  for (const key of ['aliases', 'upstream']) {
    for (const [i, a] of (optArray(ctx, r, key, rwhere, 10_000) ?? []).entries()) {
      if (typeof a !== 'string' || a.length > 80) ctx.fail(`${rwhere} › ${key}[${i}]`, `expected an id string, got ${describe(a)}`);
      if (CVE_ID.test(a)) cves.add(a);
    }
  }
  const ids = cves.size > 0 ? [...cves].sort() : [recordId];
  const details = optString(ctx, r, 'details', rwhere, ctx.limits.maxText);
  const summary = optString(ctx, r, 'summary', rwhere, ctx.limits.maxText);
  const description = clipText(ctx, details ?? summary);
  const recordScore = scoreFromOsv(ctx, optArray(ctx, r, 'severity', rwhere, 100), rwhere);
  const recordDb = databaseSeverity(r.database_specific);
  for (const [ai, aff] of (optArray(ctx, r, 'affected', rwhere) ?? []).entries()) {
    const awhere = `${rwhere} › affected[${ai}]`;
    const a = object(ctx, aff, awhere);
    keysOf(ctx, a, awhere);
    const pkg = object(ctx, a.package, `${awhere} › package`);
    keysOf(ctx, pkg, `${awhere} › package`);
    const ecosystem = optString(ctx, pkg, 'ecosystem', `${awhere} › package`, 128);
    if (ecosystem === undefined) ctx.fail(`${awhere} › package`, 'missing ecosystem');
    const eco = /^Debian(?::(.+))?$/.exec(ecosystem);
    if (!eco) {
      ctx.stats.skipped.otherEcosystem++; // a mixed OSV dump: npm, Ubuntu:22.04 … are not ours
      continue;
    }
    const release = eco[1] === undefined ? null : codenameForVersion(eco[1]);
    if (release === null) ctx.fail(`${awhere} › package › ecosystem`, `unknown Debian release ${JSON.stringify(ecosystem)}`);
    const source = sourceName(ctx, pkg.name, `${awhere} › package › name`);
    const eco_specific = a.ecosystem_specific;
    let urgency: string | undefined;
    if (eco_specific !== undefined && eco_specific !== null) {
      const es = object(ctx, eco_specific, `${awhere} › ecosystem_specific`);
      keysOf(ctx, es, `${awhere} › ecosystem_specific`);
      urgency = optString(ctx, es, 'urgency', `${awhere} › ecosystem_specific`, 64);
    }
    const urg = urgencySeverity(urgency);
    if (urg === 'unimportant') {
      ctx.stats.skipped.unimportant++;
      continue;
    }
    if (urg === 'not-affected') {
      ctx.stats.skipped.notAffected++;
      continue;
    }
    const affScore = scoreFromOsv(ctx, optArray(ctx, a, 'severity', awhere, 100), awhere);
    const cvss = maxSeverity(recordScore.severity, affScore.severity);
    const severity = combineSeverity(urg, cvss, maxSeverity(recordDb, databaseSeverity(a.database_specific)));
    const remote = affScore.remote ?? recordScore.remote;
    // `versions` (explicit affected versions) is informative only; ranges decide.
    optArray(ctx, a, 'versions', awhere, 100_000);
    let any = false;
    for (const [ri, rg] of (optArray(ctx, a, 'ranges', awhere, 1000) ?? []).entries()) {
      const gwhere = `${awhere} › ranges[${ri}]`;
      const range = object(ctx, rg, gwhere);
      keysOf(ctx, range, gwhere);
      const type = optString(ctx, range, 'type', gwhere, 32);
      if (type !== 'ECOSYSTEM') continue; // GIT / SEMVER ranges say nothing about Debian package versions
      for (const iv of intervals(parseEvents(ctx, range, gwhere))) {
        if (iv.fixed === '0') {
          ctx.stats.skipped.notAffected++;
          continue;
        }
        any = true;
        for (const id of ids) {
          const entry: CveEntry = { id, source, release, fixed: iv.fixed, severity, remote };
          if (iv.introduced !== '0') entry.introduced = iv.introduced;
          if (description) entry.description = description;
          if (id !== recordId) entry.advisory = recordId;
          ctx.push(entry);
        }
      }
    }
    if (!any) ctx.stats.skipped.noFixedVersion++;
  }
}

export function parseOsvRecords(records: unknown[], label: string, limits: FeedLimits = DEFAULT_FEED_LIMITS, where = (i: number) => `record ${i + 1}`): ParsedFeed {
  const ctx = new Ctx(label, limits);
  records.forEach((rec, i) => parseOsvRecord(ctx, rec, records.length === 1 ? '' : where(i)));
  return { format: 'osv', entries: ctx.entries, stats: ctx.stats };
}

// ---------------------------------------------------------------------------------------------------------------
// Format detection

function jsonError(label: string, err: unknown, hint = ''): CveFeedError {
  const msg = err instanceof Error ? err.message : String(err);
  return new CveFeedError(`${label}: not valid JSON${hint} (truncated or corrupt?): ${msg}`);
}

/** True when a parsed JSON value looks like one OSV record rather than a tracker dump. */
function looksLikeOsv(v: unknown): boolean {
  // Tracker values are objects keyed by CVE id; an OSV record has a string id.
  return isRecord(v) && typeof v.id === 'string';
}

/**
 * Parses a feed, detecting its format: a JSON array (OSV records), a JSON object (an OSV record when it has a
 * string `id`, else the tracker dump), or JSON Lines (one OSV record per line).
 */
export function parseFeed(text: string, label: string, limits: FeedLimits = DEFAULT_FEED_LIMITS): ParsedFeed {
  if (typeof text !== 'string') throw new CveFeedError(`${label}: expected text`);
  if (text.length > limits.maxChars) throw new CveFeedError(`${label}: ${text.length} characters is above the ${limits.maxChars} limit`);
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const first = /\S/.exec(body);
  if (!first) throw new CveFeedError(`${label}: empty feed`);
  if (first[0] !== '{' && first[0] !== '[') throw new CveFeedError(`${label}: not a JSON feed (starts with ${JSON.stringify(body.slice(first.index, first.index + 20))})`);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    // Not one JSON document: JSON Lines when the first line is a complete OSV record by itself.
    const lines = body.split('\n');
    const firstLine = lines.find((l) => l.trim() !== '') ?? '';
    let head: unknown;
    try {
      head = JSON.parse(firstLine);
    } catch {
      throw jsonError(label, err);
    }
    if (!looksLikeOsv(head) || lines.filter((l) => l.trim() !== '').length < 2) throw jsonError(label, err);
    const records: unknown[] = [];
    const lineNumbers: number[] = [];
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        records.push(JSON.parse(line));
      } catch (e) {
        throw jsonError(label, e, ` at line ${i + 1}`);
      }
      lineNumbers.push(i + 1);
    });
    return checkNonEmpty(label, parseOsvRecords(records, label, limits, (i) => `line ${lineNumbers[i]}`));
  }
  if (Array.isArray(value)) return checkNonEmpty(label, parseOsvRecords(value, label, limits));
  if (looksLikeOsv(value)) return checkNonEmpty(label, parseOsvRecords([value], label, limits));
  return checkNonEmpty(label, parseTrackerJson(value, label, limits));
}

/** A feed that yields nothing is almost certainly the wrong file; loading it would silently empty the store. */
function checkNonEmpty(label: string, feed: ParsedFeed): ParsedFeed {
  if (feed.entries.length === 0) {
    const s = feed.stats.skipped;
    throw new CveFeedError(
      `${label}: no Debian vulnerability entries (${feed.stats.records} records read; skipped ${s.notAffected} not affected, ${s.unimportant} unimportant, ` +
        `${s.withdrawn} withdrawn, ${s.otherEcosystem} other ecosystems); refusing to load an empty feed`,
    );
  }
  return feed;
}

// ---------------------------------------------------------------------------------------------------------------
// Merging

function entryKey(e: CveEntry): string {
  return `${e.release}\u0000${e.source}\u0000${e.id}\u0000${e.introduced ?? ''}`;
}

/**
 * Merges entries from several feeds (or repeated ones, e.g. a DSA and a DEBIAN-CVE record for the same CVE):
 * one entry per (release, source, id, introduced). Conflicts resolve conservatively: a known fix beats "no fix",
 * the higher fixed version wins, the higher severity wins, remote beats local beats unknown.
 */
export function mergeEntries(lists: Iterable<readonly CveEntry[]>): CveEntry[] {
  const byKey = new Map<string, CveEntry>();
  for (const list of lists) {
    for (const e of list) {
      const key = entryKey(e);
      const prev = byKey.get(key);
      if (!prev) {
        byKey.set(key, { ...e });
        continue;
      }
      if (prev.fixed === null) prev.fixed = e.fixed;
      else if (e.fixed !== null && compareParsedVersions(parseDebianVersion(e.fixed), parseDebianVersion(prev.fixed)) > 0) prev.fixed = e.fixed;
      prev.severity = maxSeverity(prev.severity, e.severity);
      prev.remote = prev.remote === true || e.remote === true ? true : prev.remote === false || e.remote === false ? false : null;
      if (!prev.description && e.description) prev.description = e.description;
      if (!prev.advisory && e.advisory) prev.advisory = e.advisory;
    }
  }
  return [...byKey.values()];
}
