/**
 * Device state collectors on committed fixture roots (a hardened Debian 12 and a factory-fresh Raspberry Pi),
 * on hostile input, and on this machine's real `/`.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { telemetrySchema } from '../protocol/index.js';
import {
  collectDefaultCredentials,
  collectFailedLogins,
  collectFirewall,
  collectListening,
  collectOs,
  collectPackages,
  collectSsh,
  collectState,
  countFailedLogins,
  decodeIpv4,
  decodeIpv6,
  hashScheme,
  parseIptablesSave,
  parseNft,
  readBounded,
  readCommandOutputs,
  realCrypt,
  resolveInclude,
  MAX_FILE_BYTES,
  type CryptFn,
} from '../agent/collectors/index.js';
import { tempDir } from './helpers.js';

const DEBIAN = resolve('test/fixtures/roots/debian12-hardened');
const PI = resolve('test/fixtures/roots/rpi-factory');
// Local time, like the syslog stamps in the Pi's auth.log; the ISO stamps on Debian are UTC.
const NOW_LOCAL = new Date(2024, 10, 24, 10, 30, 0);
const NOW_UTC = new Date('2024-11-24T10:30:00Z');

const stateSchema = telemetrySchema.pick({
  os: true,
  kernel: true,
  uptimeSeconds: true,
  listening: true,
  firewall: true,
  ssh: true,
  defaultCredentials: true,
  failedLoginsLastHour: true,
  packages: true,
  autoUpdates: true,
  mac: true,
  cpuVulnerabilities: true,
  rebootRequired: true,
  insecureServices: true,
});

function put(root: string, rel: string, content: string | Buffer): string {
  const path = join(root, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  return path;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

t.test('debian12-hardened: a clean report', async (t) => {
  const nftRuleset = readFileSync(join(DEBIAN, 'etc/nftables.conf'), 'utf8');
  const r = collectState(DEBIAN, { crypt: realCrypt, now: NOW_UTC, commandOutputs: { nftRuleset } });
  stateSchema.parse(r);
  t.same(r.os, { id: 'debian', versionId: '12', versionCodename: 'bookworm', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
  t.equal(r.kernel, '6.1.0-27-amd64');
  t.equal(r.uptimeSeconds, 864012.57);
  t.same(
    r.listening,
    [
      { protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' },
      { protocol: 'tcp6', address: '::', port: 22, process: 'sshd' },
    ],
    'only sshd listens; the established TCP and connected UDP client sockets are not services',
  );
  t.same(r.firewall, { tool: 'nftables', rules: 5, defaultInputPolicy: 'drop' });
  t.same(collectFirewall(DEBIAN), { tool: 'nftables', rules: 5, defaultInputPolicy: 'drop' }, 'etc/nftables.conf as fallback');
  t.equal(r.ssh.installed, true);
  t.match(r.ssh.settings, {
    passwordauthentication: 'no', // from sshd_config.d, not the Match block
    permitrootlogin: 'no',
    maxauthtries: '3',
    x11forwarding: 'no', // the drop-in comes first, so it wins over the main file's "yes"
    kbdinteractiveauthentication: 'no',
    usepam: 'yes',
    clientaliveinterval: '300',
    logingracetime: '30',
    allowtcpforwarding: 'no',
    pubkeyauthentication: 'yes', // default
    permitemptypasswords: 'no',
    protocol: '2',
    ignorerhosts: 'yes',
    hostbasedauthentication: 'no',
    permituserenvironment: 'no',
  });
  t.same(r.defaultCredentials, [], 'strong passwords are not defaults');
  t.equal(r.failedLoginsLastHour, 0);
  t.equal(r.packages.count, 6, 'the removed telnetd (config-files) is not installed');
  t.same(
    r.packages.list?.find((p) => p.name === 'libssl3'),
    { name: 'libssl3', source: 'openssl', version: '3.0.15-1~deb12u1' },
  );
  t.same(r.packages.list?.find((p) => p.name === 'nftables'), { name: 'nftables', source: 'nftables', version: '1.0.6-2+deb12u2' }, 'no Source: own name');
  t.equal(r.autoUpdates, true);
  t.same(r.mac, { apparmor: 'enabled', selinux: 'absent' });
  t.equal(r.cpuVulnerabilities.length, 4);
  t.notOk(r.cpuVulnerabilities.some((v) => v.vulnerable));
  t.equal(r.rebootRequired, false);
  t.same(r.insecureServices, []);
});

t.test('rpi-factory: defaults, telnet, no firewall, old packages', async (t) => {
  const r = collectState(PI, { crypt: realCrypt, now: NOW_LOCAL });
  stateSchema.parse(r);
  t.same(r.os, { id: 'raspbian', versionId: '11', versionCodename: 'bullseye', prettyName: 'Raspbian GNU/Linux 11 (bullseye)' }, 'usr/lib/os-release fallback');
  t.equal(r.kernel, '5.15.84-v7l+');
  t.equal(r.uptimeSeconds, 1234.56);
  t.same(r.listening, [
    { protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' },
    { protocol: 'tcp', address: '0.0.0.0', port: 23, process: 'inetd' },
    { protocol: 'tcp', address: '127.0.0.1', port: 3306 }, // owner not visible
    { protocol: 'tcp6', address: '::', port: 22, process: 'sshd' },
    { protocol: 'tcp6', address: '::1', port: 631, process: 'cupsd' },
    { protocol: 'tcp6', address: '2001:db8::1', port: 8080 },
    { protocol: 'udp', address: '0.0.0.0', port: 68, process: 'dhcpcd' },
    { protocol: 'udp', address: '0.0.0.0', port: 5353, process: 'avahi-daemon' },
    { protocol: 'udp6', address: '::', port: 5353, process: 'avahi-daemon' },
  ]);
  t.same(r.firewall, { tool: 'none', rules: 0, defaultInputPolicy: 'unknown' }, 'no live view, no config file');
  t.same(collectFirewall(PI, { nftRuleset: '', iptablesSave: '' }), { tool: 'none', rules: 0, defaultInputPolicy: 'accept' }, 'live view, empty');
  t.match(r.ssh, { installed: true, settings: { passwordauthentication: 'yes', permitrootlogin: 'yes', x11forwarding: 'yes', kbdinteractiveauthentication: 'no', maxauthtries: '6' } });
  t.same(
    r.defaultCredentials,
    [
      { user: 'root', scheme: 'sha512crypt' },
      { user: 'pi', scheme: 'yescrypt' },
      { user: 'guest', scheme: 'empty' },
    ],
    'pi:raspberry and root:root found, the empty guest password too; the locked odroid account is skipped',
  );
  t.ok(r.defaultCredentials.every((c) => Object.keys(c).sort().join() === 'scheme,user'), 'user and scheme only, never a password');
  // 09:40 three failed passwords (one folded "repeated 2 times"), 09:52 one for an invalid user (counted once),
  // 10:01 an invalid user with no password attempt, 10:12 a console login PAM failure; 08:12 is too old.
  t.equal(r.failedLoginsLastHour, 6);
  t.equal(r.packages.count, 7);
  t.same(r.packages.list?.find((p) => p.name === 'openssl'), { name: 'openssl', source: 'openssl', version: '1.1.1n-0+deb11u3' });
  t.same(r.packages.list?.find((p) => p.name === 'telnetd'), { name: 'telnetd', source: 'netkit-telnet', version: '0.17-42+b1', sourceVersion: '0.17-42' }, 'Source: name (version)');
  t.same(r.insecureServices, ['telnetd']);
  t.equal(r.autoUpdates, false);
  t.same(r.mac, { apparmor: 'absent', selinux: 'absent' });
  t.same(
    r.cpuVulnerabilities.filter((v) => v.vulnerable).map((v) => v.name),
    ['spec_store_bypass', 'spectre_v2'],
  );
  t.equal(r.rebootRequired, true);
});

t.test('package hash: sorted lines, independent of file order', async (t) => {
  const a = collectPackages(PI);
  const expected = sha256(
    a.list
      .map((p) => `${p.name} ${p.source} ${p.version}\n`)
      .sort()
      .join(''),
  );
  t.equal(a.hash, expected);
  t.equal(collectPackages(PI).hash, a.hash, 'stable across runs');
  const root = tempDir(t);
  const stanzas = readFileSync(join(PI, 'var/lib/dpkg/status'), 'utf8').trim().split('\n\n').reverse();
  put(root, 'var/lib/dpkg/status', stanzas.join('\n\n') + '\n');
  t.equal(collectPackages(root).hash, a.hash, 'reversed status file, same hash');
  t.not(collectPackages(DEBIAN).hash, a.hash);
  t.equal(collectPackages(root + '/missing').hash, sha256(''), 'no dpkg: hash of nothing');
});

t.test('address decoding', async (t) => {
  t.equal(decodeIpv4('0100007F'), '127.0.0.1');
  t.equal(decodeIpv4('3201A8C0'), '192.168.1.50');
  t.equal(decodeIpv4('xyz'), undefined);
  t.equal(decodeIpv6('00000000000000000000000001000000'), '::1');
  t.equal(decodeIpv6('B80D0120000000000000000001000000'), '2001:db8::1');
  t.equal(decodeIpv6('0000000000000000FFFF00000100007F'), '::ffff:127.0.0.1');
  t.equal(decodeIpv6('000080FE00000000FF5E3402FEC1A2B3'), 'fe80::234:5eff:b3a2:c1fe');
  t.equal(decodeIpv6('B80D012001000000020000000300000'), undefined, '31 digits');
});

t.test('firewall text parsing', async (t) => {
  const live = `table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname "lo" accept
\t\tip saddr {
\t\t\t10.0.0.1,
\t\t\t10.0.0.2
\t\t} tcp dport 22 accept comment "admins"
\t}
}
table netdev ingress {
\tchain in {
\t\ttype filter hook ingress device "eth0" priority -500; policy drop;
\t}
}
`;
  t.same(parseNft(live), { tables: 2, rules: 2, defaultInputPolicy: 'accept' }, 'a netdev drop is not the input policy');
  t.same(parseNft('table ip t {\n chain c { type filter hook input priority 0; policy drop; }\n}'), { tables: 1, rules: 0, defaultInputPolicy: 'drop' }, 'one-line chain');
  t.same(parseNft('table ip6 t {\n chain c {\n  type filter hook input priority 0\n  policy drop\n  tcp dport 22 accept; udp dport 53 accept\n }\n}'), { tables: 1, rules: 1, defaultInputPolicy: 'drop' }, 'policy on its own line');
  t.same(parseNft('add table inet f\nadd chain inet f input { type filter hook input priority 0 ; policy drop ; }\nadd rule inet f input tcp dport 22 accept\n'), {
    tables: 1,
    rules: 1,
    defaultInputPolicy: 'drop',
  });
  const ipt = `# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080
COMMIT
`;
  t.same(parseIptablesSave(ipt), { tables: 2, rules: 4, defaultInputPolicy: 'drop' });
  t.same(collectFirewall(PI, { nftRuleset: '', iptablesSave: ipt }), { tool: 'iptables', rules: 4, defaultInputPolicy: 'drop' });
  t.same(collectFirewall(PI, { nftRuleset: live, iptablesSave: ipt }), { tool: 'nftables', rules: 2, defaultInputPolicy: 'accept' }, 'nftables first');
  t.same(collectFirewall(DEBIAN, { nftRuleset: '' }), { tool: 'none', rules: 0, defaultInputPolicy: 'accept' }, 'the live ruleset beats the config file');
});

t.test('failed logins: formats, window, year rollover', async (t) => {
  const now = new Date(2025, 0, 1, 0, 20, 0);
  const log = [
    'Dec 31 23:50:00 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2', // last year, in the window
    'Dec 31 22:50:00 h sshd[2]: Failed password for root from 192.0.2.1 port 1 ssh2', // too old
    `${new Date(now.getTime() - 60_000).toISOString().replace('Z', '123+00:00')} h sshd-session[3]: Failed password for pi from 192.0.2.1 port 1 ssh2`,
    `${new Date(now.getTime() - 120_000).toISOString()} h su[4]: pam_unix(su:auth): authentication failure; logname=pi uid=1000 euid=0 tty=pts/0 ruser=pi rhost=  user=root`,
    `${new Date(now.getTime() + 120_000).toISOString()} h sshd[5]: Failed password for pi from 192.0.2.1 port 1 ssh2`, // future
    'garbage line',
    '',
  ].join('\n');
  t.equal(countFailedLogins(log, now), 3);
  t.equal(collectFailedLogins(join(DEBIAN, 'nowhere'), now), undefined, 'no log: undefined');
});

t.test('sshd Include stays inside the root', async (t) => {
  const base = tempDir(t);
  const root = join(base, 'root');
  const outside = put(base, 'outside/evil.conf', 'PermitRootLogin yes\nMaxSessions 99\n');
  put(base, 'etc/passwd', 'PermitRootLogin yes\nMaxSessions 99\n');
  put(
    root,
    'etc/ssh/sshd_config',
    [
      'Include ../../../etc/passwd',
      'Include ../../outside/*.conf',
      `Include ${outside}`,
      `Include ${dirname(outside)}/*`,
      'Include escape/*.conf',
      'Include link.conf',
      'Include self.conf',
      'Include "conf.d/*.conf"',
      'PermitRootLogin no',
      'X11Forwarding=yes',
      'GatewayPorts clientspecified',
      'Match Address 10.0.0.0/8',
      '  AllowTcpForwarding no',
    ].join('\n'),
  );
  symlinkSync(dirname(outside), join(root, 'etc/ssh/escape'));
  symlinkSync(outside, join(root, 'etc/ssh/link.conf'));
  put(root, 'etc/ssh/self.conf', 'Include self.conf\nInclude /etc/ssh/self.conf\n');
  put(root, 'etc/ssh/conf.d/50-x.conf', 'MaxAuthTries 2\nPermitRootLogin without-password\nMatch User x\nGatewayPorts yes\n');
  put(root, 'etc/ssh/conf.d/.hidden.conf', 'LoginGraceTime 1\n');
  const s = collectSsh(root);
  t.match(s.settings, { permitrootlogin: 'without-password', maxauthtries: '2', x11forwarding: 'yes' }, 'first value wins, in Include order');
  t.equal(s.settings.maxsessions, '10', 'nothing from outside the root');
  t.equal(s.settings.logingracetime, '120', 'glob skips dotfiles');
  t.equal(s.settings.allowtcpforwarding, 'yes', 'Match block ignored');
  t.equal(s.settings.gatewayports, 'clientspecified', 'a Match inside an included file ends with that file');
  t.same(resolveInclude(root, '../../../etc/passwd'), []);
  t.same(resolveInclude(root, outside), []);
  t.same(resolveInclude(root, 'escape/*.conf'), []);
  t.same(resolveInclude(root, 'link.conf'), []);
  t.equal(resolveInclude(root, '/etc/ssh/conf.d/*.conf').length, 1);
  t.same(collectSsh(join(base, 'nothing')), { installed: false, settings: {} });
});

t.test('default credential schemes and locked accounts', async (t) => {
  const root = tempDir(t);
  const pi = readFileSync(join(PI, 'etc/shadow'), 'utf8').split('\n').find((l) => l.startsWith('pi:'))!;
  put(
    root,
    'etc/shadow',
    [
      'ubnt:$1$Wd9Kf3Pa$9GDuWyUWm7XxPn0LlGWYK1:19000:0:99999:7:::',
      'admin:$5$Jt6Rb2Ys8Hn4$IEe4.j/7u17zcDE7X3gR03DsoPYV22ImTCqJYDpWmd5:19000:0:99999:7:::',
      'user:Ab9a/nTniQhTQ:19000:0:99999:7:::',
      'root:!$5$Jt6Rb2Ys8Hn4$IEe4.j/7u17zcDE7X3gR03DsoPYV22ImTCqJYDpWmd5:19000::::::',
      'daemon::19000::::::', // empty, but nologin
      pi,
    ].join('\n'),
  );
  put(root, 'etc/passwd', 'daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n');
  t.same(collectDefaultCredentials(root, realCrypt), [
    { user: 'ubnt', scheme: 'md5crypt' },
    { user: 'admin', scheme: 'sha256crypt' },
    { user: 'user', scheme: 'des' },
    { user: 'pi', scheme: 'yescrypt' },
  ]);
  t.same(collectDefaultCredentials(root), [], 'no crypt: nothing to compare');
  const throwing: CryptFn = () => {
    throw new Error('boom');
  };
  t.same(collectDefaultCredentials(root, throwing), [], 'a failing crypt is no match');
  t.equal(hashScheme('$2b$12$abcdefghijklmnopqrstuu'), 'bcrypt');
  t.equal(hashScheme('x'), undefined);
});

t.test('realCrypt: libxcrypt via perl, inputs never interpreted', async (t) => {
  const pi = '$y$j9T$Xk3PqL0vR8sT2uWyZ1aB7.$wPSLlYLWwtOBeD3xhOL8LX0fYOGvtcc3BF2dIqnR9bA';
  t.equal(realCrypt('raspberry', pi), pi);
  t.not(realCrypt('raspberrY', pi), pi);
  const dir = tempDir(t);
  const marker = join(dir, 'pwned');
  for (const hostile of [`"; system("touch ${marker}"); "`, `$(touch ${marker})`, `'; open(F, ">${marker}"); '`, '\0x', '-e']) {
    realCrypt(hostile, hostile);
    realCrypt('x', `$6$${hostile}`);
  }
  t.notOk(existsSync(marker), 'nothing ran');
  t.equal(realCrypt('a', 'a\0b'), undefined);
});

t.test('hostile input never throws', async (t) => {
  const root = tempDir(t);
  // /proc/net: junk among one good row.
  put(
    root,
    'proc/net/tcp',
    [
      'header',
      '   0: ZZZZZZZZ:0016 00000000:0000 0A 0 0 0 0 0 1',
      '   1: 00000000:0016',
      '   2: 00000000:00161 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 7 1',
      '   3: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1',
      '\u0000\uFFFD garbage :::: 0A',
      '   4: 0100007F:0051 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 -5 1',
    ].join('\n'),
  );
  put(root, 'proc/net/tcp6', Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x41]));
  mkdirSync(join(root, 'proc/99/fd'), { recursive: true });
  symlinkSync('socket:[77', join(root, 'proc/99/fd/1'));
  symlinkSync('socket:[77]', join(root, 'proc/99/fd/notanumber'));
  t.same(collectListening(root), [{ protocol: 'tcp', address: '127.0.0.1', port: 80 }]);

  // Files far over the cap (sparse, so cheap), with the interesting line at the end.
  const big = put(root, 'var/log/auth.log', '');
  truncateSync(big, MAX_FILE_BYTES * 2);
  appendFileSync(big, '\n2024-11-24T10:20:00Z h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2\n');
  t.equal(collectFailedLogins(root, NOW_UTC), 1, 'the tail of a huge log is read');
  const huge = put(root, 'etc/os-release', 'ID=evil\n');
  truncateSync(huge, MAX_FILE_BYTES * 3);
  const read = readBounded(huge)!;
  t.equal(read.text.length, MAX_FILE_BYTES);
  t.equal(read.truncated, true);
  t.equal(collectOs(root).id, 'evil');
  const status = put(root, 'var/lib/dpkg/status', '');
  truncateSync(status, 70 * 1024 * 1024);

  put(
    root,
    'etc/shadow',
    [
      'no colons here',
      ':::::::',
      '+::::::::',
      `${'a'.repeat(5000)}:$6$x$y:::`,
      'pi:$y$garbage:1',
      'root:$6$:1',
      '\u0000\u0001:\u0002',
    ].join('\n'),
  );
  t.same(collectDefaultCredentials(root, realCrypt), [], 'nothing matches');

  put(root, 'etc/ssh/sshd_config', `Include ${'a/'.repeat(2000)}*\nMaxAuthTries\n=\n"\nPort 2222\nPort 2223\n${'x'.repeat(100_000)}\n`);
  t.equal(collectSsh(root).settings.port, '2222 2223');

  put(root, 'proc/uptime', 'NaN 1');
  put(root, 'proc/sys/kernel/osrelease', '');
  const r = collectState(root, { crypt: realCrypt, now: NOW_UTC, commandOutputs: { nftRuleset: '}}}{{{ table', iptablesSave: '*\n-A\n:INPUT' } });
  stateSchema.parse(r);
  t.equal(r.uptimeSeconds, undefined);
  t.equal(r.kernel, undefined);
  t.equal(r.packages.count, 0, 'a 70 MiB zero-filled status yields no packages');

  const junkStatus = tempDir(t);
  put(
    junkStatus,
    'var/lib/dpkg/status',
    [
      'Package: ok-pkg\nStatus: install ok installed\nVersion: 1.0-1\nSource: weird name (1.0)',
      'Package: NoVersion\nStatus: install ok installed',
      'Package: bad name\nStatus: install ok installed\nVersion: 1',
      'Package: badver\nStatus: install ok installed\nVersion: 1.0 beta',
      'Package: half-installed\nStatus: install ok half-installed\nVersion: 1',
      '\u0000\u0001\u0002',
      ':::\n: :\nPackage:\n',
    ].join('\n\n'),
  );
  t.same(collectPackages(junkStatus).list, [{ name: 'ok-pkg', source: 'weird', version: '1.0-1', sourceVersion: '1.0' }]);

  t.doesNotThrow(() => stateSchema.parse(collectState(join(root, 'does-not-exist'))), 'missing root');
  t.doesNotThrow(() => stateSchema.parse(collectState(big)), 'a file as root');
});

t.test('a FIFO where a file should be does not hang', async (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'etc'), { recursive: true });
  if (spawnSync('mkfifo', [join(root, 'etc/os-release')]).status !== 0) {
    t.skip('mkfifo not available');
    return;
  }
  t.same(collectOs(root), { id: 'linux' });
});

t.test("this machine's real root validates against the telemetry schema", async (t) => {
  const started = Date.now();
  const r = collectState('/', { crypt: realCrypt, commandOutputs: readCommandOutputs() });
  const parsed = stateSchema.safeParse(r);
  t.ok(parsed.success, parsed.success ? 'valid' : JSON.stringify(parsed.error.issues.slice(0, 5)));
  t.ok(r.os.id.length > 0);
  t.equal(r.packages.count, r.packages.list?.length);
  t.comment(`real root: ${r.os.prettyName ?? r.os.id}, ${r.listening.length} sockets, ${r.packages.count} packages, firewall ${r.firewall.tool}, ${Date.now() - started} ms`);
});
