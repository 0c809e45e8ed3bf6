/**
 * `npm run package`: builds the two Debian packages from the compiled tree (run after `npm run build`):
 *
 * - wott-agent_<version>_all.deb: the device side only. cli/agent-main.ts bundled by esbuild into one script (pure
 *   JavaScript, so `all` is true), the systemd unit, /var/lib/wott (0700); needs only `nodejs (>= 18)`.
 * - wott_<version>_<arch>.deb: gateway + CLI + agent: dist, the dashboard assets, scoring/model.yaml and the
 *   production node_modules. Not `all`: better-sqlite3 is a native addon (an ELF .node compiled for this machine's
 *   architecture and for one Node.js ABI), so the package is built for `dpkg --print-architecture` and depends on
 *   the Node.js major version the addon was compiled against.
 *
 * The packages are assembled in a staging folder and built with Debian's own `dpkg-deb --root-owner-group` (every
 * file root:root without fakeroot); control fields the Debian helpers would compute (Installed-Size, the shared
 * library dependencies of the addon via dpkg-shlibdeps) are computed the same way here, since wott has no Debian
 * source package to run debhelper on.
 *
 * Usage: node dist/packaging/build.js [--out DIR]   (default build/packages)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, closeSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync,
  statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { AGENT_UNIT_DIR, agentUnit } from '../agent/index.js';
import { ESM_REQUIRE_BANNER, latin1Source } from './cli-bundle.js';

/** The repository root: this file runs as dist/packaging/build.js. */
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const TEMPLATES = join(ROOT, 'packaging', 'debian');

/** Where the agent keeps its key, certificates and state: private to root. */
export const AGENT_DIR = AGENT_UNIT_DIR;
/** Bookworm's place for packaged units (/usr/lib/systemd/system only from trixie on). */
export const UNIT_PATH = '/lib/systemd/system/wott-agent.service';

export interface BuiltPackages {
  version: string;
  arch: string;
  /** Path of wott_<version>_<arch>.deb. */
  wott: string;
  /** Path of wott-agent_<version>_all.deb. */
  agent: string;
}

interface PackageJson {
  version: string;
  dependencies: Record<string, string>;
}

interface LockEntry {
  dev?: boolean;
  link?: boolean;
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim();
}

function template(name: string, values: Record<string, string>): string {
  return readFileSync(join(TEMPLATES, name), 'utf8').replace(/@([A-Z_]+)@/g, (whole, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`packaging/debian/${name}: no value for ${whole}`);
    return value;
  });
}

function writeFile(path: string, content: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeFileSync(path, content);
  chmodSync(path, mode);
}

/** Debian's Installed-Size: the sum of the files' sizes in KiB, rounded up per file as dpkg-gencontrol does. */
function installedSize(dir: string): number {
  let kib = 0;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      if (d === dir && name === 'DEBIAN') continue;
      const path = join(d, name);
      const st = lstatSync(path);
      kib += st.isFile() ? Math.ceil(st.size / 1024) : 1;
      if (st.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return kib;
}

/** A script (#!) or an ELF program: the only files that may keep an executable bit. */
function runnable(path: string): boolean {
  const head = Buffer.alloc(4);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  return head.subarray(0, 2).toString() === '#!' || head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
}

/**
 * Every directory 0755 and every file 0644 or 0755 (Debian policy 10.9), whatever umask the build ran under; npm
 * packages often mark licences or modules executable, so the bit stays only on scripts and programs.
 */
function normaliseModes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) {
      chmodSync(path, 0o755);
      normaliseModes(path);
    } else {
      chmodSync(path, st.mode & 0o111 && runnable(path) ? 0o755 : 0o644);
    }
  }
}

/** Per-file MD5 sums in DEBIAN/md5sums, as dh_md5sums writes them (`dpkg --verify` and debsums read them). */
function md5sums(stage: string): void {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(stage, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === 'DEBIAN') continue;
      const st = lstatSync(join(stage, path));
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) lines.push(`${createHash('md5').update(readFileSync(join(stage, path))).digest('hex')}  ${path}`);
    }
  };
  walk('');
  writeFile(join(stage, 'DEBIAN/md5sums'), lines.join('\n') + '\n');
}

/**
 * What npm packages carry for their own development and no program reads: tests, benchmarks, examples, docs
 * folders, and dotfiles (lint and VCS configuration). Left in, they are dead weight that lintian rightly flags
 * (e.g. .eslintrc, .npmignore, test scripts with a /usr/bin/bash interpreter).
 */
const MODULE_DEV_DIRS = new Set(['test', 'tests', '__tests__', 'benchmark', 'benchmarks', 'bench', 'example', 'examples', 'docs', 'integration', '.github', '.husky']);

/**
 * Documentation (one's licence stays), type declarations, source maps and build files (a Makefile lintian reads as
 * a broken shell script): read by editors, people and make, not Node.
 */
const MODULE_DEV_FILES = /\.(md|markdown|d\.ts|d\.mts|d\.cts|map)$|^(Makefile|GNUmakefile)$/i;
/** A package's own documentation site at its top (pino's index.html loads scripts from CDNs: lintian's privacy-breach). */
const MODULE_TOP_DEV_FILES = /\.html?$/i;

function pruneModule(dir: string, top = true): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    const devFile = st.isFile() && (MODULE_DEV_FILES.test(name) || (top && MODULE_TOP_DEV_FILES.test(name))) && !/^(licen[cs]e|copying|notice)/i.test(name);
    if (name.startsWith('.') || (top && st.isDirectory() && MODULE_DEV_DIRS.has(name)) || devFile) {
      rmSync(path, { recursive: true, force: true });
    } else if (st.isDirectory() && name !== 'node_modules') {
      pruneModule(path, false);
    }
  }
}

/** The timestamp of the changelog entry: the last commit's, so the same tree builds the same changelog. */
function changelogDate(): string {
  let seconds = Number(process.env.SOURCE_DATE_EPOCH);
  if (!Number.isFinite(seconds)) {
    try {
      seconds = Number(sh('git', ['log', '-1', '--format=%ct'], { cwd: ROOT }));
    } catch {
      seconds = Math.floor(Date.now() / 1000);
    }
  }
  // RFC 5322 as Debian changelogs write it: "Mon, 30 Nov 2026 09:00:00 +0000".
  return new Date(seconds * 1000).toUTCString().replace('GMT', '+0000');
}

/** /usr/share/doc/PKG: copyright and the (native package) changelog, gzip -9n as Debian policy asks. */
function docs(stage: string, pkg: string, version: string): void {
  const doc = join(stage, 'usr/share/doc', pkg);
  writeFile(join(doc, 'copyright'), readFileSync(join(TEMPLATES, 'copyright')));
  const changelog = template('changelog', { PACKAGE: pkg, VERSION: version, DATE: changelogDate() });
  writeFile(join(doc, 'changelog.gz'), gzipSync(changelog, { level: 9 }).fill(0, 4, 8)); // -n: no timestamp
  const man = readFileSync(join(TEMPLATES, 'wott.1'), 'utf8').replaceAll('@VERSION@', version);
  writeFile(join(stage, 'usr/share/man/man1/wott.1.gz'), gzipSync(man, { level: 9 }).fill(0, 4, 8));
}

/** What both packages carry for the agent: the unit (ExecStart on the packaged binary) and its private folder. */
function agentFiles(stage: string, pkg: string): void {
  writeFile(join(stage, UNIT_PATH), agentUnit(['/usr/bin/wott'], { documentation: 'man:wott(1)' }));
  mkdirSync(join(stage, AGENT_DIR), { recursive: true });
  writeFile(join(stage, 'DEBIAN/postrm'), template('postrm', { AGENT_DIR }), 0o755);
  writeFile(join(stage, 'usr/share/lintian/overrides', pkg), template('lintian-overrides', { PACKAGE: pkg }));
}

/** `xzLevel`: 6 is dpkg-deb's own default (a release); 1 builds the same files ~8x faster, 25 % larger. */
function dpkgDeb(stage: string, out: string, name: string, xzLevel: number): string {
  chmodSync(join(stage, AGENT_DIR.slice(1)), 0o700); // after normaliseModes: the one private folder
  md5sums(stage);
  const file = join(out, name);
  rmSync(file, { force: true });
  sh('dpkg-deb', ['--root-owner-group', '-Zxz', `-z${xzLevel}`, '--build', stage, file]);
  return file;
}

async function buildAgent(stage: string, out: string, version: string, xzLevel: number): Promise<string> {
  const script = join(stage, 'usr/lib/wott-agent/wott.mjs');
  await build({
    entryPoints: [join(ROOT, 'cli/agent-main.ts')],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    banner: { js: ESM_REQUIRE_BANNER },
    // Readable, not minified: a packaged script someone may have to debug on a device, and lintian reads
    // minified JavaScript as missing source.
    minify: false,
    legalComments: 'inline',
    logLevel: 'warning',
  });
  writeFileSync(script, latin1Source(readFileSync(script, 'utf8')));
  agentFiles(stage, 'wott-agent');
  mkdirSync(join(stage, 'usr/bin'), { recursive: true });
  symlinkSync('../lib/wott-agent/wott.mjs', join(stage, 'usr/bin/wott'));
  docs(stage, 'wott-agent', version);
  normaliseModes(stage);
  chmodSync(script, 0o755);
  writeFile(join(stage, 'DEBIAN/control'), template('wott-agent.control', { VERSION: version, INSTALLED_SIZE: String(installedSize(stage)) }));
  return dpkgDeb(stage, out, `wott-agent_${version}_all.deb`, xzLevel);
}

/** The packages `npm ci --omit=dev` would install, read from the lockfile (no network, no rebuild of the addon). */
function productionModules(): string[] {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path.startsWith('node_modules/') && !entry.dev && !entry.link)
    .map(([path]) => path)
    .filter((path) => existsSync(join(ROOT, path))); // optional dependencies for other platforms are absent
}

/** better-sqlite3 as installed holds its C sources and compiler output; the package needs only lib/ and the addon. */
function trimBetterSqlite(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (!['package.json', 'lib', 'LICENSE', 'build'].includes(name)) rmSync(join(dir, name), { recursive: true, force: true });
  }
  const release = join(dir, 'build/Release');
  for (const name of readdirSync(join(dir, 'build'))) if (name !== 'Release') rmSync(join(dir, 'build', name), { recursive: true, force: true });
  for (const name of readdirSync(release)) if (name !== 'better_sqlite3.node') rmSync(join(release, name), { recursive: true, force: true });
  // Debian ships stripped objects (policy 10.1); debug symbols of a vendored SQLite help nobody here.
  sh('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', join(release, 'better_sqlite3.node')]);
}

/** Depends of the addon's shared libraries (libc6, libstdc++6…), the way debhelper's ${shlibs:Depends} gets them. */
function shlibsDepends(stage: string, files: string[]): string {
  writeFile(join(stage, 'debian/control'), 'Source: wott\n\nPackage: wott\nArchitecture: any\n');
  const out = sh('dpkg-shlibdeps', ['-O', ...files.map((f) => `-e${f}`)], { cwd: stage });
  rmSync(join(stage, 'debian'), { recursive: true });
  const m = /^shlibs:Depends=(.*)$/m.exec(out);
  if (!m?.[1]) throw new Error(`dpkg-shlibdeps gave no dependencies: ${out}`);
  return m[1];
}

function buildWott(stage: string, out: string, pkg: PackageJson, arch: string, xzLevel: number): string {
  const lib = join(stage, 'usr/lib/wott');
  mkdirSync(lib, { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(lib, 'package.json')); // "type": "module" for dist/
  // Only what runs: no tests, benchmarks, this builder, type declarations or source maps (the .ts is not shipped).
  cpSync(join(ROOT, 'dist'), join(lib, 'dist'), {
    recursive: true,
    filter: (src) => {
      const rel = src.slice(join(ROOT, 'dist').length + 1);
      return !/^(bench|fuzz|test|packaging)(\/|$)/.test(rel) && rel !== 'cli/agent-main.js' && !/\.d\.ts$|\.map$/.test(rel);
    },
  });
  for (const needed of ['dist/cli/wott.js', 'dist/scoring/model.yaml', 'dist/dashboard/public/index.html']) {
    if (!existsSync(join(ROOT, needed))) throw new Error(`${needed} is missing: run \`npm run build\` first`);
  }
  for (const path of productionModules()) {
    cpSync(join(ROOT, path), join(lib, path), { recursive: true, verbatimSymlinks: true, filter: (src) => !src.endsWith('/node_modules/.bin') });
    pruneModule(join(lib, path));
  }
  const addonDir = join(lib, 'node_modules/better-sqlite3');
  trimBetterSqlite(addonDir);
  agentFiles(stage, 'wott');
  mkdirSync(join(stage, 'usr/bin'), { recursive: true });
  symlinkSync('../lib/wott/dist/cli/wott.js', join(stage, 'usr/bin/wott'));
  docs(stage, 'wott', pkg.version);
  normaliseModes(stage);
  chmodSync(join(lib, 'dist/cli/wott.js'), 0o755);
  const addon = join(addonDir, 'build/Release/better_sqlite3.node');
  chmodSync(addon, 0o644); // a library, not a program
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  const depends = [`nodejs (>= ${nodeMajor})`, `nodejs (<< ${nodeMajor + 1})`, shlibsDepends(stage, [addon])].join(', ');
  writeFile(join(stage, 'DEBIAN/control'), template('wott.control', {
    VERSION: pkg.version, ARCH: arch, DEPENDS: depends, NODE_MAJOR: String(nodeMajor),
    NODE_ABI: process.versions.modules, INSTALLED_SIZE: String(installedSize(stage)),
  }));
  return dpkgDeb(stage, out, `wott_${pkg.version}_${arch}.deb`, xzLevel);
}

export async function buildPackages(out: string, options: { compressionLevel?: number } = {}): Promise<BuiltPackages> {
  const xzLevel = options.compressionLevel ?? 6;
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  const arch = sh('dpkg', ['--print-architecture']);
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'wott-package-'));
  try {
    const agent = await buildAgent(join(work, 'wott-agent'), out, pkg.version, xzLevel);
    const wott = buildWott(join(work, 'wott'), out, pkg, arch, xzLevel);
    return { version: pkg.version, arch, wott, agent };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--out');
  const out = resolve(i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : join(ROOT, 'build/packages'));
  const z = process.argv.indexOf('--compression-level');
  const level = z > 0 ? Number(process.argv[z + 1]) : 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    process.stderr.write('--compression-level: expected 0 to 9 (xz; 6 by default)\n');
    process.exit(2);
  }
  const built = await buildPackages(out, { compressionLevel: level });
  for (const file of [built.wott, built.agent]) process.stdout.write(`${file} (${Math.ceil(statSync(file).size / 1024)} KiB)\n`);
}
