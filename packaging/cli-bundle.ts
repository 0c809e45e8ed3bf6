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
import { chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

/** The repository root: this file runs as dist/packaging/cli-bundle.js. */
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Bundled CommonJS dependencies (mqtt, pino, fastify) call require() for Node built-ins; ESM has none by default. */
export const ESM_REQUIRE_BANNER = "import { createRequire as __wottCreateRequire } from 'node:module'; const require = __wottCreateRequire(import.meta.url);";

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
  chmodSync(outfile, 0o755);
  return outfile;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await bundleCli();
}
