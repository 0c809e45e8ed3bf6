/**
 * `wott credential …` (issue 17): operators set, rotate, list, show and remove credentials in the local data folder.
 * Values go in (a file or stdin) and never come out: list and show print metadata only. Each change is audited as
 * the local OS user; a running gateway notices it within a second and delivers or withdraws.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { CredentialService, CredentialVault, DEFAULT_MAX_VALUE_BYTES, type CredentialInfo } from '../credentials/index.js';
import { FleetService, localActor } from '../fleet/index.js';
import { openSelectedCredentialStore } from '../store/index.js';
import { loadConfig } from './config.js';
import { durationArg, openCa, passphrase, withData, type DataOptions } from './options.js';

interface ValueOptions {
  fromFile?: string;
  valueStdin?: boolean;
}

/** Reads at most `max` + 1 bytes from a file descriptor, so that a huge input is refused without being read. */
function readBounded(fd: number, max: number): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((err as NodeJS.ErrnoException).code === 'EOF') break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    total += n;
    if (total > max) throw new InvalidArgumentError(`the value is over ${max} bytes (the bound on one credential)`);
  }
  buf.fill(0);
  return Buffer.concat(chunks);
}

function readValue(opts: ValueOptions, max: number): Buffer {
  if (Boolean(opts.fromFile) === Boolean(opts.valueStdin)) throw new InvalidArgumentError('give the value with exactly one of --from-file FILE or --value-stdin');
  if (opts.valueStdin) return readBounded(0, max);
  const fd = openSync(resolve(opts.fromFile!), 'r');
  try {
    if (fstatSync(fd).size > max) throw new InvalidArgumentError(`${opts.fromFile} is over ${max} bytes (the bound on one credential)`);
    return readBounded(fd, max);
  } finally {
    closeSync(fd);
  }
}

async function withCredentials<T>(opts: DataOptions, fn: (service: CredentialService) => Promise<T>): Promise<T> {
  const ca = await openCa(opts);
  let store;
  try {
    store = await openSelectedCredentialStore(loadConfig(opts.config).config.store, resolve(opts.data));
  } catch (err) {
    await ca.close();
    throw err;
  }
  try {
    const vault = await CredentialVault.openFor(store, resolve(opts.data), passphrase());
    return await fn(new CredentialService(store, vault, new FleetService(ca, localActor())));
  } finally {
    await store.close();
    await ca.close();
  }
}

function scoreArg(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a score from 0 to 1');
  return n;
}

const tagsArg = (value: string) => value.split(',').map((t) => t.trim()).filter(Boolean);

function line(c: CredentialInfo): string {
  const exposed = c.exposedTo.length ? `EXPOSED to ${c.exposedTo.map((e) => e.device).join(',')}: rotate it` : '-';
  return `${c.name}\tv${c.version}\t${c.tags.join(',')}\t${c.minScore}\t${c.linuxUser ?? '-'}\t${c.expiresAt ?? '-'}\t${exposed}\n`;
}

export function registerCredentialCommands(program: Command): void {
  const credential = program.command('credential').description('secrets delivered to devices while they are trusted enough (values are write-only)');
  const valueOptions = (cmd: Command) =>
    cmd.option('--from-file <file>', 'read the value from this file').option('--value-stdin', 'read the value from standard input');
  valueOptions(withData(credential.command('set')))
    .description('create a credential, or replace value and terms of one (a new version)')
    .argument('<name>', 'credential name: also the file name on the device (a-z 0-9 . _ -)')
    .requiredOption('--tags <a,b>', 'devices must hold every one of these tags', tagsArg)
    .requiredOption('--min-score <n>', 'devices must have at least this effective score', scoreArg)
    .option('--linux-user <user>', 'owner of the file on the device')
    .addOption(new Option('--ttl <duration>', 'a version expires after this long (then it is withdrawn until rotated)').argParser(durationArg))
    .action(async (name: string, opts: DataOptions & ValueOptions & { tags: string[]; minScore: number; linuxUser?: string; ttl?: number }) => {
      const value = readValue(opts, DEFAULT_MAX_VALUE_BYTES);
      await withCredentials(opts, async (service) => {
        const c = await service.set(name, value, { tags: opts.tags, minScore: opts.minScore, linuxUser: opts.linuxUser, ttlMs: opts.ttl });
        process.stdout.write(`${c.name} is now version ${c.version} (${c.size} bytes) for devices tagged ${c.tags.join(',')} at ${c.minScore} or more\n`);
      });
      value.fill(0);
    });
  valueOptions(withData(credential.command('rotate')))
    .description('a new value under the same terms: every entitled device gets the new version; clears the exposure flags')
    .argument('<name>', 'credential name')
    .action(async (name: string, opts: DataOptions & ValueOptions) => {
      const value = readValue(opts, DEFAULT_MAX_VALUE_BYTES);
      await withCredentials(opts, async (service) => {
        const c = await service.rotate(name, value);
        process.stdout.write(`${c.name} rotated to version ${c.version}\n`);
      });
      value.fill(0);
    });
  withData(credential.command('list'))
    .description('every credential (metadata only)')
    .option('--json', 'JSON lines, one credential each')
    .action(async (opts: DataOptions & { json?: boolean }) => {
      await withCredentials(opts, async (service) => {
        const all = await service.list();
        if (!opts.json) process.stdout.write('NAME\tVERSION\tTAGS\tMIN SCORE\tUSER\tEXPIRES\tEXPOSED\n');
        for (const c of all) process.stdout.write(opts.json ? JSON.stringify(c) + '\n' : line(c));
      });
    });
  withData(credential.command('show'))
    .description('one credential: terms, version, size, devices it was exposed to (never the value)')
    .argument('<name>', 'credential name')
    .option('--json', 'machine-readable output')
    .action(async (name: string, opts: DataOptions & { json?: boolean }) => {
      await withCredentials(opts, async (service) => {
        const c = await service.show(name);
        if (!c) throw new InvalidArgumentError(`no credential "${name}"`);
        if (opts.json) return void process.stdout.write(JSON.stringify(c, null, 2) + '\n');
        process.stdout.write(
          `name: ${c.name}\nversion: ${c.version}\nsize: ${c.size} bytes\ntags: ${c.tags.join(', ')}\nmin score: ${c.minScore}\nlinux user: ${c.linuxUser ?? '-'}\n` +
            `expires: ${c.expiresAt ?? 'never'}\ncreated: ${c.createdAt}\nupdated: ${c.updatedAt}\n`,
        );
        for (const e of c.exposedTo) process.stdout.write(`EXPOSED to ${e.device} (version ${e.version}, ${e.time}): ${e.reason} — rotate it\n`);
      });
    });
  withData(credential.command('rm'))
    .description('delete a credential; devices holding it delete their copy')
    .argument('<name>', 'credential name')
    .action(async (name: string, opts: DataOptions) => {
      await withCredentials(opts, async (service) => {
        await service.remove(name);
        process.stdout.write(`${name} removed\n`);
      });
    });
}
