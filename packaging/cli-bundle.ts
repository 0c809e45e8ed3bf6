/**
 * Bundles the `wott` command into one script, dist/cli/wott.js (run by `npm run build`).
 *
 * Why: the compiled CLI is ~1,000 modules (our ~400 plus their CommonJS dependencies), and Node 20 resolves,
 * reads and compiles each at every start: `wott --version` took 1.1 s on the 2-core machine, every command paid it,
 * and the test suite runs the CLI hundreds of times. One file skips the resolution and the per-module loader work
 * (0.4 s measured beside 1.1 s). Node 20 has no compile cache (`module.enableCompileCache` is Node 22), so this is
 * the lever we have.
 *
 * The input is the tsc output (dist/cli/main.js, decorators and all already compiled by tsc, the one compiler the
 * project trusts); esbuild follows its source maps, so stack traces and coverage point at the .ts files.
 * The bundle sits in dist/cli/ beside main.js, one folder below dist/ like every component, so files found relative to
 * a module (`../scoring/model.yaml`, `../dashboard/public/`) resolve the same from either.
 *
 * Usage: node dist/packaging/cli-bundle.js
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from 'acorn';
import { build } from 'esbuild';

/** The repository root: this file runs as dist/packaging/cli-bundle.js. */
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Bundled CommonJS dependencies (mqtt, pino, fastify) call require() for Node built-ins; ESM has none by default. */
export const ESM_REQUIRE_BANNER = "import { createRequire as __wottCreateRequire } from 'node:module'; const require = __wottCreateRequire(import.meta.url);";

/**
 * The bundle with every character above U+00FF written as a \uXXXX escape, so that V8 holds the script as a
 * one-byte string.
 *
 * Why: V8 keeps a script's source at one byte per character only while every character fits in Latin-1. esbuild's
 * ASCII output escapes strings and templates, but keeps comments and regular expression literals as written, and one
 * '→' in a comment made the whole 6.9 MB bundle two bytes per character: ~7 MB more heap in every wott process, the
 * agent on a device included. An escape means the same in a comment (text only) and in a regular expression
 * literal (in and out of a class, with or without the u flag). Anywhere else (a tagged template's raw text, which
 * esbuild must keep as written) it would change the program, so such a character fails the build instead. acorn
 * tells comments and regular expressions apart from the rest; a hand-written scan cannot (a '/' may divide).
 */
export function latin1Source(code: string): string {
  if (!/[^\x00-\xff]/.test(code)) return code;
  const escapable: Array<[number, number]> = [];
  parse(code, {
    ecmaVersion: 'latest',
    sourceType: 'module',
    allowHashBang: true,
    onComment: (_block, _text, start, end) => void escapable.push([start, end]),
    onToken: (token) => void (token.type.label === 'regexp' && escapable.push([token.start, token.end])),
  });
  escapable.sort((a, b) => a[0] - b[0]);
  let out = '';
  let from = 0;
  let range = 0;
  for (let i = 0; i < code.length; i++) {
    if (code.charCodeAt(i) <= 0xff) continue;
    while (range < escapable.length && escapable[range]![1] <= i) range++;
    const r = escapable[range];
    if (!r || r[0] > i) {
      const line = code.slice(0, i).split('\n').length;
      throw new Error(`bundle: U+${code.charCodeAt(i).toString(16).toUpperCase().padStart(4, '0')} at line ${line} is neither in a comment nor in a regular expression: write it as an escape in the source`);
    }
    out += `${code.slice(from, i)}\\u${code.charCodeAt(i).toString(16).padStart(4, '0')}`;
    from = i + 1;
  }
  return out + code.slice(from);
}

/** The bundled `wott` command. */
export const CLI_BUNDLE = join(ROOT, 'dist/cli/wott.js');

export async function bundleCli(outfile = CLI_BUNDLE): Promise<string> {
  await build({
    entryPoints: [join(ROOT, 'dist/cli/main.js')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    banner: { js: ESM_REQUIRE_BANNER },
    // A native addon cannot be bundled; pg-native is pg's optional binding, not installed.
    external: ['better-sqlite3', 'pg-native'],
    sourcemap: 'linked',
    // The map only points at the files (the .ts sources are in the repository): with sourcesContent it was 12 MB,
    // and Node parses and copies the whole map into every process's coverage file when NODE_V8_COVERAGE is set.
    sourcesContent: false,
    minify: false, // readable stack traces and a script someone can debug; minifying saved little start time
    legalComments: 'inline',
    logLevel: 'warning',
  });
  writeFileSync(outfile, latin1Source(readFileSync(outfile, 'utf8')));
  chmodSync(outfile, 0o755);
  return outfile;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await bundleCli();
}
