/**
 * Finding the data folder: every `wott` command that works on a CA finds it the same way (--data, $WOTT_DATA, the
 * config file's `data:`, ./wott-data) and refuses, creating nothing, when there is no CA there; only `ca init` and
 * `gateway` may create one. The commands are taken from the real program's commander tree, so a new command
 * cannot be forgotten here.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Command, type Option } from 'commander';
import { CertificateAuthority, NoCaError } from '../../ca/index.js';
import { scoringPaths } from '../../scoring/index.js';
import { openSqliteScoreStore } from '../../store/index.js';
import { CLI, CLI_MODULE, tempDir } from '../helpers.js';

const execFileP = promisify(execFile);

/** The program `wott` builds, as commander holds it: main.js runs `buildProgram().parseAsync()`, caught here. */
async function programTree(): Promise<{ root: Command; dataUseOf: (cmd: Command) => { needs: string; remote: boolean } | undefined }> {
  const original = Command.prototype.parseAsync;
  let root: Command | undefined;
  Command.prototype.parseAsync = async function (this: Command) {
    root = this;
    return this;
  };
  try {
    await import(pathToFileURL(CLI_MODULE).href);
  } finally {
    Command.prototype.parseAsync = original;
  }
  // The same module instance main.js used, so its record of which command does what with the data folder.
  const options = (await import(pathToFileURL(CLI_MODULE.replace(/main\.js$/, 'options.js')).href)) as typeof import('../../cli/options.js');
  if (!root) throw new Error('dist/cli/main.js did not parse a program');
  return { root, dataUseOf: options.dataUseOf as never };
}

/** Every command with an action, with its words (`ca init`). */
function commands(root: Command): Array<{ words: string[]; cmd: Command }> {
  const out: Array<{ words: string[]; cmd: Command }> = [];
  const walk = (cmd: Command, words: string[]) => {
    if ((cmd as unknown as { _actionHandler?: unknown })._actionHandler) out.push({ words, cmd });
    for (const sub of cmd.commands) walk(sub, [...words, sub.name()]);
  };
  walk(root, []);
  return out;
}

/** Commands that may create a CA, that keep their own folder without a CA, and that take no data folder at all. */
const CREATE_CA = ['ca init', 'gateway'];
const OWN_FOLDER = ['scoring']; // on its own host: its score store only; it follows a CA's inventory when one is there
const NO_DATA = [
  'agent enroll', // the agent's own --dir
  'agent run',
  'agent service', // prints the systemd unit of this install
  'agent credentials', // the agent's own --credentials-dir
  'agent report-peer', // the agent's own --dir (runs on a device)
  'cluster status', // reads Redis, named by the config's cluster: section
  'store migrate', // its own --from sqlite:DIR (read only) and --to postgres://
];
const CA_OR_SCORES = ['score show', 'score history']; // they read a scoring host's folder too (and create nothing)

/** Values for mandatory options and arguments, so that each command gets past commander to the data-folder check. */
function sampleArgs(words: string[], cmd: Command, scratch: string): string[] {
  const samples: Record<string, string> = {
    '--device': 'dev1',
    '--out': join(scratch, 'out'),
    '--name': 'n1',
    '--mqtt': 'mqtts://127.0.0.1:1',
    '--topic': 'a/b',
    '--set': 'x',
    '--tags': 'db',
    '--min-score': '0.8',
    '--feed': 'osv',
  };
  const args: string[] = [];
  for (const o of cmd.options as Option[]) {
    if (!o.mandatory) continue;
    const value = o.argChoices?.[0] ?? samples[o.long!];
    if (value === undefined) throw new Error(`wott ${words.join(' ')}: no sample value for its mandatory ${o.long}: add one to sampleArgs`);
    args.push(o.long!, value);
  }
  // Variadic lists too: a command may insist on a non-empty one (device tag) before it looks for any folder.
  for (const a of cmd.registeredArguments) if (a.required || a.variadic) args.push(a.name() === 'id' ? 'dev1' : 'n1');
  return [...words, ...args];
}

async function wott(args: string[], cwd: string, env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const full = { ...process.env, ...env };
  for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { cwd, env: full, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** Runs `fn` over `items`, `n` at a time (each item is a CLI process; the machine is shared). */
async function inBatches<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

const NO_WOTT_DATA = { WOTT_DATA: undefined, WOTT_CONFIG: undefined };

t.test('every command refuses a folder without a CA and creates nothing, but ca init and gateway', async (t) => {
  const { root, dataUseOf } = await programTree();
  const all = commands(root);
  t.ok(all.length >= 30, `${all.length} commands found in the tree`);
  const name = (words: string[]) => words.join(' ');

  // Each command says what it does with the data folder; the exceptions are exactly these.
  for (const { words, cmd } of all) {
    const use = dataUseOf(cmd);
    const n = name(words);
    if (!use) t.ok(NO_DATA.includes(n), `${n} takes no data folder: only the agent, cluster status and store migrate may (give it withData)`);
    else if (use.needs === 'create-ca') t.ok(CREATE_CA.includes(n), `${n} may create a CA`);
    else if (use.needs === 'folder') t.ok(OWN_FOLDER.includes(n), `${n} keeps its own folder`);
    else if (use.needs === 'scores') t.ok(CA_OR_SCORES.includes(n), `${n} reads a CA's or a scoring host's folder`);
    else t.equal(use.needs, 'ca', `${n} needs the CA`);
  }
  for (const n of [...CREATE_CA, ...OWN_FOLDER, ...NO_DATA, ...CA_OR_SCORES]) t.ok(all.some((c) => name(c.words) === n), `${n} is still a command`);

  const needsCa = all.filter(({ cmd }) => ['ca', 'scores'].includes(dataUseOf(cmd)?.needs ?? ''));
  t.ok(needsCa.length >= 25, `${needsCa.length} commands need the CA`);
  // (A missing --data is tried on the first command of each group: each run is a process start, on a shared machine.)
  const firstOfGroup = new Set(needsCa.filter((c, i) => needsCa.findIndex((d) => d.words[0] === c.words[0]) === i));
  await inBatches(needsCa, 3, async (entry) => {
    const { words, cmd } = entry;
    const n = name(words);
    // The wrong folder: the default ./wott-data of an empty working folder.
    const cwd = tempDir(t);
    const args = sampleArgs(words, cmd, cwd);
    const here = await wott(args, cwd, NO_WOTT_DATA);
    t.equal(here.code, 2, `${n}: refused with exit code 2 (${here.stderr.trim().split('\n')[0]})`);
    t.match(here.stderr, `no CA in ${join(cwd, 'wott-data')} (the default ./wott-data`, `${n}: names the folder and why`);
    t.match(here.stderr, /--data DIR, WOTT_DATA=DIR or data: DIR in wott\.yaml/, `${n}: says how to point at the CA`);
    t.match(here.stderr, /wott ca init --data /, `${n}: says how to create one`);
    t.equal(here.stdout, '', `${n}: prints no result`);
    t.same(readdirSync(cwd), [], `${n}: nothing created in the working folder`);
    if (!firstOfGroup.has(entry)) return;
    // A --data that does not exist: still nothing created, neither the folder nor anything beside it.
    const missing = join(cwd, 'nowhere', 'data');
    const given = await wott([...args, '--data', missing], cwd, NO_WOTT_DATA);
    t.equal(given.code, 2, `${n} --data MISSING: refused`);
    t.match(given.stderr, `no CA in ${missing} (given with --data)`);
    t.same(readdirSync(cwd), [], `${n} --data MISSING: nothing created`);
  });

  await t.test('device commands with --server need no data folder', async (t) => {
    const remote = all.filter(({ cmd }) => dataUseOf(cmd)?.remote);
    t.ok(remote.length >= 6, 'the device commands work remotely');
    await inBatches(remote, 3, async ({ words, cmd }) => {
      const cwd = tempDir(t);
      const r = await wott(['--server', 'https://127.0.0.1:1', '--credentials', join(cwd, 'creds'), ...sampleArgs(words, cmd, cwd)], cwd, NO_WOTT_DATA);
      t.equal(r.code, 2);
      t.notMatch(r.stderr, /no CA/, `${name(words)} --server: no data folder looked for`);
      t.match(r.stderr, /--credentials .*creds: no such folder/, `${name(words)} --server: went on to the remote gateway's credentials`);
      t.same(readdirSync(cwd), []);
    });
  });

  await t.test("score show reads a scoring host's folder, which has a score store and no CA", async (t) => {
    const data = join(tempDir(t), 'scoring-data');
    await (await openSqliteScoreStore(scoringPaths(data).store)).close();
    const r = await wott(['score', 'show', 'dev1', '--data', data], data, NO_WOTT_DATA);
    t.equal(r.code, 1);
    t.match(r.stderr, /^no score for dev1 yet/, 'not refused: it looked in the store');
    t.notOk(existsSync(join(data, 'ca')), 'and made no CA');
  });

  await t.test('ca init creates the CA in the folder it finds', async (t) => {
    const cwd = tempDir(t);
    const r = await wott(['ca', 'init'], cwd, NO_WOTT_DATA);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, `CA ready in ${join(cwd, 'wott-data')}`);
    t.ok(existsSync(join(cwd, 'wott-data', 'ca', 'root.crt')));
    const token = await wott(['token', 'create', '--device', 'dev1'], cwd, NO_WOTT_DATA);
    t.equal(token.code, 0, 'the other commands find it there');
  });

  await t.test('gateway creates its CA in $WOTT_DATA', async (t) => {
    const cwd = tempDir(t);
    const data = join(cwd, 'from-env');
    const child = spawn(process.execPath, [CLI, 'gateway', '--https-port', '0', '--mqtt-port', '0', '--metrics-port', '0'], {
      cwd,
      env: { ...process.env, WOTT_DATA: data, WOTT_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    t.teardown(async () => {
      child.kill('SIGTERM');
      await exited;
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const found = out.split('\n').find((l) => l.includes('"gateway listening"'));
        if (found) resolve(found);
      });
      child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${out}`)));
    });
    t.equal(JSON.parse(line).dataDir, data);
    t.ok(existsSync(join(data, 'ca', 'root.crt')), 'its CA is there');
    t.notOk(existsSync(join(cwd, 'wott-data')), 'not in ./wott-data');
  });
});

t.test('the data folder: --data, then $WOTT_DATA, then data: in the config file, then ./wott-data', async (t) => {
  const dir = tempDir(t);
  const cwd = join(dir, 'work');
  mkdirSync(cwd);
  // Four CAs, told apart by their root fingerprints.
  const fingerprints: Record<string, string> = {};
  for (const [label, path] of [['flag', join(dir, 'flag')], ['env', join(dir, 'env')], ['config', join(cwd, 'from-config')], ['default', join(cwd, 'wott-data')], ['other', join(dir, 'other-data')]] as const) {
    const init = await wott(['ca', 'init', '--data', path], dir, NO_WOTT_DATA);
    t.equal(init.code, 0, init.stderr);
    fingerprints[label] = /root SHA-256 fingerprint: (\S+)/.exec(init.stdout)![1]!;
  }
  const which = async (args: string[], env: Record<string, string | undefined>) => {
    const r = await wott(['ca', 'fingerprint', ...args], cwd, { ...NO_WOTT_DATA, ...env });
    t.equal(r.code, 0, r.stderr);
    return Object.entries(fingerprints).find(([, f]) => f === r.stdout.trim())?.[0];
  };

  t.equal(await which([], {}), 'default', 'nothing given: ./wott-data');
  writeFileSync(join(cwd, 'wott.yaml'), 'data: from-config\n');
  t.equal(await which([], {}), 'config', "./wott.yaml's data:");
  t.equal(await which([], { WOTT_DATA: join(dir, 'env') }), 'env', '$WOTT_DATA over the config file');
  t.equal(await which(['--data', join(dir, 'flag')], { WOTT_DATA: join(dir, 'env') }), 'flag', '--data over everything');
  t.equal(await which(['--data', '../flag'], {}), 'flag', 'a relative --data is relative to the working folder');

  // --config elsewhere: its data: is relative to that file's folder, not to the working folder.
  mkdirSync(join(dir, 'etc'));
  writeFileSync(join(dir, 'etc', 'wott.yaml'), 'data: ../other-data\n');
  t.equal(await which(['--config', join(dir, 'etc', 'wott.yaml')], {}), 'other', "--config's data:, relative to its folder");
  t.equal(await which(['--config', join(dir, 'etc', 'wott.yaml')], { WOTT_DATA: join(dir, 'env') }), 'env');

  // A config file without data: falls through to ./wott-data, and says so when there is no CA.
  writeFileSync(join(cwd, 'wott.yaml'), 'enrollment:\n  claim: false\n');
  t.equal(await which([], {}), 'default');
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  writeFileSync(join(empty, 'wott.yaml'), 'data: ./nope\n');
  const refused = await wott(['ca', 'list'], empty, NO_WOTT_DATA);
  t.equal(refused.code, 2);
  t.match(refused.stderr, `no CA in ${join(empty, 'nope')} (from data: in ${join(empty, 'wott.yaml')})`);
  t.same(readdirSync(empty), ['wott.yaml'], 'nothing created');

  // `gateway reload` takes --data on either word.
  const reload = await wott(['gateway', '--data', join(dir, 'flag'), 'reload'], cwd, NO_WOTT_DATA);
  t.match(reload.stderr, `no gateway is running on ${join(dir, 'flag')}`, '--data before reload is the one used');
});

t.test('CertificateAuthority.open({ create: false }) refuses and touches nothing', async (t) => {
  const data = join(tempDir(t), 'data');
  await t.rejects(CertificateAuthority.open({ dataDir: data, create: false }), NoCaError);
  t.notOk(existsSync(data), 'the folder was not created');
  const ca = await CertificateAuthority.open({ dataDir: data });
  await ca.close();
  const again = await CertificateAuthority.open({ dataDir: data, create: false });
  t.equal(again.material.root.fingerprint256, ca.material.root.fingerprint256, 'an existing CA opens');
  await again.close();
});
