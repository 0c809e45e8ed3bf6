/**
 * Accounts whose password is a well-known vendor/distribution default, checked by re-hashing the default with
 * the account's own hash as salt. Only {user, scheme} leaves this module, never a password.
 */
import { clip, readText, under } from './fs.js';

/** crypt(3): returns the hash of password under salt (a full hash works as salt), or undefined. */
export type CryptFn = (password: string, salt: string) => string | undefined;

export interface DefaultCredential {
  user: string;
  scheme: string;
}

/** Well-known default user:password pairs of boards, images and appliances. */
export const DEFAULT_CREDENTIALS: ReadonlyArray<readonly [user: string, password: string]> = [
  ['pi', 'raspberry'], // Raspberry Pi OS before April 2022
  ['root', 'root'],
  ['root', 'toor'],
  ['root', 'password'],
  ['root', 'admin'],
  ['root', '1234'], // Armbian first boot
  ['root', '123456'],
  ['root', 'default'],
  ['root', 'raspberry'],
  ['root', 'orangepi'],
  ['root', 'dietpi'],
  ['root', 'openelec'],
  ['root', 'libreelec'],
  ['root', 'alpine'],
  ['root', 'vagrant'],
  ['admin', 'admin'],
  ['admin', 'password'],
  ['admin', '1234'],
  ['ubnt', 'ubnt'],
  ['user', 'user'],
  ['odroid', 'odroid'],
  ['debian', 'temppwd'], // BeagleBone
  ['orangepi', 'orangepi'],
  ['dietpi', 'dietpi'],
  ['alarm', 'alarm'], // Arch Linux ARM
  ['ubuntu', 'ubuntu'],
  ['linaro', 'linaro'],
  ['osmc', 'osmc'],
  ['volumio', 'volumio'],
  ['rock', 'rock'], // Radxa
  ['radxa', 'radxa'],
  ['khadas', 'khadas'],
  ['nvidia', 'nvidia'], // Jetson
  ['olimex', 'olimex'],
  ['kali', 'kali'],
  ['vagrant', 'vagrant'],
  ['guest', 'guest'],
  ['test', 'test'],
  ['support', 'support'],
];

const MAX_ACCOUNTS = 4096;
const MAX_REPORTED = 64;
const NO_LOGIN_SHELLS = new Set(['/usr/sbin/nologin', '/sbin/nologin', '/bin/false', '/usr/bin/false', '/bin/sync']);

/** Names the crypt scheme from a hash's prefix; undefined when it is not a crypt hash. */
export function hashScheme(hash: string): string | undefined {
  if (hash.startsWith('$y$')) return 'yescrypt';
  if (hash.startsWith('$gy$')) return 'gost-yescrypt';
  if (hash.startsWith('$7$')) return 'scrypt';
  if (/^\$2[abxy]\$/.test(hash)) return 'bcrypt';
  if (hash.startsWith('$6$')) return 'sha512crypt';
  if (hash.startsWith('$5$')) return 'sha256crypt';
  if (hash.startsWith('$sha1$')) return 'sha1crypt';
  if (hash.startsWith('$1$')) return 'md5crypt';
  if (/^_[./0-9A-Za-z]{19}$/.test(hash)) return 'bsdicrypt';
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) return 'des';
  return undefined;
}

/** user -> [password field, shell?] from passwd/shadow-style colon files. */
function readColonFile(path: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const text = readText(path, 4 * 1024 * 1024);
  if (text === undefined) return out;
  for (const line of text.split('\n')) {
    if (out.size >= MAX_ACCOUNTS) break;
    const f = line.split(':');
    const user = f[0];
    // NIS "+" entries and junk without fields are not local accounts.
    if (f.length < 2 || !user || user.startsWith('+') || user.startsWith('-') || /\s/.test(user)) continue;
    if (!out.has(user)) out.set(user, f);
  }
  return out;
}

export function collectDefaultCredentials(root: string, crypt?: CryptFn): DefaultCredential[] {
  const shadow = readColonFile(under(root, 'etc/shadow'));
  const passwd = readColonFile(under(root, 'etc/passwd'));
  // Accounts without a shadow entry may still carry a hash in passwd (pre-shadow systems).
  const accounts = new Map<string, string>();
  for (const [user, f] of shadow) accounts.set(user, f[1] ?? '');
  for (const [user, f] of passwd) if (!accounts.has(user) && f[1] !== undefined && f[1] !== 'x') accounts.set(user, f[1]);

  const found: DefaultCredential[] = [];
  for (const [user, hash] of accounts) {
    if (found.length >= MAX_REPORTED) break;
    if (hash === '') {
      // An empty password lets anyone in where PAM allows nullok; only matters for accounts with a shell.
      const shell = passwd.get(user)?.[6]?.trim();
      if (shell === undefined || !NO_LOGIN_SHELLS.has(shell)) found.push({ user: clip(user, 64), scheme: 'empty' });
      continue;
    }
    // "!..." and "*..." are locked; anything else that is not a crypt hash cannot match.
    if (hash.startsWith('!') || hash.startsWith('*')) continue;
    const scheme = hashScheme(hash);
    if (scheme === undefined || crypt === undefined) continue;
    for (const [defUser, password] of DEFAULT_CREDENTIALS) {
      if (defUser !== user) continue;
      let result: string | undefined;
      try {
        result = crypt(password, hash);
      } catch {
        result = undefined;
      }
      if (result !== undefined && result === hash) {
        found.push({ user: clip(user, 64), scheme });
        break;
      }
    }
  }
  return found;
}
