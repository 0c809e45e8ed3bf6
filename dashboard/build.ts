/**
 * Builds the dashboard into dist/dashboard/public: esbuild bundles dashboard/app (Preact, preact-iso) into one
 * hashed script and one stylesheet under assets/, index.html names them, and every file is also written gzip- and
 * brotli-compressed for the gateway to send as they are. Run by `npm run build` after tsc.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const source = resolve('dashboard/app');
const out = resolve('dist/dashboard/public');

const html = (script: string, style: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>wott fleet</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/${style}">
<script type="module" src="/assets/${script}"></script>
</head>
<body>
<div id="app"><p class="boot">Loading the wott dashboard…</p></div>
<noscript>The wott dashboard needs JavaScript. The same data is in the HTTPS API under /api/v1 (see the README).</noscript>
</body>
</html>
`;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

async function main(): Promise<void> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'assets'), { recursive: true });
  const result = await build({
    entryPoints: { app: join(source, 'main.tsx') },
    outdir: join(out, 'assets'),
    entryNames: '[name]-[hash]',
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome111', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const script = outputs.find((p) => p.endsWith('.js'));
  const style = outputs.find((p) => p.endsWith('.css'));
  if (!script || !style) throw new Error(`dashboard build: expected a script and a stylesheet, got ${outputs.join(', ')}`);
  writeFileSync(join(out, 'index.html'), html(script, style));
  let raw = 0;
  let gz = 0;
  for (const file of files(out)) {
    const body = readFileSync(file);
    const gzipped = gzipSync(body, { level: 9 });
    writeFileSync(`${file}.gz`, gzipped);
    writeFileSync(`${file}.br`, brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
    raw += body.length;
    gz += gzipped.length;
  }
  process.stdout.write(`dashboard: ${outputs.join(', ')}, index.html: ${(raw / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzip\n`);
}

await main();
