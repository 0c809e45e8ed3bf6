/**
 * Debian version parsing and ordering: a line-by-line port of dpkg's parseversion() (lib/dpkg/parsehelp.c) and
 * verrevcmp()/dpkg_version_compare() (lib/dpkg/version.c), so a fixed version compares exactly as apt and dpkg
 * compare it on the device. npm libraries get corner cases wrong (`1.01` = `1.1`, `1.0-a` < `1.0-1`, `~`).
 *
 * dpkg treats some syntax problems as errors (it refuses the version) and others as warnings (it still compares).
 * Here both are errors: a feed or inventory with such a version is corrupt, and guessing would hide that.
 */

export interface DebianVersion {
  epoch: number;
  /** Upstream part (may contain `-` when there is a revision, and `:` after an epoch). */
  upstream: string;
  /** Debian revision; "" when absent (dpkg treats absent and "0" alike). */
  revision: string;
}

export class InvalidVersionError extends Error {
  override name = 'InvalidVersionError';
}

/** Longest version accepted (dpkg has no limit; real ones stay well under 100 characters). */
export const MAX_VERSION_LENGTH = 256;

const INT_MAX = 2147483647;

const isDigit = (c: number) => c >= 48 && c <= 57; // c_isdigit: ASCII only
const isAlpha = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122); // c_isalpha: ASCII only
const isBlank = (c: number) => c === 32 || c === 9; // c_isblank: space and tab only
// isspace() in the C locale, which strtol() skips before the number.
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);

/** strtol(s, &end, 10) on an ASCII string: returns the value (saturated like ERANGE) and where parsing stopped. */
function strtol(s: string): { value: number; end: number; overflow: boolean } {
  let i = 0;
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  let sign = 1;
  if (s[i] === '+' || s[i] === '-') {
    if (s[i] === '-') sign = -1;
    i++;
  }
  const digitsStart = i;
  let value = 0;
  let overflow = false;
  while (i < s.length && isDigit(s.charCodeAt(i))) {
    value = value * 10 + (s.charCodeAt(i) - 48);
    if (value > 2 ** 63) overflow = true; // beyond LONG_MAX: strtol reports ERANGE
    i++;
  }
  // No digits: strtol consumes nothing (end = start of string).
  if (i === digitsStart) return { value: 0, end: 0, overflow: false };
  return { value: sign * value, end: i, overflow };
}

function fail(version: string, why: string): never {
  throw new InvalidVersionError(`invalid Debian version ${JSON.stringify(version.length > 80 ? version.slice(0, 80) + '…' : version)}: ${why}`);
}

/** Parses `[epoch:]upstream[-revision]` exactly as dpkg does; throws InvalidVersionError with dpkg's reason. */
export function parseDebianVersion(input: string): DebianVersion {
  if (typeof input !== 'string') throw new InvalidVersionError(`invalid Debian version: expected a string, got ${input === null ? 'null' : typeof input}`);
  if (input.length > MAX_VERSION_LENGTH) fail(input, `longer than ${MAX_VERSION_LENGTH} characters`);
  // Trim leading blanks; then everything up to the next blank is the version, and only blanks may follow.
  let start = 0;
  while (start < input.length && isBlank(input.charCodeAt(start))) start++;
  if (start === input.length) fail(input, 'version string is empty');
  let end = start;
  while (end < input.length && !isBlank(input.charCodeAt(end))) end++;
  let rest = end;
  while (rest < input.length && isBlank(input.charCodeAt(rest))) rest++;
  if (rest < input.length) fail(input, 'version string has embedded spaces');

  let s = input.slice(start, end);
  let epoch = 0;
  const colon = s.indexOf(':');
  if (colon >= 0) {
    // dpkg runs strtol over the whole string and requires it to stop exactly at the first colon.
    const n = strtol(s);
    if (n.end === 0) fail(input, 'epoch in version is empty');
    if (n.end !== colon) fail(input, 'epoch in version is not number');
    if (n.value < 0) fail(input, 'epoch in version is negative');
    if (n.overflow || n.value > INT_MAX) fail(input, 'epoch in version is too big');
    // dpkg tests the character after the colon in the untrimmed string: "1: " passes this check (a blank
    // follows) and then fails below as "version number is empty"; only a colon at the very end fails here.
    if (start + colon + 1 === input.length) fail(input, 'nothing after colon in version number');
    epoch = n.value === 0 ? 0 : n.value; // no -0
    s = s.slice(colon + 1);
  }
  // The revision follows the last hyphen; the upstream part may itself contain hyphens.
  const hyphen = s.lastIndexOf('-');
  let upstream = s;
  let revision = '';
  if (hyphen >= 0) {
    upstream = s.slice(0, hyphen);
    revision = s.slice(hyphen + 1);
    if (revision === '') fail(input, 'revision number is empty');
  }
  if (upstream === '') fail(input, 'version number is empty');
  // dpkg only warns about the rest (and still compares); a feed carrying such versions is corrupt, so refuse.
  if (!isDigit(upstream.charCodeAt(0))) fail(input, 'version number does not start with digit');
  for (let i = 1; i < upstream.length; i++) {
    const c = upstream.charCodeAt(i);
    if (!isDigit(c) && !isAlpha(c) && '.-+~:'.indexOf(upstream[i]!) < 0) fail(input, 'invalid character in version number');
  }
  for (let i = 0; i < revision.length; i++) {
    const c = revision.charCodeAt(i);
    if (!isDigit(c) && !isAlpha(c) && '.+~'.indexOf(revision[i]!) < 0) fail(input, 'invalid character in revision number');
  }
  return { epoch, upstream, revision };
}

/** dpkg's order(): digits sort as 0 (handled separately), letters by ASCII, `~` before everything (even the end), others after letters. */
function order(c: number): number {
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126) return -1; // '~'
  if (c) return c + 256;
  return 0; // end of string
}

/**
 * dpkg's verrevcmp(): alternating non-digit and digit runs. Non-digit runs compare character by character with
 * order(); digit runs compare numerically (leading zeros skipped, then the longer run wins, else the first
 * differing digit). `0` stands for "past the end", as the NUL terminator does in C.
 */
export function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  const at = (s: string, k: number) => (k < s.length ? s.charCodeAt(k) : 0);
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(at(a, i))) || (j < b.length && !isDigit(at(b, j)))) {
      const ac = order(at(a, i));
      const bc = order(at(b, j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (at(a, i) === 48) i++;
    while (at(b, j) === 48) j++;
    while (isDigit(at(a, i)) && isDigit(at(b, j))) {
      if (!firstDiff) firstDiff = at(a, i) - at(b, j);
      i++;
      j++;
    }
    if (isDigit(at(a, i))) return 1;
    if (isDigit(at(b, j))) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** dpkg_version_compare() on parsed versions: epoch, then upstream, then revision. Returns -1, 0 or 1. */
export function compareParsedVersions(a: DebianVersion, b: DebianVersion): -1 | 0 | 1 {
  if (a.epoch > b.epoch) return 1;
  if (a.epoch < b.epoch) return -1;
  const rc = verrevcmp(a.upstream, b.upstream) || verrevcmp(a.revision, b.revision);
  return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}

/** Compares two version strings as `dpkg --compare-versions` does; throws InvalidVersionError on bad syntax. */
export function compareDebianVersions(a: string, b: string): -1 | 0 | 1 {
  return compareParsedVersions(parseDebianVersion(a), parseDebianVersion(b));
}

/** True when `s` is a version dpkg accepts without warnings. */
export function isValidDebianVersion(s: string): boolean {
  try {
    parseDebianVersion(s);
    return true;
  } catch {
    return false;
  }
}

/** The canonical spelling (epoch shown only when non-zero), e.g. for messages and de-duplication. */
export function formatDebianVersion(v: DebianVersion): string {
  return `${v.epoch ? `${v.epoch}:` : ''}${v.upstream}${v.revision ? `-${v.revision}` : ''}`;
}
