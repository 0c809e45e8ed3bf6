/**
 * crypt(3) through perl (perl-base is Essential on Debian and its crypt() is libxcrypt's, so yescrypt,
 * sha512crypt, sha256crypt, md5crypt and DES all work). NOT pure: spawns a process per call. Password and
 * salt travel on stdin, never in the script or argv, so hostile input cannot choose code or paths.
 */
import { spawnSync } from 'node:child_process';

const SCRIPT = 'binmode STDIN; binmode STDOUT; local $/; my $in = <STDIN>; my ($p, $s) = split /\\0/, $in, 2; ' +
  'exit 2 unless defined $s; my $r = crypt($p, $s); exit 1 unless defined $r; print $r;';

/** Returns crypt(password, salt), or undefined when perl is missing or the scheme is unsupported. */
export function realCrypt(password: string, salt: string): string | undefined {
  // NUL is the separator; neither a password nor a crypt salt can contain one.
  if (password.includes('\0') || salt.includes('\0') || salt.length > 1024 || password.length > 1024) return undefined;
  // A clean environment: no PERL5OPT/PERL5LIB from the caller's environment can load code.
  const env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };
  const r = spawnSync('perl', ['-e', SCRIPT], { input: `${password}\0${salt}`, env, encoding: 'utf8', timeout: 10_000, maxBuffer: 64 * 1024 });
  if (r.error || r.status !== 0 || typeof r.stdout !== 'string') return undefined;
  const out = r.stdout;
  // libxcrypt signals failure with "*0"/"*1" instead of NULL.
  if (out === '' || out.startsWith('*')) return undefined;
  return out;
}
