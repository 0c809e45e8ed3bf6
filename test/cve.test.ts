/**
 * Offline CVE matching (issue 6): the dpkg version order against the real `dpkg --compare-versions`, both feed
 * formats on committed fixtures, hostile feeds (clear error, previous store still answers), matching this machine's
 * real dpkg status (checked against dpkg-query + dpkg as an oracle), and the CLI, including `cve update` from a URL
 * on a local HTTP server. The store's crash safety is SQLite's: test/store/sqlite-vuln.test.ts.
 */
import t from 'tap';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import {
  buildIndex,
  compareDebianVersions,
  CveDatabase,
  CveFeedError,
  cvss3BaseScore,
  debianRelease,
  DEFAULT_FEED_LIMITS,
  inventoryFromDpkgStatus,
  InvalidVersionError,
  matchPackages,
  mergeEntries,
  parseDebianVersion,
  parseFeed,
  updateCveStore,
  type CveEntry,
  type CveFinding,
  type InventoryEntry,
} from '../vuln/index.js';
import { collectOs } from '../agent/collectors/os.js';
import { openSqliteVulnStore } from '../store/index.js';
import { CLI, requireCommand, tempDir, writeTemp } from './helpers.js';

const execFileP = promisify(execFile);
const FIXTURES = resolve('test/fixtures/cve');
const fixture = (name: string) => join(FIXTURES, name);
const BOOKWORM = { id: 'debian', versionId: '12', versionCodename: 'bookworm' };

// ---------------------------------------------------------------------------------------------------------------
// dpkg versions

/** [a, b, expected sign of compare(a, b)] — each one is also checked against the real dpkg below. */
const KNOWN: Array<[string, string, -1 | 0 | 1]> = [
  ['1.0', '1.0', 0],
  ['1.01', '1.1', 0], // leading zeros: digit runs compare as numbers
  ['1.001', '1.1', 0],
  ['1.0010', '1.10', 0],
  ['1.0', '1.00', 0],
  ['1.0-a', '1.0-1', 1], // a letter meeting a digit run: the non-digit part is compared first, 'a' > nothing
  ['1.0a', '1.0', 1],
  ['1.0a', '1.0.', -1], // letters before non-letters
  ['1.0+', '1.0.', -1], // '+' (43) < '.' (46), both after letters
  ['1.0a', '1.0+', -1],
  ['1.0~rc1', '1.0', -1], // tilde sorts before everything, even the end
  ['1.0~~', '1.0~', -1],
  ['1.0~~a', '1.0~~', 1],
  ['1.0~', '1.0~~', 1],
  ['1.0~rc1', '1.0~rc1~1', 1],
  ['1.0~beta', '1.0~alpha', 1],
  ['1.0', '1.0+b1', -1], // binNMU
  ['1.0-1', '1.0-1+b1', -1],
  ['1.0-1+b1', '1.0-1+deb12u1', -1],
  ['1.0-1+deb12u1', '1.0-2', -1],
  ['1.0-1~deb12u1', '1.0-1', -1], // backports / security uploads below the sid version
  ['1:1.0', '2.0', 1], // epoch wins
  ['0:1.0', '1.0', 0],
  ['00:1.0', '1.0', 0],
  ['1:0.1', '0:9.9', 1],
  ['2:1.02.185-2', '2.03.16-2', 1],
  ['1.0-0', '1.0', 0], // an empty revision equals "0"
  ['1.0-00', '1.0', 0],
  ['1.0', '1.0-1', -1],
  ['1.2.3-1-1', '1.2.3-1-2', -1], // hyphens in upstream: the last one starts the revision
  ['1.2.3-1', '1.2.3-1-0', -1], // upstreams "1.2.3" vs "1.2.3-1": the end sorts before '-'
  ['1:2:3', '1:2:4', -1], // colons allowed in upstream after an epoch
  ['9', '10', -1],
  ['99', '100', -1],
  ['1.9', '1.10', -1],
  ['1A', '1a', -1], // ASCII: uppercase before lowercase
  ['1.0.0', '1.0', 1],
  ['1.0', '1.0.0', -1],
  ['3.0.19-1~deb12u2', '3.0.13-1~deb12u1', 1],
  ['2.38.1-5+deb12u3', '2.38.1-5+deb12u4', -1],
  ['5.6.1+really5.4.5-1', '5.4.5-1', 1],
  ['1.0+dfsg-1', '1.0-1', 1],
  ['1.0~dfsg-1', '1.0-1', -1],
];

/** Invalid versions with dpkg's own reason (errors and warnings alike are refused here). */
const INVALID: Array<[string, string]> = [
  ['', 'version string is empty'],
  ['   ', 'version string is empty'],
  ['1 0', 'version string has embedded spaces'],
  [':1.0', 'epoch in version is empty'],
  ['a:1.0', 'epoch in version is empty'],
  ['1a:1.0', 'epoch in version is not number'],
  ['-1:1.0', 'epoch in version is negative'],
  ['99999999999:1.0', 'epoch in version is too big'],
  ['2147483648:1', 'epoch in version is too big'],
  ['1:', 'nothing after colon in version number'],
  ['1: ', 'version number is empty'], // dpkg looks past the trimmed end for the character after the colon
  ['1.0-', 'revision number is empty'],
  ['-1', 'version number is empty'],
  ['1:-1', 'version number is empty'],
  ['a1.0', 'version number does not start with digit'],
  ['~1', 'version number does not start with digit'],
  ['1_0', 'invalid character in version number'],
  ['1.0/2', 'invalid character in version number'],
  ['1.0é', 'invalid character in version number'],
  ['1.0-a_b', 'invalid character in revision number'],
  ['1.0-1:2', 'epoch in version is not number'], // dpkg looks for the epoch up to the first colon anywhere
];

const haveDpkg = spawnSync('sh', ['-c', 'command -v dpkg']).status === 0;

/**
 * Runs `dpkg --compare-versions` for lt and gt on every pair (eq is neither), in a few shell loops run side by side.
 * Two calls per pair, not three: each call is a process, and this is the slowest part of the suite.
 */
async function dpkgRelations(pairs: Array<[string, string]>, dir: string): Promise<Array<-1 | 0 | 1 | 'inconsistent'>> {
  const workers = Math.max(1, Math.min(4, availableParallelism()));
  const chunk = Math.ceil(pairs.length / workers);
  const script = 'while read -r a b; do dpkg --compare-versions "$a" lt "$b"; l=$?; dpkg --compare-versions "$a" gt "$b"; g=$?; echo "$l$g"; done < "$1"';
  const parts = await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const slice = pairs.slice(w * chunk, (w + 1) * chunk);
      const file = join(dir, `pairs-${w}.txt`);
      writeFileSync(file, slice.map(([a, b]) => `${a} ${b}\n`).join(''));
      const { stdout } = await execFileP('sh', ['-c', script, 'sh', file], { maxBuffer: 64 * 1024 * 1024 });
      return stdout.trim() === '' ? [] : stdout.trim().split('\n');
    }),
  );
  // Exit status 0 is "true": lt holds → "01", gt holds → "10", neither → equal.
  return parts.flat().map((bits) => (bits === '01' ? -1 : bits === '11' ? 0 : bits === '10' ? 1 : 'inconsistent'));
}

/**
 * The same relations from dpkg's own Perl implementation (Dpkg::Version, in dpkg-dev), in one process: many more
 * pairs than the binary can be asked about in the time.
 */
async function dpkgPerlRelations(pairs: Array<[string, string]>, dir: string): Promise<number[]> {
  const file = join(dir, 'perl-pairs.txt');
  writeFileSync(file, pairs.map(([a, b]) => `${a} ${b}\n`).join(''));
  const { stdout } = await execFileP('perl', ['-MDpkg::Version=version_compare', '-ne', 'chomp; my ($a, $b) = split / /; print version_compare($a, $b) <=> 0, "\n"', file], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim().split('\n').map(Number);
}

/** A small seeded PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Nasty but valid versions: epochs, leading zeros, ~ and ~~, +, letters against digits, hyphenated upstreams. */
function versionGenerator(seed: number) {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const digits = ['0', '00', '1', '01', '001', '2', '9', '10', '010', '99', '100', '12', '2024', '20240101'];
  const words = ['a', 'b', 'z', 'A', 'Z', 'rc', 'beta', 'dfsg', 'really', 'deb', 'u', 'git', 'p'];
  const seps = ['.', '.', '.', '+', '~', '~~', '~', '+', ''];
  const part = (allowHyphen: boolean, allowColon: boolean, start: boolean) => {
    let s = start ? pick(digits) : pick([...digits, ...words]);
    const n = 1 + Math.floor(rnd() * 5);
    for (let i = 0; i < n; i++) {
      let sep = pick(seps);
      if (allowHyphen && rnd() < 0.08) sep = '-';
      if (allowColon && rnd() < 0.04) sep = ':';
      s += sep + (rnd() < 0.6 ? pick(digits) : pick(words));
    }
    if (rnd() < 0.1) s += pick(['~', '+', '.', '~~', 'a']);
    return s;
  };
  const one = () => {
    const epoch = rnd() < 0.3 ? `${pick(['0', '1', '2', '10', '00', '01'])}:` : '';
    const hasRevision = rnd() < 0.55;
    const upstream = part(hasRevision, epoch !== '', true);
    const revision = hasRevision ? `-${part(false, false, rnd() < 0.7)}` : '';
    return epoch + upstream + revision;
  };
  /** Near neighbours are where orderings go wrong. */
  const mutate = (v: string) => {
    switch (Math.floor(rnd() * 10)) {
      case 0:
        return `${v}~`;
      case 1:
        return `${v}+b1`;
      case 2:
        return v.replace(/(\d+)/, (d) => `0${d}`);
      case 3:
        return v.includes(':') ? v.slice(v.indexOf(':') + 1) : `0:${v}`;
      case 4:
        return v.includes('-') ? `${v}0` : `${v}-0`;
      case 5:
        return v.replace(/[a-z]/i, (c) => (c === 'a' ? '1' : 'a'));
      case 6:
        return v.replace(/~/, '');
      case 7:
        return v.replace(/\.(\d)/, '.0$1');
      case 8:
        return `${v}a`;
      default:
        return v.replace(/(\d+)(?!.*\d)/, (d) => String(Number(d) + 1));
    }
  };
  return { one, mutate, rnd };
}

t.test('dpkg version order: known cases', async (t) => {
  for (const [a, b, want] of KNOWN) {
    t.equal(compareDebianVersions(a, b), want, `${a} vs ${b}`);
    t.equal(compareDebianVersions(b, a), -want, `${b} vs ${a}`);
  }
  t.same(parseDebianVersion('1:2.3-4'), { epoch: 1, upstream: '2.3', revision: '4' });
  t.same(parseDebianVersion('2.3-4-5'), { epoch: 0, upstream: '2.3-4', revision: '5' });
  t.same(parseDebianVersion(' 1.0\t'), { epoch: 0, upstream: '1.0', revision: '' }, 'leading/trailing blanks are trimmed like dpkg');
  t.same(parseDebianVersion('+1:2'), { epoch: 1, upstream: '2', revision: '' }, "strtol's '+' sign is accepted like dpkg");
  for (const [v, why] of INVALID) {
    t.throws(() => parseDebianVersion(v), { name: 'InvalidVersionError', message: new RegExp(`: ${why}$`) }, JSON.stringify(v));
  }
  t.throws(() => compareDebianVersions('1.0', '1.0-'), InvalidVersionError);
  t.throws(() => parseDebianVersion('1'.repeat(300)), /longer than 256/);

  if (!haveDpkg && !requireCommand(t, 'dpkg', 'dpkg')) return;
  // The table itself is right only if dpkg agrees with it.
  const real = await dpkgRelations(KNOWN.map(([a, b]) => [a, b]), tempDir(t));
  t.same(real, KNOWN.map(([, , w]) => w), 'dpkg agrees with every known case');
  // And dpkg gives the same reasons for the invalid ones (strings starting with '-' would be read as options).
  for (const [v, why] of INVALID.filter(([v]) => v !== '' && !v.startsWith('-'))) {
    const r = spawnSync('dpkg', ['--compare-versions', v, 'eq', v], { encoding: 'utf8' });
    t.match(r.stderr, `bad syntax: ${why}`, `dpkg on ${JSON.stringify(v)}`);
  }
});

t.test('dpkg version order: property test against the real dpkg --compare-versions', async (t) => {
  if (!haveDpkg && !requireCommand(t, 'dpkg', 'dpkg')) return;
  const gen = versionGenerator(0x5eed_cafe);
  const generate = (count: number) => {
    const pairs: Array<[string, string]> = [];
    while (pairs.length < count) {
      const a = gen.one();
      const b = gen.rnd() < 0.5 ? gen.mutate(a) : gen.rnd() < 0.1 ? a : gen.one();
      try {
        parseDebianVersion(a);
        parseDebianVersion(b);
      } catch {
        continue; // a mutation can produce an invalid version; the validity property is tested separately
      }
      pairs.push([a, b]);
    }
    return pairs;
  };
  const pairs = generate(1600);
  const started = performance.now();
  const real = await dpkgRelations(pairs, tempDir(t));
  const seconds = (performance.now() - started) / 1000;
  t.equal(real.length, pairs.length);
  const mismatches = pairs
    .map(([a, b], i) => ({ a, b, dpkg: real[i], ours: compareDebianVersions(a, b) }))
    .filter((m) => m.dpkg !== m.ours);
  t.same(mismatches.slice(0, 10), [], `${pairs.length} pairs × lt/eq/gt against dpkg in ${seconds.toFixed(1)} s`);
  const spread = { lt: real.filter((r) => r === -1).length, eq: real.filter((r) => r === 0).length, gt: real.filter((r) => r === 1).length };
  t.comment(`dpkg property test: ${pairs.length} pairs (${spread.lt} lt, ${spread.eq} eq, ${spread.gt} gt), ${(pairs.length * 2).toLocaleString()} dpkg calls, ${seconds.toFixed(1)} s`);
  t.ok(spread.eq > 50 && spread.lt > 250 && spread.gt > 250, 'the generator covers all three relations');

  // Many more pairs against dpkg's Perl implementation, which dpkg-dev's tools use (one process for all of them).
  if (requireCommand(t, 'dpkg-architecture', 'dpkg-dev')) {
    const many = generate(30_000);
    const perl = await dpkgPerlRelations(many, tempDir(t));
    t.equal(perl.length, many.length);
    const differ = many.map(([a, b], i) => ({ a, b, dpkg: perl[i], ours: compareDebianVersions(a, b) })).filter((m) => m.dpkg !== m.ours);
    t.same(differ.slice(0, 10), [], `${many.length.toLocaleString()} more pairs against Dpkg::Version`);
    // The two dpkg implementations agree where both were asked.
    const both = await dpkgPerlRelations(pairs, tempDir(t));
    t.same(both, real, 'Dpkg::Version and the dpkg binary agree on the first pairs');
  }

  // Validity: for junk strings, dpkg reports bad syntax exactly when we refuse, with the same reason.
  const rnd = prng(7);
  const alphabet = '0123456789abcXYZ.+~-:_ /';
  const junk = new Set<string>();
  while (junk.size < 400) {
    let s = '';
    const len = 1 + Math.floor(rnd() * 8);
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    if (s.trim() === '' || s.startsWith('-') || s.trimStart().startsWith('-')) continue; // dpkg would read an option
    junk.add(s);
  }
  const list = [...junk];
  const dir = tempDir(t);
  writeFileSync(join(dir, 'junk.txt'), list.join('\n') + '\n');
  const { stdout } = await execFileP(
    'sh',
    ['-c', 'while IFS= read -r v; do out=$(dpkg --compare-versions "$v" eq "$v" 2>&1 >/dev/null | head -n 1); echo "$out"; done < "$1"', 'sh', join(dir, 'junk.txt')],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const lines = stdout.split('\n').slice(0, list.length);
  let refused = 0;
  const disagreements = list
    .map((v, i) => {
      const dpkgWhy = /bad syntax: (.*)$/.exec(lines[i] ?? '')?.[1] ?? null;
      let ours: string | null = null;
      try {
        parseDebianVersion(v);
      } catch (err) {
        ours = (err as Error).message.replace(/^.*: /, '');
        refused++;
      }
      return { v, dpkgWhy, ours };
    })
    .filter((d) => d.dpkgWhy !== d.ours);
  t.same(disagreements.slice(0, 10), [], `${list.length} junk strings: same verdict and reason as dpkg`);
  t.ok(refused > 100 && refused < list.length, 'junk covers valid and invalid strings');
});

// ---------------------------------------------------------------------------------------------------------------
// Feeds

const read = (name: string) => readFileSync(fixture(name), 'utf8');
const find = (entries: CveEntry[], id: string, release = 'bookworm', source?: string) =>
  entries.filter((e) => e.id === id && e.release === release && (source === undefined || e.source === source));

t.test('Debian Security Tracker JSON', async (t) => {
  const feed = parseFeed(read('tracker.json'), 'tracker.json');
  t.equal(feed.format, 'debian-tracker');
  t.match(feed.stats, { records: 17, entries: 20, fixed: 17, open: 3, skipped: { notAffected: 3, unimportant: 1 } });
  t.same(find(feed.entries, 'CVE-2099-1001'), [
    { id: 'CVE-2099-1001', source: 'openssl', release: 'bookworm', fixed: '3.0.99-1~deb12u1', severity: 'high', remote: true, description: 'Synthetic test entry: remote memory corruption in the TLS record layer.' },
  ]);
  t.match(find(feed.entries, 'CVE-2023-5678'), [{ severity: 'low', remote: false, fixed: '3.0.13-1~deb12u1' }], 'NVD-derived "low**" urgency reads as low');
  t.match(find(feed.entries, 'CVE-2099-1002'), [{ fixed: null, severity: 'medium' }], 'open: no fix');
  t.match(find(feed.entries, 'CVE-2099-2201'), [{ fixed: null }], 'undetermined: no fix');
  t.match(find(feed.entries, 'CVE-2099-1901'), [{ fixed: null, severity: 'unknown' }], 'end-of-life: open, severity unknown');
  t.same(find(feed.entries, 'CVE-2099-1003'), [], 'fixed_version "0" means not affected');
  t.same(find(feed.entries, 'CVE-2099-1401'), [], 'unimportant is skipped');
  t.same(find(feed.entries, 'CVE-2024-3094'), [], 'xz: bookworm never shipped the backdoor');
  t.match(find(feed.entries, 'CVE-2024-3094', 'sid'), [{ fixed: '5.6.1+really5.4.5-1', severity: 'high' }]);
  t.match(find(feed.entries, 'TEMP-0000000-2B7E5D'), [{ source: 'tar', severity: 'low', remote: null }], 'TEMP- ids are kept');
  t.match(find(feed.entries, 'CVE-2099-1501'), [{ severity: 'unknown', remote: true }], '"not yet assigned"');
  t.same(find(feed.entries, 'CVE-2099-1601'), [], 'curl: not affected in bookworm');
  t.same(find(feed.entries, 'CVE-2099-1601', 'trixie').map((e) => e.fixed), ['8.14.1-2+deb13u1']);
});

t.test('OSV records: one record, an array, JSON Lines', async (t) => {
  const dsa = parseFeed(read('osv-dsa.json'), 'osv-dsa.json');
  t.equal(dsa.format, 'osv');
  t.same(
    dsa.entries.map((e) => [e.id, e.release, e.fixed, e.advisory]),
    [
      ['CVE-2099-1001', 'bookworm', '3.0.99-1~deb12u2', 'DSA-9999-1'],
      ['CVE-2099-1004', 'bookworm', '3.0.99-1~deb12u2', 'DSA-9999-1'],
      ['CVE-2099-1001', 'bullseye', '1.1.1w-0+deb11u99', 'DSA-9999-1'],
      ['CVE-2099-1004', 'bullseye', '1.1.1w-0+deb11u99', 'DSA-9999-1'],
    ],
    'a DSA expands to one entry per upstream CVE (related ids are not aliases); Debian:11 → bullseye',
  );

  const arr = parseFeed(read('osv-records.json'), 'osv-records.json');
  t.match(arr.stats, { records: 4, entries: 3, skipped: { unimportant: 1, otherEcosystem: 1 } });
  t.match(find(arr.entries, 'CVE-2099-2101'), [{ source: 'git', fixed: '1:2.39.5-0+deb12u99', severity: 'critical', remote: true, advisory: 'DEBIAN-CVE-2099-2101' }], 'CVSS 9.8 → critical, AV:N → remote');
  t.match(find(arr.entries, 'CVE-2099-2101', 'trixie'), [{ fixed: null }], 'introduced without fixed: open');
  t.match(find(arr.entries, 'CVE-2099-2102'), [{ introduced: '2.9.14+dfsg-1.3~deb12u90', fixed: '2.9.14+dfsg-1.3~deb12u99' }]);

  const lines = parseFeed(read('osv.jsonl'), 'osv.jsonl');
  t.match(lines.stats, { records: 3, entries: 2, skipped: { withdrawn: 1 } });
  t.match(find(lines.entries, 'CVE-2099-2201'), [{ source: 'gnupg2', severity: 'medium', remote: false }], 'CVSS 5.5, AV:L');
  t.match(find(lines.entries, 'DLA-9998-1'), [{ source: 'expat', severity: 'high', remote: null }], 'no CVE alias: the advisory id; database_specific severity');
  t.notOk(find(lines.entries, 'DLA-9998-1')[0]!.advisory, 'no separate advisory when the id is the advisory');

  // CVSS v3.1 base scores (values from the FIRST calculator).
  t.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
  t.equal(cvss3BaseScore('CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N'), 5.5);
  t.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N'), 6.1);
  t.equal(cvss3BaseScore('CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H'), 8.1);
  t.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N'), 0);
  t.equal(cvss3BaseScore('CVSS:3.1/AV:X/AC:L'), undefined);

  // Merging: the DSA's later fix wins over the tracker's, severity/remote combine.
  const merged = mergeEntries([parseFeed(read('tracker.json'), 't').entries, dsa.entries]);
  t.match(find(merged, 'CVE-2099-1001'), [{ fixed: '3.0.99-1~deb12u2', severity: 'high', remote: true, advisory: 'DSA-9999-1' }]);
  t.equal(merged.length, 20 + 4 - 2, 'duplicates collapse');
});

/** Each malformed, truncated or hostile fixture and the error it must produce. */
const BAD: Array<[string, RegExp]> = [
  ['truncated-tracker.json', /truncated-tracker\.json: not valid JSON \(truncated or corrupt\?\)/],
  ['truncated.jsonl', /truncated\.jsonl: not valid JSON at line 3 \(truncated or corrupt\?\)/],
  ['wrong-types.json', /openssl › CVE-2099-1001 › releases › bookworm › fixed_version: version must be a string, got number/],
  ['releases-array.json', /openssl › CVE-2099-1001 › releases: expected an object, got an array/],
  ['proto.json', /proto\.json: forbidden key "__proto__"/],
  ['proto-nested.json', /openssl › CVE-2099-1001 › releases: forbidden key "__proto__"/],
  ['bad-version.json', /fixed_version: invalid Debian version "3\.0\.99 beta": version string has embedded spaces/],
  ['bad-name.json', /invalid Debian source package name "Open SSL"/],
  ['bad-scope.json', /scope: expected "local" or "remote", got "everywhere"/],
  ['not-json.html', /not a JSON feed \(starts with "<!DOCTYPE html>/],
  ['empty.json', /no Debian vulnerability entries .*refusing to load an empty feed/],
  ['osv-bad-event.json', /DSA-9999-2 › affected\[0\] › ranges\[0\] › events\[0\]: an event needs exactly one of/],
  ['osv-bad-ecosystem.json', /unknown Debian release "Debian:bogus"/],
  ['osv-bad-id.json', /osv-bad-id\.json: id: invalid vulnerability id "DSA 9999 <script>"/],
];

t.test('malformed, truncated and hostile feeds: a clear error, never a partial result', async (t) => {
  for (const [name, message] of BAD) {
    t.throws(() => parseFeed(read(`bad/${name}`), name), { name: 'CveFeedError', message }, name);
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  const good = JSON.parse(read('tracker.json')) as Record<string, unknown>;
  // Huge strings and absurd sizes.
  const huge = structuredClone(good) as any;
  huge.openssl['CVE-2099-1001'].description = 'x'.repeat(DEFAULT_FEED_LIMITS.maxText + 1);
  t.throws(() => parseFeed(JSON.stringify(huge), 'huge.json'), /openssl › CVE-2099-1001 › description: string of 1048577 characters \(limit 1048576\)/);
  t.throws(() => parseFeed(read('tracker.json'), 'small-limit', { ...DEFAULT_FEED_LIMITS, maxEntries: 5 }), /more than 5 entries \(limit\)/);
  t.throws(() => parseFeed(read('tracker.json'), 'small-limit', { ...DEFAULT_FEED_LIMITS, maxChars: 100 }), /characters is above the 100 limit/);
  const longName = { ['a'.repeat(300)]: good.openssl };
  t.throws(() => parseFeed(JSON.stringify(longName), 'long.json'), /invalid Debian source package name/);
  const wrongRoot = '"just a string"';
  t.throws(() => parseFeed(wrongRoot, 'str.json'), /not a JSON feed/);
  t.throws(() => parseFeed('[1, 2]', 'nums.json'), /record 1: expected an object, got number/);
  t.throws(() => parseFeed('{"openssl": {"CVE-2099-1": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "1.0", "urgency": 5}}}}}', 'u.json'), /urgency: expected a string, got number/);
  // Descriptions are stored clipped.
  const long = structuredClone(good) as any;
  long.openssl['CVE-2099-1001'].description = 'y'.repeat(5000);
  t.equal(find(parseFeed(JSON.stringify(long), 'l').entries, 'CVE-2099-1001')[0]!.description!.length, DEFAULT_FEED_LIMITS.descriptionChars);
});

// ---------------------------------------------------------------------------------------------------------------
// Store

const GOOD_FEEDS = ['tracker.json', 'osv-dsa.json', 'osv-records.json', 'osv.jsonl'].map(fixture);

async function snapshot(dataDir: string): Promise<{ status: unknown; entries: number; findings: Array<[string, string, string]> }> {
  const store = await openSqliteVulnStore(dataDir);
  try {
    const packages: InventoryEntry[] = [
      { name: 'libssl3', source: 'openssl', version: '3.0.19-1~deb12u2' },
      { name: 'bash', source: 'bash', version: '5.2.15-2+b8' },
    ];
    return {
      status: await store.status(),
      entries: (await store.entries()).length,
      findings: (await CveDatabase.open(store)).match(packages, BOOKWORM).map((f) => [f.cve, f.source, f.fixed]),
    };
  } finally {
    await store.close();
  }
}

t.test('store: load, record, reload index on a new generation; a failed load keeps the previous data', async (t) => {
  const data = tempDir(t);
  const first = await updateCveStore({ dataDir: data, from: GOOD_FEEDS, now: new Date('2099-04-01T00:00:00Z') });
  t.match(first, { generation: 1, loadedAt: '2099-04-01T00:00:00.000Z', entries: 27, releases: ['bookworm', 'bullseye', 'sid', 'trixie'] });
  t.same(
    first.origins.map((o) => [o.from, o.format, o.stats.entries]),
    [
      [fixture('tracker.json'), 'debian-tracker', 20],
      [fixture('osv-dsa.json'), 'osv', 4],
      [fixture('osv-records.json'), 'osv', 3],
      [fixture('osv.jsonl'), 'osv', 2],
    ],
  );
  t.match(first.origins[0]!.sha256, /^[0-9a-f]{64}$/);
  const before = await snapshot(data);
  t.same(before.findings, [
    ['CVE-2099-1001', 'openssl', '3.0.99-1~deb12u2'],
    ['CVE-2099-1101', 'bash', '5.2.15-2+deb12u1'],
    ['CVE-2099-1004', 'openssl', '3.0.99-1~deb12u2'],
  ]);
  t.match(before.status, { entries: 27, feeds: [{ name: 'debian-tracker', entries: 20 }, { name: 'osv', entries: 9 }] }, 'tracker 20 + DSA 4 + records 3 + JSON Lines 2, less 2 duplicates');
  t.equal(before.entries, 29, 'stored per feed: the 2 entries the tracker and OSV both have are merged when read');

  for (const [name, message] of BAD) {
    await t.rejects(updateCveStore({ dataDir: data, from: [fixture('tracker.json'), fixture(`bad/${name}`)] }), { name: 'CveFeedError', message }, name);
    t.same(await snapshot(data), before, `after ${name}: previous data still answers`);
  }
  // Inputs that fail before parsing: missing file, a folder without feeds, size caps, gzip bombs, binary junk.
  const dir = tempDir(t);
  await t.rejects(updateCveStore({ dataDir: data, from: [join(dir, 'nope.json')] }), /nope\.json: cannot read \(no such file\)/);
  mkdirSync(join(dir, 'empty-folder'));
  await t.rejects(updateCveStore({ dataDir: data, from: [join(dir, 'empty-folder')] }), /folder has no \.json or \.jsonl files/);
  await t.rejects(updateCveStore({ dataDir: data, from: [fixture('tracker.json')], maxBytes: 1000 }), /larger than 1000 bytes/);
  const bomb = writeTemp(dir, 'bomb.json.gz', gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20)));
  await t.rejects(updateCveStore({ dataDir: data, from: [bomb], maxBytes: 1024 * 1024 }), /bomb\.json\.gz \(unpacked\): larger than 1048576 bytes/);
  const cutGz = writeTemp(dir, 'cut.json.gz', gzipSync(read('tracker.json')).subarray(0, 200));
  await t.rejects(updateCveStore({ dataDir: data, from: [cutGz] }), /cut\.json\.gz: corrupt or truncated gzip data/);
  const binary = writeTemp(dir, 'bin.json', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
  await t.rejects(updateCveStore({ dataDir: data, from: [binary] }), /bin\.json: not valid UTF-8 text/);
  const zip = writeTemp(dir, 'all.zip', Buffer.from('PK\u0003\u0004rest'));
  await t.rejects(updateCveStore({ dataDir: data, from: [zip] }), /a zip archive; unzip it/);
  t.same(await snapshot(data), before, 'still the first load');

  // gzip and folders of OSV files load; the other connection's index follows the new generation.
  const readerStore = await openSqliteVulnStore(data);
  t.teardown(() => readerStore.close());
  const reader = await CveDatabase.open(readerStore);
  const index1 = reader.index();
  await reader.refresh();
  t.equal(reader.index(), index1, 'index kept while the generation is unchanged');
  const osvDir = join(dir, 'osv');
  mkdirSync(osvDir);
  writeFileSync(join(osvDir, 'DSA-9999-1.json'), read('osv-dsa.json'));
  writeFileSync(join(osvDir, 'records.jsonl'), read('osv.jsonl'));
  writeFileSync(join(osvDir, 'README.txt'), 'ignored');
  const gz = writeTemp(dir, 'tracker.json.gz', gzipSync(read('tracker.json')));
  const second = await updateCveStore({ dataDir: data, from: [gz, osvDir] });
  t.match(second, { generation: 2, entries: 20 + 4 - 2 + 2 });
  t.same(second.origins.map((o) => o.from), [gz, join(osvDir, 'DSA-9999-1.json'), join(osvDir, 'records.jsonl')]);
  t.equal(reader.index(), index1, 'the held index answers until a refresh');
  await reader.refresh();
  const index2 = reader.index();
  t.not(index2, index1);
  t.equal(index2.generation, 2);
  t.equal((await readerStore.status())!.generation, 2);

  // It is the scoring engine's (synchronous) matcher.
  t.equal(reader.generation, 2);
  t.ok(reader.loaded);
  t.same(reader.match([{ name: 'libssl3', source: 'openssl', version: '3.0.19-1~deb12u2' }], BOOKWORM, []).map((f) => f.cve), ['CVE-2099-1001', 'CVE-2099-1004']);
  const emptyStore = await openSqliteVulnStore(tempDir(t));
  t.teardown(() => emptyStore.close());
  const empty = await CveDatabase.open(emptyStore);
  t.notOk(empty.loaded, 'nothing loaded yet');
  t.same(empty.match([{ name: 'libssl3', source: 'openssl', version: '1.0' }], BOOKWORM), []);
});

t.test('CveDatabase: re-checks the store every recheckMs and follows a load from another connection', async (t) => {
  const data = tempDir(t);
  const store = await openSqliteVulnStore(data);
  t.teardown(() => store.close());
  const db = await CveDatabase.open(store, { recheckMs: 20 });
  t.teardown(() => db.close());
  t.equal(db.generation, 0);
  await updateCveStore({ dataDir: data, from: [fixture('tracker.json')] });
  for (let i = 0; i < 100 && db.generation === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(db.generation, 1, 'the new generation, without a refresh() call');
  t.ok(db.index().size > 0);
});

// ---------------------------------------------------------------------------------------------------------------
// Matching

function fixtureIndex() {
  const feeds = ['tracker.json', 'osv-dsa.json', 'osv-records.json', 'osv.jsonl'].map((f) => parseFeed(read(f), f).entries);
  return buildIndex(mergeEntries(feeds));
}

t.test('matching rules: release, source versions, introduced, exposure, order', async (t) => {
  const index = fixtureIndex();
  const pkgs: InventoryEntry[] = [
    { name: 'openssl', source: 'openssl', version: '3.0.19-1~deb12u2' },
    { name: 'libssl3', source: 'openssl', version: '3.0.19-1~deb12u2' },
    { name: 'bash', source: 'bash', version: '5.2.15-2+b8' },
    { name: 'mosquitto', source: 'mosquitto', version: '2.0.11-1.2+deb12u2' },
    { name: 'openssh-server', source: 'openssh', version: '1:9.2p1-2+deb12u6' },
    { name: 'openssh-client', source: 'openssh', version: '1:9.2p1-2+deb12u6' },
    { name: 'gpg-agent', source: 'gnupg2', version: '2.2.40-1.1+deb12u2' },
    { name: 'libxml2', source: 'libxml2', version: '2.9.14+dfsg-1.3~deb12u5' },
    { name: 'dmsetup', source: 'lvm2', version: '2:1.02.185-2' },
    { name: 'broken', source: 'curl', version: '1.0-' }, // unparsable: skipped, not fatal
  ];
  const none = matchPackages(index, pkgs, BOOKWORM);
  const ids = (fs: CveFinding[]) => fs.map((f) => `${f.cve}/${f.source}`);
  // Severity first; then remote before local; then by name.
  t.same(ids(none), ['CVE-2099-1701/openssh', 'CVE-2099-1001/openssl', 'CVE-2099-1801/mosquitto', 'CVE-2099-1101/bash', 'CVE-2099-2201/gnupg2', 'CVE-2099-1004/openssl']);
  const ossl = none.find((f) => f.cve === 'CVE-2099-1001')!;
  t.same(ossl, {
    cve: 'CVE-2099-1001',
    source: 'openssl',
    packages: ['libssl3', 'openssl'],
    installed: '3.0.19-1~deb12u2',
    fixed: '3.0.99-1~deb12u2',
    severity: 'high',
    remote: true,
    exposed: false,
    action: 'apt-get install --only-upgrade libssl3 openssl',
    description: 'Synthetic test entry: remote memory corruption in the TLS record layer.',
    advisory: 'DSA-9999-1',
  });
  t.equal(none.find((f) => f.cve === 'CVE-2099-1101')!.installed, '5.2.15-2', 'binNMU suffix removed: the source version');
  t.notOk(none.some((f) => f.cve === 'CVE-2099-1102'), 'fixed exactly in the installed source version');
  t.notOk(none.some((f) => f.cve === 'CVE-2099-2102'), 'installed predates the introducing version');
  t.notOk(none.some((f) => f.source === 'lvm2'), 'without its source version dmsetup (2:1.02…) cannot be compared with lvm2 (2.03…)');
  const withSource = matchPackages(index, pkgs.map((p) => (p.name === 'dmsetup' ? { ...p, sourceVersion: '2.03.16-2' } : p)), BOOKWORM);
  t.match(withSource.find((f) => f.source === 'lvm2'), { cve: 'CVE-2099-1301', installed: '2.03.16-2', packages: ['dmsetup'] });

  // Introduced: a version inside [introduced, fixed) is affected.
  const inRange = matchPackages(index, [{ name: 'libxml2', source: 'libxml2', version: '2.9.14+dfsg-1.3~deb12u95' }], BOOKWORM);
  t.same(ids(inRange), ['CVE-2099-2102/libxml2']);

  // Exposure: a non-loopback listener owned by the package's daemon.
  const sockets = [
    { protocol: 'tcp' as const, address: '0.0.0.0', port: 1883, process: 'mosquitto' }, // process = binary name
    { protocol: 'tcp6' as const, address: '::', port: 22, process: 'sshd' }, // daemon table
    { protocol: 'tcp' as const, address: '127.0.0.1', port: 9999, process: 'gpg-agent' }, // loopback only
  ];
  const exposed = matchPackages(index, pkgs, BOOKWORM, sockets);
  t.same(
    exposed.filter((f) => f.exposed).map((f) => f.source),
    ['openssh', 'mosquitto'],
  );
  // Among equal severity: exposed and remote first, then remote, then by name.
  const two = buildIndex([
    { id: 'CVE-2099-0001', source: 'aaa', release: 'bookworm', fixed: '2.0', severity: 'high', remote: true },
    { id: 'CVE-2099-0002', source: 'mmm', release: 'bookworm', fixed: '2.0', severity: 'high', remote: null },
    { id: 'CVE-2099-0003', source: 'zzz', release: 'bookworm', fixed: '2.0', severity: 'high', remote: true },
    { id: 'CVE-2099-0004', source: 'bbb', release: 'bookworm', fixed: '2.0', severity: 'critical', remote: false },
  ]);
  const three: InventoryEntry[] = ['aaa', 'mmm', 'zzz', 'bbb'].map((n) => ({ name: n, source: n, version: '1.0' }));
  t.same(ids(matchPackages(two, three, BOOKWORM)), ['CVE-2099-0004/bbb', 'CVE-2099-0001/aaa', 'CVE-2099-0003/zzz', 'CVE-2099-0002/mmm']);
  t.same(ids(matchPackages(two, three, BOOKWORM, [{ protocol: 'tcp', address: '0.0.0.0', port: 1, process: 'zzz' }])), [
    'CVE-2099-0004/bbb',
    'CVE-2099-0003/zzz',
    'CVE-2099-0001/aaa',
    'CVE-2099-0002/mmm',
  ]);
  const wide = matchPackages(index, pkgs, BOOKWORM, [{ protocol: 'tcp', address: '10.0.0.5', port: 9999, process: 'gpg-agent' }]);
  t.ok(wide.find((f) => f.source === 'gnupg2')!.exposed, 'process name = binary name → its source');
  const truncatedComm = matchPackages(index, [{ name: 'openssh-server-x', source: 'openssh', version: '1:9.2p1-2' }], BOOKWORM, [
    { protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'openssh-server-' },
  ]);
  t.ok(truncatedComm[0]!.exposed, '15-character /proc comm matches a longer binary name');

  // Releases.
  t.same(matchPackages(index, pkgs, { id: 'debian', versionId: '11' }).map((f) => f.cve), [], 'bullseye data: these versions are all newer than its fixes');
  t.same(
    ids(matchPackages(index, [{ name: 'libssl1.1', source: 'openssl', version: '1.1.1w-0+deb11u1' }], { id: 'debian', versionId: '11' })),
    ['CVE-2099-1001/openssl', 'CVE-2023-5678/openssl', 'CVE-2099-1004/openssl'],
  );
  t.same(matchPackages(index, pkgs, { id: 'ubuntu', versionId: '22.04', versionCodename: 'jammy' }), [], 'not Debian: no findings');
  t.equal(debianRelease({ id: 'raspbian', versionId: '11' }), 'bullseye');
  t.equal(debianRelease({ id: 'debian', versionId: '13' }), 'trixie');
  t.equal(debianRelease({ id: 'debian', versionId: '14' }), 'forky');
  t.equal(debianRelease({ id: 'debian', versionId: '16' }), 'debian-16');
  t.equal(debianRelease({ id: 'linux', versionCodename: 'bookworm' }), 'bookworm');
  t.equal(debianRelease({ id: 'debian' }), null);

  // Kernel images are built by linux-signed-<arch> but CVEs are filed against linux.
  const k = buildIndex([{ id: 'CVE-2099-3001', source: 'linux', release: 'bookworm', fixed: '6.1.99-1', severity: 'high', remote: false }]);
  t.same(ids(matchPackages(k, [{ name: 'linux-image-6.1.0-18-amd64', source: 'linux-signed-amd64', version: '6.1.76-1' }], BOOKWORM)), ['CVE-2099-3001/linux']);
});

/** What dpkg itself says this host has installed: binary → source name and source version (dpkg-query). */
function dpkgQuerySources(): Map<string, { binaries: string[]; versions: string[] }> {
  const out = execFileSync('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}\t${Package}\t${source:Package}\t${source:Version}\n'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const map = new Map<string, { binaries: string[]; versions: string[] }>();
  for (const line of out.split('\n')) {
    const [status, pkg, src, ver] = line.split('\t');
    if (!status?.startsWith('ii') || !pkg || !src || !ver) continue;
    const e = map.get(src) ?? { binaries: [], versions: [] };
    e.binaries.push(pkg);
    e.versions.push(ver);
    map.set(src, e);
  }
  return map;
}

const dpkgSays = (a: string, rel: string, b: string) => spawnSync('dpkg', ['--compare-versions', a, rel, b]).status === 0;

/** The tracker fixture's expected findings on this host, computed with dpkg-query and dpkg only. */
function oracleFindings(): Array<{ cve: string; source: string; installed: string; fixed: string }> {
  const tracker = JSON.parse(read('tracker.json')) as Record<string, Record<string, { releases: Record<string, { status: string; fixed_version?: string; urgency?: string }> }>>;
  const installed = dpkgQuerySources();
  const out: Array<{ cve: string; source: string; installed: string; fixed: string }> = [];
  for (const [source, issues] of Object.entries(tracker)) {
    const have = installed.get(source);
    if (!have) continue;
    const lowest = have.versions.reduce((a, b) => (dpkgSays(b, 'lt', a) ? b : a));
    for (const [cve, issue] of Object.entries(issues)) {
      const r = issue.releases.bookworm;
      if (!r || r.status !== 'resolved' || !r.fixed_version || r.fixed_version === '0' || r.urgency === 'unimportant') continue;
      if (dpkgSays(lowest, 'lt', r.fixed_version)) out.push({ cve, source, installed: lowest, fixed: r.fixed_version });
    }
  }
  return out.sort((a, b) => a.cve.localeCompare(b.cve));
}

t.test("this machine's real dpkg status, checked against dpkg-query and dpkg", async (t) => {
  if (!existsSync('/var/lib/dpkg/status') || (!haveDpkg && !requireCommand(t, 'dpkg-query', 'dpkg'))) return;
  const inventory = inventoryFromDpkgStatus(readFileSync('/var/lib/dpkg/status', 'utf8'));
  t.ok(inventory.length > 50, `${inventory.length} installed packages`);
  const index = buildIndex(parseFeed(read('tracker.json'), 'tracker.json').entries);
  const ours = matchPackages(index, inventory, BOOKWORM)
    .map((f) => ({ cve: f.cve, source: f.source, installed: f.installed, fixed: f.fixed }))
    .sort((a, b) => a.cve.localeCompare(b.cve));
  const expected = oracleFindings();
  t.same(ours, expected, `${expected.length} findings, as dpkg decides them`);
  // The fixture is built so this Debian 12 host has findings (openssl, bash binNMU, util-linux epoch, lvm2 …).
  const installed = dpkgQuerySources();
  if (installed.has('openssl') && installed.has('bash')) t.ok(expected.length >= 3, 'the fixture produces findings here');
  // Source versions come from "Source: name (version)" for every binary that has one.
  const util = inventory.find((p) => p.name === 'bsdutils');
  if (util) t.equal(util.sourceVersion, installed.get('util-linux')!.versions[installed.get('util-linux')!.binaries.indexOf('bsdutils')]);
});

// ---------------------------------------------------------------------------------------------------------------
// CLI

/**
 * The CLI entry: dist/cli/main.js once `wott cve` is registered there, otherwise a shim that registers the same
 * commands on a bare commander program (so these tests run before the one-line registration lands).
 */
async function cliEntry(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const help = spawnSync(process.execPath, [CLI, 'cve', '--help'], { encoding: 'utf8' });
  if (help.status === 0 && /update/.test(help.stdout)) return CLI;
  const shim = `import { Command, InvalidArgumentError } from ${JSON.stringify(pathToFileURL(resolve('node_modules/commander/esm.mjs')).href)};
import { registerCveCommands } from ${JSON.stringify(resolve('dist/cli/cve.js'))};
const program = new Command('wott').showHelpAfterError();
registerCveCommands(program, { dataDir: './wott-data' });
try { await program.parseAsync(process.argv); } catch (err) {
  process.stderr.write('wott: ' + err.message + '\\n'); process.exitCode = err instanceof InvalidArgumentError ? 2 : 1; }`;
  return writeTemp(tempDir(t), 'wott-cve-shim.mjs', shim);
}

/** A CA in `data`: the cve commands, like every command but `ca init` and `gateway`, refuse a folder without one. */
async function caIn(t: { equal(a: unknown, b: unknown, m?: string): unknown }, data: string): Promise<string> {
  const init = await wott(CLI, ['ca', 'init', '--data', data]);
  t.equal(init.code, 0, init.stderr);
  return data;
}

async function wott(entry: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [entry, ...args], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

t.test('CLI: cve update, status, check on this host', async (t) => {
  const entry = await cliEntry(t);
  const data = await caIn(t, join(tempDir(t), 'data'));
  const none = await wott(entry, ['cve', 'check', '--data', data]);
  t.equal(none.code, 2);
  t.match(none.stderr, /no CVE data in .*cve\.db; run wott cve update --from FILE\|URL first/);

  const up = await wott(entry, ['cve', 'update', '--data', data, ...GOOD_FEEDS.flatMap((f) => ['--from', f])]);
  t.equal(up.code, 0, up.stderr);
  t.match(up.stdout, /^loaded feed debian-tracker \(20 entries\), osv \(9 entries\); the other feeds are kept\n/);
  t.match(up.stdout, /CVE data: 27 entries \(23 with a fix, 4 open\) for \d+ source packages in 4 releases \(bookworm, bullseye, sid, trixie\), from 2 feed\(s\)/);
  t.match(up.stdout, /tracker\.json: debian-tracker, [\d,]+ bytes, 17 records → 20 entries; skipped 3 not affected, 1 unimportant/);
  t.match(up.stderr, /parsed 29 entries; writing the store/, 'per feed: 20 + 9');

  const other = await caIn(t, join(tempDir(t), 'data'));
  const only = await wott(entry, ['cve', 'update', '--data', other, '--from', fixture('tracker.json'), '--release', 'bookworm', '--release', 'trixie']);
  t.equal(only.code, 0, only.stderr);
  t.match(only.stdout, /in 2 releases \(bookworm, trixie\)/, '--release keeps only those releases');
  const nothing = await wott(entry, ['cve', 'update', '--data', other, '--from', fixture('tracker.json'), '--release', 'jessie']);
  t.equal(nothing.code, 2);
  t.match(nothing.stderr, /feed debian-tracker: no entries for jessie \(it covers bookworm, bullseye, sid, trixie\); the store is unchanged/);

  const noFrom = await wott(entry, ['cve', 'update', '--data', data]);
  t.equal(noFrom.code, 2);
  t.match(noFrom.stderr, /give --from FILE\|URL/);

  const bad = await wott(entry, ['cve', 'update', '--data', data, '--from', fixture('tracker.json'), '--from', fixture('bad/truncated-tracker.json')]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^wott: .*truncated-tracker\.json: not valid JSON \(truncated or corrupt\?\)/);
  t.equal(bad.stdout, '');
  const status = JSON.parse((await wott(entry, ['cve', 'status', '--data', data, '--json'])).stdout) as { generation: number; entries: number };
  t.match(status, { generation: 1, entries: 27 }, 'unchanged by the failed update');

  if (!existsSync('/var/lib/dpkg/status')) return;
  const check = await wott(entry, ['cve', 'check', '--data', data, '--release', 'bookworm', '--json', '--no-listening']);
  t.equal(check.code, 0, check.stderr);
  const result = JSON.parse(check.stdout) as { release: string; packages: number; data: { generation: number }; findings: CveFinding[] };
  t.match(result, { release: 'bookworm', data: { generation: 1 } });
  // The same as the module on the same inventory and data.
  const inventory = inventoryFromDpkgStatus(readFileSync('/var/lib/dpkg/status', 'utf8'));
  const store = await openSqliteVulnStore(data);
  const direct = (await CveDatabase.open(store)).match(inventory, BOOKWORM);
  await store.close();
  t.same(result.findings, direct);
  t.equal(result.packages, inventory.length);
  if (haveDpkg) {
    const trackerOnly = oracleFindings().map((f) => `${f.cve}/${f.source}`);
    const got = result.findings.map((f) => `${f.cve}/${f.source}`);
    t.same(trackerOnly.filter((id) => !got.includes(id)), [], 'every tracker finding dpkg computes is reported');
  }
  const human = await wott(entry, ['cve', 'check', '--data', data, '--release', 'bookworm', '--dpkg-status', '/var/lib/dpkg/status']);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, new RegExp(`^bookworm: [\\d,]+ packages, ${direct.length} finding\\(s\\)`));
  if (direct.length) t.match(human.stdout, /fix: apt-get install --only-upgrade /);
  const auto = await wott(entry, ['cve', 'check', '--data', data, '--json']);
  const hostRelease = debianRelease(collectOs('/'));
  if (hostRelease) t.equal((JSON.parse(auto.stdout) as { release: string }).release, hostRelease, 'the release comes from /etc/os-release by default');
  else t.match(auto.stderr, /cannot tell the Debian release of this host .*pass --release CODENAME/);
  const buster = await wott(entry, ['cve', 'check', '--data', data, '--release', 'buster']);
  t.match(buster.stdout, /buster: .* 0 finding\(s\)[^\n]*\nwarning: the loaded data has no entries for buster/);
  const badRelease = await wott(entry, ['cve', 'check', '--data', data, '--release', 'Book Worm']);
  t.not(badRelease.code, 0);
  t.match(badRelease.stderr, /expected a Debian release codename/);
  const noStatus = await wott(entry, ['cve', 'check', '--data', data, '--release', 'bookworm', '--dpkg-status', join(data, 'missing')]);
  t.equal(noStatus.code, 2);
  t.match(noStatus.stderr, /missing: cannot read the dpkg status file/);
});

function serve(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  return new Promise((res) => {
    const server = createServer(handler);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      res({ server, url: `http://127.0.0.1:${port}` });
    });
  });
}

t.test('CLI: cve update from a URL; unreachable, slow, failing and oversized URLs leave the store alone', async (t) => {
  const entry = await cliEntry(t);
  const data = await caIn(t, join(tempDir(t), 'data'));
  const tracker = readFileSync(fixture('tracker.json'));
  const { server, url } = await serve((req, res) => {
    if (req.url === '/tracker/data/json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(tracker);
    } else if (req.url === '/osv.jsonl.gz') {
      res.writeHead(200, { 'content-type': 'application/gzip' });
      res.end(gzipSync(readFileSync(fixture('osv.jsonl'))));
    } else if (req.url === '/truncated') {
      // Announces the full length, then hangs up half way.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(tracker.length) });
      res.write(tracker.subarray(0, 1000));
      setTimeout(() => res.destroy(), 50);
    } else if (req.url === '/slow') {
      // never answers
    } else if (req.url === '/big') {
      res.writeHead(200);
      res.end(Buffer.alloc(3 * 1024 * 1024, 0x20));
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });

  const ok = await wott(entry, ['cve', 'update', '--data', data, '--from', `${url}/tracker/data/json`, '--from', `${url}/osv.jsonl.gz`]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /CVE data: 22 entries/);
  t.match(ok.stdout, new RegExp(`${url}/tracker/data/json: debian-tracker, ${tracker.length.toLocaleString('en-US')} bytes`));
  t.match(JSON.parse(spawnSync(process.execPath, [entry, 'cve', 'status', '--data', data, '--json'], { encoding: 'utf8' }).stdout), { generation: 1, entries: 22 });
  // After each failure: the store read directly (a `cve status` process per case cost a second of CPU each).
  const status = async () => {
    const store = await openSqliteVulnStore(data);
    try {
      return { generation: await store.generation(), entries: (await store.entries()).length };
    } finally {
      await store.close();
    }
  };

  // A closed port: bind, note the port, close.
  const closed = await serve(() => undefined);
  await new Promise((r) => closed.server.close(r));
  const cases: Array<[string[], RegExp]> = [
    [['--from', `${closed.url}/json`], /wott: http:\/\/127\.0\.0\.1:\d+\/json: unreachable \(ECONNREFUSED\); the store is unchanged/],
    [['--from', `${url}/slow`, '--timeout', '500ms'], /\/slow: unreachable \(no answer within 500 ms\)/],
    [['--from', `${url}/missing`], /\/missing: HTTP 404 Not Found; the store is unchanged/],
    [['--from', `${url}/truncated`], /\/truncated: (download failed after \d+ bytes|not valid JSON)/],
    [['--from', `${url}/big`, '--max-size', '1M'], /\/big: larger than 1048576 bytes/],
    [['--from', 'ftp://example.invalid/feed.json'], /only http and https URLs are supported/],
  ];
  for (const [args, message] of cases) {
    const r = await wott(entry, ['cve', 'update', '--data', data, ...args]);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
    t.same(await status(), { generation: 1, entries: 22 }, `store unchanged after ${args.join(' ')}`);
  }
});
