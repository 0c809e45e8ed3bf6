/**
 * Lateral-movement evidence from logs (issue 18): failed SSH/telnet/login/PAM logins and firewall drops per source
 * address, counted once per attempt, in the window since the previous report, bounded, and never fooled by
 * attacker-chosen text (a username that spells "from ADDR", junk, huge repeat counts).
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { intrusionsSchema } from '../../protocol/index.js';
import { MAX_INTRUSION_SOURCES } from '../../protocol/index.js';
import {
  collectIntrusions,
  intrusionWindow,
  IntrusionTally,
  MAX_TRACKED_SOURCES,
  normalizeAddress,
  tallyAuthLog,
  tallyKernelLog,
} from '../../agent/collectors/index.js';
import { tempDir } from '../helpers.js';

const ROOT = resolve('test/fixtures/roots/lateral-target');
const NOW = new Date('2024-11-24T10:30:00Z');
const MIN = 60_000;
/** A window of (start, end] in local time for the syslog-stamped lines below (they carry no zone). */
const local = (h: number, m: number, s = 0) => new Date(2024, 10, 24, h, m, s).getTime();
const NOW_LOCAL = new Date(local(10, 30));
const LOCAL_WINDOW = { start: local(10, 0), end: local(10, 30) };

t.test('the fixture root: each attempt once, per source, in the last interval', async (t) => {
  const got = collectIntrusions(ROOT, { now: NOW, firstWindowMs: 15 * MIN });
  t.ok(got, 'logs present: a report');
  t.ok(intrusionsSchema.safeParse(got).success, 'fits the protocol schema');
  t.equal(got!.windowSeconds, 900, 'first report: the last interval');
  t.same(got!.sources, [
    // ssh: 1 + 4 repeated (pid 901), the Failed line only of pid 902, the bare Invalid user of pid 903;
    // telnet: login's PAM failure (its FAILED LOGIN line is the same attempt), a FAILED LOGIN with no PAM line;
    // dropped: telnet on 23 and 2323. The 08:00 lines lie before the window.
    { address: '127.0.0.2', failedLogins: 9, dropped: 2, services: ['ssh', 'telnet'] },
    { address: '198.51.100.7', failedLogins: 1, dropped: 1, services: ['ssh', 'other'] },
    // The username "x from 6.6.6.6 port 1" cannot blame 6.6.6.6: sshd writes the real address last.
    { address: '203.0.113.50', failedLogins: 1, dropped: 0, services: ['ssh'] },
  ]);
  const text = JSON.stringify(got);
  for (const secret of ['root', 'admin', 'support', 'guest', 'pi', '6.6.6.6', 'attacker.example', '192.0.2.10', '192.0.2.99']) {
    t.notOk(text.includes(`"${secret}"`) || text.includes(secret + '"'), `${secret} is not in the report (no usernames, no allowed or outbound traffic, no host names)`);
  }
});

t.test('windowing: since the previous report, start exclusive, end inclusive, at most a day', async (t) => {
  const since = Date.parse('2024-11-24T10:22:00Z'); // the 198.51.100.7 failure happened exactly then
  const got = collectIntrusions(ROOT, { now: NOW, since, firstWindowMs: 15 * MIN })!;
  t.equal(got.windowSeconds, 480);
  t.same(got.sources, [
    { address: '127.0.0.2', failedLogins: 0, dropped: 2, services: ['telnet'] },
    { address: '198.51.100.7', failedLogins: 0, dropped: 1, services: ['other'] },
    { address: '203.0.113.50', failedLogins: 1, dropped: 0, services: ['ssh'] },
  ]);
  const later = collectIntrusions(ROOT, { now: new Date('2024-11-24T11:00:00Z'), since: NOW.getTime(), firstWindowMs: 15 * MIN })!;
  t.same(later.sources, [], 'nothing new since the previous report: nothing counted twice');
  t.equal(later.windowSeconds, 1800);
  const week = intrusionWindow(NOW.getTime(), NOW.getTime() - 7 * 86_400_000, 15 * MIN);
  t.equal(week.seconds, 86_400, 'a long gap is cut to the schema’s day');
  t.equal(week.start, NOW.getTime() - 86_400_000);
  const future = intrusionWindow(NOW.getTime(), NOW.getTime() + MIN, 15 * MIN);
  t.equal(future.seconds, 900, 'a previous end in the future (clock stepped back): the last interval');
});

t.test('ssh (OpenSSH, sshd-session, dropbear), telnet/login (shadow, BusyBox), PAM rhost', async (t) => {
  const log = [
    'Nov 24 10:01:00 dev sshd-session[10]: Failed keyboard-interactive/pam for root from 10.0.0.5 port 1 ssh2',
    'Nov 24 10:01:01 dev sshd[11]: Failed password for root from ::ffff:10.0.0.5 port 2 ssh2',
    'Nov 24 10:01:02 dev sshd[12]: Failed password for root from 2001:DB8:0:0::7 port 3 ssh2',
    'Nov 24 10:01:02 dev sshd[12]: Failed publickey for root from 10.0.0.6 port 3 ssh2: ED25519 SHA256:x',
    "Nov 24 10:02:00 dev dropbear[20]: Bad password attempt for 'root' from 10.0.0.7:40000",
    'Nov 24 10:02:01 dev dropbear[21]: Login attempt for nonexistent user from 10.0.0.7:40001',
    "Nov 24 10:02:02 dev dropbear[22]: Bad password attempt for 'x from 9.9.9.9:1' from [fe80::1%eth0]:40002",
    "Nov 24 10:03:00 dev login[30]: invalid password for 'admin' on 'pts/0' from '10.0.0.8'",
    "Nov 24 10:03:01 dev login[31]: invalid password for 'a' on 'b' from '9.9.9.9' on 'pts/1' from '10.0.0.8'",
    "Nov 24 10:03:02 dev login[32]: FAILED LOGIN (1) on '/dev/tty1' FOR 'pi', Authentication failure",
    'Nov 24 10:04:00 dev vsftpd[40]: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=anonymous rhost=10.0.0.9  user=ftp',
    'Nov 24 10:04:01 dev su[41]: pam_unix(su:auth): authentication failure; logname=pi uid=1000 euid=0 tty=/dev/pts/0 ruser=pi rhost=  user=root',
    'Nov 24 10:04:02 dev login[42]: pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=/dev/pts/3 ruser= rhost=10.0.0.10  user=x rhost=9.9.9.9',
    'Nov 24 10:04:03 dev login[43]: pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=tty1 ruser= rhost=  user=pi',
  ].join('\n');
  const sources = tallyAuthLog(log, NOW_LOCAL, LOCAL_WINDOW).top();
  const by = Object.fromEntries(sources.map((s) => [s.address, s]));
  t.same(by['10.0.0.5'], { address: '10.0.0.5', failedLogins: 2, dropped: 0, services: ['ssh'] }, 'IPv4-mapped IPv6 is the IPv4 address');
  t.same(by['2001:db8::7'], { address: '2001:db8::7', failedLogins: 1, dropped: 0, services: ['ssh'] }, 'IPv6 in canonical form');
  t.notOk(by['10.0.0.6'], 'a failed public key is a client trying its keys, not an attack');
  t.same(by['10.0.0.7'], { address: '10.0.0.7', failedLogins: 2, dropped: 0, services: ['ssh'] }, 'dropbear');
  t.same(by['fe80::1'], { address: 'fe80::1', failedLogins: 1, dropped: 0, services: ['ssh'] }, 'dropbear IPv6, zone dropped, the username’s address ignored');
  t.same(by['10.0.0.8'], { address: '10.0.0.8', failedLogins: 2, dropped: 0, services: ['telnet'] }, 'BusyBox login, the real host is the last one');
  t.same(by['10.0.0.9'], { address: '10.0.0.9', failedLogins: 1, dropped: 0, services: ['other'] }, 'PAM rhost of another service');
  t.same(by['10.0.0.10'], { address: '10.0.0.10', failedLogins: 1, dropped: 0, services: ['telnet'] }, 'login’s PAM rhost; the user field cannot add one');
  t.notOk(by['9.9.9.9'], 'addresses inside usernames never count');
  t.equal(sources.length, 7, 'local failures (su, console login) name no source');
});

t.test('iptables and nftables LOG lines: inbound drops only', async (t) => {
  const log = [
    'Nov 24 10:10:00 dev kernel: [ 1.0] IPTABLES-DROP: IN=eth0 OUT= MAC=x SRC=10.1.0.1 DST=10.1.0.9 LEN=60 PROTO=TCP SPT=1 DPT=22 SYN',
    'Nov 24 10:10:01 dev kernel: [ 1.1] nft drop: IN=eth0 OUT= MAC=x SRC=2001:db8::1 DST=2001:db8::9 LEN=60 PROTO=TCP SPT=1 DPT=23 SYN',
    'Nov 24 10:10:02 dev kernel: [ 1.2] FINAL_REJECT: IN=wlan0 OUT= MAC=x SRC=10.1.0.2 DST=10.1.0.9 LEN=60 PROTO=UDP SPT=1 DPT=161',
    'Nov 24 10:10:03 dev kernel: [ 1.3] INPUT-DENIED IN=eth0 OUT= SRC=10.1.0.3 DST=10.1.0.9 PROTO=ICMP TYPE=8 CODE=0',
    'Nov 24 10:10:04 dev kernel: [ 1.4] ssh-in: IN=eth0 OUT= SRC=10.1.0.4 DST=10.1.0.9 PROTO=TCP SPT=1 DPT=22',
    'Nov 24 10:10:05 dev kernel: [ 1.5] [UFW AUDIT] IN=eth0 OUT= SRC=10.1.0.5 DST=10.1.0.9 PROTO=TCP SPT=1 DPT=22',
    'Nov 24 10:10:06 dev kernel: [ 1.6] FWD-DROP: IN=eth0 OUT=eth1 SRC=10.1.0.6 DST=10.2.0.1 PROTO=TCP SPT=1 DPT=22',
    'Nov 24 10:10:07 dev notkernel: DROP IN=eth0 OUT= SRC=10.1.0.7 DST=10.1.0.9 PROTO=TCP SPT=1 DPT=22',
    'Nov 24 10:10:08 dev kernel: [ 1.8] DROP IN=eth0 OUT= SRC=10.1.0.1 DST=10.1.0.9 PROTO=TCP SPT=1 DPT=23',
    'Nov 24 10:10:09 dev kernel: message repeated 3 times: [ [ 1.9] DROP IN=eth0 OUT= SRC=10.1.0.1 DST=10.1.0.9 PROTO=TCP SPT=1 DPT=2323]',
  ].join('\n');
  t.same(tallyKernelLog(log, NOW_LOCAL, LOCAL_WINDOW).top(), [
    { address: '10.1.0.1', failedLogins: 0, dropped: 5, services: ['ssh', 'telnet'] },
    { address: '10.1.0.2', failedLogins: 0, dropped: 1, services: ['other'] },
    { address: '10.1.0.3', failedLogins: 0, dropped: 1, services: ['other'] },
    { address: '2001:db8::1', failedLogins: 0, dropped: 1, services: ['telnet'] },
  ], 'prefixes that do not say drop/reject/deny, forwarded traffic and non-kernel lines do not count');
});

t.test('hostile lines: invalid addresses, huge counts, junk, floods', async (t) => {
  for (const bad of ['999.1.1.1', '1.2.3', '010.0.0.1', '0.0.0.0', '::', 'host.example', '', '1.2.3.4.5', '1.2.3.4/24', 'a'.repeat(200), '[::1', '1.2.3.4\u0000']) {
    t.equal(normalizeAddress(bad), undefined, `${JSON.stringify(bad.slice(0, 20))} is no address`);
  }
  t.equal(normalizeAddress('127.0.0.2'), '127.0.0.2', 'loopback neighbours (tests, containers) are addresses');
  t.equal(normalizeAddress('[2001:0DB8::0001]'), '2001:db8::1');

  const huge = [
    'Nov 24 10:05:00 dev sshd[1]: message repeated 999999999999 times: [ Failed password for root from 10.3.0.1 port 1 ssh2]',
    ...Array.from({ length: 2000 }, (_, i) => `Nov 24 10:05:01 dev sshd[${i + 2}]: message repeated 999999 times: [ Failed password for root from 10.3.0.1 port 1 ssh2]`),
    'Nov 24 10:05:02 dev sshd[9]: message repeated 99999999999999999999 times: [ Failed password for root from 10.3.0.2 port 1 ssh2]',
  ].join('\n');
  const capped = tallyAuthLog(huge, NOW_LOCAL, LOCAL_WINDOW).top();
  t.same(capped, [{ address: '10.3.0.1', failedLogins: 1_000_000_000, dropped: 0, services: ['ssh'] }], 'a repeat count is capped per line and per source; an absurd one is not a repeat line');
  t.ok(intrusionsSchema.safeParse({ windowSeconds: 1, sources: capped }).success);

  const junk = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 256)).toString('latin1');
  const mixed = [
    junk,
    'Nov 24 10:06:00 dev sshd[5]: Failed password for root from 10.3.0.3 port 1 ssh2',
    'Nov 24 10:06:00 dev sshd[6]: Failed password for root from 10.3.0.4 port 99999999 ssh2',
    'Nov 24 10:06:00 dev sshd[7]: Failed password for root from 10.3.0.4\u0000 port 1 ssh2',
    `Nov 24 10:06:00 dev sshd[8]: Failed password for ${'x'.repeat(10_000)} from 10.3.0.5 port 1 ssh2`,
    'Nov 99 99:99:99 dev sshd[9]: Failed password for root from 10.3.0.6 port 1 ssh2',
    'Nov 24 10:06:00 dev kernel: DROP IN=eth0 OUT= SRC=10.3.0.7\u00ff DST=1 PROTO=TCP DPT=22',
    '\u0000\u0001 sshd[1]: Failed password for root from 10.3.0.8 port 1 ssh2',
  ].join('\n');
  const tally = tallyAuthLog(mixed, NOW_LOCAL, LOCAL_WINDOW);
  tallyKernelLog(mixed, NOW_LOCAL, LOCAL_WINDOW, tally);
  t.same(tally.top().map((s) => s.address), ['10.3.0.3'], 'only the well-formed line counts');

  const flood = Array.from({ length: 10_000 }, (_, i) => `Nov 24 10:07:00 dev kernel: DROP IN=eth0 OUT= SRC=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} DST=10.9.9.9 PROTO=TCP DPT=22`);
  flood.push(...Array.from({ length: 5 }, () => 'Nov 24 10:07:01 dev kernel: DROP IN=eth0 OUT= SRC=10.0.0.1 DST=10.9.9.9 PROTO=TCP DPT=22'));
  const many = tallyKernelLog(flood.join('\n'), NOW_LOCAL, LOCAL_WINDOW);
  t.equal(many.size, MAX_TRACKED_SOURCES, 'spoofed-source floods are tracked up to a bound');
  const top = many.top();
  t.equal(top.length, MAX_INTRUSION_SOURCES, 'a report names at most MAX_INTRUSION_SOURCES');
  t.same(top[0], { address: '10.0.0.1', failedLogins: 0, dropped: 6, services: ['ssh'] }, 'busiest first');
});

t.test('bounded reads under the root, no logs means no report, TLS peers recorded by the link', async (t) => {
  const empty = tempDir(t);
  t.equal(collectIntrusions(empty, { now: NOW, firstWindowMs: MIN }), undefined, 'no logs: no intrusions field (not "nobody tried")');
  const withTls = collectIntrusions(empty, { now: NOW, firstWindowMs: MIN, extra: [{ address: '127.0.0.3', service: 'tls', count: 2 }, { address: 'junk', service: 'tls', count: 1 }] });
  t.same(withTls, { windowSeconds: 60, sources: [{ address: '127.0.0.3', failedLogins: 2, dropped: 0, services: ['tls'] }] });

  // BusyBox devices log everything to one messages file; a big log is read from its tail only.
  const root = tempDir(t);
  mkdirSync(join(root, 'var/log'), { recursive: true });
  const filler = 'Nov 24 10:20:00 dev daemon[1]: ' + 'z'.repeat(100) + '\n';
  writeFileSync(join(root, 'var/log/messages'),
    'Nov 24 10:20:00 dev sshd[1]: Failed password for root from 10.4.0.1 port 1 ssh2\n' +
    filler.repeat(Math.ceil((9 * 1024 * 1024) / filler.length)) +
    'Nov 24 10:21:00 dev sshd[2]: Failed password for root from 10.4.0.2 port 1 ssh2\n' +
    'Nov 24 10:21:01 dev kernel: [ 5.0] DROP IN=eth0 OUT= SRC=10.4.0.2 DST=10.4.0.9 PROTO=TCP DPT=23\n');
  const got = collectIntrusions(root, { now: NOW_LOCAL, since: local(10, 0), firstWindowMs: MIN })!;
  t.same(got.sources, [{ address: '10.4.0.2', failedLogins: 1, dropped: 1, services: ['ssh', 'telnet'] }], 'auth and kernel lines from one file; the head beyond the read bound is not read');
});

t.test('the tally on its own', async (t) => {
  const tally = new IntrusionTally();
  tally.add('10.5.0.1', 'failedLogins', 'ssh', 0);
  tally.add('10.5.0.1', 'failedLogins', 'ssh', -5);
  tally.add('10.5.0.1', 'failedLogins', 'ssh', Number.NaN);
  t.equal(tally.size, 0, 'no attempts: no source');
  tally.add('10.5.0.2', 'dropped', 'other', Number.MAX_SAFE_INTEGER);
  t.equal(tally.top()[0]!.dropped, 1_000_000_000);
});
