/**
 * Devices that keep their logs only in the systemd journal (no /var/log/auth.log): `journalctl --output=json`
 * entries (a fixture in journalctl's own format) feed the same intrusion and failed-login collectors, with the same
 * rules, and hostile entries (forged lines in a message, a process calling itself "kernel", junk, huge or
 * binary fields) neither blame anyone nor leak a username.
 */
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { intrusionsSchema } from '../../protocol/index.js';
import { collectIntrusions, collectState, journalctlArgs, journalToSyslog, needsJournal, tallyAuthLog, tallyKernelLog } from '../../agent/collectors/index.js';
import { tempDir } from '../helpers.js';

const JOURNAL = readFileSync(resolve('test/fixtures/journal/lateral-target.json'), 'utf8');
const NOW = new Date('2024-11-24T10:30:00Z');
const MIN = 60_000;

/** A root with an os-release and no log files at all (Debian 12 without rsyslog). */
function journalOnlyRoot(t: Tap.Test): string {
  const root = tempDir(t);
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/os-release'), 'ID=debian\nVERSION_ID="12"\n');
  return root;
}

const entry = (fields: Record<string, unknown>) =>
  JSON.stringify({ __REALTIME_TIMESTAMP: String(Date.parse('2024-11-24T10:20:00Z') * 1000), SYSLOG_IDENTIFIER: 'sshd', SYSLOG_PID: '700', _TRANSPORT: 'syslog', MESSAGE: 'Failed password for root from 10.9.9.9 port 1 ssh2', ...fields });

t.test('journal only: the same counts as from auth.log and kern.log, no usernames', async (t) => {
  const root = journalOnlyRoot(t);
  t.ok(needsJournal(root), 'no log files: the agent reads the journal');
  const journal = journalToSyslog(JOURNAL);
  const got = collectIntrusions(root, { now: NOW, firstWindowMs: 30 * MIN, journal });
  t.ok(intrusionsSchema.safeParse(got).success, 'fits the protocol schema');
  t.same(got!.sources, [
    // sshd 812 (its PAM line is the same attempt), sshd-session 820, the bare Invalid user of 830 (mapped IPv6),
    // login 901's PAM failure (its FAILED LOGIN line is the same attempt); the UFW BLOCK on telnet's port.
    { address: '127.0.0.2', failedLogins: 4, dropped: 1, services: ['ssh', 'telnet'] },
    { address: '10.0.0.7', failedLogins: 1, dropped: 0, services: ['ssh'] },
  ]);
  const text = JSON.stringify(got);
  for (const secret of ['root', 'admin', 'support', 'ops', '127.0.0.9', '192.168.1.10']) t.notOk(text.includes(secret), `${secret} is not in the report`);

  const state = collectState(root, { now: NOW, commandOutputs: { journal: JOURNAL }, intrusions: { firstWindowMs: 30 * MIN } });
  t.same(state.intrusions, got, 'collectState reads the journal it is given');
  t.equal(state.failedLoginsLastHour, 6, 'failed logins in the last hour from the journal (the 09:50 one included)');
  const none = collectState(root, { now: NOW, intrusions: { firstWindowMs: 30 * MIN } });
  t.equal(none.intrusions, undefined, 'no journal and no logs: no intrusion report ("no data" is not "nobody tried")');
  t.equal(none.failedLoginsLastHour, undefined);
});

t.test('log files win: the journal is read only where a file is missing', async (t) => {
  const root = journalOnlyRoot(t);
  mkdirSync(join(root, 'var/log'), { recursive: true });
  writeFileSync(join(root, 'var/log/auth.log'), '');
  t.ok(needsJournal(root), 'an auth log but no kernel log: still the journal, for the kernel side');
  const got = collectIntrusions(root, { now: NOW, firstWindowMs: 30 * MIN, journal: journalToSyslog(JOURNAL) });
  t.same(got!.sources, [{ address: '127.0.0.2', failedLogins: 0, dropped: 1, services: ['telnet'] }], 'logins from the (empty) auth.log, drops from the journal');
  writeFileSync(join(root, 'var/log/kern.log'), '');
  t.notOk(needsJournal(root), 'both files: no journalctl run');
});

t.test('hostile journal entries', async (t) => {
  const window = { start: Date.parse('2024-11-24T10:00:00Z'), end: NOW.getTime() };
  const count = (json: string) => tallyAuthLog(journalToSyslog(json), NOW, window).top();

  // A username with an embedded line break that spells a complete sshd line blaming 10.6.6.6: stays one line.
  const forged = entry({ MESSAGE: 'Invalid user x\n2024-11-24T10:21:00.000Z journal sshd[701]: Failed password for root from 10.6.6.6 port 22 ssh2 from 10.9.9.9 port 5' });
  t.notOk(journalToSyslog(forged).includes('\n'), 'one entry, one line');
  t.same(count(forged), [{ address: '10.9.9.9', failedLogins: 1, dropped: 0, services: ['ssh'] }], 'only the address sshd wrote last counts');
  for (const sep of ['\r', '\u2028', '\u0085']) t.notOk(count(entry({ MESSAGE: `Invalid user x${sep}Failed password for root from 10.6.6.6 port 22 ssh2 port 5` })).some((s) => s.address === '10.6.6.6'), `U+${sep.codePointAt(0)!.toString(16).padStart(4, '0')} forges nothing`);

  // A process calling itself "kernel" cannot forge firewall drops; journald's own kernel transport can.
  const drop = 'DROP IN=eth0 OUT= SRC=10.5.5.5 DST=10.0.0.1 PROTO=TCP SPT=1 DPT=23';
  t.same(tallyKernelLog(journalToSyslog(entry({ SYSLOG_IDENTIFIER: 'kernel', MESSAGE: drop })), NOW, window).top(), [], 'SYSLOG_IDENTIFIER=kernel from a process: refused');
  t.same(tallyKernelLog(journalToSyslog(entry({ SYSLOG_IDENTIFIER: undefined, SYSLOG_PID: undefined, _TRANSPORT: 'kernel', MESSAGE: drop })), NOW, window).top().map((s) => s.address), ['10.5.5.5']);

  // Identifiers and PIDs that would change the line's meaning; timestamps that are no time.
  for (const bad of [
    { SYSLOG_IDENTIFIER: 'sshd[1]: Failed password for root from 10.6.6.6 port 22 ssh2 x' },
    { SYSLOG_IDENTIFIER: 'ss hd' },
    { SYSLOG_IDENTIFIER: '' },
    { SYSLOG_IDENTIFIER: 7 },
    { __REALTIME_TIMESTAMP: 'yesterday' },
    { __REALTIME_TIMESTAMP: '-5' },
    { __REALTIME_TIMESTAMP: 1732443600000000 },
    { __REALTIME_TIMESTAMP: '99999999999999999' },
    { MESSAGE: null },
    { MESSAGE: { text: 'Failed password for root from 10.6.6.6 port 22 ssh2' } },
    { MESSAGE: [70, 97, 1000] },
    { MESSAGE: 'x'.repeat(9000) + ' from 10.6.6.6 port 22' },
  ]) {
    t.same(count(entry(bad)), [], `skipped: ${JSON.stringify(bad).slice(0, 80)}`);
  }
  const pid = journalToSyslog(entry({ SYSLOG_PID: '1]: x' }));
  t.match(pid, /journal sshd: Failed password/, 'a PID that is no number is left out');
  // Binary (non-UTF-8) messages come as byte arrays: decoded, then parsed like any other.
  const bytes = [...Buffer.from('Failed password for root from 10.8.8.8 port 3 ssh2')];
  t.same(count(entry({ MESSAGE: bytes })).map((s) => s.address), ['10.8.8.8']);

  // Junk, non-objects, oversized entries, a flood: skipped or bounded, never thrown.
  const junk = ['not json', '[1,2]', 'null', '"x"', '{', entry({}).replace('}', ',"PAD":"' + 'p'.repeat(20_000) + '"}')].join('\n');
  t.same(count(junk), [], 'junk lines skipped');
  const flood = Array.from({ length: 5000 }, (_, i) => entry({ MESSAGE: `Failed password for root from 10.${(i >> 8) & 255}.${i & 255}.1 port 9 ssh2` })).join('\n');
  const sources = count(flood);
  t.ok(sources.length > 0 && sources.length <= 100, `a flood of spoofed sources is bounded (${sources.length})`);
});

t.test('journalctl is asked for auth and kernel entries of the window, bounded, as JSON', async (t) => {
  const args = journalctlArgs(Date.parse('2024-11-24T09:30:00.500Z'), NOW.getTime());
  t.ok(args.includes('--output=json'));
  t.ok(args.includes(`--since=@${Date.parse('2024-11-24T09:30:00Z') / 1000}`));
  t.ok(args.includes(`--until=@${NOW.getTime() / 1000}`));
  t.ok(args.some((a) => /^--lines=\d+$/.test(a)), 'a bounded number of entries');
  t.same(args.slice(-4), ['SYSLOG_FACILITY=4', 'SYSLOG_FACILITY=10', '+', '_TRANSPORT=kernel'], 'auth, authpriv, or the kernel');
});
