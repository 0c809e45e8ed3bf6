/**
 * `wott cve update|check|status`: offline CVE data for Debian packages. `update` loads the Debian Security Tracker
 * JSON or OSV records from files or URLs into the embedded store (all or nothing); `check` lists the findings for
 * this host from its dpkg status; `status` says what is loaded.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import ms from 'ms';
import { resolve } from 'node:path';
import { collectListening } from '../agent/collectors/net.js';
import { collectOs } from '../agent/collectors/os.js';
import { readBounded } from '../agent/collectors/fs.js';
import { openSelectedVulnStore } from '../store/index.js';
import { loadConfig } from './config.js';
import { withData } from './options.js';
import {
  CveDatabase,
  CveFeedError,
  CveStoreError,
  DEFAULT_MAX_BYTES,
  DEFAULT_TIMEOUT_MS,
  debianRelease,
  inventoryFromDpkgStatus,
  InvalidVersionError,
  updateCveStore,
  type CveFinding,
  type LoadRecord,
  type OsRelease,
} from '../vuln/index.js';

const MAX_STATUS_BYTES = 64 * 1024 * 1024;

function durationArg(value: string): number {
  const parsed = ms(value as ms.StringValue);
  if (typeof parsed !== 'number' || !(parsed > 0)) throw new InvalidArgumentError('expected a duration such as 30s or 5m');
  return parsed;
}

/** "256M", "1G", "500000" → bytes. */
function sizeArg(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a size such as 500M or 1G');
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const n = Math.floor(Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1));
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive size');
  return n;
}

function releaseArg(value: string): string {
  const v = value.trim().toLowerCase();
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(v)) throw new InvalidArgumentError('expected a Debian release codename such as bookworm');
  return v;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** Feed and store problems are the user's to fix: print them plainly and exit 2, as the CLI does for CA errors. */
async function run(fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CveFeedError || err instanceof CveStoreError || err instanceof InvalidVersionError) {
      process.stderr.write(`wott: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}

const n = (x: number) => x.toLocaleString('en-US');

function describeLoad(r: LoadRecord): string {
  const lines = [
    `CVE data: ${n(r.entries)} entries (${n(r.fixed)} with a fix, ${n(r.open)} open) for ${n(r.sources)} source packages in ${r.releases.length} releases (${r.releases.join(', ')}), from ${r.feeds.length} feed(s):`,
  ];
  for (const f of r.feeds) {
    lines.push(`  feed ${f.name}: ${n(f.entries)} entries, loaded ${f.loadedAt} (generation ${f.generation})`);
    for (const o of f.origins) {
      const s = o.stats.skipped;
      lines.push(
        `    ${o.from}: ${o.format}, ${n(o.bytes)} bytes, ${n(o.stats.records)} records → ${n(o.stats.entries)} entries; skipped ${n(s.notAffected)} not affected, ` +
          `${n(s.unimportant)} unimportant${s.withdrawn ? `, ${n(s.withdrawn)} withdrawn` : ''}${s.otherEcosystem ? `, ${n(s.otherEcosystem)} other ecosystems` : ''}`,
      );
    }
  }
  lines.push(`generation ${r.generation}, ${r.loadedAt}`);
  return lines.join('\n') + '\n';
}

function formatFinding(f: CveFinding): string {
  const tags = [f.remote === true ? 'remote' : f.remote === false ? 'local' : 'scope unknown', f.exposed ? 'EXPOSED (listening service)' : ''].filter(Boolean).join(', ');
  return (
    `${f.severity.toUpperCase().padEnd(8)} ${f.cve.padEnd(16)} ${f.source} ${f.installed} → fixed in ${f.fixed} (${tags})${f.advisory ? ` [${f.advisory}]` : ''}\n` +
    `         fix: ${f.action}\n`
  );
}

/** `_defaults` is ignored: the data folder is found as for every command (cli/options.ts). */
export function registerCveCommands(program: Command, _defaults?: { dataDir: string }): void {
  const cve = program.command('cve').description('offline CVE matching of Debian packages (Debian Security Tracker JSON, OSV)');

  withData(cve.command('update'))
    .description('load vulnerability data into the store; a bad or truncated feed fails and keeps the previous data')
    .option('--from <file|url>', 'tracker JSON, OSV record(s) / JSON Lines, a folder of OSV files, or an http(s) URL (repeatable)', collect, [])
    .addOption(new Option('--timeout <duration>', 'URL download timeout').argParser(durationArg).default(DEFAULT_TIMEOUT_MS, '60s'))
    .addOption(new Option('--max-size <size>', 'largest feed accepted').argParser(sizeArg).default(DEFAULT_MAX_BYTES, '256M'))
    .option('--release <codename>', 'keep only this release (repeatable; default: all)', (v: string, prev: string[]) => [...prev, releaseArg(v)], [])
    .option('--feed <name>', 'the stored feed these inputs replace (default: their format, debian-tracker or osv); other feeds are kept')
    .action((opts: { from: string[]; data: string; config?: string; timeout: number; maxSize: number; release: string[]; feed?: string }) =>
      run(async () => {
        if (opts.from.length === 0) throw new InvalidArgumentError('give --from FILE|URL (repeat it to load several feeds together)');
        const { store: selection } = loadConfig(opts.config).config;
        const store = selection.postgres ? await openSelectedVulnStore(selection, resolve(opts.data)) : undefined;
        try {
          const record = await updateCveStore({
            dataDir: resolve(opts.data),
            ...(store ? { store } : {}),
            from: opts.from,
            timeoutMs: opts.timeout,
            maxBytes: opts.maxSize,
            releases: opts.release,
            ...(opts.feed === undefined ? {} : { feed: opts.feed }),
            onParsed: (entries) => process.stderr.write(`parsed ${n(entries)} entries; writing the store\n`),
          });
          const loaded = record.feeds.filter((f) => f.generation === record.generation);
          process.stdout.write(`loaded feed ${loaded.map((f) => `${f.name} (${n(f.entries)} entries)`).join(', ')}; the other feeds are kept\n` + describeLoad(record));
        } finally {
          await store?.close();
        }
      }),
    );

  withData(cve.command('remove'))
    .description('drop one stored feed (see wott cve status); the other feeds stay')
    .requiredOption('--feed <name>', 'the feed to drop')
    .action((opts: { feed: string; data: string; config?: string }) =>
      run(async () => {
        const store = await openSelectedVulnStore(loadConfig(opts.config).config.store, resolve(opts.data));
        try {
          const record = await store.remove(opts.feed);
          process.stdout.write(`removed feed ${opts.feed}\n` + (record ? describeLoad(record) : 'no CVE data is left\n'));
        } finally {
          await store.close();
        }
      }),
    );

  withData(cve.command('status'))
    .description('show what vulnerability data is loaded')
    .option('--json', 'machine-readable output')
    .action((opts: { data: string; config?: string; json?: boolean }) =>
      run(async () => {
        const store = await openSelectedVulnStore(loadConfig(opts.config).config.store, resolve(opts.data));
        try {
          const status = await store.status();
          if (opts.json) return void process.stdout.write(JSON.stringify(status, null, 2) + '\n');
          process.stdout.write(status ? describeLoad(status) : 'no CVE data loaded; run wott cve update --from FILE|URL\n');
        } finally {
          await store.close();
        }
      }),
    );

  withData(cve.command('check'))
    .description("list this host's packages with a known, fixed vulnerability (most severe first)")
    .option('--dpkg-status <file>', 'dpkg status file to read the inventory from', '/var/lib/dpkg/status')
    .addOption(new Option('--release <codename>', 'Debian release (default: from /etc/os-release)').argParser(releaseArg))
    .option('--no-listening', "do not look at this host's listening sockets for exposure")
    .option('--json', 'machine-readable output')
    .action((opts: { data: string; config?: string; dpkgStatus: string; release?: string; listening: boolean; json?: boolean }) =>
      run(async () => {
        const store = await openSelectedVulnStore(loadConfig(opts.config).config.store, resolve(opts.data));
        try {
          const status = await store.status();
          if (!status) throw new CveStoreError(`no CVE data in ${store.location}; run wott cve update --from FILE|URL first`);
          const os: OsRelease = opts.release ? { id: 'debian', versionCodename: opts.release } : collectOs('/');
          const release = debianRelease(os);
          if (release === null) throw new CveStoreError(`cannot tell the Debian release of this host (os-release ID=${os.id}); pass --release CODENAME`);
          const text = readBounded(opts.dpkgStatus, { max: MAX_STATUS_BYTES });
          if (text === undefined) throw new CveStoreError(`${opts.dpkgStatus}: cannot read the dpkg status file`);
          const packages = inventoryFromDpkgStatus(text.text, text.truncated);
          if (packages.length === 0) throw new CveStoreError(`${opts.dpkgStatus}: no installed packages found (not a dpkg status file?)`);
          const listening = opts.listening ? collectListening('/') : [];
          const findings = (await CveDatabase.open(store)).match(packages, os, listening);
          if (opts.json) {
            const result = { release, packages: packages.length, data: { generation: status.generation, loadedAt: status.loadedAt }, findings };
            return void process.stdout.write(JSON.stringify(result, null, 2) + '\n');
          }
          const counts = ['critical', 'high', 'medium', 'low', 'unknown']
            .map((s) => [s, findings.filter((f) => f.severity === s).length] as const)
            .filter(([, c]) => c > 0)
            .map(([s, c]) => `${c} ${s}`);
          const releaseKnown = status.releases.includes(release);
          process.stdout.write(
            `${release}: ${n(packages.length)} packages, ${findings.length} finding(s)${counts.length ? ` (${counts.join(', ')})` : ''}; ` +
              `CVE data from ${status.loadedAt}\n`,
          );
          if (!releaseKnown) process.stdout.write(`warning: the loaded data has no entries for ${release} (it covers ${status.releases.join(', ')})\n`);
          for (const f of findings) process.stdout.write(formatFinding(f));
        } finally {
          await store.close();
        }
      }),
    );
}
