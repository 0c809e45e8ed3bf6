/**
 * The systemd journal as syslog text, for devices that keep their logs only there (Debian 12 without rsyslog: no
 * /var/log/auth.log). `journalctl --output=json` prints one JSON object per entry; each becomes the line
 * "ISO-TIME journal IDENT[PID]: MESSAGE" that the auth- and kernel-log parsers already read, so the journal is held
 * to exactly the same rules (addresses at fixed positions, usernames never kept). Pure.
 *
 * Hostile input: a message is attacker-influenced text (a username, a packet's fields), so its line breaks become
 * spaces (an embedded "\n2026-… sshd[1]: Failed password … from ADDR" must stay inside its own line, not forge
 * one); identifiers and PIDs must look like identifiers and PIDs; anything oversized or of the wrong type is
 * skipped, never guessed at.
 */

/** Longest journal entry (JSON) read; the log parsers skip lines over 8 KiB anyway. */
const MAX_ENTRY_CHARS = 16_384;
const MAX_MESSAGE_CHARS = 8192;
/** syslog identifiers: a program name, nothing the line format gives a meaning to (space, colon, brackets). */
const IDENTIFIER = /^[A-Za-z0-9_.@+-]{1,64}$/;
/** Entries converted at most (journalctl is also asked for a bounded number). */
export const MAX_JOURNAL_ENTRIES = 200_000;

/** journalctl's arguments for the entries the intrusion and failed-login collectors read since `sinceMs`. */
export function journalctlArgs(sinceMs: number, untilMs: number): string[] {
  return [
    '--output=json',
    '--no-pager',
    '--quiet',
    `--since=@${Math.floor(sinceMs / 1000)}`,
    `--until=@${Math.ceil(untilMs / 1000)}`,
    `--lines=${MAX_JOURNAL_ENTRIES}`,
    '--output-fields=__REALTIME_TIMESTAMP,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,MESSAGE,_TRANSPORT',
    // The auth and authpriv facilities (sshd, dropbear, login, PAM), or the kernel's own messages (firewall LOG rules).
    'SYSLOG_FACILITY=4',
    'SYSLOG_FACILITY=10',
    '+',
    '_TRANSPORT=kernel',
  ];
}

/** A MESSAGE field: a string, or (not valid UTF-8) an array of bytes. */
function messageText(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length <= MAX_MESSAGE_CHARS ? value : undefined;
  if (Array.isArray(value) && value.length <= MAX_MESSAGE_CHARS && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    return Buffer.from(value as number[]).toString('utf8');
  }
  return undefined;
}

/** Converts `journalctl --output=json` output to syslog lines with ISO timestamps (entries that do not fit are skipped). */
export function journalToSyslog(json: string): string {
  const out: string[] = [];
  let start = 0;
  while (start < json.length && out.length < MAX_JOURNAL_ENTRIES) {
    let end = json.indexOf('\n', start);
    if (end < 0) end = json.length;
    const raw = json.slice(start, end);
    start = end + 1;
    if (raw.length === 0 || raw.length > MAX_ENTRY_CHARS) continue;
    const line = entryLine(raw);
    if (line !== undefined) out.push(line);
  }
  return out.join('\n');
}

function entryLine(raw: string): string | undefined {
  let entry: unknown;
  try {
    entry = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return undefined;
  const e = entry as Record<string, unknown>;
  const micros = typeof e.__REALTIME_TIMESTAMP === 'string' && /^\d{1,17}$/.test(e.__REALTIME_TIMESTAMP) ? Number(e.__REALTIME_TIMESTAMP) : NaN;
  const time = Math.floor(micros / 1000);
  if (!Number.isSafeInteger(time) || time <= 0 || time > 8.64e15) return undefined;
  const identifier = e._TRANSPORT === 'kernel' ? 'kernel' : e.SYSLOG_IDENTIFIER;
  if (typeof identifier !== 'string' || !IDENTIFIER.test(identifier)) return undefined;
  // _TRANSPORT is set by journald itself; SYSLOG_IDENTIFIER by whoever logs: "kernel" from a process is a forgery.
  if (identifier === 'kernel' && e._TRANSPORT !== 'kernel') return undefined;
  const pidValue = typeof e.SYSLOG_PID === 'string' ? e.SYSLOG_PID : e._PID;
  const pid = typeof pidValue === 'string' && /^\d{1,10}$/.test(pidValue) ? `[${pidValue}]` : '';
  const message = messageText(e.MESSAGE);
  if (message === undefined) return undefined;
  // One entry, one line: CR, LF and the other line separators a split might honour become spaces.
  const flat = message.replace(/[\r\n\u2028\u2029\u0085\v\f]/g, ' ');
  return `${new Date(time).toISOString()} journal ${identifier}${pid}: ${flat}`;
}
