/**
 * `npm run bench -- intrusions`: the agent's intrusion collector (issue 18) reading a full-size auth log (the 8 MiB
 * the agent reads at most) and a full-size kernel log, against the baseline in the same run: the existing
 * failed-login counter (auth-log.ts) over the same auth text, which walks the same lines with the same line parser.
 * The goal: both logs (the worst case: every line an attempt, a new source address on every line) cost under 1 %
 * of the default 15-minute report interval, i.e. 9 s, here. Each figure is the median of three rounds.
 */
import { countFailedLogins, MAX_LOG_BYTES, tallyAuthLog, tallyKernelLog } from '../agent/collectors/index.js';
import { opsPerSecond, ratio, type Suite, type SuiteResult } from './harness.js';

async function median(fn: () => unknown, ms: number): Promise<number> {
  const rounds = [await opsPerSecond(fn, ms), await opsPerSecond(fn, ms), await opsPerSecond(fn, ms)].sort((a, b) => a - b);
  return rounds[1]!;
}

/** A log of `bytes` made of realistic lines: failures from many sources, accepted logins, cron noise. */
function authLog(bytes: number, now: Date, sources = Infinity): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const at = new Date(now.getTime() - 3_000_000 + (i % 3_000_000)).toISOString();
    const n = Number.isFinite(sources) ? i % sources : i;
    const src = `10.${(n >> 8) & 255}.${n & 255}.${(n * 7) & 255}`;
    const line = [
      `${at} dev sshd[${i}]: Failed password for root from ${src} port ${1024 + (i % 60000)} ssh2`,
      `${at} dev sshd[${i}]: Invalid user admin from ${src} port 4000`,
      `${at} dev login[${i}]: pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=/dev/pts/1 ruser= rhost=${src}  user=root`,
      `${at} dev CRON[${i}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)`,
    ][i % 4]!;
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join('\n');
}

function kernLog(bytes: number, now: Date): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const at = new Date(now.getTime() - 3_000_000 + (i % 3_000_000)).toISOString();
    const line = `${at} dev kernel: [ ${i}.000000] [UFW BLOCK] IN=eth0 OUT= MAC=aa:bb SRC=10.${(i >> 8) & 255}.${i & 255}.1 DST=10.0.0.9 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=4000 DPT=${i % 3 ? 23 : 22} WINDOW=64240 RES=0x00 SYN URGP=0`;
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join('\n');
}

export const intrusionsSuite: Suite = {
  name: 'intrusions',
  description: "the agent's intrusion collector over full-size auth and kernel logs vs the failed-login counter",
  async run({ quick }) {
    const ms = quick ? 500 : 3000;
    const now = new Date();
    const window = { start: now.getTime() - 3_600_000, end: now.getTime() };
    const auth = authLog(MAX_LOG_BYTES, now);
    const kern = kernLog(MAX_LOG_BYTES, now);
    const mib = MAX_LOG_BYTES / (1024 * 1024);
    const result: SuiteResult = { suite: 'intrusions', measurements: [], ratios: [], goals: [] };
    const baseline = await median(() => countFailedLogins(auth, now), ms);
    result.measurements.push({ name: 'failed-login count, 8 MiB auth.log (baseline)', unit: 'MiB/s', baseline: true, value: baseline * mib });
    const authRate = await median(() => tallyAuthLog(auth, now, window), ms);
    result.measurements.push({ name: 'intrusion sources, 8 MiB auth.log', unit: 'MiB/s', value: authRate * mib });
    const few = authLog(MAX_LOG_BYTES, now, 20);
    const fewRate = await median(() => tallyAuthLog(few, now, window), ms);
    result.measurements.push({ name: 'intrusion sources, 8 MiB auth.log, 20 sources', unit: 'MiB/s', value: fewRate * mib });
    const kernRate = await median(() => tallyKernelLog(kern, now, window), ms);
    result.measurements.push({ name: 'intrusion sources, 8 MiB kern.log', unit: 'MiB/s', value: kernRate * mib });
    ratio(result, 'auth.log: intrusions / failed-login count', 'intrusion sources, 8 MiB auth.log', 'failed-login count, 8 MiB auth.log (baseline)');
    const seconds = 1 / authRate + 1 / kernRate;
    result.goals.push({ name: 'both full-size logs within 1 % of a 15-min interval (9 s)', met: seconds <= 9, detail: `${seconds.toFixed(2)} s per report for ${2 * mib} MiB` });
    return result;
  },
};
