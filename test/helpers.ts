/** Shared test plumbing: temp folders, real external tools (installed from Debian when missing), CSRs, snapshots. */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { addListener as addSpawnListener } from 'process-on-spawn';
import { openSqliteInventory } from '../store/index.js';

type T = {
  teardown(fn: () => unknown): void;
  fail(msg: string): void;
  skip(msg: string): void;
  comment(...args: unknown[]): void;
};

export const inCi = process.env.CI === 'true';

export function tempDir(t: T, prefix = 'wott-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Retried: a process the test just stopped may still be removing its own files (a pid file) in there.
  t.teardown(() => rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return dir;
}

const installed = new Map<string, boolean>();

/**
 * Ensures `command` is on PATH. Installs `debPackage` with apt-get when running as root (a fresh CI machine);
 * otherwise says what to install. Under CI=true a missing tool fails the test instead of skipping it.
 */
export function requireCommand(t: T, command: string, debPackage: string): boolean {
  const have = () => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
  let ok = installed.get(command) ?? have();
  if (!ok && process.getuid?.() === 0) {
    // Test files run in parallel and two of them may need the same package: apt-get refuses to run while another
    // holds its lock, which failed both (CI run 22: pdftoppm). One apt-get at a time, through flock(1).
    const apt = (args: string[]) =>
      spawnSync('flock', ['-w', '900', join(tmpdir(), 'wott-tests-apt.lock'), 'apt-get', '-o', 'DPkg::Lock::Timeout=600', ...args], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    ok = have() || (apt(['install', '-y', '-q', debPackage]), have());
    if (!ok) {
      apt(['update', '-q']);
      apt(['install', '-y', '-q', debPackage]);
      ok = have();
    }
  }
  installed.set(command, ok);
  if (!ok) {
    const msg = `${command} not found: install the Debian package ${debPackage} (apt-get install ${debPackage})`;
    if (inCi) t.fail(msg);
    else t.skip(msg);
  }
  return ok;
}

export function openssl(args: string[], input?: Buffer | string): Buffer {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export type KeySpec = 'p256' | 'p384' | 'rsa2048' | 'ed25519';

/** A fresh private key (PEM file) of the given kind, made by openssl. */
export function makeKey(dir: string, spec: KeySpec = 'p256', name = `key-${Math.random().toString(36).slice(2)}`): string {
  const path = join(dir, `${name}.key`);
  const args: Record<KeySpec, string[]> = {
    p256: ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    p384: ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    rsa2048: ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
    ed25519: ['genpkey', '-algorithm', 'ED25519'],
  };
  openssl([...args[spec], '-out', path]);
  return path;
}

/** A DER PKCS#10 request made by openssl (not our code). */
export function makeCsr(dir: string, subject: string, spec: KeySpec = 'p256'): { der: Buffer; keyPath: string } {
  const keyPath = makeKey(dir, spec);
  const der = openssl(['req', '-new', '-key', keyPath, '-subj', subject, '-outform', 'DER']);
  return { der, keyPath };
}

export function csrWithKey(keyPath: string, subject: string): Buffer {
  return openssl(['req', '-new', '-key', keyPath, '-subj', subject, '-outform', 'DER']);
}

/** Everything in the inventory, for "nothing changed" assertions (read through the store interface). */
export async function inventorySnapshot(dataDir: string): Promise<unknown> {
  const store = openSqliteInventory(join(dataDir, 'inventory.db'));
  try {
    return {
      feed: await store.feed.head(),
      devices: (await store.devices()).map(({ id, state, tags }) => ({ id, state, tags })),
      certificates: (await store.certificates()).map(({ serial, deviceId, status, replacedBy, fingerprint }) => ({ serial, deviceId, status, replacedBy, fingerprint })),
      tokens: await store.tokens(),
      revocations: await store.revocations(),
    };
  } finally {
    await store.close();
  }
}

export function writeTemp(dir: string, name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** A pino-compatible logger that records lines instead of printing them. */
export function memoryLogger() {
  const lines: Array<{ level: string; obj: unknown; msg?: string }> = [];
  const make = (): any => {
    const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj, msg });
    return { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), trace: at('trace'), fatal: at('fatal'), child: () => make(), lines };
  };
  return make();
}

/**
 * `env` without tap's per-process coverage hook (the `--import` of @tapjs/processinfo that tap puts in NODE_OPTIONS
 * for every process a test starts).
 */
function withoutCoverageHook(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const options = (env.NODE_OPTIONS ?? '').split(/\s+/).filter((o) => o && !o.includes('@tapjs/processinfo'));
  return { ...env, NODE_OPTIONS: options.join(' ') };
}

/*
 * Processes the tests start (the `wott` bundle, gateway processes, agents) run without tap's coverage hook. It costs
 * about a CPU-second per process on this machine, more than most commands themselves, and buys nothing: what those
 * processes run is the esbuild bundle under dist/, which tap's coverage report leaves out (it reports the .ts files
 * the test processes load). With hundreds of processes in the suite that is minutes of the 20-minute budget.
 * tap re-adds the hook to every spawn through process-on-spawn (so editing NODE_OPTIONS is not enough); a listener
 * added after tap's runs after it and takes the hook out again. WOTT_TEST_CHILD_COVERAGE=1 keeps it.
 * Every test that starts a process imports this module (directly or through another helper).
 */
if (process.env.WOTT_TEST_CHILD_COVERAGE !== '1') {
  addSpawnListener((spawned) => {
    spawned.env = withoutCoverageHook(spawned.env);
  });
}

/** The built `wott` command, the bundle that package.json's bin names (npm test builds first). */
export const CLI = resolve('dist/cli/wott.js');
/** The CLI's compiled module tree (dist/cli/main.js and its imports), for tests that import it to look inside. */
export const CLI_MODULE = resolve('dist/cli/main.js');

/**
 * Starts `wott gateway` as a child process on a free port and resolves once it logs its bound port. `command` is
 * the wott to run: the build's by default (the packaging tests run an installed one).
 */
export function startGatewayProcess(dataDir: string, extra: string[] = [], command: string[] = [process.execPath, CLI]): Promise<{ child: ChildProcess; port: number; log: string[] }> {
  return new Promise((resolvePort, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), 'gateway', '--data', dataDir, '--https-port', '0', '--mqtt-port', '0', '--metrics-port', '0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        log.push(line);
        const m = /"https":(\d+)/.exec(line);
        if (m) resolvePort({ child, port: Number(m[1]), log });
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    child.on('exit', (code) => reject(new Error(`gateway exited (${code}) before listening: ${log.join('\n')}`)));
  });
}

