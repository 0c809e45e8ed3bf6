/**
 * What the gateway prints: pretty log lines on a terminal (a real pseudo-terminal from util-linux `script`), JSON
 * lines otherwise, either forced with --log-format / WOTT_LOG_FORMAT; durations in human units; and the root
 * fingerprint in the one format `wott ca fingerprint` prints, which the agent takes with or without colons, any case.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, requireCommand, tempDir } from '../helpers.js';
import { waitFor } from '../mqtt-helpers.js';

const execFileP = promisify(execFile);
const ANSI = /\x1b\[[0-9;]*m/g;
/** Without the g flag, whose lastIndex would make a match depend on the one before. */
const AN_ANSI_CODE = /\x1b\[[0-9;]*m/;

async function wott(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Starts the gateway on free ports, on a pseudo-terminal (`script`) or on a pipe, and collects what it prints
 * until `until` holds; then stops it with SIGTERM through its pid file (`script` would hand it a SIGHUP: a reload).
 */
async function gatewayOutput(t: Parameters<typeof tempDir>[0], data: string, o: { tty: boolean; args?: string[]; env?: Record<string, string> }, until: (out: string) => boolean): Promise<string> {
  const argv = [process.execPath, CLI, 'gateway', '--data', data, '--https-port', '0', '--mqtt-port', '0', '--metrics-port', '0', ...(o.args ?? [])];
  // tap sets NO_COLOR when its own output is not coloured; the gateway honours it, so it goes here.
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['WOTT_LOG_FORMAT', 'NO_COLOR', 'FORCE_COLOR']) delete env[name];
  Object.assign(env, o.env);
  const child = o.tty
    ? spawn('script', ['-qfec', argv.map(shellQuote).join(' '), '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let done = false;
  const stop = async () => {
    if (done) return;
    done = true;
    try {
      process.kill(Number(readFileSync(join(data, 'gateway.pid'), 'utf8')), 'SIGTERM');
    } catch {
      child.kill('SIGKILL');
    }
    await exited;
  };
  t.teardown(stop);
  await waitFor(() => until(out) || child.exitCode !== null, 'the gateway to start', 60_000);
  if (!until(out)) throw new Error(`the gateway stopped before printing what was expected:\n${out}`);
  await waitFor(() => existsSync(join(data, 'gateway.pid')), 'its pid file', 30_000);
  await stop();
  return out;
}

t.test('gateway logs: pretty on a terminal, JSON on a pipe, either forced', async (t) => {
  if (!requireCommand(t, 'script', 'bsdutils')) return;
  const data = join(tempDir(t), 'data');
  const init = await wott(['ca', 'init', '--data', data]);
  t.equal(init.code, 0, init.stderr);
  const fingerprint = (await wott(['ca', 'fingerprint', '--data', data])).stdout.trim();
  const listening = (out: string) => out.replace(ANSI, '').includes('gateway listening');

  await t.test('a terminal: pretty lines, in colour', async (t) => {
    const raw = await gatewayOutput(t, data, { tty: true }, listening);
    t.match(raw, AN_ANSI_CODE, 'coloured');
    const out = raw.replace(ANSI, '').replace(/\r/g, '');
    t.match(out, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO \(wott\): gateway listening$/m, 'time, level, name and message on one line');
    t.match(out, /^ {4}certLifetime: "7d"$/m, 'the certificate lifetime in human units, as an indented field');
    t.match(out, new RegExp(`INFO \\(wott\\): CA root SHA-256 fingerprint ${fingerprint}$`, 'm'), 'the root fingerprint as wott ca fingerprint prints it');
    t.notMatch(out, /^\{"level"/m, 'no JSON lines');
  });

  await t.test('a pipe: JSON lines', async (t) => {
    const out = await gatewayOutput(t, data, { tty: false }, listening);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const listen = lines.find((l) => l.msg === 'gateway listening')!;
    t.equal(listen.certLifetime, '7d');
    t.equal(lines.find((l) => l.rootFingerprint)?.rootFingerprint, fingerprint, 'the same fingerprint as wott ca fingerprint');
  });

  await t.test('--log-format json on a terminal', async (t) => {
    const out = (await gatewayOutput(t, data, { tty: true, args: ['--log-format', 'json'] }, listening)).replace(/\r/g, '');
    t.ok(out.trim().split('\n').every((l) => typeof JSON.parse(l).level === 'number'), 'every line is JSON');
  });

  await t.test('WOTT_LOG_FORMAT=pretty on a pipe: pretty, without colour codes', async (t) => {
    const out = await gatewayOutput(t, data, { tty: false, env: { WOTT_LOG_FORMAT: 'pretty' } }, listening);
    t.notMatch(out, AN_ANSI_CODE);
    t.match(out, /\] INFO \(wott\): gateway listening\n/);
  });

  const bad = await wott(['gateway', '--data', data, '--log-format', 'yaml']);
  t.not(bad.code, 0);
  t.match(bad.stderr, /--log-format.*Allowed choices are auto, pretty, json/);
});

t.test('the agent takes the root fingerprint with or without colons, in any case', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  t.equal((await wott(['ca', 'init', '--data', data])).code, 0);
  const printed = (await wott(['ca', 'fingerprint', '--data', data])).stdout.trim();
  t.match(printed, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, 'wott ca fingerprint: AB:CD:… as openssl prints it');
  const port = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'gateway', '--data', data, '--https-port', '0', '--mqtt-port', '0', '--metrics-port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    t.teardown(async () => {
      child.kill('SIGTERM');
      await exited;
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"https":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${out}`)));
  });
  const bare = printed.replace(/:/g, '');
  const pins = [printed, printed.toLowerCase(), bare.toLowerCase(), bare, `sha256:${bare.slice(0, 20).toLowerCase()}${bare.slice(20)}`];
  for (const [i, pin] of pins.entries()) {
    const device = `pin-${i}`;
    const token = (await wott(['token', 'create', '--device', device, '--data', data])).stdout.trim();
    const r = await wott(['agent', 'enroll', '--server', `https://localhost:${port}`, '--device', device, '--token', token, '--dir', join(dir, device), '--ca-fingerprint', pin]);
    t.equal(r.code, 0, `pin ${pin}: ${r.stderr}`);
  }
  const token = (await wott(['token', 'create', '--device', 'wrong', '--data', data])).stdout.trim();
  const wrong = await wott(['agent', 'enroll', '--server', `https://localhost:${port}`, '--device', 'wrong', '--token', token, '--dir', join(dir, 'wrong'), '--ca-fingerprint', 'ab'.repeat(32)]);
  t.not(wrong.code, 0);
  t.match(wrong.stderr, `CA root fingerprint ${printed} does not match the pinned one ${'AB:'.repeat(31)}AB`, 'the refusal shows both in the one format');
});
