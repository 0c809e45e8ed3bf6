/**
 * Effective sshd settings from etc/ssh/sshd_config and its Includes, evaluated the way sshd does for a
 * connection that matches no Match block: first value wins, Match blocks are skipped, OpenSSH 9 defaults fill
 * the rest. Includes are resolved only inside the given root.
 */
import { isAbsolute, join, posix } from 'node:path';
import { clip, exists, isInside, listDir, readText, realPath, under } from './fs.js';

export interface SshState {
  installed: boolean;
  settings: Record<string, string>;
}

/** OpenSSH 9 defaults (sshd_config(5)) for the audited keywords. */
export const SSHD_DEFAULTS: Readonly<Record<string, string>> = {
  port: '22',
  passwordauthentication: 'yes',
  permitrootlogin: 'prohibit-password',
  permitemptypasswords: 'no',
  pubkeyauthentication: 'yes',
  x11forwarding: 'no',
  maxauthtries: '6',
  maxsessions: '10',
  allowtcpforwarding: 'yes',
  allowagentforwarding: 'yes',
  gatewayports: 'no',
  permittunnel: 'no',
  clientaliveinterval: '0',
  clientalivecountmax: '3',
  logingracetime: '120',
  usepam: 'no',
  protocol: '2',
  ignorerhosts: 'yes',
  hostbasedauthentication: 'no',
  kbdinteractiveauthentication: 'yes',
  permituserenvironment: 'no',
  strictmodes: 'yes',
  loglevel: 'info',
};

/** Keywords reported besides the defaulted ones (no default: only reported when set). */
const EXTRA_KEYWORDS = new Set(['allowusers', 'allowgroups', 'denyusers', 'denygroups', 'ciphers', 'macs', 'kexalgorithms', 'listenaddress', 'authenticationmethods']);
/** Keywords sshd accumulates over repeated lines instead of taking the first. */
const ACCUMULATING = new Set(['port', 'listenaddress', 'allowusers', 'allowgroups', 'denyusers', 'denygroups']);
/** Values that are names, so keep their case. */
const CASE_SENSITIVE = new Set(['allowusers', 'allowgroups', 'denyusers', 'denygroups', 'listenaddress', 'ciphers', 'macs', 'kexalgorithms', 'authenticationmethods']);
/** Old spellings sshd still accepts. */
const ALIASES: Readonly<Record<string, string>> = {
  challengeresponseauthentication: 'kbdinteractiveauthentication',
  skeyauthentication: 'kbdinteractiveauthentication',
};

const MAX_DEPTH = 16; // as sshd's READCONF_MAX_DEPTH
const MAX_FILES = 256;

/** Splits an sshd_config line into words, honouring double quotes (as sshd's argv_split). */
function splitWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (const c of line) {
    if (quoted) {
      if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const c of glob) {
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Expands an Include pattern to files inside the root. The pattern is taken relative to etc/ssh when relative,
 * relative to the root when absolute; `..` components are refused and every match must resolve (after
 * symlinks) inside the root.
 */
export function resolveInclude(root: string, pattern: string): string[] {
  const rootReal = realPath(root);
  if (rootReal === undefined) return [];
  const rel = isAbsolute(pattern) ? pattern.replace(/^\/+/, '') : posix.join('etc/ssh', pattern);
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.some((p) => p === '..' || p.includes('\0'))) return [];
  let candidates = [rootReal];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of candidates) {
      if (/[*?]/.test(part)) {
        // Never list a directory that resolves outside the root.
        const dirReal = realPath(dir);
        if (dirReal === undefined || !isInside(rootReal, dirReal)) continue;
        const re = globToRegExp(part);
        // glob(3) skips dotfiles unless the pattern starts with a dot.
        for (const name of listDir(dir)) if (re.test(name) && (part.startsWith('.') || !name.startsWith('.'))) next.push(join(dir, name));
      } else {
        next.push(join(dir, part));
      }
    }
    candidates = next.slice(0, MAX_FILES);
  }
  const out: string[] = [];
  for (const c of candidates) {
    const real = realPath(c);
    if (real !== undefined && isInside(rootReal, real)) out.push(real);
  }
  return out.sort();
}

interface ParseState {
  values: Map<string, string>;
  files: number;
  stack: Set<string>;
}

function parseFile(root: string, path: string, state: ParseState, depth: number): void {
  if (depth > MAX_DEPTH || state.files >= MAX_FILES || state.stack.has(path)) return;
  const text = readText(path, 1024 * 1024);
  if (text === undefined) return;
  state.files++;
  state.stack.add(path);
  try {
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      // "Keyword value", "Keyword=value" and "Keyword = value" are all accepted by sshd.
      const m = /^([A-Za-z0-9]+)(?:\s*=\s*|\s+)(.*)$/.exec(line);
      if (!m) continue;
      let keyword = m[1]!.toLowerCase();
      keyword = ALIASES[keyword] ?? keyword;
      const args = splitWords(m[2]!.replace(/\s+#.*$/, ''));
      // Everything after a Match belongs to that Match (until the end of this file).
      if (keyword === 'match') return;
      if (keyword === 'include') {
        for (const pattern of args) for (const file of resolveInclude(root, pattern)) parseFile(root, file, state, depth + 1);
        continue;
      }
      if (!(keyword in SSHD_DEFAULTS) && !EXTRA_KEYWORDS.has(keyword)) continue;
      if (args.length === 0) continue;
      let value = args.join(' ');
      if (!CASE_SENSITIVE.has(keyword)) value = value.toLowerCase();
      const prev = state.values.get(keyword);
      if (prev === undefined) state.values.set(keyword, clip(value, 256));
      else if (ACCUMULATING.has(keyword)) state.values.set(keyword, clip(`${prev} ${value}`, 256));
    }
  } finally {
    state.stack.delete(path);
  }
}

export function collectSsh(root: string): SshState {
  const configPath = under(root, 'etc/ssh/sshd_config');
  const installed = exists(configPath) || exists(under(root, 'usr/sbin/sshd'));
  if (!installed) return { installed: false, settings: {} };
  const state: ParseState = { values: new Map(), files: 0, stack: new Set() };
  parseFile(root, realPath(configPath) ?? configPath, state, 0);
  const settings: Record<string, string> = { ...SSHD_DEFAULTS };
  for (const [k, v] of state.values) settings[k] = v;
  return { installed, settings };
}
